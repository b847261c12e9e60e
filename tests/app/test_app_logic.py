"""The pure functions behind the pages, checked against naive loops on seeded random data."""

from __future__ import annotations

import http.server
import socket
import threading
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from app import figures, logic
from app.reference import paper_curve, paper_headline
from app.views.classify import server_is_up
from clarel.metrics import alpha_sweep, dense_values, gzsl_metrics
from jobs.records import Embeddings, EvalArrays, JobInfo, UmapProjection, WorkerInfo


def make_eval(n: int = 300, c: int = 12, n_seen: int = 8, seed: int = 0) -> EvalArrays:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, n)
    seen = np.arange(c) < n_seen
    d = rng.normal(10.0, 1.0, (n, c)).astype(np.float32)
    d[np.arange(n), labels] -= 1.5
    d[:, seen] -= 0.5
    curve = alpha_sweep(d, labels, seen, dense_values(d, seen, 41))
    stack = alpha_sweep(d, labels, seen, dense_values(d, seen, 41, "stacking"), "stacking")
    return EvalArrays(distances=d, labels=labels, image_index=np.arange(n) + 1000, seen_mask=seen,
                      class_mask=np.ones(c, bool), class_names=[f"bird {i}" for i in range(c)], alpha=0.05,
                      alpha_curve=curve, sweep_curve=curve, stacking_curve=stack)


def naive_us(preds, labels, seen):
    accs = {True: [], False: []}
    for cls in np.unique(labels):
        rows = labels == cls
        accs[bool(seen[cls])].append(np.mean(preds[rows] == cls))
    u = float(np.mean(accs[False])) if accs[False] else 0.0
    s = float(np.mean(accs[True])) if accs[True] else 0.0
    return u, s


def test_score_alpha_matches_a_naive_loop():
    ev = make_eval()
    for alpha in (0.0, 0.05, 0.2):
        scores = logic.score_alpha(ev, alpha)
        factor = np.where(ev.seen_mask, 1 + alpha, 1.0)
        naive_preds = np.array([np.argmin(row * factor) for row in ev.distances])
        np.testing.assert_array_equal(scores.preds, naive_preds)
        u, s = naive_us(naive_preds, ev.labels, ev.seen_mask)
        assert scores.u == pytest.approx(u) and scores.s == pytest.approx(s)
        assert scores.h == pytest.approx(0 if u + s == 0 else 2 * u * s / (u + s))
        assert scores.block.sum() == len(ev.labels)
        true_unseen = ~ev.seen_mask[ev.labels]
        assert scores.block[1].sum() == true_unseen.sum()
        assert scores.block[0, 1] == np.sum(~true_unseen & ~ev.seen_mask[naive_preds])


def test_moving_alpha_moves_predictions_toward_unseen():
    ev = make_eval()
    low, high = logic.score_alpha(ev, 0.0), logic.score_alpha(ev, 0.5)
    assert high.block[:, 1].sum() > low.block[:, 1].sum()
    assert high.u >= low.u and high.s <= low.s


def test_score_gamma_matches_a_naive_loop():
    ev = make_eval()
    u, s, h = logic.score_gamma(ev, 0.3)
    preds = np.array([np.argmin(row + np.where(ev.seen_mask, 0.3, 0.0)) for row in ev.distances])
    nu, ns = naive_us(preds, ev.labels, ev.seen_mask)
    assert (u, s) == pytest.approx((nu, ns))
    assert h == pytest.approx(logic.harmonic_mean(nu, ns))


def test_slider_options_cover_the_curve_zero_and_alpha_star():
    ev = make_eval()
    options, default = logic.slider_options(ev)
    assert options == sorted(options) and len(set(options)) == len(options)
    assert default == ev.alpha and 0.0 in options and default in options
    assert options[0] == pytest.approx(ev.sweep_curve.values.min(), rel=1e-5)
    assert options[-1] == pytest.approx(ev.sweep_curve.values.max(), rel=1e-5)


def test_class_order_and_confusion_matrix():
    ev = make_eval()
    order = logic.class_order(ev.seen_mask, ev.class_mask)
    assert list(order) == list(range(8)) + list(range(8, 12))
    mask = np.ones(12, bool)
    mask[3] = False
    assert 3 not in logic.class_order(ev.seen_mask, mask)
    preds = logic.score_alpha(ev, 0.05).preds
    counts = logic.confusion_matrix(preds, ev.labels, order[::-1], normalize=False)
    for i, t in enumerate(order[::-1]):
        for j, p in enumerate(order[::-1]):
            assert counts[i, j] == np.sum((ev.labels == t) & (preds == p))
    frac = logic.confusion_matrix(preds, ev.labels, order)
    np.testing.assert_allclose(frac.sum(axis=1), 1.0)


def test_per_class_table_and_block_frame():
    ev = make_eval()
    preds = logic.score_alpha(ev, 0.0).preds
    table = logic.per_class_table(preds, ev.labels, ev.seen_mask, ev.class_names)
    assert len(table) == 12 and set(table["group"]) == {"seen", "unseen"}
    row = table[table["class"] == "bird 2"].iloc[0]
    assert row["accuracy"] == pytest.approx(np.mean(preds[ev.labels == 2] == 2))
    assert row["images"] == np.sum(ev.labels == 2)
    frame = logic.block_frame(np.array([[5, 1], [2, 3]]))
    assert frame.loc["true unseen", "predicted seen"] == 2


def make_embeddings(seed: int = 0) -> Embeddings:
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(4, 6))
    protos[3] = np.nan  # a class outside the protocol
    return Embeddings(image=rng.normal(size=(10, 6)), image_index=np.arange(10) * 2,
                      text=rng.normal(size=(20, 6)), text_index=np.arange(20), prototypes=protos,
                      image_labels=np.arange(10) % 3, text_labels=np.arange(20) % 3)


def test_nearest_neighbours_is_brute_force_over_other_modalities():
    emb = make_embeddings()
    nn = logic.nearest_neighbours(emb, "image", 4, k=3)  # dataset image 4 = row 2
    assert set(nn["modality"]) == {"text", "prototype"}
    query = emb.image[2]
    d_text = np.linalg.norm(emb.text - query, axis=1)
    assert list(nn[nn["modality"] == "text"]["item_index"]) == list(np.argsort(d_text)[:3])
    protos = nn[nn["modality"] == "prototype"]
    assert 3 not in set(protos["item_index"]) and len(protos) == 3  # the NaN prototype never shows up
    assert np.all(np.diff(protos["distance"]) >= 0)
    from_proto = logic.nearest_neighbours(emb, "prototype", 0, k=2)
    assert set(from_proto["modality"]) == {"image", "text"}
    assert logic.nearest_neighbours(emb, "image", 5, k=3).empty  # odd index: no such stored image
    assert logic.nearest_neighbours(emb, "prototype", 3, k=3).empty


def test_umap_frame_and_filters():
    proj = UmapProjection(coords=np.arange(12, dtype=np.float32).reshape(6, 2),
                          modality=np.array(["image", "image", "text", "text", "prototype", "prototype"]),
                          item_index=np.array([0, 1, 0, 1, 0, 1]), labels=np.array([0, 1, 0, 1, 0, 1]))
    captions = [["a small red bird with a long tail"], ["a blue bird"]]
    frame = logic.umap_frame(proj, ["Red", "Blue"], np.array([True, False]), captions)
    assert list(frame["group"]) == ["seen", "unseen"] * 3
    assert "a small red bird" in frame.loc[2, "hover"] and "Red" in frame.loc[2, "hover"]
    assert len(logic.filter_points(frame, ["unseen"], ["image", "text", "prototype"])) == 3
    assert len(logic.filter_points(frame, ["seen", "unseen"], ["prototype"], ["Blue"])) == 1
    fig = figures.umap_figure(frame, "group")
    assert [t.name for t in fig.data] == [figures.MODALITY_NAMES[m] for m in ("image", "text", "prototype")]
    assert list(fig.data[0].customdata) == [0, 1]
    assert fig.data[0].marker.color == (figures.SEEN_COLOR, figures.UNSEEN_COLOR)


def test_parse_sweep_values_and_launch_overrides():
    assert logic.parse_sweep_values("0, 0.25;0.5,") == [0.0, 0.25, 0.5]
    with pytest.raises(ValueError, match="'x' is not a number"):
        logic.parse_sweep_values("0, x")
    with pytest.raises(ValueError, match="at least one value"):
        logic.parse_sweep_values(" , ")
    defaults = {"data": {"dataset": "synthbirds", "root": ""}, "loss": {"kappa": 0.5, "lam": 0.5},
                "optim": {"steps": 30}}
    assert logic.launch_overrides(defaults, "synthbirds", 0.5, 0.5, 30) == {}
    assert logic.launch_overrides(defaults, "cub", 0.2, 0.5, 30, "/data/cub") == {
        "data.dataset": "cub", "loss.kappa": 0.2, "data.root": "/data/cub"}


def test_format_eta():
    assert logic.format_eta(None) == "–"
    assert logic.format_eta(42) == "42 s"
    assert logic.format_eta(75) == "1 min 15 s"
    assert logic.format_eta(3 * 3600 + 120) == "3 h 02 min"


def make_job(job_id: int, kappa: float, seed: int, h: float | None, state: str = "SUCCEEDED") -> JobInfo:
    now = datetime.now(UTC)
    config = {"name": f"run{job_id}", "data": {"dataset": "cub"}, "loss": {"kappa": kappa, "lam": 0.5},
              "optim": {"seed": seed}, "eval": {"alpha_grid": [0.0, 0.01]}}
    metrics = {} if h is None else {"H": h, "u": h + 0.1, "s": h - 0.1}
    return JobInfo(id=job_id, name=f"run{job_id}", preset="paper-cub", config=config, state=state, attempts=1,
                   max_attempts=3, created_at=now, started_at=now, finished_at=now, worker_id="w", progress=1.0,
                   progress_message="done", eta_seconds=None, error_summary=None, error_traceback=None,
                   device="cpu", group_id=1, run_dir=None, final_metrics=metrics)


def test_compare_and_sweep_points():
    jobs = [make_job(1, 0.0, 0, 0.40), make_job(2, 0.0, 1, 0.50), make_job(3, 0.5, 0, 0.60), make_job(4, 0.5, 1, None)]
    assert logic.differing_keys([j.config for j in jobs]) == ["loss.kappa", "optim.seed"]
    frame = logic.compare_frame(jobs)
    assert list(frame.columns[:3]) == ["run", "loss.kappa", "optim.seed"]
    assert frame.loc[0, "H"] == 0.40 and pd.isna(frame.loc[3, "H"])
    points = logic.sweep_points(jobs, "loss.kappa")
    assert list(points["value"]) == [0.0, 0.5]
    assert points.loc[0, "mean"] == pytest.approx(0.45) and points.loc[0, "n"] == 2
    assert points.loc[0, "std"] == pytest.approx(np.std([0.4, 0.5], ddof=1))
    assert points.loc[1, "std"] == 0.0 and points.loc[1, "n"] == 1
    fig = figures.sweep_figure(points, "κ", "H", paper_curve("cub", "loss.kappa"), paper_headline("cub")["H"])
    assert len(fig.data) == 2 and list(fig.data[0].error_y.array) == pytest.approx([100 * points.loc[0, "std"], 0])
    queue = logic.jobs_frame(jobs)
    assert list(queue["id"]) == [1, 2, 3, 4] and queue.loc[0, "H"] == "40.0%" and queue.loc[3, "H"] == ""


def test_paper_reference_numbers():
    kappa = paper_curve("cub", "loss.kappa")
    assert kappa.set_index("value").loc[0.5, "H"] == pytest.approx(0.559)
    assert paper_curve("flowers", "loss.lam").set_index("value").loc[1.0, "s"] == pytest.approx(0.736)
    assert paper_curve("synthbirds", "loss.kappa") is None and paper_curve("cub", "optim.steps") is None
    assert paper_headline("flowers") == pytest.approx({"u": 0.728, "s": 0.743, "H": 0.735})


def test_worker_summary():
    now = datetime.now(UTC)
    assert logic.worker_summary([])[0] is False
    dead = WorkerInfo("w0", "h", 1, "cpu", now, None, alive=False)
    busy = WorkerInfo("w1", "h", 2, "cpu", now, 7, alive=True)
    assert logic.worker_summary([dead])[0] is False
    alive, text = logic.worker_summary([dead, busy])
    assert alive and "1 worker alive" in text and "#7" in text


def test_seen_unseen_figures_mark_the_current_point():
    ev = make_eval()
    scores = logic.score_alpha(ev, 0.05)
    fig = figures.seen_unseen_curve_figure(ev.sweep_curve, (scores.u, scores.s), (0.1, 0.2), "t")
    current = [t for t in fig.data if t.name == "current"][0]
    assert current.x[0] == pytest.approx(scores.u * 100) and current.y[0] == pytest.approx(scores.s * 100)
    conf = figures.confusion_figure(np.eye(12), ev.class_names, 8)
    assert len(conf.layout.shapes) == 2  # the seen/unseen divider lines
    block = figures.block_figure(scores.block)
    assert np.asarray(block.data[0].z).shape == (2, 2)
    alpha_fig = figures.alpha_figure(ev.sweep_curve, 0.05, ev.alpha)
    assert {t.name for t in alpha_fig.data} == {"u", "s", "H"}
    hist = figures.history_figure({"loss": (np.arange(3), np.ones(3))}, ["loss", "missing"], "t")
    assert len(hist.data) == 1
    assert gzsl_metrics(ev.distances, ev.labels, ev.seen_mask, 0.05)["H"] == pytest.approx(scores.h)


def test_server_is_up_against_a_real_http_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server_is_up(f"http://127.0.0.1:{server.server_address[1]}/", timeout=2)
    finally:
        server.shutdown()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    assert not server_is_up(f"http://127.0.0.1:{closed_port}/", timeout=0.5)
    assert not server_is_up("not a url")


def test_confusion_figure_keeps_classes_with_equal_names_apart():
    fig = figures.confusion_figure(np.eye(3), ["Finch", "Finch", "Kite"], 2)
    assert list(fig.data[0].x) == ["Finch", "Finch (2)", "Kite"]
