"""Oracle tests: each vectorised loss equals a naive per-sample loop."""

from __future__ import annotations

import math

import pytest
import torch

from clarel.losses import clarel_loss, class_loss, pairwise_distances, retrieval_losses


def _naive_dist(a, b):
    return [[math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a[i], b[j]))) for j in range(len(b))]
            for i in range(len(a))]


def _naive_retrieval(img, txt):
    d = _naive_dist(img, txt)
    B = len(d)
    it = -sum(-d[i][i] - math.log(sum(math.exp(-d[i][j]) for j in range(B))) for i in range(B)) / B
    ti = -sum(-d[j][j] - math.log(sum(math.exp(-d[i][j]) for i in range(B))) for j in range(B)) / B
    return it, ti


def _naive_ce(logits, labels):
    out = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        out += -(row[y] - math.log(sum(math.exp(v) for v in row)))
    return out / len(labels)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_distances_match_loop(seed):
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randn(5, 7, generator=g), torch.randn(4, 7, generator=g)
    assert torch.allclose(pairwise_distances(a, b), torch.tensor(_naive_dist(a, b)), atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_losses_match_loop(seed):
    g = torch.Generator().manual_seed(seed)
    img, txt = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    terms = retrieval_losses(img, txt)
    it, ti = _naive_retrieval(img, txt)
    assert terms["loss_it"].item() == pytest.approx(it, rel=1e-5)
    assert terms["loss_ti"].item() == pytest.approx(ti, rel=1e-5)
    assert terms["loss_it"].item() != pytest.approx(terms["loss_ti"].item())  # the two directions differ


def test_class_and_total_loss_match_loop():
    g = torch.Generator().manual_seed(3)
    img, txt = torch.randn(6, 8, generator=g), torch.randn(6, 8, generator=g)
    il, tl = torch.randn(6, 11, generator=g), torch.randn(6, 11, generator=g)
    labels = torch.tensor([0, 3, 3, 10, 7, 1])
    assert class_loss(il, tl, labels).item() == pytest.approx(0.5 * (_naive_ce(il, labels) + _naive_ce(tl, labels)), rel=1e-5)
    kappa, lam = 0.3, 0.8
    terms = clarel_loss(img, txt, il, tl, labels, kappa, lam)
    it, ti = _naive_retrieval(img, txt)
    cls = 0.5 * (_naive_ce(il, labels) + _naive_ce(tl, labels))
    expected = (1 - kappa) * (lam * it + (1 - lam) * ti) + kappa * cls
    assert terms["loss"].item() == pytest.approx(expected, rel=1e-5)
    assert set(terms) == {"loss", "loss_it", "loss_ti", "loss_retrieval", "loss_cls"}


def test_zero_distance_has_finite_gradient():
    x = torch.randn(4, 3, requires_grad=True)
    terms = retrieval_losses(x, x.detach().clone())
    terms["loss_it"].backward()
    assert torch.isfinite(x.grad).all()


def test_perfect_alignment_gives_low_retrieval_loss():
    img = torch.eye(8) * 50.0  # far apart, each text on top of its image
    assert retrieval_losses(img, img.clone())["loss_it"].item() < 1e-6
