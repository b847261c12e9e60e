"""In-memory model inputs built once per run from a `ZSLDataset`.

Images: uint8 pixels ``[N, 3, S, S]`` (``cnn``; decoded once and cached on disk) or feature rows
``[N, F]`` (``features``/``clip``). Captions: token ids ``[N, Cmax, L]`` + lengths ``[N, Cmax]``
(``paper``) or feature rows ``[N, Cmax, F]`` (``clip``), with ``caption_counts [N]``.
Everything is moved to the training device in one go.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from clarel.config import RunConfig
from clarel.data.dataset import ZSLDataset
from clarel.errors import DatasetError
from clarel.paths import cache_dir
from clarel.text import Tokenizer

log = logging.getLogger(__name__)


@dataclass
class ModelInputs:
    images: torch.Tensor  # [N, 3, S, S] uint8 or [N, F] float32
    captions: torch.Tensor  # [N, Cmax, L] int64 or [N, Cmax, F] float32
    lengths: torch.Tensor | None  # [N, Cmax] int64 (token captions only)
    caption_counts: np.ndarray  # [N] captions per image (host copy, used by the samplers)
    tokenizer: Tokenizer | None
    image_feature_dim: int | None
    text_feature_dim: int | None

    def to(self, device: torch.device) -> ModelInputs:
        return ModelInputs(self.images.to(device), self.captions.to(device),
                           None if self.lengths is None else self.lengths.to(device),
                           self.caption_counts, self.tokenizer, self.image_feature_dim, self.text_feature_dim)

    def caption_counts_tensor(self, device: torch.device) -> torch.Tensor:
        return torch.as_tensor(self.caption_counts, device=device)


def load_image_pixels(path: Path, size: int) -> np.ndarray:
    """One image as RGB uint8 ``[3, size, size]`` (plain resize, as the CNN sees it)."""
    with Image.open(path) as im:
        return pil_to_pixels(im, size)


def pil_to_pixels(image: Image.Image, size: int) -> np.ndarray:
    im = image.convert("RGB")
    if im.size != (size, size):
        im = im.resize((size, size), Image.BILINEAR)
    return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1).copy()


def dataset_pixels(dataset: ZSLDataset, size: int, use_cache: bool = True) -> np.ndarray:
    """All images of the dataset as uint8 ``[N, 3, size, size]``, cached by fingerprint and size."""
    key = hashlib.sha1(f"{dataset.fingerprint}|{dataset.num_images}|{size}".encode()).hexdigest()[:16]
    path = cache_dir() / "pixels" / f"{dataset.name}-{size}-{key}.npy"
    if use_cache and dataset.fingerprint and path.is_file():
        return np.load(path)
    out = np.empty((dataset.num_images, 3, size, size), dtype=np.uint8)
    root = Path(dataset.images_root)
    for i, rel in enumerate(dataset.image_paths):
        try:
            out[i] = load_image_pixels(root / rel, size)
        except OSError as e:
            raise DatasetError(f"cannot read image {root / rel}: {e}; re-create or re-download the dataset") from e
    if use_cache and dataset.fingerprint:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, out)
        os.replace(tmp, path)
    return out


def encode_captions(dataset: ZSLDataset, tokenizer: Tokenizer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids ``[N, Cmax, L]``, lengths ``[N, Cmax]`` and counts ``[N]`` of all captions."""
    counts = np.array([len(c) for c in dataset.captions], dtype=np.int64)
    flat = [c for caps in dataset.captions for c in caps]
    ids, lens = tokenizer.encode(flat)
    n, cmax, L = dataset.num_images, int(counts.max()), tokenizer.max_len
    tokens = np.zeros((n, cmax, L), dtype=np.int64)
    lengths = np.ones((n, cmax), dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    for i in range(n):
        tokens[i, : counts[i]] = ids[offsets[i] : offsets[i + 1]]
        lengths[i, : counts[i]] = lens[offsets[i] : offsets[i + 1]]
    return tokens, lengths, counts


def prepare_inputs(dataset: ZSLDataset, config: RunConfig, tokenizer: Tokenizer | None = None,
                   progress: Callable[[float, str], None] | None = None) -> ModelInputs:
    """Build (or load from cache) every input the model needs for this dataset and config.

    Args:
        tokenizer: the run's tokenizer; None fits a new one on all captions (§2.2).
    """
    progress = progress or (lambda f, m: None)
    ic, tc = config.image, config.text
    clip_img = clip_txt = None
    if ic.kind == "clip" or tc.kind == "clip":
        from clarel.clip_backbone import dataset_features

        clip_img, clip_txt, counts = dataset_features(dataset, ic.clip_model, ic.clip_pretrained,
                                                      config.optim.device if config.optim.device != "auto" else _auto(),
                                                      progress=progress)
    if ic.kind == "cnn":
        progress(0.0, f"decoding {dataset.num_images} images")
        images = torch.from_numpy(dataset_pixels(dataset, ic.image_size))
        image_dim = None
    elif ic.kind == "features":
        if dataset.features is None:
            raise DatasetError(f"image.kind='features' but dataset {dataset.name!r} at {dataset.root} has no "
                               "precomputed features (res101.mat); use image.kind=cnn or clip")
        images = torch.from_numpy(np.asarray(dataset.features, dtype=np.float32))
        image_dim = images.shape[1]
    else:
        images = torch.from_numpy(clip_img)
        image_dim = images.shape[1]
    if tc.kind == "paper":
        if tokenizer is None:
            tokenizer = Tokenizer(tc.vocab_size, tc.max_len).fit(c for caps in dataset.captions for c in caps)
        tokens, lengths, counts = encode_captions(dataset, tokenizer)
        return ModelInputs(images, torch.from_numpy(tokens), torch.from_numpy(lengths), counts, tokenizer,
                           image_dim, None)
    return ModelInputs(images, torch.from_numpy(clip_txt), None, counts, None, image_dim, clip_txt.shape[-1])


def _auto() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
