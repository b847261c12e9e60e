"""Oracle tests of the pure metrics against naive loops, and the rescaling properties."""

from __future__ import annotations

import numpy as np
import pytest

from clarel import metrics as M


def _naive_per_class(preds, labels):
    out = {}
    for c in sorted(set(labels.tolist())):
        rows = [i for i in range(len(labels)) if labels[i] == c]
        out[c] = sum(preds[i] == c for i in rows) / len(rows)
    return out


def _naive_gzsl(d, labels, seen, alpha):
    preds = []
    for row in d:
        best, arg = np.inf, -1
        for c, v in enumerate(row):
            v = v * (1 + alpha) if seen[c] else v
            if v < best:
                best, arg = v, c
        preds.append(arg)
    preds = np.array(preds)
    u_rows = np.array([not seen[y] for y in labels])
    acc_u = _naive_per_class(preds[u_rows], labels[u_rows])
    acc_s = _naive_per_class(preds[~u_rows], labels[~u_rows])
    u, s = np.mean(list(acc_u.values())), np.mean(list(acc_s.values()))
    return u, s, (2 * u * s / (u + s) if u + s else 0.0)


def _random_problem(seed, n=120, c=9):
    rng = np.random.default_rng(seed)
    seen = np.zeros(c, dtype=bool)
    seen[: c // 2 + 1] = True
    labels = rng.integers(0, c, n)
    d = rng.uniform(1.0, 3.0, (n, c)).astype(np.float32)
    d[np.arange(n), labels] -= rng.uniform(0.0, 1.0, n).astype(np.float32)  # somewhat informative
    return d, labels, seen


@pytest.mark.parametrize("seed", range(4))
def test_per_class_accuracy_and_h_match_naive(seed):
    d, labels, seen = _random_problem(seed)
    for alpha in (0.0, 0.05, 0.3):
        got = M.gzsl_metrics(d, labels, seen, alpha)
        u, s, h = _naive_gzsl(d, labels, seen, alpha)
        assert got["u"] == pytest.approx(u) and got["s"] == pytest.approx(s) and got["H"] == pytest.approx(h)
    preds = M.rescaled_predictions(d, seen, 0.0)
    classes = np.unique(labels)
    naive = _naive_per_class(preds, labels)
    assert np.allclose(M.per_class_accuracy(preds, labels, classes), [naive[c] for c in classes])


def test_per_class_accuracy_empty_class_is_nan_and_is_mean_per_class_not_per_image():
    preds = np.array([0, 0, 0, 1])
    labels = np.array([0, 0, 0, 1])
    assert np.isnan(M.per_class_accuracy(preds, labels, np.array([2]))[0])
    preds = np.array([0, 0, 0, 0])  # class 0: 3/3, class 1: 0/1 -> mean 0.5 (per image would be 0.75)
    assert M.mean_per_class_accuracy(preds, labels) == pytest.approx(0.5)


def test_aligned_embeddings_give_accuracy_one():
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(6, 16)) * 10
    labels = np.repeat(np.arange(6), 5)
    images = protos[labels]
    d = np.linalg.norm(images[:, None] - protos[None], axis=-1).astype(np.float32)
    seen = np.array([True, True, True, False, False, False])
    assert M.gzsl_metrics(d, labels, seen, 0.0) == {"u": 1.0, "s": 1.0, "H": 1.0}
    assert M.zsl_top1(d, labels, ~seen) == 1.0


@pytest.mark.parametrize("seed", range(3))
def test_raising_alpha_never_decreases_unseen_predictions(seed):
    d, labels, seen = _random_problem(seed)
    counts = [int((~seen[M.rescaled_predictions(d, seen, a)]).sum()) for a in np.linspace(0, 2, 41)]
    assert all(b >= a for a, b in zip(counts, counts[1:]))
    assert counts[-1] > counts[0]


@pytest.mark.parametrize("mode", ["multiplicative", "stacking"])
def test_sweep_equals_direct_predictions(mode):
    d, labels, seen = _random_problem(7)
    class_mask = np.ones(len(seen), dtype=bool)
    class_mask[-1] = False
    values = M.dense_values(d, seen, 31, mode, class_mask)
    curve = M.alpha_sweep(d, labels, seen, values, mode, class_mask)
    predict = M.rescaled_predictions if mode == "multiplicative" else M.stacked_predictions
    for i, v in enumerate(values):
        u, s = M._us(predict(d, seen, v, class_mask), labels, seen)
        assert curve.u[i] == pytest.approx(u) and curve.s[i] == pytest.approx(s)
    # the dense sweep spans the whole trade-off: all-seen at one end, all-unseen at the other
    assert curve.u[0] == 0.0 and curve.s[-1] == 0.0
    assert 0.0 < M.ausuc(curve) <= 1.0


def test_ausuc_of_a_perfect_classifier_is_one():
    curve = M.AlphaCurve(values=np.arange(3.0), u=np.array([0.0, 1.0, 1.0]), s=np.array([1.0, 1.0, 0.0]),
                         h=np.zeros(3))
    assert M.ausuc(curve) == pytest.approx(1.0)


def test_confusion_counts():
    seen = np.array([True, False])
    conf = M.seen_unseen_confusion(np.array([0, 1, 1, 0]), np.array([0, 0, 1, 1]), seen)
    assert conf.tolist() == [[1, 1], [1, 1]]


def test_single_class_inputs():
    d = np.array([[1.0, 2.0], [1.5, 0.5]], dtype=np.float32)
    labels = np.array([0, 0])
    seen = np.array([True, False])
    got = M.gzsl_metrics(d, labels, seen, 0.0)
    assert got == {"u": 0.0, "s": 0.5, "H": 0.0}
    assert M.zsl_top1(d, labels, ~seen) == 0.0  # no unseen-label images
