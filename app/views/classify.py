"""Classify: the Gradio zero-shot tab, embedded (its server runs separately)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import streamlit as st

from app import data
from app.ui import guarded

DEFAULT_GRADIO_URL = "http://127.0.0.1:7860"


def gradio_url() -> str:
    """Where the user's browser reaches the Gradio server (``CLAREL_GRADIO_URL``)."""
    return os.environ.get("CLAREL_GRADIO_URL", DEFAULT_GRADIO_URL).rstrip("/") or DEFAULT_GRADIO_URL


def server_is_up(url: str, timeout: float = 1.0) -> bool:
    """True when an HTTP GET of ``url`` answers (any status below 500) within ``timeout`` seconds."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - a local, configured URL
            return response.status < 500
    except urllib.error.HTTPError as e:
        return e.code < 500
    except (OSError, ValueError):
        return False


@guarded("The Classify page")
def render() -> None:
    st.title("Classify")
    st.caption("Upload an image and type class descriptions: the trained model scores them zero-shot.")
    url = gradio_url()
    if not server_is_up(url):
        st.warning(f"The classifier server is not answering at {url}.", icon=":material/power_off:")
        st.markdown("Start it in a terminal at the repository root (or run `make demo`, which starts everything):")
        st.code(data.GRADIO_COMMAND, language="bash")
        st.caption("If it runs elsewhere, set CLAREL_GRADIO_URL to an address your browser can reach and restart "
                   "this app.")
        st.button("Check again", key="cls_retry")
        return
    st.iframe(url, height=900)
    st.caption(f"Served by the Gradio app at [{url}]({url}) — open it in its own tab for more room.")
