"""Image and text encoders of CLAREL, built through one factory (`build_encoders`).

Image side (``image.kind``):
  * ``features``: precomputed features (the paper: ResNet-101, 2048-d) -> Dropout -> Linear (§2.1);
  * ``clip``: frozen open_clip image features (extracted once, cached) -> the same head;
  * ``cnn``: a small CNN trained end to end from uint8 pixels -> the same head.
Text side (``text.kind``):
  * ``paper``: word vectors -> two residual 1-D conv blocks -> packed BiLSTM -> masked mean ->
    Dropout -> Linear (§2.2); width/depth are config fields;
  * ``clip``: frozen open_clip text features per caption (cached) -> Dropout -> Linear.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from clarel.config import RunConfig
from clarel.errors import ConfigError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _projection(in_dim: int, out_dim: int) -> nn.Linear:
    # TF-slim default: Glorot uniform weights, zero bias (§2.1).
    layer = nn.Linear(in_dim, out_dim)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


# ===================================================================== image side
class FeatureImageEncoder(nn.Module):
    """Precomputed (or frozen-backbone) features -> Dropout -> Linear into the joint space."""

    def __init__(self, in_dim: int, embed_dim: int, dropout: float) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.dropout = nn.Dropout(dropout)
        self.proj = _projection(in_dim, embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, F] -> [B, D]
        return self.proj(self.dropout(x.float()))


class SmallCNN(nn.Module):
    """Four conv stages (width, 2w, 4w, 8w channels; ``depth`` 3x3 convs with BN+ReLU each, max-pool
    between stages) and global average pooling."""

    def __init__(self, width: int, depth: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i in range(4):
            c_out = width * 2**i
            for _ in range(depth):
                layers += [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
                c_in = c_out
            if i < 3:
                layers.append(nn.MaxPool2d(2))
        self.body = nn.Sequential(*layers)
        self.out_dim = c_in
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] float -> [B, F]
        return self.body(x).mean(dim=(2, 3))


class CNNImageEncoder(nn.Module):
    """uint8 pixels -> normalise (+ flips/crops when training) -> SmallCNN -> Dropout -> Linear."""

    def __init__(self, width: int, embed_dim: int, dropout: float, augment: bool, depth: int = 1) -> None:
        super().__init__()
        self.backbone = SmallCNN(width, depth)
        self.head = FeatureImageEncoder(self.backbone.out_dim, embed_dim, dropout)
        self.augment = augment
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        # Horizontal flip of half the batch and a random shift of up to 1/8 of the side (one per batch).
        flip = torch.rand(x.shape[0], device=x.device) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        pad = max(1, x.shape[-1] // 8)
        padded = nn.functional.pad(x, (pad, pad, pad, pad), mode="replicate")
        dx, dy = (int(v) for v in torch.randint(0, 2 * pad + 1, (2,)))
        return padded[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 3, S, S] uint8 -> [B, D]
        x = (x.float() / 255.0 - self.mean) / self.std
        if self.training and self.augment:
            x = self._augment(x)
        return self.head(self.backbone(x))


# ====================================================================== text side
class _ResBlock1d(nn.Module):
    """Residual block of §2.2: 1x1 conv+BN shortcut; 3 convs (k=3) with BN, ReLU after the first two."""

    def __init__(self, c_in: int, c_out: int, units: int = 3) -> None:
        super().__init__()
        self.shortcut = nn.Sequential(nn.Conv1d(c_in, c_out, 1, bias=False), _bn(c_out))
        layers: list[nn.Module] = []
        for i in range(units):
            layers += [nn.Conv1d(c_in if i == 0 else c_out, c_out, 3, padding=1, bias=False), _bn(c_out)]
            if i < units - 1:
                layers.append(nn.ReLU(inplace=True))
        self.main = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Conv1d):
                k = m.kernel_size[0]
                nn.init.normal_(m.weight, std=math.sqrt(0.1 * 2.0 / (k * m.out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [M, C, T] -> [M, C', ceil(T/2)]
        y = torch.relu(self.main(x) + self.shortcut(x))
        return nn.functional.max_pool1d(y, 2, 2, ceil_mode=True)  # TF SAME pooling: 30 -> 15 -> 8


def _bn(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=1e-6, momentum=0.05)


class PaperTextEncoder(nn.Module):
    """The paper's caption encoder (§2.2): embeddings -> res-CNN -> BiLSTM -> masked mean -> head.

    Args:
        vocab_size: embedding rows (padding id 0 included).
        word_dim: word-vector size.
        filters: filters of the first residual block (doubled per block).
        blocks: number of residual blocks.
        rnn_size: LSTM units per direction.
        embed_dim: joint-space size.
        dropout: dropout on the pooled vector.
        word_vectors: optional frozen table ``[vocab_size, word_dim]`` (word2vec); None = trainable.
    """

    def __init__(self, vocab_size: int, word_dim: int, filters: int, blocks: int, rnn_size: int,
                 embed_dim: int, dropout: float, word_vectors: torch.Tensor | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, word_dim, padding_idx=0)
        if word_vectors is not None:
            self.embedding.weight.data.copy_(word_vectors)
            self.embedding.weight.requires_grad_(False)
        else:
            nn.init.normal_(self.embedding.weight, std=0.1)
            with torch.no_grad():
                self.embedding.weight[0].zero_()
        self.blocks = nn.ModuleList(
            _ResBlock1d(word_dim if b == 0 else filters * 2 ** (b - 1), filters * 2**b) for b in range(blocks)
        )
        self.lstm = nn.LSTM(filters * 2 ** (blocks - 1) if blocks else word_dim, rnn_size,
                            batch_first=True, bidirectional=True)
        with torch.no_grad():  # TF LSTMCell default: forget-gate bias 1 (PyTorch gate order i, f, g, o)
            for name, p in self.lstm.named_parameters():
                if name.startswith("bias_ih"):
                    p.zero_()
                    p[rnn_size : 2 * rnn_size] = 1.0
                elif name.startswith("bias_hh"):
                    p.zero_()
        self.dropout = nn.Dropout(dropout)
        self.proj = _projection(2 * rnn_size, embed_dim)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Embed captions: tokens ``[M, L]`` int64, lengths ``[M]`` (>= 1) -> ``[M, D]``."""
        x = self.embedding(tokens).transpose(1, 2)  # [M, E, L]
        for block in self.blocks:
            x = block(x)
            lengths = torch.div(lengths + 1, 2, rounding_mode="floor")  # ceil(len / 2)
        x = x.transpose(1, 2)  # [M, T, C]
        lengths = lengths.clamp(1, x.shape[1])
        # The LSTM runs in fp32 even under autocast: its recurrence is where bf16 rounding accumulates.
        with torch.autocast(device_type=x.device.type, enabled=False):
            packed = pack_padded_sequence(x.float(), lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])  # [M, T, 2H]
        mask = (torch.arange(x.shape[1], device=x.device)[None, :] < lengths.to(x.device)[:, None])
        pooled = (out * mask.unsqueeze(-1)).sum(1) / lengths.to(x.device).unsqueeze(-1).to(out.dtype)
        return self.proj(self.dropout(pooled))


class FeatureTextEncoder(nn.Module):
    """Frozen caption features (open_clip text tower) -> Dropout -> Linear."""

    def __init__(self, in_dim: int, embed_dim: int, dropout: float) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.dropout = nn.Dropout(dropout)
        self.proj = _projection(in_dim, embed_dim)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:  # [M, F] -> [M, D]
        return self.proj(self.dropout(feats.float()))


# ======================================================================== word2vec
def load_word2vec_table(path: str | Path, words: list[str], vocab_size: int, dim: int) -> torch.Tensor:
    """Frozen embedding rows from a word2vec ``.bin``: row 0, OOV words and unused rows are 0 (§2.2).

    Raises:
        ConfigError: the file is missing or its vector size differs from ``text.word_dim``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"text.word2vec_path={str(path)!r} does not exist; download GoogleNews-vectors-negative300.bin "
            "(see docs) or set text.word2vec_path='' for trainable embeddings"
        )
    from gensim.models import KeyedVectors  # heavy import, only when asked for

    kv = KeyedVectors.load_word2vec_format(str(path), binary=path.suffix != ".txt")
    if kv.vector_size != dim:
        raise ConfigError(f"{path} has {kv.vector_size}-d vectors but text.word_dim={dim}; set text.word_dim={kv.vector_size}")
    table = np.zeros((vocab_size, dim), dtype=np.float32)
    found = 0
    for i, w in enumerate(words[: vocab_size - 1], start=1):
        if w in kv.key_to_index:
            table[i] = kv[w]
            found += 1
    log.info("word2vec: %d of %d vocabulary words found in %s", found, len(words), path)
    return torch.from_numpy(table)


# ========================================================================= factory
def build_encoders(config: RunConfig, *, image_feature_dim: int | None = None,
                   text_feature_dim: int | None = None, vocab_size: int | None = None,
                   word_vectors: Callable[[], torch.Tensor] | torch.Tensor | None = None,
                   ) -> tuple[nn.Module, nn.Module]:
    """The image and text encoders named by ``config.image.kind`` / ``config.text.kind``.

    Args:
        image_feature_dim: input size for ``features``/``clip`` image encoders.
        text_feature_dim: input size for the ``clip`` text encoder.
        vocab_size: embedding rows for the ``paper`` text encoder (the tokenizer's ``num_words``).
        word_vectors: frozen word table (or a function that loads it) when word2vec is configured.
    """
    ic, tc, d = config.image, config.text, config.embed_dim
    if ic.kind == "cnn":
        image: nn.Module = CNNImageEncoder(ic.cnn_width, d, ic.dropout, ic.augment, ic.cnn_depth)
    elif ic.kind in ("features", "clip"):
        if not image_feature_dim:
            raise ConfigError(f"image.kind={ic.kind!r} needs image features, but the dataset has none")
        image = FeatureImageEncoder(image_feature_dim, d, ic.dropout)
    else:
        raise ConfigError(f"image.kind={ic.kind!r} is not valid; choose features, clip or cnn")
    if tc.kind == "paper":
        table = word_vectors() if callable(word_vectors) else word_vectors
        text: nn.Module = PaperTextEncoder(vocab_size or tc.vocab_size, tc.word_dim, tc.cnn_filters,
                                           tc.cnn_blocks, tc.rnn_size, d, tc.dropout, table)
    elif tc.kind == "clip":
        if not text_feature_dim:
            raise ConfigError("text.kind='clip' needs open_clip caption features")
        text = FeatureTextEncoder(text_feature_dim, d, tc.dropout)
    else:
        raise ConfigError(f"text.kind={tc.kind!r} is not valid; choose paper or clip")
    return image, text
