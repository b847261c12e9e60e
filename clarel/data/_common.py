"""Helpers shared by the CUB and Flowers loaders: text files, captions, .mat files, splits, images.

Policy for bad input (documented in the package docstring too):

* missing metadata file, caption file, split file, .mat key, unknown class, seen/unseen
  overlap: stop with a `DatasetError` naming the file and the fix;
* an image listed but missing or unreadable (empty file, not an image signature): skipped with a
  warning in ``dataset.warnings`` when at most `MAX_BAD_IMAGE_SHARE` of the images and at most
  `MAX_BAD_IMAGES` (but always one) are affected; more than that stops with a `DatasetError` (likely a wrong or
  half-extracted folder). When the image folder is absent altogether but precomputed features
  exist, images are not needed and a single warning is recorded.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from clarel.errors import DatasetError

log = logging.getLogger(__name__)

CAPTIONS_PER_IMAGE = 10
MAX_BAD_IMAGES = 50  # at most this many unreadable images are skipped ...
MAX_BAD_IMAGE_SHARE = 0.01  # ... and at most this share of all images
VAL_SEED = 2050  # RandomState seed of the fixed 80/20 train/val_seen cut (method §6.2)
VAL_TRAIN_SHARE = 0.8
HOLDOUT_SEED = 0  # per-class test_seen hold-out when no att_splits.mat gives it
HOLDOUT_SHARE = 0.2

_IMAGE_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"BM", b"RIFF")


def require(path: Path, what: str, hint: str = "") -> Path:
    """Return ``path`` if it exists, else raise naming the missing file and what it is."""
    if not path.exists():
        raise DatasetError(f"missing {what}: expected {path}" + (f". {hint}" if hint else ""))
    return path


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a UTF-8 text file (handles CRLF and a missing final newline)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path} is not UTF-8 text ({e})") from e
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_pairs(path: Path, n_fields: int = 2) -> list[list[str]]:
    """Lines of ``<id> <value>`` records, checking the field count (names the bad line)."""
    rows = []
    for i, line in enumerate(read_lines(path), 1):
        parts = line.split(maxsplit=n_fields - 1)
        if len(parts) != n_fields:
            raise DatasetError(f"{path}, line {i}: expected {n_fields} fields, got {line!r}")
        rows.append(parts)
    return rows


def read_captions(path: Path, n: int = CAPTIONS_PER_IMAGE) -> list[str]:
    """The captions of one image: exactly ``n`` lines; Reed's U+FFFD pairs become spaces."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError as e:
        raise DatasetError(
            f"missing caption file {path}: every image needs text_c10/<class>/<image>.txt with "
            f"{n} captions (Reed et al. 2016 text_c10)"
        ) from e
    except OSError as e:
        raise DatasetError(f"cannot read caption file {path}: {e}") from e
    lines = [" ".join(line.replace("\ufffd\ufffd", " ").replace("\ufffd", " ").split())
             for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) != n:
        raise DatasetError(f"caption file {path} has {len(lines)} non-empty lines; expected exactly {n}")
    return lines


def load_mat(path: Path, keys: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Read a MATLAB v5 file and check it has ``keys``; returns those plus present ``optional`` keys."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except NotImplementedError as e:  # v7.3 (HDF5) files
        raise DatasetError(f"{path} is a MATLAB v7.3 file; re-save it as v5 (scipy cannot read v7.3)") from e
    except Exception as e:  # scipy raises ValueError/TypeError/OSError on corrupt files
        raise DatasetError(f"cannot read MATLAB file {path}: {e}") from e
    missing = [k for k in keys if k not in mat]
    if missing:
        present = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path} has no {', '.join(repr(k) for k in missing)}; it contains {present}")
    return {k: mat[k] for k in keys + optional if k in mat}


def locs(mat: dict[str, np.ndarray], key: str, n: int, path: Path) -> np.ndarray:
    """A 1-based MATLAB index array as 0-based int64 (cast before subtracting: uint16 underflows)."""
    idx = np.asarray(mat[key]).astype(np.int64).ravel() - 1
    if len(idx) and (idx.min() < 0 or idx.max() >= n):
        raise DatasetError(f"{path}: {key} has indices outside 1..{n}")
    return idx


def read_class_list(path: Path, known: dict[str, int]) -> list[int]:
    """Class indices named in a split file; unknown names stop with the file and line."""
    out = []
    for i, name in enumerate(read_lines(path), 1):
        if name not in known:
            close = [k for k in known if k.split(".")[-1] == name.split(".")[-1]][:1]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise DatasetError(f"{path}, line {i}: unknown class {name!r}{hint}; classes come from the class list")
        out.append(known[name])
    return out


def check_disjoint(a: list[int], b: list[int], names: list[str], file_a: Path, file_b: Path) -> None:
    both = sorted(set(a) & set(b))
    if both:
        shown = ", ".join(names[i] for i in both[:5])
        raise DatasetError(f"seen and unseen classes overlap: {file_a.name} and {file_b.name} both list {shown}"
                           f"{' ...' if len(both) > 5 else ''} ({file_a.parent})")


def images_of(labels: np.ndarray, classes: list[int] | np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.isin(labels, np.asarray(classes, dtype=np.int64)))


def validation_splits(train_loc: np.ndarray, val_loc: np.ndarray) -> dict[str, np.ndarray]:
    """Method §6.2: train = fixed 80 % of train_loc (RandomState(2050)), val_seen = the rest."""
    perm = np.random.RandomState(VAL_SEED).permutation(len(train_loc))
    cut = int(round(VAL_TRAIN_SHARE * len(train_loc)))
    return {"train": np.sort(train_loc[perm[:cut]]), "val_seen": np.sort(train_loc[perm[cut:]]),
            "val_unseen": np.sort(val_loc)}


def holdout_splits(labels: np.ndarray, seen: list[int], unseen: list[int]) -> dict[str, np.ndarray]:
    """Test splits from class lists alone: a fixed per-class 20 % of each seen class is test_seen."""
    rs = np.random.RandomState(HOLDOUT_SEED)
    trainval, test_seen = [], []
    for c in sorted(seen):
        idx = np.flatnonzero(labels == c)
        k = max(1, int(round(HOLDOUT_SHARE * len(idx)))) if len(idx) > 1 else 0
        held = rs.permutation(idx)[:k]
        test_seen.append(held)
        trainval.append(np.setdiff1d(idx, held))
    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)

    return {"trainval": cat(trainval), "test_seen": cat(test_seen), "test_unseen": images_of(labels, unseen)}


ClassList = tuple[list[int], Path]  # class indices and the file they were read from


def xlsa17_splits(labels: np.ndarray, att: Path | None, loc_order: np.ndarray | None,
                  trainval: ClassList | None, test: ClassList | None,
                  train: ClassList | None, val: ClassList | None,
                  folders: list[str], warnings: list[str], *,
                  test_mismatch: Callable[[list[int]], str], no_train_val_loc: str,
                  no_class_lists: str, no_train_val_lists: str, holdout_warning: str) -> dict[str, np.ndarray]:
    """All splits (trainval, test_seen, test_unseen, train, val_seen, val_unseen) from xlsa17 data.

    With ``att`` (an ``att_splits.mat``) the test splits come from its ``*_loc`` entries, 1-based
    indices into the .mat's image order; ``loc_order`` maps that order to image indices (None: it
    is the image order itself). ``test_unseen`` is cross-checked against ``test`` (testclasses.txt)
    when given, and train_loc/val_loc are taken from the .mat or, for the 2019 release that lacks
    them, derived from the ``train``/``val`` class lists. Without ``att`` the test splits are a
    fixed per-class hold-out of the ``trainval``/``test`` class lists (recorded as a warning).
    Overlapping seen/unseen class lists are refused in both cases.

    The class lists are ``(class indices, file)`` or None when absent. The dataset-specific error
    texts are passed in: ``test_mismatch(got)`` gets the sorted classes test_unseen_loc covers;
    ``no_train_val_loc`` when the .mat has no train_loc/val_loc and train/val lists are missing;
    ``no_class_lists`` when there is neither a .mat nor trainval/test lists; ``no_train_val_lists``
    when the hold-out path lacks train/val lists; ``holdout_warning`` is appended to ``warnings``.
    """
    if trainval and test:
        check_disjoint(trainval[0], test[0], folders, trainval[1], test[1])
    if train and val:
        check_disjoint(train[0], val[0], folders, train[1], val[1])

    splits: dict[str, np.ndarray]
    if att is not None:
        mat = load_mat(att, ("trainval_loc", "test_seen_loc", "test_unseen_loc"), ("train_loc", "val_loc"))
        m = len(loc_order) if loc_order is not None else len(labels)

        def to_images(key: str) -> np.ndarray:
            idx = locs(mat, key, m, att)
            return np.sort(loc_order[idx]) if loc_order is not None else np.sort(idx)

        splits = {k: to_images(f"{k}_loc") for k in ("trainval", "test_seen", "test_unseen")}
        if test:
            got = sorted(set(labels[splits["test_unseen"]].tolist()))
            if got != sorted(test[0]):
                raise DatasetError(test_mismatch(got))
        if "train_loc" in mat and "val_loc" in mat:
            train_loc, val_loc = to_images("train_loc"), to_images("val_loc")
        elif train and val:
            train_loc, val_loc = images_of(labels, train[0]), images_of(labels, val[0])
        else:
            raise DatasetError(no_train_val_loc)
    else:
        if not (trainval and test):
            raise DatasetError(no_class_lists)
        splits = holdout_splits(labels, trainval[0], test[0])
        warnings.append(holdout_warning)
        if not (train and val):
            raise DatasetError(no_train_val_lists)
        train_loc, val_loc = images_of(labels, train[0]), images_of(labels, val[0])
    splits.update(validation_splits(train_loc, val_loc))
    return splits


def check_images(images_root: Path, paths: list[str], have_features: bool, warnings: list[str]) -> np.ndarray:
    """Indices of images that are present and look readable; applies the skip/stop policy."""
    n = len(paths)
    if not images_root.is_dir():
        if have_features:
            warnings.append(f"image folder {images_root} is absent; only precomputed features can be used")
            return np.arange(n)
        raise DatasetError(f"missing image folder {images_root} (and no precomputed features); "
                           "extract the images there")
    bad: list[tuple[int, str]] = []
    for i, rel in enumerate(paths):
        path = os.path.join(images_root, rel)
        try:
            with open(path, "rb") as f:
                head = f.read(4)
        except FileNotFoundError:
            bad.append((i, "missing"))
            continue
        except OSError as e:
            bad.append((i, f"unreadable ({e.strerror})"))
            continue
        if not head.startswith(_IMAGE_MAGIC):
            bad.append((i, "empty" if not head else "not an image file"))
    if not bad:
        return np.arange(n)
    examples = "; ".join(f"{paths[i]} ({why})" for i, why in bad[:5])
    if have_features:
        warnings.append(f"{len(bad)} of {n} images missing or unreadable (features are used instead): {examples}")
        return np.arange(n)
    if len(bad) > max(1, min(MAX_BAD_IMAGES, MAX_BAD_IMAGE_SHARE * n)):
        raise DatasetError(
            f"{len(bad)} of {n} images listed in the image list are missing or unreadable under {images_root}, "
            f"e.g. {examples}; is the image archive fully extracted into that folder?"
        )
    for i, why in bad:
        warnings.append(f"skipped image {images_root / paths[i]}: {why}")
        log.warning("skipped image %s: %s", images_root / paths[i], why)
    keep = np.ones(n, dtype=bool)
    keep[[i for i, _ in bad]] = False
    return np.flatnonzero(keep)


def subset_splits(splits: dict[str, np.ndarray], keep: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """Re-index split arrays after dropping images (``keep`` = old indices kept, sorted)."""
    new_index = np.full(n, -1, dtype=np.int64)
    new_index[keep] = np.arange(len(keep))
    out = {}
    for name, idx in splits.items():
        mapped = new_index[idx]
        out[name] = mapped[mapped >= 0]
    return out


def fingerprint_files(paths: list[Path], trees: list[Path]) -> str:
    """A cheap hash of names, sizes and mtimes of some files and every file under some folders."""
    import hashlib

    h = hashlib.sha1()
    for p in paths:
        try:
            st = p.stat()
            h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        except FileNotFoundError:
            h.update(f"{p}|absent\n".encode())
    for tree in trees:
        h.update(f"tree {tree}\n".encode())
        if not tree.is_dir():
            continue
        stack = [str(tree)]
        while stack:
            d = stack.pop()
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    stack.append(e.path)
                else:
                    st = e.stat()
                    h.update(f"{e.path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def drop_unreadable(images_root: Path, arrays: dict, warnings: list[str]) -> dict:
    """Apply the bad-image policy of `check_images` to a loader's per-image arrays.

    ``arrays`` holds the `ZSLDataset` fields ``image_paths``, ``image_ids``, ``labels``,
    ``captions``, ``features`` (or None) and ``splits``; returns the same keys with the skipped
    images removed and the splits re-indexed, ready to pass on as ``ZSLDataset(**kept, ...)``.
    """
    paths = arrays["image_paths"]
    keep = check_images(images_root, paths, arrays["features"] is not None, warnings)
    if len(keep) == len(paths):
        return arrays
    out = dict(arrays)
    out["splits"] = subset_splits(arrays["splits"], keep, len(paths))
    out["image_ids"], out["labels"] = arrays["image_ids"][keep], arrays["labels"][keep]
    out["image_paths"] = [paths[i] for i in keep]
    out["captions"] = [arrays["captions"][i] for i in keep]
    out["features"] = arrays["features"][keep] if arrays["features"] is not None else None
    return out
