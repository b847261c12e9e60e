"""Joint space: the stored UMAP projection of images, per-image captions and class prototypes.

Click a point (or pick a class prototype) to see its image or captions and its nearest
neighbours in the other modalities, measured in the full joint space, not in 2-D.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from app import data, figures
from app.logic import filter_points, nearest_neighbours, umap_frame
from app.ui import guarded, require_finished_runs, run_picker

_MODALITIES = ("image", "text", "prototype")


@guarded("The Joint space page")
def render() -> None:
    st.title("Joint space")
    st.caption("Images and texts live in one space: an image sits near the captions and the prototype of its "
               "class. Colours are classes (or seen/unseen), shapes are modalities; the layout is UMAP.")
    job = run_picker(require_finished_runs(), key="js_run")
    proj = data.umap(job)
    ev = data.eval_arrays(job)
    if proj is None or ev is None:
        st.warning(f"Run #{job.id} has no stored UMAP projection or evaluation arrays, so there is nothing to plot. "
                   "The worker stores them at the end of a successful run.", icon=":material/warning:")
        return
    dataset, why = data.dataset_for(job)
    if why:
        st.caption(f":material/info: {why}")
    frame = umap_frame(proj, ev.class_names, ev.seen_mask, dataset.captions if dataset is not None else None)

    c1, c2, c3, c4 = st.columns([1.2, 1, 1.5, 2])
    color_by = c1.segmented_control("Colour by", ["class", "group"], default="class", key="js_color",
                                    format_func=lambda v: "class" if v == "class" else "seen / unseen") or "class"
    groups = c2.pills("Classes", ["seen", "unseen"], selection_mode="multi", default=["seen", "unseen"],
                      key="js_groups") or []
    modalities = c3.pills("Modalities", list(_MODALITIES), selection_mode="multi", default=list(_MODALITIES),
                          key="js_modalities", format_func=lambda m: {"text": "caption"}.get(m, m)) or []
    classes = c4.multiselect("Only these classes", sorted(frame["class_name"].unique()), key="js_classes",
                             placeholder="all classes")
    shown = filter_points(frame, groups, modalities, classes)

    left, right = st.columns([2.3, 1.7])
    with left:
        if shown.empty:
            st.info("No point matches the filters.", icon=":material/info:")
        else:
            st.caption(f"{len(shown)} of {len(frame)} points · click a point to inspect it")
            event = st.plotly_chart(figures.umap_figure(shown, color_by),
                                    key="js_chart", on_select="rerun", selection_mode="points")
            picked = _picked_row(event, shown)
            if picked is not None:
                st.session_state["js_selected"] = picked
    with right:
        _inspector(job, frame, ev, dataset)


def _picked_row(event: Any, shown: pd.DataFrame) -> int | None:
    """The frame row of the clicked point (from its customdata, else its coordinates)."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    for point in points:
        custom = point.get("customdata")
        if isinstance(custom, list | tuple):
            custom = custom[0] if custom else None
        if custom is not None and int(custom) in shown.index:
            return int(custom)
        near = shown[np.isclose(shown["x"], point.get("x", np.nan)) & np.isclose(shown["y"], point.get("y", np.nan))]
        if len(near):
            return int(near.index[0])
    return None


def _inspector(job: Any, frame: pd.DataFrame, ev: Any, dataset: Any) -> None:
    st.subheader("Inspect")
    protos = frame[frame["modality"] == "prototype"].sort_values("class_name")
    options = [None, *protos.index.tolist()]
    choice = st.selectbox("…or pick a class prototype", options, key="js_proto",
                          format_func=lambda i: "(none)" if i is None else frame.loc[i, "class_name"])
    selected = choice if choice is not None else st.session_state.get("js_selected")
    if selected is None or selected not in frame.index:
        st.caption("Click a point in the plot to see its image or caption and its nearest neighbours.")
        return
    row = frame.loc[selected]
    st.markdown(f"**{row['class_name']}** · {row['group']} class · {figures.MODALITY_NAMES[row['modality']]}")
    _show_item(row["modality"], int(row["item_index"]), dataset)
    emb = data.embeddings(job)
    if emb is None:
        st.info("This run stored no embeddings, so neighbours cannot be listed.")
        return
    neighbours = nearest_neighbours(emb, row["modality"], int(row["item_index"]), k=5)
    if neighbours.empty:
        st.info("This point has no stored embedding.")
        return
    labels = _item_labels(emb, frame)
    neighbours["class"] = [
        ev.class_names[i] if m == "prototype" else ev.class_names[labels[i]] if i in labels else "?"
        for m, i in zip(neighbours["modality"], neighbours["item_index"])]
    neighbours["same class"] = neighbours["class"] == row["class_name"]
    neighbours["what"] = [_describe(m, i, dataset) for m, i in zip(neighbours["modality"], neighbours["item_index"])]
    st.markdown("**Nearest neighbours** (joint-space distance)")
    st.dataframe(neighbours[["modality", "class", "same class", "distance", "what"]], hide_index=True,
                 key="js_neighbours", column_config={"distance": st.column_config.NumberColumn(format="%.3f")})


def _item_labels(emb: Any, frame: pd.DataFrame) -> dict[int, int]:
    """Dataset image index -> class, from the stored labels (fallback: the UMAP points)."""
    labels: dict[int, int] = {}
    points = frame[frame["modality"] != "prototype"]
    labels.update(zip(points["item_index"].astype(int), points["label"].astype(int)))
    for index, lab in ((emb.image_index, emb.image_labels), (emb.text_index, emb.text_labels)):
        if lab is not None:
            labels.update(zip(np.asarray(index).astype(int).tolist(), np.asarray(lab).astype(int).tolist()))
    return labels


def _describe(modality: str, item: int, dataset: Any) -> str:
    if modality == "prototype":
        return "class prototype"
    if dataset is not None and modality == "text" and 0 <= item < len(dataset.captions) and dataset.captions[item]:
        return dataset.captions[item][0]
    return f"image #{item}"


def _show_item(modality: str, item: int, dataset: Any) -> None:
    if dataset is None or modality == "prototype" or not 0 <= item < dataset.num_images:
        if modality == "prototype":
            st.caption("The mean text embedding of the class's captions.")
        return
    if modality == "image":
        path = dataset.images_root / dataset.image_paths[item]
        if path.exists():
            st.image(str(path), caption=f"image #{item}", width=220)
        else:
            st.caption(f"Image file {path} is missing.")
    else:
        st.markdown("\n".join(f"- {c}" for c in dataset.captions[item][:5]))
