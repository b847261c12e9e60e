"""Training-step and evaluation cost of the `synthbirds` preset: ``python -m tests.benchmarks.bench_core_train``.

Prints seconds per optimiser step with 1 and 2 torch threads, the projected time of a full
`synthbirds` run (val-protocol twin + test run), and the cost of one evaluation. The end-to-end
figure comes from ``python -m clarel train --preset synthbirds --out /tmp/run`` (its
``trained ... in Xs (val run Ys)`` line). Uses $CLAREL_HOME (SynthBirds is generated if missing).
Prints figures; asserts nothing.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch


def main(steps: int = 25) -> None:
    from clarel.config import get_preset
    from clarel.data import ensure_dataset
    from clarel.evaluate import evaluate
    from clarel.inputs import prepare_inputs
    from clarel.sampling import make_sampler
    from clarel.train import _train_step, build_model, weight_decay_groups

    cfg = get_preset("synthbirds")
    dataset = ensure_dataset(cfg.data)
    t = time.perf_counter()
    inputs = prepare_inputs(dataset, cfg)
    print(f"prepare inputs (pixels + tokens): {time.perf_counter() - t:.2f} s; load average {os.getloadavg()[0]:.1f}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = build_model(cfg, dataset.num_classes, inputs)
        opt = torch.optim.SGD(weight_decay_groups(model, 1e-3), lr=0.1, momentum=0.9)
        sampler = make_sampler("per_image", dataset.splits["trainval"], dataset.labels, inputs.caption_counts,
                               batch_size=32, texts_per_image=10, images_per_class=1, rng=np.random.default_rng(0))
        for i in range(steps + 3):
            if i == 3:
                t = time.perf_counter()
            loss = _train_step(model, inputs, sampler.sample(), cfg, torch.device("cpu"))["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
        per_step = (time.perf_counter() - t) / steps
        print(f"{threads} thread(s): {1000 * per_step:.0f} ms/step -> 2 x {cfg.optim.steps} steps "
              f"(val twin + test run) = {2 * cfg.optim.steps * per_step:.0f} s of training")
    torch.set_num_threads(cfg.optim.cpu_threads or 2)
    t = time.perf_counter()
    evaluate(model, dataset, cfg, "test", inputs=inputs)
    print(f"one test-protocol evaluation ({dataset.num_images} images, "
          f"{sum(map(len, dataset.captions))} captions): {time.perf_counter() - t:.1f} s")


if __name__ == "__main__":
    main()
