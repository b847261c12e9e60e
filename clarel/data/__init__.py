"""The zero-shot data layer: one `ZSLDataset` from CUB-200-2011, Oxford Flowers-102 or SynthBirds.

Public API:
    ``load_dataset(root, kind=None, use_cache=True)`` - load and validate a folder (layout detected);
    ``ensure_dataset(data_cfg)`` - the dataset a `DataConfig` names, generating SynthBirds if missing;
    ``generate_synthbirds(out, seed=0, classes=50, images_per_class=60, size=64)`` - write SynthBirds;
    ``detect_kind(root)``, ``ensure_synthbirds(root=None, seed=0)``.
Command line: ``python -m clarel.data synth|check|download|ensure-demo``.

Bad input: metadata, caption, split or .mat problems stop with a `DatasetError` naming the file;
a few unreadable images (at most 1 % and 50, always 1) are skipped with a note in ``dataset.warnings``.
"""

from clarel.data.dataset import PROTOCOLS, SPLITS, Protocol, ZSLDataset
from clarel.data.load import detect_kind, ensure_dataset, ensure_synthbirds, load_dataset
from clarel.data.synth import generate_synthbirds

__all__ = [
    "PROTOCOLS",
    "SPLITS",
    "Protocol",
    "ZSLDataset",
    "detect_kind",
    "ensure_dataset",
    "ensure_synthbirds",
    "generate_synthbirds",
    "load_dataset",
]
