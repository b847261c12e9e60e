"""Run configuration: dataclasses that round-trip through JSON, and the named presets.

A run stores its exact `RunConfig` (``config.json`` in its folder and in the job store), so every
run can be reproduced from it. Overrides use dotted keys: ``optim.steps=200``, ``loss.kappa=0.3``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

from clarel.errors import ConfigError

PAPER_ALPHA_GRID = tuple(round(0.005 * i, 3) for i in range(10))  # 0 : 0.005 : 0.045 (§6.2)


@dataclass
class DataConfig:
    dataset: str = "synthbirds"  # dataset kind: "synthbirds" | "cub" | "flowers"
    root: str = ""  # dataset folder; "" = $CLAREL_HOME/datasets/<dataset> (SynthBirds generated there)
    protocol: str = "test"  # "test": train on trainval; "val": train on train (chooses alpha)
    synth_seed: int = 0  # SynthBirds generator seed when the folder must be generated


@dataclass
class ImageEncoderConfig:
    kind: str = "cnn"  # "features" (precomputed, e.g. res101) | "clip" (frozen open_clip) | "cnn" (from scratch)
    dropout: float = 0.25  # dropout before the projection (paper: 0.25)
    clip_model: str = "ViT-B-32"  # open_clip architecture name
    clip_pretrained: str | None = "laion2b_s34b_b79k"  # open_clip tag, a local checkpoint path, or None (random)
    cnn_width: int = 32  # channels of the first conv of the small CNN (doubled per stage)
    cnn_depth: int = 1  # 3x3 convs per stage of the small CNN (4 stages)
    image_size: int = 64  # side in pixels the small CNN sees
    augment: bool = True  # random flips/crops for the end-to-end CNN


@dataclass
class TextEncoderConfig:
    kind: str = "paper"  # "paper" (word CNN + BiLSTM, §2.2) | "clip" (frozen open_clip text tower)
    word2vec_path: str = ""  # GoogleNews .bin for frozen vectors; "" = trainable embeddings
    word_dim: int = 300  # word-vector size (word2vec: 300)
    vocab_size: int = 10000  # Keras num_words: ids 1..vocab_size-1 kept
    max_len: int = 30  # tokens per caption after padding/truncation
    cnn_filters: int = 256  # filters of the first residual block (doubled per block)
    cnn_blocks: int = 2  # residual 1-D conv blocks
    rnn_size: int = 512  # BiLSTM units per direction
    dropout: float = 0.25  # dropout on the pooled text vector


@dataclass
class LossConfig:
    kappa: float = 0.5  # weight of the auxiliary class loss
    lam: float = 0.5  # weight of image->text vs text->image retrieval


@dataclass
class OptimConfig:
    steps: int = 150001  # training steps
    batch_size: int = 32  # images per batch (B)
    texts_per_image: int = 10  # captions drawn with replacement per image
    sampler: str = "per_image"  # "per_image" (paper) | "class_only" (ablation, §4.1)
    class_only_images: int = 1  # images averaged per class in the class_only sampler
    lr: float = 0.1  # initial learning rate
    momentum: float = 0.9  # SGD momentum (non-Nesterov)
    lr_decay_rate: float = 10.0  # divide lr by this at each decay
    n_lr_decay: int = 3  # staircase periods: decay every steps // n_lr_decay steps
    clip_grad_norm: float = 1.0  # per-tensor gradient norm clip (0 = off)
    weight_decay: float = 1e-3  # only on text-CNN conv kernels and BN parameters
    seed: int = 0  # seeds torch/numpy/python; same seed on CPU = same run
    device: str = "auto"  # "auto" (cuda, mps, cpu) | "cpu" | "cuda" | "cuda:N" | "mps"
    eval_every: int = 2500  # steps between periodic evaluations (0 = only at the end)
    checkpoint_every: int = 2500  # steps between checkpoints (0 = only at the end)
    num_workers: int = 0  # unused (kept for old configs): inputs live in memory, no DataLoader
    cpu_threads: int = 0  # torch CPU threads when training on the CPU (0 = torch's default)


@dataclass
class EvalConfig:
    prototype_k: int = 100  # images whose text builds each class prototype (§5)
    alpha_grid: tuple[float, ...] = PAPER_ALPHA_GRID  # rescaling factors tried on validation
    alpha: float | None = None  # fixed alpha*; None = choose on the validation protocol
    alpha_selection: str = "val_run"  # "val_run": train a twin on the val protocol | "fixed" | "none"
    gamma: float | None = None  # calibrated-stacking offset; None = chosen by the val run (else 0)
    val_run_parallel: bool = False  # CPU: train the val-protocol twin in a second process at the same time
    curve_points: int = 101  # points of the seen-unseen curve (AUSUC)
    umap_cap: int = 3000  # max points of each modality in the stored UMAP projection
    seed: int = 0  # prototype sampling seed


@dataclass
class RunConfig:
    name: str = "run"  # human-readable run name
    preset: str = ""  # preset this config came from
    embed_dim: int = 1024  # joint space size
    data: DataConfig = field(default_factory=DataConfig)
    image: ImageEncoderConfig = field(default_factory=ImageEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    # ------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        """Build a config from a dict, rejecting unknown keys with the list of valid ones."""
        if not isinstance(data, dict):
            raise ConfigError(f"a run config must be a JSON object, got {type(data).__name__}")
        return _from_dict(cls, data, "")

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"run config is not valid JSON: {e}") from e
        return cls.from_dict(data)

    def with_overrides(self, overrides: dict[str, Any] | list[str]) -> RunConfig:
        """A copy with dotted-key overrides applied (``{"optim.steps": 200}`` or ``["optim.steps=200"]``)."""
        if isinstance(overrides, list | tuple):
            overrides = parse_overrides(overrides)
        data = self.to_dict()
        for key, value in overrides.items():
            _set_dotted(data, key, value)
        cfg = RunConfig.from_dict(data)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Check values that the type system cannot; raise `ConfigError` naming the field."""
        choices = {
            "data.dataset": (self.data.dataset, ("synthbirds", "cub", "flowers")),
            "data.protocol": (self.data.protocol, ("test", "val")),
            "image.kind": (self.image.kind, ("features", "clip", "cnn")),
            "text.kind": (self.text.kind, ("paper", "clip")),
            "optim.sampler": (self.optim.sampler, ("per_image", "class_only")),
            "eval.alpha_selection": (self.eval.alpha_selection, ("val_run", "fixed", "none")),
        }
        for key, (value, valid) in choices.items():
            if value not in valid:
                raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(valid)}")
        ranges = {
            "loss.kappa": (self.loss.kappa, 0.0, 1.0),
            "loss.lam": (self.loss.lam, 0.0, 1.0),
            "image.dropout": (self.image.dropout, 0.0, 0.99),
            "text.dropout": (self.text.dropout, 0.0, 0.99),
        }
        for key, (value, lo, hi) in ranges.items():
            if not lo <= value <= hi:
                raise ConfigError(f"{key}={value} is outside [{lo}, {hi}]")
        positive = {
            "embed_dim": self.embed_dim,
            "optim.steps": self.optim.steps,
            "optim.batch_size": self.optim.batch_size,
            "optim.texts_per_image": self.optim.texts_per_image,
            "eval.prototype_k": self.eval.prototype_k,
            "text.max_len": self.text.max_len,
            "text.word_dim": self.text.word_dim,
            "text.rnn_size": self.text.rnn_size,
            "text.cnn_filters": self.text.cnn_filters,
            "image.cnn_width": self.image.cnn_width,
            "image.cnn_depth": self.image.cnn_depth,
            "image.image_size": self.image.image_size,
            "optim.class_only_images": self.optim.class_only_images,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key}={value} must be at least 1")
        if self.optim.batch_size < 2:
            raise ConfigError("optim.batch_size must be at least 2: the retrieval loss needs negatives")
        if self.text.vocab_size < 2:
            raise ConfigError(f"text.vocab_size={self.text.vocab_size} must be at least 2 (id 0 is padding)")
        if self.text.cnn_blocks < 0 or self.optim.cpu_threads < 0 or self.optim.n_lr_decay < 0:
            raise ConfigError("text.cnn_blocks, optim.cpu_threads and optim.n_lr_decay may not be negative")
        if not self.eval.alpha_grid or min(self.eval.alpha_grid) <= -1:
            raise ConfigError(f"eval.alpha_grid={list(self.eval.alpha_grid)} must be a non-empty list of values > -1")
        if self.eval.curve_points < 3:
            raise ConfigError(f"eval.curve_points={self.eval.curve_points} must be at least 3")
        if self.optim.lr <= 0:
            raise ConfigError(f"optim.lr={self.optim.lr} must be positive")
        if self.text.kind == "clip" and self.image.kind != "clip":
            raise ConfigError("text.kind='clip' pairs only with image.kind='clip' (same open_clip model)")
        if self.eval.alpha_selection == "fixed" and self.eval.alpha is None:
            raise ConfigError("eval.alpha_selection='fixed' needs eval.alpha (e.g. --set eval.alpha=0.02)")


# ---------------------------------------------------------------- presets
def _preset_paper(dataset: str) -> RunConfig:
    return RunConfig(
        name=f"paper-{dataset}",
        data=DataConfig(dataset=dataset),
        image=ImageEncoderConfig(kind="features"),
        text=TextEncoderConfig(kind="paper"),
        eval=EvalConfig(alpha_selection="val_run"),
    )


def _preset_clip(dataset: str) -> RunConfig:
    cfg = RunConfig(
        name=f"clip-{dataset}",
        data=DataConfig(dataset=dataset),
        image=ImageEncoderConfig(kind="clip"),
        text=TextEncoderConfig(kind="clip"),
        optim=OptimConfig(steps=20000, lr=0.01, eval_every=2000, checkpoint_every=2000),
        # Normalised CLIP features give distances of order 1, not 60: a finer alpha grid.
        eval=EvalConfig(alpha_grid=tuple(round(0.01 * i, 3) for i in range(31))),
    )
    return cfg


def _preset_synthbirds() -> RunConfig:
    # Small enough to train on 2 CPU cores in about a minute; see the README for measured figures.
    return RunConfig(
        name="synthbirds",
        embed_dim=128,
        data=DataConfig(dataset="synthbirds"),
        image=ImageEncoderConfig(kind="cnn", cnn_width=16, image_size=32),
        text=TextEncoderConfig(kind="paper", word_dim=32, cnn_filters=32, cnn_blocks=2, rnn_size=64, vocab_size=2000),
        # eval_every=125: four points on the Runs page's validation curve (about 2 s each); evaluation
        # uses its own RNG, so the trained model is the same as with eval_every=0.
        optim=OptimConfig(steps=500, batch_size=32, lr=0.1, n_lr_decay=2, eval_every=125,
                          checkpoint_every=250, cpu_threads=1),
        eval=EvalConfig(prototype_k=100, alpha_selection="val_run", val_run_parallel=True),
    )


def _preset_tiny() -> RunConfig:
    # For tests: seconds, not minutes. Numbers from it mean nothing.
    return RunConfig(
        name="tiny",
        embed_dim=32,
        data=DataConfig(dataset="synthbirds"),
        image=ImageEncoderConfig(kind="cnn", cnn_width=8, image_size=32, augment=False),
        text=TextEncoderConfig(kind="paper", word_dim=16, cnn_filters=16, cnn_blocks=1, rnn_size=16, vocab_size=500),
        optim=OptimConfig(steps=30, batch_size=16, texts_per_image=4, lr=0.05, eval_every=0, checkpoint_every=0),
        eval=EvalConfig(prototype_k=20, alpha_selection="none", umap_cap=300),
    )


_PRESETS = {
    "paper-cub": lambda: _preset_paper("cub"),
    "paper-flowers": lambda: _preset_paper("flowers"),
    "clip-cub": lambda: _preset_clip("cub"),
    "clip-flowers": lambda: _preset_clip("flowers"),
    "synthbirds": _preset_synthbirds,
    "tiny": _preset_tiny,
}


def list_presets() -> list[str]:
    """Names of the built-in presets."""
    return list(_PRESETS)


def get_preset(name: str, overrides: dict[str, Any] | list[str] | None = None) -> RunConfig:
    """A fresh copy of a named preset with optional dotted overrides applied.

    Raises:
        ConfigError: unknown preset name (lists the valid ones) or a bad override.
    """
    if name not in _PRESETS:
        raise ConfigError(f"unknown preset {name!r}; valid presets: {', '.join(_PRESETS)}")
    cfg = _PRESETS[name]()
    cfg.preset = name
    cfg.validate()
    return cfg.with_overrides(overrides) if overrides else cfg


def parse_overrides(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Parse ``["optim.steps=200", "loss.kappa=0.3"]`` into a dict; values are JSON when they parse."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value, e.g. optim.steps=200")
        key, raw = item.split("=", 1)
        out[key.strip()] = parse_value(raw.strip())
    return out


def parse_value(raw: str) -> Any:
    """A command-line value: JSON if it parses (numbers, true/false, null, lists), else the string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


# ---------------------------------------------------------------- helpers
def _set_dotted(data: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    node = data
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"unknown config key {key!r}: {'.'.join(parts[: i + 1])!r} is not a section; "
                              f"valid keys: {', '.join(all_keys())}")
        node = node[part]
    if parts[-1] not in node:
        raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(all_keys())}")
    node[parts[-1]] = value


def all_keys() -> list[str]:
    """Every dotted key a config override may set."""
    keys: list[str] = []

    def walk(obj: Any, prefix: str) -> None:
        for f in fields(obj):
            value = getattr(obj, f.name)
            if is_dataclass(value):
                walk(value, f"{prefix}{f.name}.")
            else:
                keys.append(prefix + f.name)

    walk(RunConfig(), "")
    return keys


def _from_dict(cls: type, data: dict[str, Any], prefix: str) -> Any:
    hints = get_type_hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ConfigError(
            f"unknown config key(s) {', '.join(prefix + k for k in unknown)}; valid: {', '.join(prefix + k for k in known)}"
        )
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        key = prefix + name
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"config section {key!r} must be an object, got {value!r}")
            kwargs[name] = _from_dict(hint, value, key + ".")
        else:
            kwargs[name] = _coerce(key, hint, value)
    return cls(**kwargs)


def _coerce(key: str, hint: Any, value: Any) -> Any:
    """Check and convert one leaf value against its annotation (int, float, str, bool, optional, tuple)."""
    text = str(hint)
    optional = "None" in text
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{key} may not be null")
    if "tuple" in text:
        if not isinstance(value, list | tuple) or not all(isinstance(v, int | float) for v in value):
            raise ConfigError(f"{key} must be a list of numbers, got {value!r}")
        return tuple(float(v) for v in value)
    base = hint if isinstance(hint, type) else None
    if base is None:  # e.g. `str | None`, `float | None`
        base = str if "str" in text else float if "float" in text else int if "int" in text else None
    if base is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if base is str:
        if not isinstance(value, str):
            return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else _bad(key, value)
        return value
    return copy.deepcopy(value)


def _bad(key: str, value: Any) -> Any:
    raise ConfigError(f"{key} must be a string, got {value!r}")
