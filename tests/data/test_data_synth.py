"""SynthBirds: determinism, layout, caption <-> visible-attribute consistency, species and splits."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from clarel.config import DataConfig
from clarel.data import ensure_dataset, generate_synthbirds, load_dataset
from clarel.data._synth_species import ATTRIBUTES, DULL, PART_ATTRIBUTES
from clarel.data._synth_text import value_words
from clarel.errors import DatasetError
from tests.data.conftest import SMALL


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _records(root):
    return [json.loads(line) for line in (root / "synthbirds_images.jsonl").read_text().splitlines()]


def test_same_seed_gives_byte_identical_files_and_another_seed_differs(small_synth, tmp_path):
    again = generate_synthbirds(tmp_path / "again", seed=3, **SMALL)
    a, b = _files(small_synth), _files(again)
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []
    other = _files(generate_synthbirds(tmp_path / "other", seed=4, **SMALL))
    assert sum(other.get(k) != v for k, v in a.items()) > len(a) // 2


def test_written_in_the_cub_layout_and_loaded_as_synthbirds(small_synth):
    for rel in ("CUB_200_2011/images.txt", "CUB_200_2011/classes.txt", "CUB_200_2011/image_class_labels.txt",
                "CUB_200_2011/train_test_split.txt", "CUB_200_2011/attributes.txt",
                "CUB_200_2011/attributes/class_attribute_labels_continuous.txt", "xlsa17/data/CUB/att_splits.mat",
                "xlsa17/data/CUB/trainvalclasses.txt", "xlsa17/data/CUB/testclasses.txt",
                "xlsa17/data/CUB/trainclasses1.txt", "xlsa17/data/CUB/valclasses1.txt",
                "xlsa17/data/CUB/allclasses.txt", "synthbirds.json"):
        assert (small_synth / rel).is_file(), rel
    ds = load_dataset(small_synth, use_cache=False)
    assert ds.name == "synthbirds" and ds.num_classes == 8 and ds.num_images == 96
    assert ds.captions_per_image() == 10 and all(len(c) == 10 for c in ds.captions)
    assert ds.summary()["unseen_classes"] == 2 and ds.summary()["seen_classes"] == 6
    assert ds.attributes.shape == (8, sum(len(v) for v in ATTRIBUTES.values()))
    assert 0 <= ds.attributes.min() and ds.attributes.max() <= 100
    assert ds.attribute_names[0] == "has_crown_color::red"
    from PIL import Image

    with Image.open(ds.images_root / ds.image_paths[0]) as im:
        assert im.size == (32, 32) and im.mode == "RGB"
    assert ds.warnings == []


def test_split_invariants(small_synth):
    ds = load_dataset(small_synth, use_cache=False)
    seen, unseen = set(ds.seen_classes.tolist()), set(ds.unseen_classes.tolist())
    assert not seen & unseen and len(seen | unseen) == ds.num_classes
    assert set(ds.classes_of("test_seen").tolist()) == seen
    seen_images = np.flatnonzero(np.isin(ds.labels, list(seen)))
    assert sorted(np.concatenate([ds.splits["trainval"], ds.splits["test_seen"]]).tolist()) == seen_images.tolist()
    assert not set(ds.classes_of("train").tolist()) & set(ds.classes_of("val_unseen").tolist())
    assert set(ds.classes_of("val_unseen").tolist()) <= seen


def test_captions_mention_2_to_5_visible_attributes_as_seen(small_synth):
    manifest = json.loads((small_synth / "synthbirds.json").read_text())
    species = {s["class_id"]: s["attributes"] for s in manifest["species"]}
    ds = load_dataset(small_synth, use_cache=False)
    captions = dict(zip(ds.image_paths, ds.captions))
    said_total = mistakes = 0
    for rec in _records(small_synth):
        sp, visible = species[rec["class_id"]], rec["visible"]
        hidden = {a for p in rec["hidden_parts"] for a in PART_ATTRIBUTES[p]}
        assert not hidden & set(visible)
        assert set(visible) | hidden == set(ATTRIBUTES)
        for attr, value in visible.items():  # the look as drawn: juveniles have dull crown and breast
            want = DULL[sp[attr]] if rec["variant"] == "juvenile" and attr in ("crown_color", "breast_color") else sp[attr]
            assert value == want
        texts = captions[rec["path"]]
        for text, note in zip(texts, rec["captions"]):
            said = note["said"]
            assert 2 <= len(said) <= 5 and set(said) <= set(visible)
            for attr, value in said.items():
                assert (value == visible[attr]) == (attr != note["mistake"]), (text, note)
                assert any(w in text for w in value_words(attr, value)), (attr, value, text)
            said_total += 1
            mistakes += note["mistake"] is not None
    assert said_total == 960
    assert 0 < mistakes < 0.12 * said_total


def test_captions_never_name_the_class(small_synth):
    manifest = json.loads((small_synth / "synthbirds.json").read_text())
    words = {w.lower() for s in manifest["species"] for w in s["name"].split()}
    ds = load_dataset(small_synth, use_cache=False)
    for caps in ds.captions:
        for text in caps:
            assert not re.search(r"\d", text)
            assert not words & set(re.findall(r"[a-z]+", text)), text


def test_species_are_fine_grained_and_unseen_are_new_combinations_of_seen_values(tmp_path):
    root = generate_synthbirds(tmp_path / "sb", seed=1, classes=30, images_per_class=5, size=16)
    manifest = json.loads((root / "synthbirds.json").read_text())
    species = manifest["species"]
    seen = [s["attributes"] for s in species if s["split"] != "unseen"]
    unseen = [s["attributes"] for s in species if s["split"] == "unseen"]
    assert len(unseen) == 7 and len(seen) == 23
    for attr, values in ATTRIBUTES.items():  # every value occurs among the seen species
        assert {s[attr] for s in seen} == set(values), attr
    combos = [tuple(s[a] for a in ATTRIBUTES) for s in seen + unseen]
    assert len(set(combos)) == len(combos)

    def dist(a, b):
        return sum(a[k] != b[k] for k in ATTRIBUTES)

    nearest = [min(dist(a, b) for b in seen if b is not a) for a in seen + unseen]
    assert sum(d <= 3 for d in nearest) >= 0.7 * len(nearest)
    assert all(min(dist(u, s) for s in seen) <= 5 for u in unseen)


def test_bad_parameters_and_existing_folder(small_synth, tmp_path):
    with pytest.raises(DatasetError, match="at least 4 species"):
        generate_synthbirds(tmp_path / "x", classes=3)
    with pytest.raises(DatasetError, match="between 16 and 224"):
        generate_synthbirds(tmp_path / "x", size=300)
    with pytest.raises(DatasetError, match="already exists and is not empty"):
        generate_synthbirds(small_synth, **SMALL)
    assert not [p for p in small_synth.parent.iterdir() if ".tmp-" in p.name]


def test_generation_into_an_empty_folder_and_a_lost_race(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    assert (generate_synthbirds(tmp_path / "empty", seed=1, **SMALL) / "synthbirds.json").exists()
    import clarel.data.synth as synth

    real_write = synth._write

    def write_then_lose(root, *args):  # another process finishes the same folder while we write
        real_write(root, *args)
        other = tmp_path / "raced"
        other.mkdir()
        (other / "synthbirds.json").write_text("{}")

    monkeypatch.setattr(synth, "_write", write_then_lose)
    out = generate_synthbirds(tmp_path / "raced", seed=1, **SMALL)
    assert out == tmp_path / "raced" and (out / "synthbirds.json").read_text() == "{}"
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_ensure_dataset_generates_missing_synthbirds_and_explains_missing_cub(tmp_path, monkeypatch):
    import clarel.data.synth as synth

    calls = []
    real = synth.generate_synthbirds

    def small(out, seed=0, **kw):  # the default size is covered by the slow CLI test
        calls.append(seed)
        return real(out, seed=seed, **SMALL)

    monkeypatch.setattr(synth, "generate_synthbirds", small)
    monkeypatch.setenv("CLAREL_HOME", str(tmp_path / "home"))
    ds = ensure_dataset(DataConfig(dataset="synthbirds", synth_seed=5))
    assert ds.root == tmp_path / "home" / "datasets" / "synthbirds" and calls == [5]
    assert ensure_dataset(DataConfig(dataset="synthbirds", synth_seed=5)).num_images == 96 and calls == [5]
    with pytest.raises(DatasetError, match=r"(?s)datasets/cub is missing.*CUB_200_2011\.tgz.*clarel\.data download cub"):
        ensure_dataset(DataConfig(dataset="cub"))
    with pytest.raises(DatasetError, match="cvpr18xian.zip"):
        ensure_dataset(DataConfig(dataset="flowers", root=str(tmp_path / "nowhere")))
