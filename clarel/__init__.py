"""CLAREL: classification via retrieval loss for zero-shot learning (Oreshkin et al., 2019).

The public API used by the job runner and the app. Heavy submodules (torch models, open_clip)
are imported lazily on first attribute access, so ``import clarel`` stays cheap and never pulls
in the app's dependencies.
"""

from __future__ import annotations

import importlib
from typing import Any

from clarel.config import RunConfig, get_preset, list_presets, parse_overrides
from clarel.errors import (
    ClarelError,
    ConfigError,
    DatasetError,
    NonFiniteLossError,
    TrainingInterrupted,
    WeightsUnavailableError,
)
from clarel.results import AlphaCurve, EvalResult, TrainResult

_LAZY = {
    "ZSLDataset": "clarel.data",
    "Protocol": "clarel.data",
    "SPLITS": "clarel.data",
    "load_dataset": "clarel.data",
    "ensure_dataset": "clarel.data",
    "generate_synthbirds": "clarel.data",
    "Callback": "clarel.train",
    "train": "clarel.train",
    "resolve_device": "clarel.train",
    "evaluate": "clarel.evaluate",
    "load_run": "clarel.run_io",
    "LoadedRun": "clarel.run_io",
    "ClarelModel": "clarel.model",
    "create_model": "clarel.model",
    "Tokenizer": "clarel.text",
    "ZeroShotClassifier": "clarel.zeroshot",
    "metrics": "clarel.metrics",
}

__all__ = [
    "AlphaCurve",
    "Callback",
    "ClarelError",
    "ClarelModel",
    "ConfigError",
    "DatasetError",
    "EvalResult",
    "LoadedRun",
    "NonFiniteLossError",
    "Protocol",
    "RunConfig",
    "SPLITS",
    "Tokenizer",
    "TrainResult",
    "TrainingInterrupted",
    "WeightsUnavailableError",
    "ZSLDataset",
    "ZeroShotClassifier",
    "create_model",
    "ensure_dataset",
    "evaluate",
    "generate_synthbirds",
    "get_preset",
    "list_presets",
    "load_dataset",
    "load_run",
    "metrics",
    "parse_overrides",
    "resolve_device",
    "train",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'clarel' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if name == "metrics" else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
