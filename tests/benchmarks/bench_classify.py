"""Latency of one zero-shot classification with 20 descriptions on the SynthBirds demo model.

    python -m tests.benchmarks.bench_classify [--run RUN_DIR] [--repeats 30] [--url http://127.0.0.1:7860]

Goal (issue 6): under 300 ms per classification after the first call. Prints the first call (model
load + 20 text embeddings), warm calls with cached description embeddings (the normal case: a user
trying several images against one description set), warm calls with 20 new descriptions each
time (cache miss), and with ``--url`` the same request through a running Gradio server.

The run: ``--run``, else the newest SUCCEEDED ``synthbirds`` run in the store, else the bundled
demo run (``assets/examples/demo-run``), else ``$CLAREL_HOME/runs/bench-synthbirds`` (trained with
the ``synthbirds`` preset if missing: minutes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "assets" / "examples"


def find_run(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    try:
        from jobs import open_store

        for job in open_store().list_jobs(limit=200):
            if job.state == "SUCCEEDED" and job.preset == "synthbirds" and job.run_dir:
                if (Path(job.run_dir) / "checkpoint.pt").is_file():
                    return Path(job.run_dir)
    except Exception as e:  # no store yet: fall through to the bundled run
        print(f"(run store not usable: {e})")
    from app.gradio_models import BUNDLED_RUN

    if (BUNDLED_RUN / "checkpoint.pt").is_file():
        return BUNDLED_RUN
    from clarel.paths import runs_dir

    run = runs_dir() / "bench-synthbirds"
    if not (run / "checkpoint.pt").is_file():
        from clarel.config import get_preset
        from clarel.train import train

        print(f"training the synthbirds preset into {run} (first time only) ...", flush=True)
        train(get_preset("synthbirds"), run)
    return run


def twenty_descriptions(offset: int = 0) -> list[str]:
    """20 ``Name: description`` lines in SynthBirds caption words (random species, seeded)."""
    import random

    from app.gradio_examples import describe_species

    colours = ("red", "orange", "yellow", "green", "blue", "purple", "brown", "black", "white", "grey")
    rng = random.Random(offset)
    lines = []
    for i in range(20):
        attrs = {k: rng.choice(colours) for k in ("crown_color", "wing_color", "breast_color", "belly_color",
                                                   "tail_color")}
        attrs["wing_pattern"] = rng.choice(("solid", "barred", "spotted"))
        attrs["size"] = rng.choice(("small", "medium", "large"))
        lines.append(f"Species {offset}-{i}: {describe_species(attrs, tuple(attrs))}")
    return lines


def bench_image(run: Path) -> Path:
    index = EXAMPLES / "examples.json"
    if index.is_file():
        items = json.loads(index.read_text())
        if items:
            return EXAMPLES / items[0]["image"]
    from clarel.config import RunConfig
    from clarel.paths import default_dataset_root

    config = RunConfig.from_json((run / "config.json").read_text())
    root = Path(config.data.root or default_dataset_root(config.data.dataset))
    return next((root / "CUB_200_2011" / "images").glob("*/*.jpg"))


def _ms(values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
    return f"median {1000 * statistics.median(values):.1f} ms, p90 {1000 * p90:.1f} ms, max {1000 * values[-1]:.1f} ms"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks.bench_classify")
    parser.add_argument("--run", default=None)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--url", default=None, help="also time /classify on this running Gradio server")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1, like the Gradio server; 0: torch's default)")
    args = parser.parse_args(argv if argv is not None else [])

    import torch

    from clarel.zeroshot import ZeroShotClassifier

    if args.threads:
        torch.set_num_threads(args.threads)
    run = find_run(args.run)
    image = bench_image(run)
    descriptions = twenty_descriptions()
    print(f"run {run} | image {image.name} | {len(descriptions)} descriptions | torch threads {torch.get_num_threads()}")

    t0 = time.perf_counter()
    clf = ZeroShotClassifier.from_run(run)
    t1 = time.perf_counter()
    clf.classify(image, descriptions)
    t2 = time.perf_counter()
    print(f"first call: load {1000 * (t1 - t0):.0f} ms + classify {1000 * (t2 - t1):.0f} ms")

    warm = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        clf.classify(image, descriptions)
        warm.append(time.perf_counter() - t)
    print(f"warm, cached descriptions ({args.repeats} calls): {_ms(warm)}")

    cold_text = []
    for i in range(1, min(args.repeats, 10) + 1):
        fresh = twenty_descriptions(offset=i)
        t = time.perf_counter()
        clf.classify(image, fresh)
        cold_text.append(time.perf_counter() - t)
    print(f"warm model, 20 new descriptions each call ({len(cold_text)} calls): {_ms(cold_text)}")

    import tempfile

    import PIL.Image

    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "photo.jpg"
        PIL.Image.open(image).convert("RGB").resize((3000, 2250)).save(big, quality=90)
        photo = []
        for _ in range(min(args.repeats, 10)):
            t = time.perf_counter()
            clf.classify(big, descriptions)
            photo.append(time.perf_counter() - t)
    print(f"warm, cached descriptions, 3000x2250 JPEG (decode + downscale) ({len(photo)} calls): {_ms(photo)}")

    if args.url:
        from gradio_client import Client, handle_file

        client = Client(args.url, verbose=False)
        text = "\n".join(descriptions)
        model = f"dir:{run.resolve()}"
        models = client.predict(api_name="/models")
        store_keys = [m["key"] for m in models if m.get("run_dir") and Path(m["run_dir"]).resolve() == run.resolve()]
        model = store_keys[0] if store_keys else model
        client.predict(handle_file(str(image)), text, model, api_name="/classify")
        served = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            client.predict(handle_file(str(image)), text, model, api_name="/classify")
            served.append(time.perf_counter() - t)
        print(f"through the Gradio API at {args.url} ({args.repeats} calls, upload included): {_ms(served)}")
    goal = statistics.median(warm) < 0.3
    print(f"goal < 300 ms after the first call (cached descriptions): {'met' if goal else 'NOT met'}")


if __name__ == "__main__":
    main(sys.argv[1:])
