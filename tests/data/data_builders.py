"""Build dataset folders in the real formats for the data-layer tests.

The big parts (11788 CUB / 8189 Flowers tiny images and caption files) are written once per
session by `conftest.py`; each test then makes a cheap *variant* that links to them and adds its
own split files, so a test can break one file without touching the shared tree.
"""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat, savemat

FIXTURES = Path(__file__).parent / "fixtures"
CUB_FIX = FIXTURES / "cub"
FLO_FIX = FIXTURES / "flowers"
CUB_LISTS = ("allclasses.txt", "trainvalclasses.txt", "testclasses.txt", "trainclasses1.txt", "valclasses1.txt")
FLO_LISTS = ("trainvalclasses.txt", "testclasses.txt", "trainclasses.txt", "valclasses.txt")


def tiny_jpeg(colour: tuple[int, int, int] = (120, 80, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="JPEG")
    return buf.getvalue()


def captions_text(tag: str) -> str:
    return "".join(f"caption {i} of {tag}: a bird with a short beak\n" for i in range(10))


def build_cub_base(root: Path) -> Path:
    """Real CUB metadata + a tiny JPEG and 10 captions per image (real captions where we have them)."""
    meta = root / "CUB_200_2011"
    (meta / "images").mkdir(parents=True)
    for name in ("classes.txt", "images.txt", "image_class_labels.txt"):
        shutil.copy(CUB_FIX / name, meta / name)
    # One image and one caption file, hard-linked under every name: far less disk I/O than 11788
    # separate files (the loaders only need each path to exist and read right).
    (root / "one.jpg").write_bytes(tiny_jpeg())
    (root / "one.txt").write_text(captions_text("a CUB image"))
    real = {p.relative_to(CUB_FIX / "text_c10").as_posix(): p for p in (CUB_FIX / "text_c10").rglob("*.txt")}
    made: set[str] = set()
    for line in (CUB_FIX / "images.txt").read_text().splitlines():
        rel = line.split()[1]
        folder = rel.split("/")[0]
        if folder not in made:
            (meta / "images" / folder).mkdir()
            (root / "text_c10" / folder).mkdir(parents=True)
            made.add(folder)
        os.link(root / "one.jpg", meta / "images" / rel)
        txt = rel[:-4] + ".txt"
        if txt in real:
            shutil.copy(real[txt], root / "text_c10" / txt)
        else:
            os.link(root / "one.txt", root / "text_c10" / txt)
    return root


def cub_variant(base: Path, dest: Path, mat: str | None = "att_splits.mat", lists: tuple[str, ...] = CUB_LISTS,
                split_rel: str = "xlsa17/data/CUB") -> Path:
    """A CUB root linking to ``base``'s images/captions, with the chosen split files."""
    dest.mkdir(parents=True)
    (dest / "CUB_200_2011").symlink_to(base / "CUB_200_2011", target_is_directory=True)
    (dest / "text_c10").symlink_to(base / "text_c10", target_is_directory=True)
    sdir = dest / split_rel
    sdir.mkdir(parents=True, exist_ok=True)
    for name in lists:
        shutil.copy(CUB_FIX / name, sdir / name)
    if mat:
        shutil.copy(CUB_FIX / mat, sdir / "att_splits.mat")
    return dest


def build_flowers_base(root: Path) -> Path:
    labels = loadmat(FLO_FIX / "imagelabels.mat")["labels"].ravel().astype(int)
    (root / "jpg").mkdir(parents=True)
    (root / "one.jpg").write_bytes(tiny_jpeg((200, 60, 120)))
    (root / "one.txt").write_text(captions_text("a flower"))
    for c in sorted(set(labels.tolist())):
        (root / "text_c10" / f"class_{c:05d}").mkdir(parents=True)
    for k, c in enumerate(labels.tolist(), 1):
        os.link(root / "one.jpg", root / "jpg" / f"image_{k:05d}.jpg")
        os.link(root / "one.txt", root / "text_c10" / f"class_{c:05d}" / f"image_{k:05d}.txt")
    return root


def flowers_variant(base: Path, dest: Path, mat: bool = True, setid: bool = True,
                    lists: tuple[str, ...] = FLO_LISTS, names: str | None = "classnames_label_order.txt") -> Path:
    dest.mkdir(parents=True)
    (dest / "jpg").symlink_to(base / "jpg", target_is_directory=True)
    (dest / "text_c10").symlink_to(base / "text_c10", target_is_directory=True)
    shutil.copy(FLO_FIX / "imagelabels.mat", dest / "imagelabels.mat")
    if setid:
        shutil.copy(FLO_FIX / "setid.mat", dest / "setid.mat")
    for name in lists:
        shutil.copy(FLO_FIX / name, dest / name)
    if names:
        shutil.copy(FLO_FIX / names, dest / names)
    if mat:
        (dest / "cvpr18xian" / "data" / "FLO").mkdir(parents=True)
        shutil.copy(FLO_FIX / "att_splits.mat", dest / "cvpr18xian" / "data" / "FLO" / "att_splits.mat")
    return dest


def copy_tree(src: Path, dest: Path) -> Path:
    """A real copy (no links) of a small dataset, for tests that edit files in place."""
    shutil.copytree(src, dest)
    return dest


def rewrite_mat(path: Path, drop: tuple[str, ...] = (), **replace: np.ndarray) -> None:
    """Re-save a .mat file without some keys and/or with some keys replaced."""
    mat = {k: v for k, v in loadmat(path).items() if not k.startswith("__") and k not in drop}
    mat.update(replace)
    savemat(path, mat)
