"""Every kind of bad input stops with a message naming the file and the problem (or warns and skips)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from clarel.data import load_dataset
from clarel.data.__main__ import main as cli
from clarel.errors import DatasetError
from tests.data.data_builders import copy_tree, cub_variant, flowers_variant, rewrite_mat

SPLIT = "xlsa17/data/CUB"


@pytest.fixture
def sb(small_synth, fast_tmp, tmp_path):
    """A private copy of the small SynthBirds to break."""
    return copy_tree(small_synth, fast_tmp / "copies" / tmp_path.name / "sb")


def _first(root, list_name="images.txt"):
    return (root / "CUB_200_2011" / list_name).read_text().splitlines()[0].split()[1]


def test_missing_caption_file(sb):
    rel = _first(sb)
    (sb / "text_c10" / rel.replace(".jpg", ".txt")).unlink()
    with pytest.raises(DatasetError, match=rf"missing caption file .*{rel.replace('.jpg', '.txt')}"):
        load_dataset(sb, use_cache=False)


def test_caption_file_with_the_wrong_number_of_lines(sb):
    path = sb / "text_c10" / _first(sb).replace(".jpg", ".txt")
    path.write_text("\n".join(path.read_text().splitlines()[:9]) + "\n")
    with pytest.raises(DatasetError, match=rf"caption file {path} has 9 non-empty lines; expected exactly 10"):
        load_dataset(sb, use_cache=False)


def test_missing_caption_folder(sb):
    shutil.rmtree(sb / "text_c10")
    with pytest.raises(DatasetError, match=r"missing caption folder text_c10/: expected .*text_c10"):
        load_dataset(sb, use_cache=False)


def test_one_missing_and_one_unreadable_image_are_skipped_with_warnings(sb, tmp_path):
    lines = (sb / "CUB_200_2011" / "images.txt").read_text().splitlines()
    gone, broken = lines[0].split()[1], lines[1].split()[1]
    # 2 of 96 images is over the 1 % limit: use a bigger set for the skip case.
    big = tmp_path / "big"
    from clarel.data import generate_synthbirds

    generate_synthbirds(big, seed=0, classes=8, images_per_class=30, size=16)
    lines = (big / "CUB_200_2011" / "images.txt").read_text().splitlines()
    gone, broken = lines[0].split()[1], lines[1].split()[1]
    (big / "CUB_200_2011" / "images" / gone).unlink()
    (big / "CUB_200_2011" / "images" / broken).write_bytes(b"this is not a jpeg")
    ds = load_dataset(big, use_cache=False)
    assert ds.num_images == 238
    assert gone not in ds.image_paths and broken not in ds.image_paths
    assert any(gone in w and "missing" in w for w in ds.warnings)
    assert any(broken in w and "not an image file" in w for w in ds.warnings)
    assert all(len(idx) and idx.max() < ds.num_images for idx in ds.splits.values())


def test_many_missing_images_stop_the_load(sb):
    shutil.rmtree(sb / "CUB_200_2011" / "images" / _first(sb).split("/")[0])
    with pytest.raises(DatasetError, match=r"12 of 96 images listed .* missing or unreadable .*fully extracted"):
        load_dataset(sb, use_cache=False)


def test_split_file_naming_an_unknown_class(sb):
    path = sb / SPLIT / "trainvalclasses.txt"
    path.write_text(path.read_text() + "999.Imaginary_Bird\n")
    with pytest.raises(DatasetError, match=r"trainvalclasses\.txt, line \d+: unknown class '999\.Imaginary_Bird'"):
        load_dataset(sb, use_cache=False)


def test_seen_unseen_overlap_in_the_class_lists(sb):
    unseen = (sb / SPLIT / "testclasses.txt").read_text().split()[0]
    path = sb / SPLIT / "trainvalclasses.txt"
    path.write_text(path.read_text() + unseen + "\n")
    with pytest.raises(DatasetError, match=rf"seen and unseen classes overlap: trainvalclasses\.txt and "
                                           rf"testclasses\.txt both list {unseen}"):
        load_dataset(sb, use_cache=False)


def test_seen_unseen_overlap_in_the_mat_locations(sb):
    ds = load_dataset(sb, use_cache=False)
    mat = sb / SPLIT / "att_splits.mat"
    trainval = ds.image_ids[ds.splits["trainval"]]
    unseen = ds.image_ids[ds.splits["test_unseen"]]
    moved = np.concatenate([trainval, unseen[:1]])  # an unseen image also in trainval
    rewrite_mat(mat, trainval_loc=moved.astype(np.uint16).reshape(-1, 1))
    with pytest.raises(DatasetError, match=r"images are in both 'trainval' and 'test_unseen'"):
        load_dataset(sb, use_cache=False)


def test_mat_without_an_expected_key(sb):
    mat = sb / SPLIT / "att_splits.mat"
    rewrite_mat(mat, drop=("test_seen_loc",))
    with pytest.raises(DatasetError, match=rf"{mat} has no 'test_seen_loc'; it contains \[.*'trainval_loc'"):
        load_dataset(sb, use_cache=False)


def test_2019_mat_without_train_loc_needs_the_class_lists(sb):
    (sb / SPLIT / "trainclasses1.txt").unlink()
    with pytest.raises(DatasetError, match=r"no train_loc/val_loc .* lacks trainclasses1\.txt/valclasses1\.txt"):
        load_dataset(sb, use_cache=False)


def test_corrupt_mat_file(sb):
    (sb / SPLIT / "att_splits.mat").write_bytes(b"not a matlab file at all" * 10)
    with pytest.raises(DatasetError, match=r"cannot read MATLAB file .*att_splits\.mat"):
        load_dataset(sb, use_cache=False)


def test_mat_locations_out_of_range(sb):
    rewrite_mat(sb / SPLIT / "att_splits.mat", test_seen_loc=np.array([[0], [5]], dtype=np.uint16))
    with pytest.raises(DatasetError, match=r"test_seen_loc has indices outside 1\.\.96"):
        load_dataset(sb, use_cache=False)


def test_wrong_root_says_which_file_is_expected(tmp_path, sb):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"not a dataset folder: expected .*empty/CUB_200_2011/images\.txt .*"
                                           r"imagelabels\.mat"):
        load_dataset(tmp_path / "empty")
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nowhere")
    (sb / "CUB_200_2011" / "classes.txt").unlink()
    with pytest.raises(DatasetError, match=r"missing CUB class list: expected .*CUB_200_2011/classes\.txt"):
        load_dataset(sb, use_cache=False)


def test_no_split_files_at_all(sb):
    shutil.rmtree(sb / "xlsa17")
    with pytest.raises(DatasetError, match=r"no split files under .*xlsa17/data/CUB/att_splits\.mat"):
        load_dataset(sb, use_cache=False)


def test_image_without_a_label_and_malformed_lines(sb):
    labels = sb / "CUB_200_2011" / "image_class_labels.txt"
    labels.write_text("\n".join(labels.read_text().splitlines()[1:]) + "\n")
    with pytest.raises(DatasetError, match=r"image_class_labels\.txt: image 1 .* has no class label"):
        load_dataset(sb, use_cache=False)
    images = sb / "CUB_200_2011" / "images.txt"
    images.write_text("one-field-only\n")
    with pytest.raises(DatasetError, match=r"images\.txt, line 1: expected 2 fields"):
        load_dataset(sb, use_cache=False)


def test_kind_mismatch(sb):
    with pytest.raises(DatasetError, match="holds a synthbirds dataset, not flowers"):
        load_dataset(sb, kind="flowers")


def test_mat_and_class_lists_from_different_releases(cub_base, tmp_path):
    root = cub_variant(cub_base, tmp_path / "cub")
    tv, te = root / SPLIT / "trainvalclasses.txt", root / SPLIT / "testclasses.txt"
    # Swap one class between the lists: still disjoint, but no longer what the .mat says.
    a, b = tv.read_text().split(), te.read_text().split()
    a[0], b[0] = b[0], a[0]
    tv.write_text("\n".join(a) + "\n")
    te.write_text("\n".join(b) + "\n")
    with pytest.raises(DatasetError, match=r"test_unseen_loc covers 50 classes that differ from the 50 in"):
        load_dataset(root, use_cache=False)


def test_flowers_unknown_class_in_a_list(flowers_base, tmp_path):
    root = flowers_variant(flowers_base, tmp_path / "flo")
    (root / "testclasses.txt").write_text("class_00001\nclass_00999\n")
    with pytest.raises(DatasetError, match=r"testclasses\.txt, line 2: unknown class 'class_00999'"):
        load_dataset(root, use_cache=False)


def test_cli_check_exits_non_zero_with_the_message(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli(["check", str(tmp_path / "empty"), "--json"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "CUB_200_2011/images.txt" in err and "Traceback" not in err
