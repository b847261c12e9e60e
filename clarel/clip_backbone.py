"""Frozen open_clip backbones: weight resolution that fails fast offline, and cached feature extraction.

Weights are looked up on disk only (a local file, the Hugging Face cache, or open_clip's URL
cache). When they are missing we raise `WeightsUnavailableError` at once, saying what to
download and where to put it, instead of letting the hub client retry for a minute. Downloading
is attempted only when ``CLAREL_ALLOW_DOWNLOAD=1`` is set.

Features (L2-normalised, float32) are extracted once, batched, under ``torch.inference_mode``
(autocast on CUDA) and cached under ``cache_dir()/features`` keyed by the dataset fingerprint,
the model, the tag and the preprocessing.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clarel.errors import ConfigError, WeightsUnavailableError
from clarel.paths import cache_dir

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
_HF_DEFAULT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def _open_clip():
    import open_clip

    return open_clip


def resolve_pretrained(model_name: str, pretrained: str | None) -> str | None:
    """A local weights file for ``model_name``/``pretrained`` without touching the network.

    Args:
        model_name: an open_clip architecture, e.g. ``"ViT-B-32"``.
        pretrained: an open_clip tag, a path to a weights file, or None (random init).
    Returns:
        The file path, or None for random init (or, with ``CLAREL_ALLOW_DOWNLOAD=1``, the tag itself
        so that open_clip downloads it).
    Raises:
        ConfigError: unknown architecture or tag (lists valid ones).
        WeightsUnavailableError: a known tag whose weights are not on disk.
    """
    open_clip = _open_clip()
    if model_name not in open_clip.list_models():
        raise ConfigError(f"unknown open_clip model {model_name!r}; e.g. {', '.join(open_clip.list_models()[:12])}, ...")
    if not pretrained:
        return None
    path = Path(pretrained).expanduser()
    if path.is_file():
        return str(path)
    if path.suffix in (".bin", ".pt", ".pth", ".safetensors") or os.sep in pretrained:
        raise WeightsUnavailableError(f"open_clip weights file {str(path)!r} does not exist; copy it there "
                                      "or use a known tag such as 'laion2b_s34b_b79k'")
    cfg = open_clip.get_pretrained_cfg(model_name, pretrained)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise ConfigError(f"open_clip has no pretrained tag {pretrained!r} for {model_name!r}; "
                          f"valid tags: {', '.join(tags) or '(none)'}")
    if cfg.get("file") and Path(cfg["file"]).is_file():
        return str(cfg["file"])
    urls: list[str] = []
    where = ""
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = hub.rstrip("/"), ""
        if not hub.endswith("/"):
            repo_id, filename = hub.rsplit("/", 1)
        names = [filename] if filename else list(_HF_DEFAULT_NAMES)
        if filename.endswith((".bin", ".pth")):
            names.insert(0, filename.rsplit(".", 1)[0] + ".safetensors")
        for name in names:
            hit = try_to_load_from_cache(repo_id=repo_id, filename=name)
            if isinstance(hit, str) and Path(hit).is_file():
                return hit
        urls += [f"https://huggingface.co/{repo_id}/resolve/main/{names[-1]}"]
        where = "the Hugging Face cache ($HF_HOME/hub, default ~/.cache/huggingface/hub)"
    if cfg.get("url"):
        local = Path("~/.cache/clip").expanduser() / Path(cfg["url"]).name
        if local.is_file():
            return str(local)
        urls.append(cfg["url"])
        where = where or str(local.parent)
    if os.environ.get("CLAREL_ALLOW_DOWNLOAD") == "1":
        return pretrained
    raise WeightsUnavailableError(
        f"open_clip weights {model_name}/{pretrained} are not on this machine (clarel never downloads "
        f"weights at run time). Download {urls[0] if urls else 'them'} on a machine with internet "
        f"(e.g. `python -c \"import open_clip; open_clip.create_model_and_transforms('{model_name}', "
        f"pretrained='{pretrained}')\"`) and copy the file into {where}, or set image.clip_pretrained to "
        "the file's path; set CLAREL_ALLOW_DOWNLOAD=1 to let open_clip download it."
    )


def load_clip(model_name: str, pretrained: str | None, device: str | torch.device = "cpu") -> tuple[Any, Any, Any]:
    """(model in eval mode, image preprocess, tokenizer). ``pretrained=None`` gives a fixed random init."""
    weights = resolve_pretrained(model_name, pretrained)
    open_clip = _open_clip()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # random init must be the same whenever a run is reloaded
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights, device=device)
    model.eval().requires_grad_(False)
    return model, preprocess, open_clip.get_tokenizer(model_name)


def _key(*parts: Any) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def _autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)


@torch.inference_mode()
def encode_images(model: Any, preprocess: Any, images: Sequence, device: torch.device) -> torch.Tensor:
    """L2-normalised image features of PIL images.  -> [B, F] float32 on the CPU"""
    x = torch.stack([preprocess(im.convert("RGB")) for im in images]).to(device)
    with _autocast(device):
        f = model.encode_image(x)
    return torch.nn.functional.normalize(f.float(), dim=-1).cpu()


@torch.inference_mode()
def encode_texts(model: Any, tokenizer: Any, texts: Sequence[str], device: torch.device) -> torch.Tensor:
    """L2-normalised text features.  -> [M, F] float32 on the CPU"""
    tokens = tokenizer(list(texts)).to(device)
    with _autocast(device):
        f = model.encode_text(tokens)
    return torch.nn.functional.normalize(f.float(), dim=-1).cpu()


def dataset_features(dataset: Any, model_name: str, pretrained: str | None, device: str | torch.device = "cpu",
                     progress: ProgressFn | None = None, batch_size: int = 64,
                     use_cache: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frozen open_clip features of every image and every caption of a `ZSLDataset`, cached on disk.

    Returns:
        image_features ``[N, F]``, caption_features ``[N, Cmax, F]`` (zero rows past an image's
        captions) and caption_counts ``[N]``.
    """
    from PIL import Image

    device = torch.device(device)
    progress = progress or (lambda f, m: None)
    n_caps = np.array([len(c) for c in dataset.captions], dtype=np.int64)
    key = _key(dataset.fingerprint or dataset.root, model_name, pretrained, "l2norm-v1")
    path = cache_dir() / "features" / f"clip-{dataset.name}-{model_name}-{key}.npz"
    if use_cache and path.is_file() and dataset.fingerprint:
        with np.load(path) as z:
            log.info("open_clip features from cache %s", path)
            return z["image"], z["captions"], z["counts"]
    model, preprocess, tokenizer = load_clip(model_name, pretrained, device)
    n = dataset.num_images
    img_feats: list[torch.Tensor] = []
    for start in range(0, n, batch_size):
        ims = []
        for p in dataset.image_paths[start : start + batch_size]:
            with Image.open(Path(dataset.images_root) / p) as im:
                ims.append(im.convert("RGB"))
        img_feats.append(encode_images(model, preprocess, ims, device))
        progress(0.5 * min(n, start + batch_size) / n, f"open_clip image features {min(n, start + batch_size)}/{n}")
    image = torch.cat(img_feats).numpy()
    flat = [c for caps in dataset.captions for c in caps]
    txt_feats: list[torch.Tensor] = []
    for start in range(0, len(flat), 4 * batch_size):
        txt_feats.append(encode_texts(model, tokenizer, flat[start : start + 4 * batch_size], device))
        done = min(len(flat), start + 4 * batch_size)
        progress(0.5 + 0.5 * done / len(flat), f"open_clip caption features {done}/{len(flat)}")
    text = torch.cat(txt_feats).numpy()
    captions = np.zeros((n, int(n_caps.max()), text.shape[1]), dtype=np.float32)
    offsets = np.concatenate([[0], np.cumsum(n_caps)])
    for i in range(n):
        captions[i, : n_caps[i]] = text[offsets[i] : offsets[i + 1]]
    if use_cache and dataset.fingerprint:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, image=image, captions=captions, counts=n_caps)
        os.replace(tmp, path)
    return image, captions, n_caps
