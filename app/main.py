"""CLAREL Studio, the Streamlit front end: ``streamlit run app/main.py``.

Reads the run store (``CLAREL_DB_URL``, default SQLite under ``CLAREL_HOME``) and never trains,
extracts features or computes UMAP itself: jobs do that in ``python -m jobs.worker``.
"""

from __future__ import annotations

import streamlit as st

from app.ui import boundary, worker_status
from app.views import classify, compare, joint_space, runs, seen_unseen

st.set_page_config(page_title="CLAREL Studio", page_icon=":material/flutter_dash:", layout="wide", initial_sidebar_state="expanded")

PAGES = [
    st.Page(runs.render, title="Runs", icon=":material/play_circle:", url_path="runs", default=True),
    st.Page(joint_space.render, title="Joint space", icon=":material/scatter_plot:", url_path="joint_space"),
    st.Page(seen_unseen.render, title="Seen / unseen", icon=":material/balance:", url_path="seen_unseen"),
    st.Page(compare.render, title="Compare", icon=":material/compare_arrows:", url_path="compare"),
    st.Page(classify.render, title="Classify", icon=":material/image_search:", url_path="classify"),
]

page = st.navigation(PAGES)
with st.sidebar:
    st.markdown("## :material/flutter_dash: CLAREL Studio")
    st.caption("Zero-shot classification via retrieval loss (Oreshkin et al., 2019).")


@st.fragment(run_every=5)
def _sidebar_status() -> None:
    with boundary("Reading worker heartbeats"):
        worker_status(compact=True)


with st.sidebar:
    _sidebar_status()

with boundary(f"The {page.title} page"):
    page.run()
