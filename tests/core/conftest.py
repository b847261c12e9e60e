"""Fixtures of the core tests: a small generated SynthBirds dataset and a trained `tiny` run."""

from __future__ import annotations

import pytest
import torch

from clarel.config import get_preset
from clarel.data import generate_synthbirds, load_dataset

torch.set_num_threads(1)  # 2 shared cores: one thread per test process is faster and steadier


@pytest.fixture(scope="session")
def small_synth(tmp_path_factory):
    """SynthBirds with 8 species x 8 images of 32 px (seconds to generate and train on)."""
    root = generate_synthbirds(tmp_path_factory.mktemp("synth") / "synthbirds", seed=1, classes=8,
                               images_per_class=8, size=32)
    return load_dataset(root)


@pytest.fixture(scope="session")
def micro_synth(tmp_path_factory):
    """SynthBirds with 4 species x 5 images (for the slow open_clip text tower on the CPU)."""
    root = generate_synthbirds(tmp_path_factory.mktemp("micro") / "synthbirds", seed=2, classes=4,
                               images_per_class=5, size=32)
    return load_dataset(root)


def tiny_config(**overrides):
    base = {"optim.steps": 12, "optim.batch_size": 8, "optim.checkpoint_every": 6, "eval.prototype_k": 10}
    base.update(overrides)
    return get_preset("tiny", base)


class Recorder:
    """A `Callback` that keeps everything it is sent."""

    def __init__(self):
        self.steps, self.evals, self.epochs, self.progress = [], [], [], []

    def on_step_end(self, step, metrics):
        self.steps.append((step, dict(metrics)))

    def on_eval_end(self, step, metrics):
        self.evals.append((step, dict(metrics)))

    def on_epoch_end(self, epoch, metrics):
        self.epochs.append((epoch, dict(metrics)))

    def on_progress(self, fraction, message):
        self.progress.append((fraction, message))


@pytest.fixture(scope="session")
def tiny_run(small_synth, tmp_path_factory):
    """A finished `tiny` run (periodic eval every 6 steps) and the callback record."""
    from clarel.train import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    rec = Recorder()
    result = train(tiny_config(**{"optim.eval_every": 6}), out, [rec], dataset=small_synth)
    return result, rec
