"""``python -m clarel.data``: synth, check, download (offline), ensure-demo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clarel.data import generate_synthbirds, load_dataset
from clarel.data.__main__ import main as cli
from clarel.data.download import FILES, _reachable

REPO = Path(__file__).resolve().parents[2]
SPLIT_KEYS = ["trainval", "test_seen", "test_unseen", "train", "val_seen", "val_unseen"]


def test_synth_then_check_json_through_the_real_entry_point(tmp_path):
    out = tmp_path / "sb"
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONHASHSEED="123")  # hash order must not matter
    run = [sys.executable, "-m", "clarel.data"]
    made = subprocess.run(run + ["synth", "--out", str(out), "--classes", "6", "--images-per-class", "8",
                                 "--size", "24", "--seed", "2"], capture_output=True, text=True, env=env, cwd=REPO)
    assert made.returncode == 0, made.stderr
    assert str(out) in made.stdout
    checked = subprocess.run(run + ["check", str(out), "--json"], capture_output=True, text=True, env=env, cwd=REPO)
    assert checked.returncode == 0, checked.stderr
    summary = json.loads(checked.stdout)
    assert list(summary) == ["dataset", "classes", "seen_classes", "unseen_classes", "splits", "captions_per_image"]
    assert list(summary["splits"]) == SPLIT_KEYS
    assert summary["dataset"] == "synthbirds" and summary["classes"] == 6 and summary["captions_per_image"] == 10
    assert summary["seen_classes"] + summary["unseen_classes"] == 6
    assert summary["splits"]["test_unseen"] == 8 * summary["unseen_classes"]
    # Byte-identical to a generation in this process (another hash seed, same library versions).
    here = generate_synthbirds(tmp_path / "here", seed=2, classes=6, images_per_class=8, size=24)
    theirs = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    ours = {p.relative_to(here): p.read_bytes() for p in here.rglob("*") if p.is_file()}
    assert theirs == ours


def test_check_human_readable_and_synth_refuses_an_existing_folder(small_synth, capsys):
    assert cli(["check", str(small_synth), "--no-cache"]) == 0
    out = capsys.readouterr().out
    assert "synthbirds" in out and "96 images" in out and "test_unseen" in out
    assert cli(["synth", "--out", str(small_synth), "--classes", "8"]) == 1
    assert "already exists" in capsys.readouterr().err


def test_download_offline_fails_fast_and_lists_the_manual_steps(tmp_path, capsys):
    if _reachable(FILES["flowers"][0][0], 3.0):
        pytest.skip("the network is open here; this test checks the offline behaviour")
    start = time.perf_counter()
    rc = cli(["download", "flowers", "--to", str(tmp_path / "flo")])
    elapsed = time.perf_counter() - start
    err = capsys.readouterr().err
    assert rc == 1 and elapsed < 5.0
    for url, _, _ in FILES["flowers"]:
        assert url in err
    assert "0B0ywwgffWnLLcms2WWJQRFNSWXM" in err and str(tmp_path / "flo") in err
    assert "cvpr18xian/data/FLO/att_splits.mat" in err


def test_bad_arguments_exit_non_zero(capsys):
    with pytest.raises(SystemExit) as e:
        cli(["download", "imagenet", "--to", "x"])
    assert e.value.code != 0
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.slow
def test_ensure_demo_generates_the_default_synthbirds_once(fast_tmp):
    home = fast_tmp / "demo-home"
    env = dict(os.environ, PYTHONPATH=str(REPO), CLAREL_HOME=str(home))
    cmd = [sys.executable, "-m", "clarel.data", "ensure-demo"]
    first = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert first.returncode == 0, first.stderr
    root = Path(first.stdout.strip())
    assert root == home / "datasets" / "synthbirds"
    stamp = (root / "synthbirds.json").stat().st_mtime_ns
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    assert again.returncode == 0 and Path(again.stdout.strip()) == root
    assert (root / "synthbirds.json").stat().st_mtime_ns == stamp  # not regenerated
    ds = load_dataset(root, use_cache=False)
    s = ds.summary()
    assert (s["classes"], s["seen_classes"], s["unseen_classes"]) == (50, 38, 12)
    assert ds.num_images == 3000 and s["captions_per_image"] == 10


def test_download_lays_the_archives_out_as_the_loader_expects(tmp_path, monkeypatch):
    """The online path, served from local file:// archives (the network is closed in tests)."""
    import tarfile
    import zipfile

    import clarel.data.download as dl

    src = tmp_path / "src"
    (src / "CUB_200_2011").mkdir(parents=True)
    (src / "CUB_200_2011" / "images.txt").write_text("1 001.A/a.jpg\n")
    with tarfile.open(tmp_path / "CUB_200_2011.tgz", "w:gz") as tf:
        tf.add(src / "CUB_200_2011", arcname="CUB_200_2011")
    with zipfile.ZipFile(tmp_path / "xlsa17.zip", "w") as zf:
        zf.writestr("xlsa17/data/CUB/testclasses.txt", "001.A\n")
    monkeypatch.setattr(dl, "FILES", {"cub": [(f"file://{tmp_path}/CUB_200_2011.tgz", "images", "x"),
                                              (f"file://{tmp_path}/xlsa17.zip", "splits", "y")]})
    monkeypatch.setattr(dl, "_reachable", lambda url, timeout: True)
    root = dl.download("cub", tmp_path / "cub")
    assert (root / "CUB_200_2011" / "images.txt").read_text() == "1 001.A/a.jpg\n"
    assert (root / "xlsa17/data/CUB/testclasses.txt").read_text() == "001.A\n"
