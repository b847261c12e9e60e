"""Reload a trained run folder without the dataset: `load_run(run_dir)` -> `LoadedRun`."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clarel.config import RunConfig
from clarel.errors import ClarelError
from clarel.model import ClarelModel, create_model
from clarel.text import Tokenizer

log = logging.getLogger(__name__)


@dataclass
class LoadedRun:
    """A trained model in eval mode with what it needs to embed raw text and images.

    Attributes:
        model: the `ClarelModel` (eval mode, on ``device``).
        config: the run's `RunConfig`.
        tokenizer: the run's `Tokenizer` (``text.kind="paper"``), else None.
        run_dir: the folder it came from.
        meta: ``num_classes``, ``class_names``, feature sizes, dataset fingerprint.
        final_metrics: ``final_metrics.json`` (empty when training did not finish).
    """

    model: ClarelModel
    config: RunConfig
    tokenizer: Tokenizer | None
    run_dir: Path = Path(".")
    device: str = "cpu"
    meta: dict[str, Any] = field(default_factory=dict)
    final_metrics: dict[str, float] = field(default_factory=dict)
    _clip: Any = field(default=None, repr=False)

    def _clip_parts(self) -> tuple[Any, Any, Any]:
        if self._clip is None:
            from clarel.clip_backbone import load_clip

            ic = self.config.image
            self._clip = load_clip(ic.clip_model, ic.clip_pretrained, self.device)
        return self._clip

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Joint-space embedding of each text, treated as one caption.  -> [K, D] float32"""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.model.embed_dim), dtype=np.float32)
        if self.config.text.kind == "paper":
            tokens, lengths = self.tokenizer.encode(texts)
            emb = self.model.embed_captions(torch.from_numpy(tokens).to(self.device), torch.from_numpy(lengths).to(self.device))
        else:
            from clarel.clip_backbone import encode_texts

            model, _, tokenizer = self._clip_parts()
            feats = encode_texts(model, tokenizer, texts, torch.device(self.device))
            emb = self.model.embed_captions(feats.to(self.device))
        return emb.float().cpu().numpy()

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Any]) -> np.ndarray:
        """Joint-space embedding of PIL images with the run's own preprocessing.  -> [B, D] float32

        Raises:
            ClarelError: the run uses precomputed features (``image.kind="features"``): there is
                no backbone to apply to raw pixels.
        """
        images = list(images)
        kind = self.config.image.kind
        if kind == "features":
            raise ClarelError("this run was trained on precomputed image features (image.kind='features'); "
                              "it cannot embed raw images. Use a run with image.kind='cnn' or 'clip'.")
        if not images:
            return np.zeros((0, self.model.embed_dim), dtype=np.float32)
        if kind == "cnn":
            from clarel.inputs import pil_to_pixels

            size = self.config.image.image_size
            x = torch.from_numpy(np.stack([pil_to_pixels(im, size) for im in images])).to(self.device)
        else:
            from clarel.clip_backbone import encode_images

            model, preprocess, _ = self._clip_parts()
            x = encode_images(model, preprocess, images, torch.device(self.device)).to(self.device)
        return self.model.embed_images(x).float().cpu().numpy()


def load_run(run_dir: Path | str, device: str = "cpu") -> LoadedRun:
    """Rebuild a run's model from ``config.json``, ``checkpoint.pt`` and ``vocab.json``.

    Raises:
        ClarelError: the folder or one of its files is missing or unreadable (named in the message).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ClarelError(f"run folder {run_dir} does not exist")
    for name in ("config.json", "checkpoint.pt"):
        if not (run_dir / name).is_file():
            raise ClarelError(f"run folder {run_dir} has no {name}; is training finished (or started)?")
    config = RunConfig.from_json((run_dir / "config.json").read_text())
    tokenizer = Tokenizer.load(run_dir / "vocab.json") if config.text.kind == "paper" else None
    try:
        state = torch.load(run_dir / "checkpoint.pt", map_location=device, weights_only=True)
    except Exception as e:  # a truncated or foreign file
        raise ClarelError(f"cannot read {run_dir / 'checkpoint.pt'}: {e}") from e
    meta = state.get("meta", {})
    model = create_model(config, int(meta["num_classes"]), image_feature_dim=meta.get("image_feature_dim"),
                         text_feature_dim=meta.get("text_feature_dim"), vocab_size=meta.get("vocab_size"))
    model.load_state_dict(state["model"])
    model.tokenizer = tokenizer
    model.to(device).eval()
    final = {}
    if (run_dir / "final_metrics.json").is_file():
        final = json.loads((run_dir / "final_metrics.json").read_text())
    return LoadedRun(model=model, config=config, tokenizer=tokenizer, run_dir=run_dir, device=str(device),
                     meta=meta, final_metrics=final)
