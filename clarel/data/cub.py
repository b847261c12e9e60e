"""Loader for CUB-200-2011 with Reed et al.'s captions and Xian et al.'s proposed split (and SynthBirds).

Expected layout under ``root`` (method doc §8)::

    CUB_200_2011/images.txt, classes.txt, image_class_labels.txt, images/<class>/<file>.jpg
    CUB_200_2011/attributes/class_attribute_labels_continuous.txt + attributes.txt   (optional)
    text_c10/<class>/<file>.txt                          10 captions per image
    xlsa17/data/CUB/att_splits.mat                       trainval_loc, test_seen_loc, test_unseen_loc
                                                         (+ train_loc, val_loc in old releases)
    xlsa17/data/CUB/res101.mat                           optional features (2048 x N) + image_files
    xlsa17/data/CUB/{trainvalclasses,testclasses,trainclasses1,valclasses1,allclasses}.txt

The split folder may also be ``xlsa17/CUB``, ``xlsa17`` or ``root`` itself. The ``*_loc`` arrays
are 1-based indices into ``res101.mat``'s image order; without ``res101.mat`` they are CUB image
ids (the two agree on the real data). The 2019 ``att_splits.mat`` has no ``train_loc``/``val_loc``:
then ``train_loc`` = all images of ``trainclasses1.txt`` and ``val_loc`` = all images of
``valclasses1.txt``. Without any ``att_splits.mat`` the test split comes from the class lists and a
fixed per-class 20 % hold-out of each seen class (recorded in ``dataset.warnings``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from clarel.data import _common as C
from clarel.data.dataset import ZSLDataset
from clarel.errors import DatasetError

log = logging.getLogger(__name__)

META = "CUB_200_2011"
SPLIT_DIRS = ("xlsa17/data/CUB", "xlsa17/CUB", "xlsa17", "CUB", ".")
_HINT = ("Download CUB_200_2011.tgz, Reed's cvpr2016_cub text_c10 and xlsa17.zip (see "
         "`python -m clarel.data download cub --to DIR`) and lay them out as documented in clarel/data/cub.py")


def split_dir(root: Path) -> Path | None:
    """The folder holding att_splits.mat or the class lists, or None."""
    for rel in SPLIT_DIRS:
        d = root / rel
        if (d / "att_splits.mat").exists() or (d / "trainvalclasses.txt").exists():
            return d
    return None


def source_files(root: Path) -> tuple[list[Path], list[Path]]:
    """Files and folders whose sizes/mtimes fingerprint the dataset (for the cache)."""
    meta = root / META
    files = [meta / n for n in ("images.txt", "classes.txt", "image_class_labels.txt", "attributes.txt")]
    files += [meta / "attributes" / "class_attribute_labels_continuous.txt", meta / "attributes" / "attributes.txt",
              root / "synthbirds.json"]
    for rel in SPLIT_DIRS:
        d = root / rel
        files += [d / n for n in ("att_splits.mat", "res101.mat", "trainvalclasses.txt", "testclasses.txt",
                                  "trainclasses1.txt", "valclasses1.txt", "allclasses.txt")]
    return files, [meta / "images", root / "text_c10"]


def load_cub(root: str | Path, fingerprint: str = "") -> ZSLDataset:
    """Load a CUB-layout folder (real CUB-200-2011 or SynthBirds).

    Raises:
        DatasetError: a missing or malformed file (the message names it) or broken split invariants.
    """
    root = Path(root)
    meta = root / META
    if not meta.is_dir():
        raise DatasetError(f"{root} is not a CUB-layout dataset: missing folder {meta}. {_HINT}")
    warnings: list[str] = []

    # classes
    class_rows = C.read_pairs(C.require(meta / "classes.txt", "CUB class list", _HINT))
    class_ids = np.array([int(_int(r[0], meta / "classes.txt")) for r in class_rows], dtype=np.int64)
    folders = [r[1] for r in class_rows]
    names = [f.split(".", 1)[-1].replace("_", " ") for f in folders]
    class_index = {cid: i for i, cid in enumerate(class_ids.tolist())}
    folder_index = {f: i for i, f in enumerate(folders)}

    # images and labels
    image_rows = C.read_pairs(C.require(meta / "images.txt", "CUB image list", _HINT))
    image_ids = np.array([_int(r[0], meta / "images.txt") for r in image_rows], dtype=np.int64)
    paths = [r[1] for r in image_rows]
    label_file = C.require(meta / "image_class_labels.txt", "CUB image labels", _HINT)
    label_of = {_int(a, label_file): _int(b, label_file) for a, b in C.read_pairs(label_file)}
    labels = np.empty(len(image_ids), dtype=np.int64)
    for i, iid in enumerate(image_ids.tolist()):
        if iid not in label_of:
            raise DatasetError(f"{label_file}: image {iid} ({paths[i]}) has no class label")
        cid = label_of[iid]
        if cid not in class_index:
            raise DatasetError(f"{label_file}: image {iid} has class {cid}, which is not in {meta / 'classes.txt'}")
        labels[i] = class_index[cid]

    # captions
    text_root = C.require(root / "text_c10", "caption folder text_c10/",
                          "Extract Reed et al.'s cvpr2016_cub text_c10 folder there")
    captions = [C.read_captions(text_root / (p.rsplit(".", 1)[0] + ".txt")) for p in paths]

    # splits (and optional features)
    sdir = split_dir(root)
    if sdir is None:
        raise DatasetError(
            f"no split files under {root}: expected {root / SPLIT_DIRS[0] / 'att_splits.mat'} or the class lists "
            f"trainvalclasses.txt/testclasses.txt there. {_HINT}")
    features, loc_order = _res101(sdir, paths, warnings)
    splits = _splits(sdir, labels, folder_index, folders, loc_order, warnings)

    attributes, attribute_names = _attributes(meta, len(folders))

    kept = C.drop_unreadable(meta / "images", dict(image_paths=paths, image_ids=image_ids, labels=labels,
                                                   captions=captions, features=features, splits=splits), warnings)
    for w in warnings:
        log.warning("%s: %s", root, w)
    return ZSLDataset(
        name="synthbirds" if (root / "synthbirds.json").exists() else "cub",
        root=root, class_ids=class_ids, class_folders=folders, class_names=names, images_root=meta / "images",
        attributes=attributes, attribute_names=attribute_names, fingerprint=fingerprint, warnings=warnings,
        **kept,
    )


def _int(text: str, path: Path) -> int:
    try:
        return int(text)
    except ValueError as e:
        raise DatasetError(f"{path}: expected an integer id, got {text!r}") from e


def _res101(sdir: Path, paths: list[str], warnings: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Features in images.txt order, and each res101 row's image index (None without res101.mat)."""
    path = sdir / "res101.mat"
    if not path.exists():
        return None, None
    mat = C.load_mat(path, ("features", "image_files"))
    feats = np.asarray(mat["features"])
    files = [_mat_string(x) for x in np.asarray(mat["image_files"]).ravel()]
    if feats.shape[1] != len(files):
        if feats.shape[0] == len(files):  # already N x F
            feats = feats.T
        else:
            raise DatasetError(f"{path}: features {feats.shape} do not match {len(files)} image_files")
    by_rel = {p: i for i, p in enumerate(paths)}
    by_base = {p.rsplit("/", 1)[-1]: i for i, p in enumerate(paths)}
    order = np.empty(len(files), dtype=np.int64)
    for r, f in enumerate(files):
        f = f.replace("\\", "/")
        rel = f.split("/images/", 1)[-1].lstrip("/")
        i = by_rel.get(rel, by_base.get(f.rsplit("/", 1)[-1]))
        if i is None:
            raise DatasetError(f"{path}: image_files entry {r + 1} ({f}) is not in CUB_200_2011/images.txt")
        order[r] = i
    if len(set(order.tolist())) != len(paths):
        raise DatasetError(f"{path}: image_files lists {len(set(order.tolist()))} distinct images; "
                           f"images.txt has {len(paths)}")
    out = np.empty((len(paths), feats.shape[0]), dtype=np.float32)
    out[order] = feats.T.astype(np.float32)
    return out, order


def _mat_string(x: object) -> str:
    while isinstance(x, np.ndarray):
        x = x.ravel()[0] if x.size else ""
    return str(x)


def _splits(sdir: Path, labels: np.ndarray, folder_index: dict[str, int], folders: list[str],
            loc_order: np.ndarray | None, warnings: list[str]) -> dict[str, np.ndarray]:
    def class_list(*candidates: str) -> tuple[list[int], Path] | None:
        for name in candidates:
            if (sdir / name).exists():
                return C.read_class_list(sdir / name, folder_index), sdir / name
        return None

    trainval = class_list("trainvalclasses.txt")
    test = class_list("testclasses.txt")
    train1 = class_list("trainclasses1.txt", "trainclasses.txt")
    val1 = class_list("valclasses1.txt", "valclasses.txt")
    att = sdir / "att_splits.mat"
    missing = [m for m in ("trainvalclasses.txt", "testclasses.txt") if not (sdir / m).exists()]

    def test_mismatch(got: list[int]) -> str:
        assert test is not None
        return (f"{att}: test_unseen_loc covers {len(got)} classes that differ from the {len(test[0])} in "
                f"{test[1]}; the .mat file and the class lists come from different releases or datasets")

    return C.xlsa17_splits(
        labels, att if att.exists() else None, loc_order, trainval, test, train1, val1, folders, warnings,
        test_mismatch=test_mismatch,
        no_train_val_loc=(f"{att} has no train_loc/val_loc (the 2019 xlsa17 release) and {sdir} lacks "
                          "trainclasses1.txt/valclasses1.txt to derive them; copy those class lists from "
                          "xlsa17/data/CUB"),
        no_class_lists=(f"missing split file(s) {', '.join(str(sdir / m) for m in missing)} "
                        f"(and no att_splits.mat there)"),
        no_train_val_lists=(f"missing trainclasses1.txt/valclasses1.txt in {sdir}: needed for the validation "
                            "protocol (train/val_seen/val_unseen)"),
        holdout_warning=(f"no att_splits.mat in {sdir}: test_seen is a fixed per-class 20 % hold-out "
                         "of the seen classes, not Xian et al.'s exact split"))


def _attributes(meta: Path, n_classes: int) -> tuple[np.ndarray | None, list[str] | None]:
    path = meta / "attributes" / "class_attribute_labels_continuous.txt"
    if not path.exists():
        return None, None
    try:
        values = np.loadtxt(path, dtype=np.float32, ndmin=2)
    except ValueError as e:
        raise DatasetError(f"{path}: not a matrix of numbers ({e})") from e
    if values.shape[0] != n_classes:
        raise DatasetError(f"{path}: {values.shape[0]} rows for {n_classes} classes")
    names = None
    for cand in (meta / "attributes.txt", meta / "attributes" / "attributes.txt", meta.parent / "attributes.txt"):
        if cand.exists():
            names = [r[1] for r in C.read_pairs(cand)]
            break
    if names is None or len(names) != values.shape[1]:
        names = [f"attribute_{j + 1}" for j in range(values.shape[1])]
    return values, names
