"""Flowers loader on the real imagelabels.mat, setid.mat and FLO att_splits.mat (tiny images)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from clarel.data import load_dataset
from clarel.errors import DatasetError
from tests.data.data_builders import FLO_FIX, flowers_variant

EXPECTED = {"trainval": 5631, "test_seen": 1403, "test_unseen": 1155, "train": 4702, "val_seen": 1176,
            "val_unseen": 1156}


def test_flo_split_through_setid_order_gives_the_protocol_counts(flowers_base, tmp_path):
    ds = load_dataset(flowers_variant(flowers_base, tmp_path / "flo"), use_cache=False)
    assert ds.name == "flowers" and ds.num_images == 8189 and ds.num_classes == 102
    assert ds.summary()["splits"] == EXPECTED
    assert (len(ds.seen_classes), len(ds.unseen_classes)) == (82, 20)
    # Class-complete splits (FORMATS.md 2.4): unseen = labels 1-20, val = 21-40, train = 41-102.
    assert ds.class_ids[ds.unseen_classes].tolist() == list(range(1, 21))
    assert ds.class_ids[ds.classes_of("val_unseen")].tolist() == list(range(21, 41))
    assert ds.class_ids[ds.classes_of("train")].tolist() == list(range(41, 103))
    assert ds.class_names[0] == "pink primrose" and ds.class_folders[0] == "class_00001"
    assert ds.image_paths[0] == "image_00001.jpg" and ds.class_ids[ds.labels[0]] == 77


def test_class_names_from_cat_to_name_json_or_folder(flowers_base, tmp_path):
    ds = load_dataset(flowers_variant(flowers_base, tmp_path / "a", names="cat_to_name.json"), use_cache=False)
    assert ds.class_names[77] == "lotus lotus"
    ds = load_dataset(flowers_variant(flowers_base, tmp_path / "b", names=None), use_cache=False)
    assert ds.class_names[:2] == ["class_00001", "class_00002"]


def test_class_lists_only(flowers_base, tmp_path):
    ds = load_dataset(flowers_variant(flowers_base, tmp_path / "flo", mat=False), use_cache=False)
    s = ds.summary()
    assert (s["seen_classes"], s["unseen_classes"]) == (82, 20)
    assert s["splits"]["test_unseen"] == 1155 and s["splits"]["val_unseen"] == 1156
    assert any("hold-out" in w for w in ds.warnings)


def test_res101_image_files_give_the_order_without_setid(flowers_base, tmp_path):
    root = flowers_variant(flowers_base, tmp_path / "flo", setid=False)
    setid = loadmat(FLO_FIX / "setid.mat")
    order = np.concatenate([setid[k].astype(int).ravel() for k in ("trnid", "valid", "tstid")])
    files = np.empty((len(order), 1), dtype=object)
    for r, k in enumerate(order):
        files[r, 0] = np.array([f"/some/where/jpg/image_{k:05d}.jpg"])
    savemat(root / "cvpr18xian/data/FLO/res101.mat",
            {"features": np.stack([order.astype(float), np.zeros(len(order))]), "image_files": files})
    ds = load_dataset(root, use_cache=False)
    assert ds.summary()["splits"] == EXPECTED
    assert np.array_equal(ds.features[:, 0], ds.image_ids.astype(np.float32))


def test_without_setid_or_res101_the_locations_cannot_be_mapped(flowers_base, tmp_path):
    root = flowers_variant(flowers_base, tmp_path / "flo", setid=False)
    with pytest.raises(DatasetError, match=r"setid\.mat.*download setid\.mat"):
        load_dataset(root, use_cache=False)


def test_a_wrong_image_order_is_caught_by_the_class_lists(flowers_base, tmp_path):
    root = flowers_variant(flowers_base, tmp_path / "flo")
    ids = np.arange(1, 8190)
    savemat(root / "setid.mat", {"trnid": ids[:1020].reshape(1, -1), "valid": ids[1020:2040].reshape(1, -1),
                                 "tstid": ids[2040:].reshape(1, -1)})
    with pytest.raises(DatasetError, match="test_unseen_loc covers classes"):
        load_dataset(root, use_cache=False)
