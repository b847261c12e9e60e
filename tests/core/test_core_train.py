"""Training through `clarel.train.train` (the function the job worker calls): smoke, checkpoints,
resume, seeds, errors, samplers, optimiser details, word2vec."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from clarel.config import get_preset
from clarel.errors import ConfigError, NonFiniteLossError, TrainingInterrupted
from clarel.evaluate import evaluate
from clarel.model import weight_decay_groups
from clarel.run_io import load_run
from clarel.sampling import ClassOnlySampler, PerImageSampler
from clarel.train import clip_per_tensor, learning_rate, train

from .conftest import tiny_config


def test_tiny_smoke(tiny_run, small_synth):
    result, rec = tiny_run
    out = result.out_dir
    for name in ("config.json", "checkpoint.pt", "metrics.jsonl", "final_metrics.json", "vocab.json"):
        assert (out / name).is_file(), name
    m = result.metrics
    for key in ("zsl_top1", "u", "s", "H", "alpha", "H_alpha0", "ausuc", "train_seconds"):
        assert np.isfinite(m[key]), key
    assert m["steps"] == 12
    ev = result.evaluation
    proto = small_synth.protocol("test")
    assert ev.distances.shape == (len(proto.seen) + len(proto.unseen), small_synth.num_classes)
    assert np.isinf(ev.distances[:, ~proto.class_mask]).all() and np.isfinite(ev.distances[:, proto.class_mask]).all()
    assert ev.image_embeddings.shape == (len(ev.labels), 32) and ev.prototypes.shape == (small_synth.num_classes, 32)
    # callbacks: every step, two periodic evals + the final one, progress reaches 1
    assert [s for s, _ in rec.steps] == list(range(1, 13))
    assert {"loss", "loss_it", "loss_ti", "loss_cls", "lr", "progress", "eta_seconds"} <= set(rec.steps[0][1])
    assert [s for s, _ in rec.evals] == [6, 12]
    assert rec.progress[-1][0] == 1.0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [6, 12]


def test_checkpoint_round_trip_and_load_run(tiny_run, small_synth):
    from PIL import Image

    result, _ = tiny_run
    run = load_run(result.out_dir)
    for k, v in result.model.state_dict().items():
        assert torch.equal(v.cpu(), run.model.state_dict()[k]), k
    again = evaluate(run.model, small_synth, run.config, alpha=result.metrics["alpha"])
    assert np.allclose(again.distances, result.evaluation.distances, atol=1e-4)
    texts = run.embed_texts(["a small red bird", "a bird with a long yellow beak"])
    assert texts.shape == (2, 32) and np.isfinite(texts).all()
    first = int(again.image_index[0])
    image = Image.open(small_synth.images_root / small_synth.image_paths[first])
    emb = run.embed_images([image, image.convert("L")])
    assert emb.shape == (2, 32)
    # the same image embeds the same way from its file as from the dataset's pixel cache
    assert np.allclose(emb[0], again.image_embeddings[0], atol=1e-4)


def test_load_run_names_the_missing_file(tmp_path):
    from clarel.errors import ClarelError

    with pytest.raises(ClarelError, match="does not exist"):
        load_run(tmp_path / "nope")
    (tmp_path / "config.json").write_text(get_preset("tiny").to_json())
    with pytest.raises(ClarelError, match="checkpoint.pt"):
        load_run(tmp_path)


@pytest.mark.slow
def test_stop_resume_and_seed_repeatability(tiny_run, small_synth, tmp_path):
    reference, _ = tiny_run
    cfg = tiny_config(**{"optim.eval_every": 6})
    polls = iter(range(100))
    with pytest.raises(TrainingInterrupted, match="checkpoint saved"):
        train(cfg, tmp_path / "a", dataset=small_synth, should_stop=lambda: next(polls) >= 4)
    state = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 4 and not state["finished"]
    resumed = train(cfg, tmp_path / "a", dataset=small_synth)
    # same seed on the CPU: the interrupted + resumed run equals the uninterrupted one
    assert np.array_equal(resumed.evaluation.distances, reference.evaluation.distances)
    lines = [json.loads(x)["step"] for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert lines == [6, 12]
    with pytest.raises(ConfigError, match="different config"):
        train(tiny_config(**{"loss.kappa": 0.1}), tmp_path / "a", dataset=small_synth)
    other = train(tiny_config(**{"optim.seed": 1}), tmp_path / "b", dataset=small_synth)
    assert not np.array_equal(other.evaluation.distances, reference.evaluation.distances)


def test_non_finite_loss_raises_named_error(small_synth, tmp_path):
    bad = dataclasses.replace(small_synth, features=np.full((small_synth.num_images, 4), np.nan, dtype=np.float32))
    with pytest.raises(NonFiniteLossError, match="step 0"):
        train(tiny_config(**{"image.kind": "features"}), tmp_path, dataset=bad)


def test_features_kind_without_features_is_a_clear_error(small_synth, tmp_path):
    from clarel.errors import DatasetError

    with pytest.raises(DatasetError, match="no precomputed features"):
        train(tiny_config(**{"image.kind": "features"}), tmp_path, dataset=small_synth)


def test_val_run_alpha_selection(small_synth, tmp_path):
    rec_cfg = tiny_config(**{"eval.alpha_selection": "val_run", "optim.steps": 4})
    result = train(rec_cfg, tmp_path, dataset=small_synth)
    val = json.loads((tmp_path / "val_run" / "final_metrics.json").read_text())
    assert result.metrics["alpha"] == val["alpha_best"]
    assert result.metrics["alpha"] in rec_cfg.eval.alpha_grid
    assert json.loads((tmp_path / "val_run" / "config.json").read_text())["data"]["protocol"] == "val"


def test_class_only_training_runs(small_synth, tmp_path):
    result = train(tiny_config(**{"optim.sampler": "class_only", "optim.steps": 4}), tmp_path, dataset=small_synth)
    assert np.isfinite(result.metrics["zsl_top1"])


def test_samplers():
    labels = np.repeat(np.arange(5), 6)
    counts = np.full(30, 10)
    train_idx = np.arange(24)  # classes 0..3
    rng = np.random.default_rng(0)
    b = PerImageSampler(train_idx, labels, counts, 8, 10, rng).sample()
    assert len(set(b.image_rows[:, 0])) == 8 and (b.text_rows == b.image_rows).all()
    assert (b.text_slots < 10).all() and (b.labels == labels[b.image_rows[:, 0]]).all()
    b = ClassOnlySampler(train_idx, labels, counts, 8, 10, 2, rng).sample()
    assert len(b.labels) == 4 and len(set(b.labels)) == 4  # only 4 classes: a smaller batch
    assert (labels[b.image_rows] == b.labels[:, None]).all() and (labels[b.text_rows] == b.labels[:, None]).all()
    assert np.isin(b.image_rows, train_idx).all() and np.isin(b.text_rows, train_idx).all()


def test_staircase_lr_and_decay_groups_and_clipping():
    cfg = get_preset("paper-cub")
    assert [learning_rate(cfg, s) for s in (0, 49999, 50000, 100000)] == pytest.approx([0.1, 0.1, 0.01, 0.001])
    from clarel.model import create_model

    model = create_model(get_preset("tiny"), 10, vocab_size=50)
    decay, no_decay = weight_decay_groups(model, 1e-3)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 1e-3 and no_decay["weight_decay"] == 0.0
    assert all(".proj." in names[id(p)] or "classifier" in names[id(p)] or "lstm" in names[id(p)]
               or "embedding" in names[id(p)] for p in no_decay["params"])
    assert any("lstm" in names[id(p)] for p in no_decay["params"])
    p1, p2 = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))
    p1.grad, p2.grad = torch.tensor([3.0, 4.0, 0.0]), torch.tensor([0.3, 0.4])
    clip_per_tensor([p1, p2], 1.0)
    assert p1.grad.norm().item() == pytest.approx(1.0, rel=1e-4) and p2.grad.tolist() == pytest.approx([0.3, 0.4])


def test_word2vec_vectors_are_loaded_and_frozen(small_synth, tmp_path):
    from gensim.models import KeyedVectors

    words = ["bird", "red", "wings", "beak"]
    kv = KeyedVectors(vector_size=16)
    vectors = np.random.default_rng(0).normal(size=(len(words), 16)).astype(np.float32)
    kv.add_vectors(words, vectors)
    path = tmp_path / "tiny-w2v.bin"
    kv.save_word2vec_format(str(path), binary=True)
    result = train(tiny_config(**{"text.word2vec_path": str(path), "optim.steps": 3}), tmp_path / "run", dataset=small_synth)
    emb = result.model.text_encoder.embedding.weight
    assert not emb.requires_grad
    index = result.model.tokenizer.word_index()
    present = [w for w in words if w in index]
    assert present, "the synthetic captions should use some of these words"
    for w in present:
        assert torch.allclose(emb[index[w]], torch.from_numpy(vectors[words.index(w)]))
    assert torch.all(emb[0] == 0)
    missing = [i for w, i in index.items() if w not in words]
    assert torch.all(emb[missing] == 0)  # OOV rows are zero
    with pytest.raises(ConfigError, match="word_dim"):
        train(tiny_config(**{"text.word2vec_path": str(path), "text.word_dim": 8}), tmp_path / "r2", dataset=small_synth)
    with pytest.raises(ConfigError, match="does not exist"):
        train(tiny_config(**{"text.word2vec_path": str(tmp_path / "none.bin")}), tmp_path / "r3", dataset=small_synth)


@pytest.mark.slow
def test_parallel_val_twin_matches_sequential(small_synth, tmp_path):
    base = {"eval.alpha_selection": "val_run", "optim.steps": 4, "optim.cpu_threads": 1}
    seq = train(tiny_config(**base), tmp_path / "seq", dataset=small_synth)
    par = train(tiny_config(**base, **{"eval.val_run_parallel": True}), tmp_path / "par", dataset=small_synth)
    assert par.metrics["alpha"] == seq.metrics["alpha"]
    assert par.metrics["val_H_alpha_best"] == seq.metrics["val_H_alpha_best"]
    assert np.array_equal(par.evaluation.distances, seq.evaluation.distances)
    assert (tmp_path / "par" / "val_run" / "final_metrics.json").is_file()
