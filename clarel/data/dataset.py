"""The one in-memory description of a zero-shot dataset used everywhere in CLAREL Studio.

A `ZSLDataset` holds the classes, the images (paths, labels, optional precomputed feature rows),
the captions of every image and the six split index arrays of the standard protocol:

* test protocol: train on ``trainval``; evaluate on ``test_seen`` and ``test_unseen``;
* validation protocol (used to choose the rescaling factor alpha): train on ``train`` (a fixed
  80 % of Xian's ``train_loc``), evaluate on ``val_seen`` (the other 20 %) and ``val_unseen``
  (``val_loc``). See ``shared/docs/clarel-method.md`` §6.2 and §7.

Class labels inside the dataset are 0-based indices into the class arrays, never the raw
dataset numbers (those are kept in ``class_ids``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clarel.errors import DatasetError

TEST_SPLITS = ("trainval", "test_seen", "test_unseen")
VAL_SPLITS = ("train", "val_seen", "val_unseen")
SPLITS = TEST_SPLITS + VAL_SPLITS
PROTOCOLS = ("test", "val")


@dataclass(frozen=True)
class Protocol:
    """One train/evaluate protocol of a dataset (``test`` or ``val``).

    Attributes:
        name: ``"test"`` or ``"val"``.
        train: image indices to train on.                               # [N_train]
        seen: evaluation images of seen classes.                        # [N_seen]
        unseen: evaluation images of unseen classes.                    # [N_unseen]
        seen_mask: True for the classes seen in training.               # [C] bool
        class_mask: True for the classes that take part in this protocol
            (seen or unseen); the validation protocol leaves the test classes out.  # [C] bool
    """

    name: str
    train: np.ndarray
    seen: np.ndarray
    unseen: np.ndarray
    seen_mask: np.ndarray
    class_mask: np.ndarray

    @property
    def unseen_mask(self) -> np.ndarray:
        """True for the unseen classes of this protocol.  # [C] bool"""
        return self.class_mask & ~self.seen_mask

    @property
    def support(self) -> np.ndarray:
        """Images whose captions build the class prototypes (train ∪ seen ∪ unseen), §5."""
        return np.unique(np.concatenate([self.train, self.seen, self.unseen]))


@dataclass(frozen=True, eq=False)
class ZSLDataset:
    """A zero-shot dataset in memory (see the module docstring).

    Attributes:
        name: short dataset kind, ``"cub"``, ``"flowers"`` or ``"synthbirds"``.
        root: the folder it was loaded from.
        class_ids: the dataset's own class numbers (CUB 1..200, Oxford labels 1..102).  # [C]
        class_folders: folder names, e.g. ``001.Black_footed_Albatross``, ``class_00001``.
        class_names: readable names, e.g. ``Black footed Albatross``.
        image_ids: the dataset's own image numbers (CUB image_id, Oxford image number).  # [N]
        image_paths: image file paths relative to ``images_root``.
        labels: 0-based class index of each image.                                    # [N]
        captions: the captions of each image (10 per image on the benchmarks).
        splits: split name -> 0-based image indices, for every name in ``SPLITS``.
        images_root: folder that ``image_paths`` are relative to.
        features: optional precomputed image features, one row per image.   # [N, F] float32
        attributes: optional class x attribute matrix (CUB continuous attributes).  # [C, A]
        attribute_names: names of the attribute columns, when ``attributes`` is set.
        fingerprint: a short hash of the source files; caches are keyed by it.
        warnings: problems that were skipped on load (e.g. one unreadable image).
    """

    name: str
    root: Path
    class_ids: np.ndarray
    class_folders: list[str]
    class_names: list[str]
    image_ids: np.ndarray
    image_paths: list[str]
    labels: np.ndarray
    captions: list[list[str]]
    splits: dict[str, np.ndarray]
    images_root: Path
    features: np.ndarray | None = None
    attributes: np.ndarray | None = None
    attribute_names: list[str] | None = None
    fingerprint: str = ""
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    # ----------------------------------------------------------------- sizes
    @property
    def num_classes(self) -> int:
        return len(self.class_folders)

    @property
    def num_images(self) -> int:
        return len(self.image_paths)

    # ------------------------------------------------------------- class sets
    def classes_of(self, split: str) -> np.ndarray:
        """Sorted 0-based class indices present in a split."""
        return np.unique(self.labels[self.splits[split]])

    @property
    def seen_classes(self) -> np.ndarray:
        """Classes of ``trainval`` (the test protocol's seen classes)."""
        return self.classes_of("trainval")

    @property
    def unseen_classes(self) -> np.ndarray:
        """Classes of ``test_unseen``."""
        return self.classes_of("test_unseen")

    @property
    def seen_mask(self) -> np.ndarray:
        """True for test-protocol seen classes.  # [C] bool"""
        mask = np.zeros(self.num_classes, dtype=bool)
        mask[self.seen_classes] = True
        return mask

    def protocol(self, name: str) -> Protocol:
        """The ``test`` or ``val`` protocol as index arrays and class masks."""
        if name not in PROTOCOLS:
            raise DatasetError(f"unknown protocol {name!r}; valid: {', '.join(PROTOCOLS)}")
        train_s, seen_s, unseen_s = TEST_SPLITS if name == "test" else VAL_SPLITS
        seen_mask = np.zeros(self.num_classes, dtype=bool)
        seen_mask[self.classes_of(train_s)] = True
        class_mask = seen_mask.copy()
        class_mask[self.classes_of(unseen_s)] = True
        return Protocol(
            name=name,
            train=self.splits[train_s],
            seen=self.splits[seen_s],
            unseen=self.splits[unseen_s],
            seen_mask=seen_mask,
            class_mask=class_mask,
        )

    def captions_per_image(self) -> int:
        """The number of captions per image (the minimum, when they differ)."""
        return min((len(c) for c in self.captions), default=0)

    def summary(self) -> dict:
        """Counts as printed by ``python -m clarel.data check --json``."""
        return {
            "dataset": self.name,
            "classes": self.num_classes,
            "seen_classes": int(len(self.seen_classes)),
            "unseen_classes": int(len(self.unseen_classes)),
            "splits": {s: int(len(self.splits[s])) for s in SPLITS},
            "captions_per_image": self.captions_per_image(),
        }

    # -------------------------------------------------------------- checking
    def validate(self) -> None:
        """Check the invariants of the protocol; raise `DatasetError` naming the broken one."""
        n, c = self.num_images, self.num_classes
        where = f"dataset {self.name!r} at {self.root}"
        if len(self.class_names) != c or len(self.class_ids) != c:
            raise DatasetError(f"{where}: class arrays have different lengths")
        if len(self.labels) != n or len(self.image_ids) != n or len(self.captions) != n:
            raise DatasetError(f"{where}: image arrays have different lengths")
        if n and (self.labels.min() < 0 or self.labels.max() >= c):
            raise DatasetError(f"{where}: image labels outside 0..{c - 1}")
        if self.features is not None and len(self.features) != n:
            raise DatasetError(f"{where}: {len(self.features)} feature rows for {n} images")
        missing = [s for s in SPLITS if s not in self.splits]
        if missing:
            raise DatasetError(f"{where}: missing splits {missing}")
        for s in SPLITS:
            idx = self.splits[s]
            if len(idx) == 0:
                raise DatasetError(f"{where}: split {s!r} is empty; check the split files")
            if idx.min() < 0 or idx.max() >= n:
                raise DatasetError(f"{where}: split {s!r} has image indices outside 0..{n - 1}")
        for a, b in (("test_seen", "test_unseen"), ("trainval", "test_unseen"), ("trainval", "test_seen"),
                     ("train", "val_seen"), ("train", "val_unseen"), ("val_seen", "val_unseen")):
            both = np.intersect1d(self.splits[a], self.splits[b])
            if len(both):
                raise DatasetError(
                    f"{where}: {len(both)} images are in both {a!r} and {b!r} "
                    f"(e.g. {self.image_paths[both[0]]}); the split files overlap"
                )
        for train_s, unseen_s in (("trainval", "test_unseen"), ("train", "val_unseen")):
            overlap = np.intersect1d(self.classes_of(train_s), self.classes_of(unseen_s))
            if len(overlap):
                names = ", ".join(self.class_folders[i] for i in overlap[:5])
                raise DatasetError(
                    f"{where}: seen and unseen classes overlap ({train_s} vs {unseen_s}): {names}"
                )
        no_caps = [i for i, caps in enumerate(self.captions) if len(caps) == 0]
        if no_caps:
            raise DatasetError(
                f"{where}: {len(no_caps)} images have no captions (e.g. {self.image_paths[no_caps[0]]})"
            )
