"""Data-layer figures: SynthBirds generation time, and load vs cached reload of a 12k-image dataset.

Run: ``python -m tests.benchmarks.bench_data`` (prints figures; asserts nothing about speed).
The 12k-image / 120k-caption dataset is a CUB-layout tree with one hard-linked tiny image and
10 generated captions per image; the goal for a cached reload is under 2 s on this machine.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

N_CLASSES, PER_CLASS = 200, 60


def _scratch() -> Path:
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="clarel-bench-data-", dir=base))


def _big_cub_tree(root: Path) -> Path:
    """A CUB-layout dataset with N_CLASSES x PER_CLASS images and 10 realistic captions each."""
    from clarel.data import generate_synthbirds
    from clarel.data._synth_species import ATTRIBUTES
    from clarel.data._synth_text import caption

    # Split files, attributes and manifest from a tiny real SynthBirds of N_CLASSES species.
    generate_synthbirds(root, seed=0, classes=N_CLASSES, images_per_class=5, size=16)
    shutil.rmtree(root / "CUB_200_2011" / "images")
    shutil.rmtree(root / "text_c10")
    (root / "xlsa17/data/CUB/att_splits.mat").unlink()  # class lists only: ids below are new
    folders = [line.split()[1] for line in (root / "CUB_200_2011/classes.txt").read_text().splitlines()]
    (root / "one.jpg").write_bytes(_jpeg())
    rng = random.Random(0)
    images, labels = [], []
    image_id = 0
    for c, folder in enumerate(folders, 1):
        (root / "CUB_200_2011/images" / folder).mkdir(parents=True)
        (root / "text_c10" / folder).mkdir(parents=True)
        for k in range(PER_CLASS):
            image_id += 1
            rel = f"{folder}/img_{k:04d}_{image_id}"
            os.link(root / "one.jpg", root / "CUB_200_2011/images" / f"{rel}.jpg")
            lines = []
            for _ in range(10):
                said = {a: rng.choice(v) for a, v in rng.sample(sorted(ATTRIBUTES.items()), rng.randint(2, 5))}
                lines.append(caption(rng, said))
            (root / "text_c10" / f"{rel}.txt").write_text("\n".join(lines) + "\n")
            images.append(f"{image_id} {rel}.jpg")
            labels.append(f"{image_id} {c}")
    (root / "CUB_200_2011/images.txt").write_text("\n".join(images) + "\n")
    (root / "CUB_200_2011/image_class_labels.txt").write_text("\n".join(labels) + "\n")
    return root


def _jpeg() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (90, 90, 90)).save(buf, format="JPEG")
    return buf.getvalue()


def main() -> None:
    scratch = _scratch()
    print(f"scratch folder: {scratch} ({'in RAM' if str(scratch).startswith('/dev/shm') else 'on disk'})")
    os.environ["CLAREL_HOME"] = str(scratch / "home")
    try:
        from clarel.data import generate_synthbirds, load_dataset
        from clarel.data.load import fingerprint

        t = time.perf_counter()
        sb = generate_synthbirds(scratch / "synthbirds")
        gen = time.perf_counter() - t
        files = sum(1 for p in sb.rglob("*") if p.is_file())
        size_mb = sum(p.stat().st_size for p in sb.rglob("*") if p.is_file()) / 2**20
        print(f"SynthBirds default (50 species x 60 images, 64 px): generated in {gen:.1f} s "
              f"({files} files, {size_mb:.1f} MB)")
        t = time.perf_counter()
        load_dataset(sb, use_cache=False)
        print(f"SynthBirds default: load from source {time.perf_counter() - t:.2f} s")

        t = time.perf_counter()
        big = _big_cub_tree(scratch / "big")
        print(f"12k tree ({N_CLASSES * PER_CLASS} images, {N_CLASSES * PER_CLASS * 10} captions) "
              f"written in {time.perf_counter() - t:.1f} s")
        t = time.perf_counter()
        fingerprint(big, "synthbirds")
        print(f"12k tree: fingerprint (stat of every source file) {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        ds = load_dataset(big, use_cache=True)
        print(f"12k tree: first load from source + cache write {time.perf_counter() - t:.2f} s "
              f"({ds.num_images} images, {sum(len(c) for c in ds.captions)} captions)")
        t = time.perf_counter()
        load_dataset(big, use_cache=True)
        print(f"12k tree: cached reload, same process {time.perf_counter() - t:.2f} s")
        code = ("import time; t = time.perf_counter(); from clarel.data import load_dataset; "
                f"ds = load_dataset({str(big)!r}); print(f'{{time.perf_counter() - t:.2f}}')")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env=dict(os.environ), cwd=Path(__file__).resolve().parents[2])
        print(f"12k tree: cached reload in a fresh process (imports included) {out.stdout.strip()} s "
              "(goal: under 2 s)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
