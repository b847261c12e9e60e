"""Loader for Oxford Flowers-102 with Reed et al.'s captions and Xian et al.'s FLO split.

Expected layout under ``root`` (method doc §8)::

    jpg/image_XXXXX.jpg                     8189 images, 1-based, 5-digit numbers
    imagelabels.mat                         labels (1, N), Oxford label 1..102 of image k at [0, k-1]
    setid.mat                               trnid, valid, tstid (needed to map FLO locations, see below)
    text_c10/class_XXXXX/image_XXXXX.txt    10 captions per image (class = Oxford label)
    {trainval,test,train,val,all}classes.txt   class lists (``class_00001`` ...), optional
    cvpr18xian/data/FLO/att_splits.mat      trainval_loc, test_seen_loc, test_unseen_loc, train_loc, val_loc
    cvpr18xian/data/FLO/res101.mat          optional features (2048 x N) + image_files

Class names come from ``classnames_label_order.txt`` (``<label> <name>``) or ``cat_to_name.json``
when present, else the folder name. The FLO ``*_loc`` arrays are 1-based indices into the image
order of ``res101.mat``. With ``res101.mat`` that order is read from its ``image_files``. Without
it, the order is **inferred** to be ``setid.trnid`` then ``valid`` then ``tstid``: under that
mapping every split is class-complete (unseen = labels 1-20, val = 21-40, train = 41-102) and
matches the published class lists, while plain image-number order does not (see
``shared/reference-data/FORMATS.md`` §2.4). The loader cross-checks the result against
``testclasses.txt`` when it exists.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from clarel.data import _common as C
from clarel.data.dataset import ZSLDataset
from clarel.errors import DatasetError

log = logging.getLogger(__name__)

SPLIT_DIRS = ("cvpr18xian/data/FLO", "xlsa17/data/FLO", "FLO", ".")
_HINT = ("Download 102flowers.tgz, imagelabels.mat and setid.mat (Oxford VGG), Reed's cvpr2016_flowers text_c10 "
         "and cvpr18xian.zip (see `python -m clarel.data download flowers --to DIR`)")


def mat_dir(root: Path) -> Path | None:
    for rel in SPLIT_DIRS:
        if (root / rel / "att_splits.mat").exists():
            return root / rel
    return None


def source_files(root: Path) -> tuple[list[Path], list[Path]]:
    """Files and folders whose sizes/mtimes fingerprint the dataset (for the cache)."""
    files = [root / n for n in ("imagelabels.mat", "setid.mat", "classnames_label_order.txt", "cat_to_name.json")]
    files += [root / f"{s}classes.txt" for s in ("trainval", "test", "train", "val", "all")]
    for rel in SPLIT_DIRS:
        files += [root / rel / "att_splits.mat", root / rel / "res101.mat"]
    return files, [root / "jpg", root / "text_c10"]


def load_flowers(root: str | Path, fingerprint: str = "") -> ZSLDataset:
    """Load an Oxford Flowers-102 folder.

    Raises:
        DatasetError: a missing or malformed file (the message names it) or broken split invariants.
    """
    root = Path(root)
    warnings: list[str] = []
    lab_path = C.require(root / "imagelabels.mat", "Oxford Flowers labels", _HINT)
    raw = np.asarray(C.load_mat(lab_path, ("labels",))["labels"]).astype(np.int64).ravel()
    if len(raw) == 0 or raw.min() < 1:
        raise DatasetError(f"{lab_path}: labels must be 1-based class numbers")
    n = len(raw)
    class_ids = np.arange(1, int(raw.max()) + 1, dtype=np.int64)
    folders = [f"class_{c:05d}" for c in class_ids]
    names = _class_names(root, class_ids, folders)
    folder_index = {f: i for i, f in enumerate(folders)}
    labels = raw - 1
    image_ids = np.arange(1, n + 1, dtype=np.int64)
    paths = [f"image_{k:05d}.jpg" for k in image_ids]

    text_root = C.require(root / "text_c10", "caption folder text_c10/",
                          "Extract Reed et al.'s cvpr2016_flowers text_c10 folder there")
    captions = [C.read_captions(text_root / folders[labels[i]] / f"image_{k:05d}.txt")
                for i, k in enumerate(image_ids.tolist())]

    mdir = mat_dir(root)
    features, loc_order = _res101(mdir, n) if mdir is not None else (None, None)
    if mdir is not None and loc_order is None:
        loc_order = _setid_order(root, n, mdir)
    splits = _splits(root, mdir, labels, folder_index, folders, loc_order, warnings)

    kept = C.drop_unreadable(root / "jpg", dict(image_paths=paths, image_ids=image_ids, labels=labels,
                                                captions=captions, features=features, splits=splits), warnings)
    for w in warnings:
        log.warning("%s: %s", root, w)
    return ZSLDataset(
        name="flowers", root=root, class_ids=class_ids, class_folders=folders, class_names=names,
        images_root=root / "jpg", fingerprint=fingerprint, warnings=warnings, **kept,
    )


def _class_names(root: Path, class_ids: np.ndarray, folders: list[str]) -> list[str]:
    names = dict(zip(class_ids.tolist(), folders))
    listed = root / "classnames_label_order.txt"
    as_json = root / "cat_to_name.json"
    if listed.exists():
        for label, name in C.read_pairs(listed):
            if label.isdigit() and int(label) in names:
                names[int(label)] = name
    elif as_json.exists():
        try:
            data = json.loads(as_json.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DatasetError(f"{as_json} is not valid JSON: {e}") from e
        for label, name in data.items():
            if str(label).isdigit() and int(label) in names:
                names[int(label)] = str(name)
    return [names[c] for c in class_ids.tolist()]


def _res101(mdir: Path, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    path = mdir / "res101.mat"
    if not path.exists():
        return None, None
    mat = C.load_mat(path, ("features", "image_files"))
    feats = np.asarray(mat["features"])
    files = [_basename(x) for x in np.asarray(mat["image_files"]).ravel()]
    if feats.shape[1] != len(files):
        if feats.shape[0] != len(files):
            raise DatasetError(f"{path}: features {feats.shape} do not match {len(files)} image_files")
        feats = feats.T
    order = np.empty(len(files), dtype=np.int64)
    for r, f in enumerate(files):
        stem = f.rsplit(".", 1)[0]
        if not stem.startswith("image_") or not stem[6:].isdigit() or not 1 <= int(stem[6:]) <= n:
            raise DatasetError(f"{path}: image_files entry {r + 1} ({f}) is not one of image_00001..image_{n:05d}.jpg")
        order[r] = int(stem[6:]) - 1
    if len(set(order.tolist())) != n:
        raise DatasetError(f"{path}: image_files lists {len(set(order.tolist()))} distinct images; expected {n}")
    out = np.empty((n, feats.shape[0]), dtype=np.float32)
    out[order] = feats.T.astype(np.float32)
    return out, order


def _basename(x: object) -> str:
    while isinstance(x, np.ndarray):
        x = x.ravel()[0] if x.size else ""
    return str(x).replace("\\", "/").rsplit("/", 1)[-1]


def _setid_order(root: Path, n: int, mdir: Path) -> np.ndarray:
    """res101 image order inferred as trnid, valid, tstid (0-based image indices)."""
    path = root / "setid.mat"
    if not path.exists():
        raise DatasetError(
            f"{mdir / 'att_splits.mat'} indexes res101.mat's image order, but neither {mdir / 'res101.mat'} nor "
            f"{path} is present to map it; download setid.mat from "
            "http://www.robots.ox.ac.uk/~vgg/data/flowers/102/setid.mat into the root")
    mat = C.load_mat(path, ("trnid", "valid", "tstid"))
    order = np.concatenate([np.asarray(mat[k]).astype(np.int64).ravel() for k in ("trnid", "valid", "tstid")]) - 1
    if len(order) != n or len(np.unique(order)) != n or order.min() < 0 or order.max() >= n:
        raise DatasetError(f"{path}: trnid, valid and tstid must together list each of the {n} images once")
    return order


def _splits(root: Path, mdir: Path | None, labels: np.ndarray, folder_index: dict[str, int], folders: list[str],
            loc_order: np.ndarray | None, warnings: list[str]) -> dict[str, np.ndarray]:
    def class_list(name: str) -> tuple[list[int], Path] | None:
        for d in (root, mdir) if mdir is not None else (root,):
            if (d / name).exists():
                return C.read_class_list(d / name, folder_index), d / name
        return None

    trainval, test = class_list("trainvalclasses.txt"), class_list("testclasses.txt")
    train, val = class_list("trainclasses.txt"), class_list("valclasses.txt")
    att = mdir / "att_splits.mat" if mdir is not None else None

    def test_mismatch(got: list[int]) -> str:
        assert test is not None
        return (f"{att}: test_unseen_loc covers classes {[folders[c] for c in got][:5]}... but {test[1]} lists "
                f"{[folders[c] for c in sorted(test[0])][:5]}...; the image order (res101.mat/setid.mat) is wrong")

    return C.xlsa17_splits(
        labels, att, loc_order, trainval, test, train, val, folders, warnings,
        test_mismatch=test_mismatch,
        no_train_val_loc=f"{att} has no train_loc/val_loc and {root} lacks trainclasses.txt/valclasses.txt",
        no_class_lists=(f"no split files for {root}: expected {root / SPLIT_DIRS[0] / 'att_splits.mat'} or the "
                        f"class lists {root / 'trainvalclasses.txt'} and {root / 'testclasses.txt'}. {_HINT}"),
        no_train_val_lists=(f"missing {root / 'trainclasses.txt'}/{root / 'valclasses.txt'}: needed for the "
                            "validation protocol (train/val_seen/val_unseen)"),
        holdout_warning=(f"no att_splits.mat under {root}: test_seen is a fixed per-class 20 % hold-out of the "
                         "seen classes, not Xian et al.'s exact split"))
