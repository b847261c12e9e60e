"""CUB loader on the real metadata, the real xlsa17 .mat files and class lists (tiny images)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.io import loadmat, savemat

from clarel.data import load_dataset
from clarel.data.dataset import SPLITS
from tests.data.data_builders import CUB_FIX, cub_variant

EXPECTED = {"trainval": 7057, "test_seen": 1764, "test_unseen": 2967, "train": 4700, "val_seen": 1175,
            "val_unseen": 2946}


def _class_names(path):
    return set(path.read_text().split())


@pytest.fixture(scope="module")
def cub_ds(cub_base, tmp_path_factory):
    """The 2019-release CUB layout, loaded once for the read-only tests of this module."""
    return load_dataset(cub_variant(cub_base, tmp_path_factory.mktemp("cub") / "cub"), use_cache=False)


def test_att_splits_2019_release_gives_the_protocol_counts(cub_ds):
    ds = cub_ds
    assert ds.name == "cub"
    assert ds.num_images == 11788 and ds.num_classes == 200
    assert ds.summary()["splits"] == EXPECTED
    assert len(ds.seen_classes) == 150 and len(ds.unseen_classes) == 50
    assert ds.captions_per_image() == 10
    # Unseen classes are exactly xlsa17's testclasses; val classes exactly valclasses1.
    folders = np.array(ds.class_folders)
    assert set(folders[ds.unseen_classes]) == _class_names(CUB_FIX / "testclasses.txt")
    assert set(folders[ds.classes_of("val_unseen")]) == _class_names(CUB_FIX / "valclasses1.txt")
    assert set(folders[ds.classes_of("train")]) == _class_names(CUB_FIX / "trainclasses1.txt")
    # loc == image_id on CUB: the first test_unseen location is image id loc[0].
    locs = loadmat(CUB_FIX / "att_splits.mat")["test_unseen_loc"].astype(int).ravel()
    assert ds.image_ids[ds.splits["test_unseen"]].tolist() == sorted(locs.tolist())
    assert ds.warnings == []


def test_validation_protocol_is_the_fixed_80_percent_of_train_loc(cub_ds):
    ds = cub_ds
    train_loc = np.flatnonzero(np.isin(ds.labels, ds.classes_of("train")))
    perm = np.random.RandomState(2050).permutation(len(train_loc))
    assert ds.splits["train"].tolist() == sorted(train_loc[perm[:4700]].tolist())
    assert ds.splits["val_seen"].tolist() == sorted(train_loc[perm[4700:]].tolist())
    p = ds.protocol("val")
    assert p.class_mask.sum() == 150 and p.seen_mask.sum() == 100
    assert not (p.seen_mask & p.unseen_mask).any()


def test_sent_splits_variant_with_train_loc_and_val_loc(cub_base, tmp_path):
    ds = load_dataset(cub_variant(cub_base, tmp_path / "cub", mat="sent_splits_locs.mat", lists=()),
                      use_cache=False)
    assert ds.summary()["splits"] == EXPECTED
    mat = loadmat(CUB_FIX / "sent_splits_locs.mat")
    train_loc = mat["train_loc"].astype(int).ravel() - 1
    assert sorted(np.concatenate([ds.splits["train"], ds.splits["val_seen"]]).tolist()) == sorted(train_loc.tolist())


def test_class_lists_only_use_a_per_class_holdout_and_say_so(cub_base, tmp_path):
    ds = load_dataset(cub_variant(cub_base, tmp_path / "cub", mat=None), use_cache=False)
    s = ds.summary()
    assert (s["seen_classes"], s["unseen_classes"]) == (150, 50)
    assert s["splits"]["test_unseen"] == 2967
    assert s["splits"]["trainval"] + s["splits"]["test_seen"] == 7057 + 1764
    assert abs(s["splits"]["test_seen"] - 1764) < 60
    assert any("hold-out" in w for w in ds.warnings)


def test_class_lists_found_at_the_root_like_reeds_folder(cub_base, tmp_path):
    ds = load_dataset(cub_variant(cub_base, tmp_path / "cub", mat=None, split_rel="."), use_cache=False)
    assert ds.summary()["unseen_classes"] == 50


def test_real_captions_and_the_ufffd_quirk(cub_ds):
    ds = cub_ds
    i = ds.image_paths.index("003.Sooty_Albatross/Sooty_Albatross_0029_796357.jpg")
    assert all("\ufffd" not in c for c in ds.captions[i])
    real = (CUB_FIX / "text_c10/003.Sooty_Albatross/Sooty_Albatross_0029_796357.txt").read_text("utf-8")
    line = real.splitlines()[4]
    assert "\ufffd\ufffd" in line
    assert ds.captions[i][4] == " ".join(line.replace("\ufffd\ufffd", " ").split())
    first = ds.image_paths.index("001.Black_footed_Albatross/Black_Footed_Albatross_0046_18.jpg")
    assert first == 0 and ds.image_ids[0] == 1 and ds.class_names[0] == "Black footed Albatross"


def test_res101_features_follow_image_files_order(cub_base, tmp_path):
    root = cub_variant(cub_base, tmp_path / "cub", mat=None)
    sdir = root / "xlsa17/data/CUB"
    lines = [line.split()[1] for line in (CUB_FIX / "images.txt").read_text().splitlines()]
    order = np.random.RandomState(0).permutation(len(lines))  # res101 rows in a shuffled order
    files = np.empty((len(order), 1), dtype=object)
    for r, i in enumerate(order):
        files[r, 0] = np.array([f"/BS/Deep_Fragments/work/MSc/CUB_200_2011/CUB_200_2011/images/{lines[i]}"])
    feats = np.stack([order + 1.0, np.full(len(order), 7.0)])  # [F=2, N]; feature 0 = image id
    savemat(sdir / "res101.mat", {"features": feats, "image_files": files,
                                  "labels": np.ones((len(order), 1), np.uint8)})
    # Locations index the res101 rows: map the real (image-id) locations through the shuffle.
    real = loadmat(CUB_FIX / "att_splits.mat")
    row_of = np.empty(len(order), dtype=np.int64)
    row_of[order] = np.arange(len(order))
    mat = {k: (row_of[real[k].astype(int).ravel() - 1] + 1).astype(np.uint16).reshape(-1, 1)
           for k in ("trainval_loc", "test_seen_loc", "test_unseen_loc")}
    savemat(sdir / "att_splits.mat", mat)
    ds = load_dataset(root, use_cache=False)
    assert ds.features.shape == (11788, 2) and ds.features.dtype == np.float32
    assert np.array_equal(ds.features[:, 0], ds.image_ids.astype(np.float32))
    assert ds.summary()["splits"] == EXPECTED
    assert ds.image_ids[ds.splits["test_unseen"]].tolist() == sorted(real["test_unseen_loc"].astype(int).ravel())


def test_splits_are_sorted_unique_indices_and_test_splits_partition_the_images(cub_ds):
    for split in SPLITS:
        idx = cub_ds.splits[split]
        assert idx.dtype.kind == "i" and np.all(np.diff(idx) > 0), split
    test = np.concatenate([cub_ds.splits[s] for s in ("trainval", "test_seen", "test_unseen")])
    assert sorted(test.tolist()) == list(range(cub_ds.num_images))


def test_features_without_the_image_folder_load_with_a_warning(cub_base, tmp_path):
    import shutil

    root = tmp_path / "cub"
    (root / "CUB_200_2011").mkdir(parents=True)
    for name in ("classes.txt", "images.txt", "image_class_labels.txt"):
        shutil.copy(CUB_FIX / name, root / "CUB_200_2011" / name)
    (root / "text_c10").symlink_to(cub_base / "text_c10", target_is_directory=True)
    sdir = root / "xlsa17/data/CUB"
    sdir.mkdir(parents=True)
    for name in ("trainvalclasses.txt", "testclasses.txt", "trainclasses1.txt", "valclasses1.txt"):
        shutil.copy(CUB_FIX / name, sdir / name)
    shutil.copy(CUB_FIX / "att_splits.mat", sdir / "att_splits.mat")
    lines = [line.split()[1] for line in (CUB_FIX / "images.txt").read_text().splitlines()]
    files = np.empty((len(lines), 1), dtype=object)
    for r, rel in enumerate(lines):
        files[r, 0] = np.array([f"/x/CUB_200_2011/images/{rel}"])
    savemat(sdir / "res101.mat", {"features": np.ones((3, len(lines))), "image_files": files})
    ds = load_dataset(root, use_cache=False)
    assert ds.features.shape == (11788, 3) and ds.summary()["splits"] == EXPECTED
    assert any("image folder" in w and "precomputed features" in w for w in ds.warnings)
    shutil.rmtree(sdir)
    (sdir).mkdir(parents=True)
    shutil.copy(CUB_FIX / "att_splits.mat", sdir / "att_splits.mat")
    shutil.copy(CUB_FIX / "trainclasses1.txt", sdir / "trainclasses1.txt")
    shutil.copy(CUB_FIX / "valclasses1.txt", sdir / "valclasses1.txt")
    from clarel.errors import DatasetError

    with pytest.raises(DatasetError, match=r"missing image folder .*images \(and no precomputed features\)"):
        load_dataset(root, use_cache=False)
