"""Loading a dataset folder of any supported kind, with the cache, and ensuring the default one exists."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from clarel.data import cache
from clarel.data._common import fingerprint_files
from clarel.data.dataset import ZSLDataset
from clarel.errors import DatasetError
from clarel.paths import default_dataset_root

log = logging.getLogger(__name__)

KINDS = ("synthbirds", "cub", "flowers")

DOWNLOAD_HELP = {
    "cub": (
        "CUB-200-2011 cannot be generated; fetch it and lay it out under {root}:\n"
        "  CUB_200_2011/...           from http://www.vision.caltech.edu/visipedia-data/CUB-200-2011/CUB_200_2011.tgz\n"
        "  text_c10/<class>/<img>.txt from Reed et al.'s cvpr2016_cub.tar.gz (Google Drive id "
        "0B0ywwgffWnLLZW9uVHNjb2JmNlE)\n"
        "  xlsa17/data/CUB/*          from http://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip\n"
        "or run `python -m clarel.data download cub --to {root}` where the network allows."
    ),
    "flowers": (
        "Oxford Flowers-102 cannot be generated; fetch it and lay it out under {root}:\n"
        "  jpg/image_XXXXX.jpg        from http://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz\n"
        "  imagelabels.mat, setid.mat from http://www.robots.ox.ac.uk/~vgg/data/flowers/102/\n"
        "  text_c10/ and class lists  from Reed et al.'s cvpr2016_flowers.tar.gz (Google Drive id "
        "0B0ywwgffWnLLcms2WWJQRFNSWXM)\n"
        "  cvpr18xian/data/FLO/*      from http://datasets.d2.mpi-inf.mpg.de/xian/cvpr18xian.zip\n"
        "or run `python -m clarel.data download flowers --to {root}` where the network allows."
    ),
}


def detect_kind(root: Path) -> str:
    """``"synthbirds"``, ``"cub"`` or ``"flowers"`` from the files in ``root``.

    Raises:
        DatasetError: the folder is missing or matches no layout (names the files looked for).
    """
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    if (root / "CUB_200_2011" / "images.txt").exists():
        return "synthbirds" if (root / "synthbirds.json").exists() else "cub"
    if (root / "imagelabels.mat").exists():
        return "flowers"
    raise DatasetError(
        f"{root} is not a dataset folder: expected {root / 'CUB_200_2011' / 'images.txt'} (CUB layout, "
        f"also SynthBirds) or {root / 'imagelabels.mat'} (Oxford Flowers layout)"
    )


def _module(kind: str):
    if kind in ("cub", "synthbirds"):
        from clarel.data import cub

        return cub.source_files, cub.load_cub
    from clarel.data import flowers

    return flowers.source_files, flowers.load_flowers


def fingerprint(root: Path, kind: str) -> str:
    """The cache key of a dataset folder (names, sizes and mtimes of its source files)."""
    files, trees = _module(kind)[0](root)
    return fingerprint_files(files, trees)


def load_dataset(root: str | os.PathLike, kind: str | None = None, use_cache: bool = True) -> ZSLDataset:
    """Load and validate a dataset folder.

    Args:
        root: the dataset folder (CUB layout incl. SynthBirds, or Flowers layout).
        kind: ``"cub"``, ``"synthbirds"`` or ``"flowers"``; None detects it from the files.
        use_cache: reuse (and write) the pickle keyed by the source files' fingerprint.

    Returns:
        The loaded `ZSLDataset`.

    Raises:
        DatasetError: the folder is missing, incomplete or inconsistent (the message names the file).
    """
    root = Path(root).expanduser().absolute()
    detected = detect_kind(root)
    if kind is not None:
        if kind not in KINDS:
            raise DatasetError(f"unknown dataset kind {kind!r}; valid: {', '.join(KINDS)}")
        if {kind, detected} != {"cub", "synthbirds"} and kind != detected:
            raise DatasetError(f"{root} holds a {detected} dataset, not {kind}")
    kind = detected
    fp = fingerprint(root, kind)
    if use_cache:
        ds = cache.load_cached(kind, root, fp)
        if ds is not None:
            log.info("loaded %s from cache (%d images)", root, ds.num_images)
            return ds
    ds = _module(kind)[1](root, fingerprint=fp)
    if use_cache:
        cache.save_cached(kind, ds)
    return ds


def resolve_root(dataset: str, root: str = "") -> Path:
    """``root`` when given, else ``$CLAREL_HOME/datasets/<dataset>``."""
    return Path(root).expanduser() if root else default_dataset_root(dataset)


def ensure_dataset(data_cfg) -> ZSLDataset:
    """Resolve ``data_cfg.root``, generate SynthBirds there when missing, and load the dataset.

    Args:
        data_cfg: a `clarel.config.DataConfig` (``dataset``, ``root``, ``synth_seed``).

    Raises:
        DatasetError: CUB or Flowers is missing (says what to download and where) or invalid.
    """
    kind = data_cfg.dataset
    if kind not in KINDS:
        raise DatasetError(f"unknown dataset {kind!r}; valid: {', '.join(KINDS)}")
    root = resolve_root(kind, data_cfg.root)
    present = root.is_dir() and any(root.iterdir())
    if not present:
        if kind != "synthbirds":
            raise DatasetError(f"dataset folder {root} is missing.\n" + DOWNLOAD_HELP[kind].format(root=root))
        from clarel.data.synth import generate_synthbirds

        log.info("generating SynthBirds (seed %d) in %s", data_cfg.synth_seed, root)
        generate_synthbirds(root, seed=data_cfg.synth_seed)
    elif kind == "synthbirds":
        _check_seed(root, data_cfg.synth_seed)
    return load_dataset(root, kind=kind)


def ensure_synthbirds(root: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """The default SynthBirds folder, generated first if missing (used by ``make demo``)."""
    path = Path(root) if root else default_dataset_root("synthbirds")
    if not (path / "synthbirds.json").exists():
        from clarel.data.synth import generate_synthbirds

        if path.exists() and any(path.iterdir()):
            raise DatasetError(f"{path} exists but is not a SynthBirds folder (no synthbirds.json); move it away")
        generate_synthbirds(path, seed=seed)
    return path


def _check_seed(root: Path, seed: int) -> None:
    try:
        manifest = json.loads((root / "synthbirds.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if manifest.get("seed") != seed:
        log.warning("%s was generated with seed %s, not data.synth_seed=%s; delete it to regenerate",
                    root, manifest.get("seed"), seed)
