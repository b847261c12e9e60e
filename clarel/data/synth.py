"""SynthBirds: a generated, CUB-like fine-grained zero-shot dataset, written in the CUB layout.

Layout written under ``out`` (the real CUB loader reads it; one code path for both)::

    synthbirds.json                       manifest: seed, parameters, attributes, species
    synthbirds_images.jsonl               per-image ground truth (variant, pose, hidden parts,
                                          visible attributes, what each caption says)
    CUB_200_2011/images.txt, classes.txt, image_class_labels.txt, train_test_split.txt,
                 attributes.txt, attributes/class_attribute_labels_continuous.txt,
                 images/<NNN.Name>/<Name>_<k>_<id>.jpg
    text_c10/<NNN.Name>/<Name>_<k>_<id>.txt   10 captions per image
    xlsa17/data/CUB/att_splits.mat        trainval_loc, test_seen_loc, test_unseen_loc (1-based
                                          image ids), allclasses_names, att, original_att
    xlsa17/data/CUB/{allclasses,trainvalclasses,testclasses,trainclasses1,valclasses1}.txt

Generation is deterministic for a seed: every image draws from its own ``random.Random`` seeded by
(seed, class, index), so files are byte-identical across runs with the same library versions.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import shutil
import tempfile
from pathlib import Path

import numpy as np

from clarel.data._synth_draw import draw_bird
from clarel.data._synth_species import (
    ATTRIBUTES,
    DULL,
    PART_ATTRIBUTES,
    attribute_columns,
    make_species,
    species_names,
)
from clarel.data._synth_text import image_captions
from clarel.errors import DatasetError

log = logging.getLogger(__name__)

MANIFEST = "synthbirds.json"
IMAGE_METADATA = "synthbirds_images.jsonl"
SPLIT_DIR = Path("xlsa17") / "data" / "CUB"
FORMAT_VERSION = 1

JUVENILE_RATE = 0.2  # share of images with juvenile/female (dull crown and breast) plumage
FLYING_RATE = 0.2  # share of images in flight (legs tucked away, wing raised)
OCCLUSION_RATE = 0.25  # share of images with a leaf cluster in front of one part
TEST_SEEN_SHARE = 0.2  # share of each seen class held out as test_seen (Xian's PS: ~20 %)


def generate_synthbirds(out: str | os.PathLike, seed: int = 0, classes: int = 50, images_per_class: int = 60,
                        size: int = 64, overwrite: bool = False) -> Path:
    """Generate SynthBirds in the CUB layout.

    The folder is written under a temporary name next to ``out`` and renamed at the end, so a
    half-written dataset is never seen under ``out``.

    Args:
        out: destination folder; must not exist or be empty (unless ``overwrite``).
        seed: generator seed; the same seed gives byte-identical files.
        classes: number of species (at least 4); about 24 % become unseen.
        images_per_class: images of each species (at least 5).
        size: image side in pixels (16-224).
        overwrite: replace an existing folder at ``out``.

    Returns:
        The dataset root (``out``).

    Raises:
        DatasetError: bad parameters, or ``out`` exists and is not empty.
    """
    out = Path(out)
    if classes < 4:
        raise DatasetError(f"classes={classes}: SynthBirds needs at least 4 species (seen, val and unseen)")
    if images_per_class < 5:
        raise DatasetError(f"images_per_class={images_per_class}: need at least 5 to split seen images")
    if not 16 <= size <= 224:
        raise DatasetError(f"size={size}: image size must be between 16 and 224 pixels")
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"{out} already exists and is not empty; delete it or choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write(tmp, seed, classes, images_per_class, size)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("generated SynthBirds (%d species x %d images, %d px, seed %d) in %s",
             classes, images_per_class, size, seed, out)
    return out


def _pose(rng: random.Random, size_attr: str) -> dict:
    base = {"small": 0.72, "medium": 0.85, "large": 1.0}[size_attr]
    return {
        "flying": rng.random() < FLYING_RATE,
        "flip": rng.random() < 0.5,
        "angle": round(rng.uniform(-18, 18), 2),
        "scale": round(base * rng.uniform(0.9, 1.08), 3),
        "dx": round(rng.uniform(-0.08, 0.08), 3),
        "dy": round(rng.uniform(-0.07, 0.07), 3),
        "occluder": rng.choice(tuple(PART_ATTRIBUTES)[:4]) if rng.random() < OCCLUSION_RATE else None,
        "light": round(rng.uniform(0.8, 1.15), 3),
    }


def _write(root: Path, seed: int, n_classes: int, per_class: int, size: int) -> None:
    rng = random.Random(f"synthbirds-species-{seed}")
    n_unseen = max(1, round(0.24 * n_classes))
    n_val = max(1, round(0.27 * (n_classes - n_unseen)))
    spec = make_species(rng, n_classes, n_unseen, n_val)
    species, unseen, val = spec["species"], spec["unseen"], spec["val"]
    names = species_names(rng, species)
    folders = [f"{i + 1:03d}.{name.replace(' ', '_')}" for i, name in enumerate(names)]

    cub = root / "CUB_200_2011"
    (cub / "attributes").mkdir(parents=True)
    split_dir = root / SPLIT_DIR
    split_dir.mkdir(parents=True)
    columns = attribute_columns()
    col_index = {c: j for j, c in enumerate(columns)}
    shown = np.zeros((n_classes, len(columns)))  # images showing each value
    visible_count = np.zeros((n_classes, len(ATTRIBUTES)))  # images where each attribute is visible
    attr_index = {a: j for j, a in enumerate(ATTRIBUTES)}

    images_lines, labels_lines, meta_lines = [], [], []
    trainval, test_seen, test_unseen = [], [], []
    image_id = 0
    for c, (sp, folder) in enumerate(zip(species, folders)):
        stem_base = folder.split(".", 1)[1]
        (cub / "images" / folder).mkdir(parents=True)
        (root / "text_c10" / folder).mkdir(parents=True)
        ids = []
        for k in range(per_class):
            image_id += 1
            ids.append(image_id)
            irng = random.Random(f"synthbirds-image-{seed}-{c}-{k}")
            juvenile = irng.random() < JUVENILE_RATE
            look = dict(sp)
            if juvenile:
                look["crown_color"] = DULL[sp["crown_color"]]
                look["breast_color"] = DULL[sp["breast_color"]]
            pose = _pose(irng, sp["size"])
            hidden_parts = [p for p in (pose["occluder"], "legs" if pose["flying"] else None) if p]
            hidden = {a for p in hidden_parts for a in PART_ATTRIBUTES[p]}
            visible = {a: v for a, v in look.items() if a not in hidden}
            img = draw_bird(irng, look, pose, size)
            texts, notes = image_captions(irng, visible)

            stem = f"{stem_base}_{k + 1:04d}_{image_id}"
            rel = f"{folder}/{stem}.jpg"
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=90)
            (cub / "images" / rel).write_bytes(buf.getvalue())
            (root / "text_c10" / folder / f"{stem}.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
            images_lines.append(f"{image_id} {rel}")
            labels_lines.append(f"{image_id} {c + 1}")
            for a, v in visible.items():
                shown[c, col_index[f"has_{a}::{v}"]] += 1
                visible_count[c, attr_index[a]] += 1
            meta_lines.append(json.dumps({
                "image_id": image_id, "path": rel, "class_id": c + 1, "variant": "juvenile" if juvenile else "adult",
                "pose": pose, "hidden_parts": hidden_parts, "visible": visible, "captions": notes,
            }, sort_keys=True))
        if c in unseen:
            test_unseen.extend(ids)
        else:
            held = set(random.Random(f"synthbirds-split-{seed}-{c}").sample(
                ids, max(1, round(TEST_SEEN_SHARE * per_class))))
            trainval.extend(i for i in ids if i not in held)
            test_seen.extend(i for i in ids if i in held)

    def lines(path: Path, rows: list[str], final_newline: bool = True) -> None:
        path.write_text("\n".join(rows) + ("\n" if final_newline else ""), encoding="utf-8")

    lines(cub / "images.txt", images_lines)
    lines(cub / "image_class_labels.txt", labels_lines)
    lines(cub / "classes.txt", [f"{i + 1} {f}" for i, f in enumerate(folders)])
    in_trainval = set(trainval)
    lines(cub / "train_test_split.txt", [f"{i} {int(i in in_trainval)}" for i in range(1, image_id + 1)])
    lines(cub / "attributes.txt", [f"{j + 1} {name}" for j, name in enumerate(columns)])
    # Continuous attributes as in CUB: percent of the images (where the part is visible) showing each value.
    denom = np.maximum(visible_count[:, [attr_index[c.split("::")[0][4:]] for c in columns]], 1)
    continuous = 100.0 * shown / denom
    lines(cub / "attributes" / "class_attribute_labels_continuous.txt",
          [" ".join(_fmt(x) for x in row) for row in continuous])
    lines(root / IMAGE_METADATA, meta_lines)

    seen_ids = [c for c in range(n_classes) if c not in unseen]
    lines(split_dir / "trainvalclasses.txt", [folders[c] for c in seen_ids])
    lines(split_dir / "testclasses.txt", [folders[c] for c in sorted(unseen)])
    lines(split_dir / "trainclasses1.txt", [folders[c] for c in seen_ids if c not in val])
    lines(split_dir / "valclasses1.txt", [folders[c] for c in sorted(val)])
    # Like xlsa17: seen classes first, then unseen, and no final newline.
    lines(split_dir / "allclasses.txt", [folders[c] for c in seen_ids + sorted(unseen)], final_newline=False)
    _write_att_splits(split_dir / "att_splits.mat", folders, seen_ids + sorted(unseen), continuous,
                      trainval, test_seen, test_unseen)

    manifest = {
        "generator": "synthbirds", "format_version": FORMAT_VERSION, "seed": seed,
        "params": {"classes": n_classes, "images_per_class": per_class, "size": size,
                   "juvenile_rate": JUVENILE_RATE, "flying_rate": FLYING_RATE,
                   "occlusion_rate": OCCLUSION_RATE, "test_seen_share": TEST_SEEN_SHARE},
        "attributes": {a: list(v) for a, v in ATTRIBUTES.items()},
        "attribute_columns": columns,
        "species": [{"class_id": c + 1, "folder": folders[c], "name": names[c], "family": spec["family"][c],
                     "split": "unseen" if c in unseen else ("val" if c in val else "train"),
                     "attributes": species[c]} for c in range(n_classes)],
    }
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _fmt(x: float) -> str:
    s = f"{x:.10f}".rstrip("0")
    return s + "0" if s.endswith(".") else s


def _write_att_splits(path: Path, folders: list[str], order: list[int], continuous: np.ndarray,
                      trainval: list[int], test_seen: list[int], test_unseen: list[int]) -> None:
    """Write an xlsa17-style ``att_splits.mat`` (2019 release: no train_loc/val_loc)."""
    from scipy.io import savemat

    names = np.empty((len(order), 1), dtype=object)
    for r, c in enumerate(order):
        names[r, 0] = np.array([folders[c]])
    original = continuous[order].T  # [A, C], columns in allclasses order
    norms = np.linalg.norm(original, axis=0, keepdims=True)
    dtype = np.uint16 if max(trainval + test_seen + test_unseen) < 65536 else np.uint32

    def loc(ids: list[int]) -> np.ndarray:
        return np.asarray(sorted(ids), dtype=dtype).reshape(-1, 1)

    buf = io.BytesIO()
    savemat(buf, {"allclasses_names": names, "att": original / np.maximum(norms, 1e-12), "original_att": original,
                  "trainval_loc": loc(trainval), "test_seen_loc": loc(test_seen),
                  "test_unseen_loc": loc(test_unseen)})
    data = bytearray(buf.getvalue())
    # The MATLAB v5 header holds a creation date; fix it so the file is byte-identical per seed.
    header = b"MATLAB 5.0 MAT-file, written by clarel SynthBirds"
    data[:116] = header.ljust(116, b" ")
    path.write_bytes(bytes(data))
