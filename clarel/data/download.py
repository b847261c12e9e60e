"""Fetching CUB-200-2011 / Oxford Flowers-102 from their official addresses (method doc §8).

The first step probes the first server with a short timeout (run in a thread, so even a hanging
DNS lookup cannot hold it up): offline, `download` fails within about 4 seconds with a
`DatasetError` that lists every file to fetch by hand and where to put it. Reed et al.'s captions
live on Google Drive, which needs a browser confirmation for large files, so they are always
listed as a manual step.
"""

from __future__ import annotations

import logging
import shutil
import socket
import tarfile
import threading
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

from clarel.errors import DatasetError

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0

# kind -> [(url, what it holds, where it goes under the root)]
FILES: dict[str, list[tuple[str, str, str]]] = {
    "cub": [
        ("http://www.vision.caltech.edu/visipedia-data/CUB-200-2011/CUB_200_2011.tgz",
         "CUB-200-2011 images and metadata", "extract so that CUB_200_2011/images.txt exists"),
        ("http://datasets.d2.mpi-inf.mpg.de/xian/xlsa17.zip",
         "Xian et al. splits and ResNet-101 features", "extract so that xlsa17/data/CUB/att_splits.mat exists"),
    ],
    "flowers": [
        ("http://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",
         "Oxford Flowers-102 images", "extract so that jpg/image_00001.jpg exists"),
        ("http://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat", "image labels", "imagelabels.mat"),
        ("http://www.robots.ox.ac.uk/~vgg/data/flowers/102/setid.mat",
         "train/val/test ids (maps FLO split locations)", "setid.mat"),
        ("http://datasets.d2.mpi-inf.mpg.de/xian/cvpr18xian.zip",
         "Xian et al. FLO splits and features", "extract so that cvpr18xian/data/FLO/att_splits.mat exists"),
    ],
}
MANUAL: dict[str, list[tuple[str, str, str]]] = {
    "cub": [("https://drive.google.com/uc?id=0B0ywwgffWnLLZW9uVHNjb2JmNlE",
             "Reed et al. captions (cvpr2016_cub.tar.gz)",
             "copy its text_c10/ folder so that text_c10/001.Black_footed_Albatross/*.txt exists")],
    "flowers": [("https://drive.google.com/uc?id=0B0ywwgffWnLLcms2WWJQRFNSWXM",
                 "Reed et al. captions (cvpr2016_flowers.tar.gz)",
                 "copy its text_c10/ folder and *classes.txt files so that text_c10/class_00001/*.txt exists")],
}


def manual_instructions(kind: str, to: Path) -> str:
    """Which files to fetch by hand and where to put them."""
    lines = [f"Fetch these files by hand and put them under {to}:"]
    for url, what, where in FILES[kind] + MANUAL[kind]:
        lines.append(f"  - {what}: {url}\n      -> {where}")
    lines.append(f"Then check with: python -m clarel.data check {to}")
    return "\n".join(lines)


def _reachable(url: str, timeout: float) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((parsed.hostname, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(result and result[0])


def download(kind: str, to: str | Path, timeout: float = PROBE_TIMEOUT_S) -> Path:
    """Download and lay out a dataset under ``to``.

    Raises:
        DatasetError: unknown kind, or a server cannot be reached (lists the manual steps).
    """
    if kind not in FILES:
        raise DatasetError(f"unknown dataset {kind!r} to download; valid: {', '.join(FILES)}")
    to = Path(to)
    if not _reachable(FILES[kind][0][0], timeout):
        raise DatasetError(f"cannot reach {urlparse(FILES[kind][0][0]).hostname} (offline?).\n"
                           + manual_instructions(kind, to))
    to.mkdir(parents=True, exist_ok=True)
    staging = to / ".downloads"
    staging.mkdir(exist_ok=True)
    for url, what, _ in FILES[kind]:
        name = url.rsplit("/", 1)[-1]
        target = staging / name
        if not target.exists():
            log.info("downloading %s (%s)", url, what)
            try:
                with urllib.request.urlopen(url, timeout=60) as r, open(f"{target}.part", "wb") as f:
                    shutil.copyfileobj(r, f, 1 << 20)
            except OSError as e:
                raise DatasetError(f"download of {url} failed: {e}.\n" + manual_instructions(kind, to)) from e
            Path(f"{target}.part").replace(target)
        if name.endswith((".tgz", ".tar.gz", ".tar")):
            with tarfile.open(target) as tf:
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse unsafe members
                    tf.extractall(to, filter="data")
                else:  # pragma: no cover
                    tf.extractall(to)
        elif name.endswith(".zip"):
            with zipfile.ZipFile(target) as zf:
                zf.extractall(to)
        else:
            shutil.copy2(target, to / name)
    log.warning("%s", "\n".join(["the captions must still be fetched by hand:"]
                                + [f"  {what}: {url} -> {where}" for url, what, where in MANUAL[kind]]))
    return to
