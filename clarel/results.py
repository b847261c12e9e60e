"""What training and evaluation hand over to the job runner and the app.

These are plain dataclasses of numbers and numpy arrays: the store persists them and the app
reads them back without ever touching a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np


@dataclass
class AlphaCurve:
    """u, s, H as the rescaling factor alpha (or the stacking offset gamma) sweeps.

    Attributes:
        values: the alpha (or gamma) values.   # [A]
        u: per-class mean top-1 on unseen test images over all classes.  # [A]
        s: the same on seen test images.  # [A]
        h: harmonic mean 2us/(u+s).  # [A]
    """

    values: np.ndarray
    u: np.ndarray
    s: np.ndarray
    h: np.ndarray


@dataclass
class EvalResult:
    """The outcome of `clarel.evaluate` on one protocol.

    Attributes:
        metrics: ``zsl_top1, u, s, H`` at the chosen alpha, ``alpha``, ``u_alpha0, s_alpha0,
            H_alpha0``, ``ausuc``, ``gamma`` and ``H_stacking`` (calibrated stacking), all floats in
            [0, 1] except alpha/gamma.
        protocol: ``"test"`` or ``"val"``.
        distances: Euclidean distance of each evaluation image to each class prototype; classes
            outside the protocol are ``inf``.   # [N_eval, C] float32
        labels: true class index of each evaluation image.   # [N_eval] int64
        image_index: dataset image index of each evaluation row (seen images first).  # [N_eval]
        seen_mask: True for seen classes.   # [C] bool
        class_mask: True for classes in this protocol.   # [C] bool
        class_names: readable class names.   # [C]
        alpha_curve: u/s/H over the alpha grid used for selection (the paper's grid).
        sweep_curve: the dense seen-unseen curve for multiplicative rescaling (AUSUC).
        stacking_curve: the same for calibrated stacking (distance minus gamma for seen).
        image_embeddings: joint-space embeddings of the evaluation images.  # [N_eval, D]
        text_embeddings: per-image text embeddings (mean of caption embeddings) of the support
            images.   # [N_sup, D]
        text_index: dataset image index of each text embedding row.   # [N_sup]
        prototypes: class prototypes (rows of classes outside the protocol are NaN).  # [C, D]
    """

    metrics: dict[str, float]
    protocol: str
    distances: np.ndarray
    labels: np.ndarray
    image_index: np.ndarray
    seen_mask: np.ndarray
    class_mask: np.ndarray
    class_names: list[str]
    alpha_curve: AlphaCurve
    sweep_curve: AlphaCurve
    stacking_curve: AlphaCurve
    image_embeddings: np.ndarray
    text_embeddings: np.ndarray
    text_index: np.ndarray
    prototypes: np.ndarray


@dataclass
class TrainResult:
    """The outcome of `clarel.train`.

    Attributes:
        config: the exact config of the run (a `RunConfig`).
        out_dir: the run folder (``config.json``, ``checkpoint.pt``, ``metrics.jsonl``).
        checkpoint: path of the final checkpoint.
        metrics: final metrics (those of ``evaluation.metrics`` plus ``train_seconds``, ``steps``, ...).
        evaluation: the final test-protocol evaluation.
        history: metric dicts fired through ``on_eval_end`` during training.
        device: the device trained on, e.g. ``"cpu"`` or ``"cuda:0"``.
        model: the trained model (in eval mode), for callers that go on using it.
    """

    config: Any
    out_dir: Path
    checkpoint: Path
    metrics: dict[str, float]
    evaluation: EvalResult
    history: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"
    model: Any = None
