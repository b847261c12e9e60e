"""The training entry point shared by the CLI and the job worker: `train(config, out_dir, callbacks)`.

One call trains a CLAREL model (§3-§4): SGD with momentum, staircase decay, per-tensor gradient
clipping, weight decay only on conv/BN parameters. It reports through `Callback`s, writes an
atomic resumable ``checkpoint.pt``, ``metrics.jsonl``, ``final_metrics.json``, ``config.json``
and ``vocab.json`` into the run folder, and evaluates at the end (§5-§7). With
``eval.alpha_selection="val_run"`` it first trains a twin on the validation protocol (in
``out_dir/val_run``) to choose the rescaling factor alpha (and the stacking offset gamma).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clarel import errors as errors_module
from clarel.config import RunConfig
from clarel.data.dataset import ZSLDataset
from clarel.errors import ClarelError, ConfigError, NonFiniteLossError, TrainingInterrupted
from clarel.evaluate import evaluate
from clarel.inputs import ModelInputs, prepare_inputs
from clarel.losses import clarel_loss
from clarel.model import ClarelModel, create_model, weight_decay_groups
from clarel.results import TrainResult
from clarel.sampling import Batch, make_sampler
from clarel.text import Tokenizer

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
# Metrics forwarded to `on_eval_end` during training (all at alpha = 0 unless named otherwise).
EVAL_KEYS = ("zsl_top1", "u", "s", "H", "ausuc", "alpha_best", "H_alpha_best")


class Callback:
    """Hooks fired by `train`; every method is an optional no-op."""

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        """After each optimiser step: loss terms, ``lr``, ``progress`` (0-1), ``eta_seconds``."""

    def on_eval_end(self, step: int, metrics: dict[str, float]) -> None:
        """After each periodic evaluation: ``zsl_top1, u, s, H`` (alpha 0), ``ausuc``, ..."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """After every ``len(train) // batch_size`` steps: mean ``loss`` of the epoch."""

    def on_progress(self, fraction: float, message: str) -> None:
        """Coarse progress of the whole call (dataset, features, val run, train, eval)."""


class _Scaled(Callback):
    """Forwards a sub-run's progress into ``[start, start + span]`` of the whole call.

    With ``only_progress`` (the val-run twin) step metrics are not forwarded, so the caller's
    metric history holds only the main run.
    """

    def __init__(self, callbacks: Sequence[Callback], start: float, span: float, prefix: str = "",
                 only_progress: bool = False) -> None:
        self.cbs, self.start, self.span, self.prefix, self.only_progress = list(callbacks), start, span, prefix, only_progress
        self._last = -1.0

    def _fire_progress(self, fraction: float, message: str) -> None:
        for cb in self.cbs:
            cb.on_progress(self.start + self.span * fraction, f"{self.prefix}{message}")

    def on_step_end(self, step: int, metrics: dict[str, float]) -> None:
        metrics = dict(metrics)
        metrics["progress"] = self.start + self.span * metrics.get("progress", 0.0)
        if self.only_progress:
            if metrics["progress"] - self._last >= 0.01:
                self._last = metrics["progress"]
                for cb in self.cbs:
                    cb.on_progress(metrics["progress"], f"{self.prefix}step {step}")
            return
        for cb in self.cbs:
            cb.on_step_end(step, metrics)

    def on_eval_end(self, step: int, metrics: dict[str, float]) -> None:
        if not self.only_progress:
            for cb in self.cbs:
                cb.on_eval_end(step, metrics)

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        if not self.only_progress:
            for cb in self.cbs:
                cb.on_epoch_end(epoch, metrics)

    def on_progress(self, fraction: float, message: str) -> None:
        self._fire_progress(fraction, message)


# ------------------------------------------------------------------ helpers
def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; a forced device must exist (`ConfigError` otherwise)."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"optim.device={name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from e
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"optim.device={name!r} but no CUDA device is available; use optim.device=auto or cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"optim.device={name!r} but MPS is not available; use optim.device=auto or cpu")
    return device


def learning_rate(config: RunConfig, step: int) -> float:
    """Staircase decay: divide by ``lr_decay_rate`` every ``steps // n_lr_decay`` steps (§4.2)."""
    o = config.optim
    if o.n_lr_decay <= 0:
        return o.lr
    period = max(1, o.steps // o.n_lr_decay)
    return o.lr / o.lr_decay_rate ** (step // period)


def clip_per_tensor(params: Sequence[torch.nn.Parameter], max_norm: float) -> None:
    """Clip each gradient tensor to norm ``max_norm`` on its own (slim ``clip_gradient_norm``)."""
    for p in params:
        if p.grad is not None:
            norm = p.grad.norm()
            p.grad.mul_(torch.clamp(max_norm / (norm + 1e-6), max=1.0))


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, device: str | torch.device = "cpu") -> dict[str, Any]:
    """A checkpoint written by `train`, loaded with ``weights_only=True`` (no pickled code)."""
    return torch.load(path, map_location=device, weights_only=True)


def _autocast(device: torch.device):
    # bf16 autocast on CUDA only: CPU bf16 is slow on most CPUs, MPS autocast is patchy.
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


def _load_dataset(config: RunConfig) -> ZSLDataset:
    from clarel.data import ensure_dataset  # the data package may generate SynthBirds here

    return ensure_dataset(config.data)


def build_model(config: RunConfig, num_classes: int, inputs: ModelInputs) -> ClarelModel:
    """The model for prepared inputs (loads word2vec when ``text.word2vec_path`` is set)."""
    word_vectors = None
    if config.text.kind == "paper" and config.text.word2vec_path:
        from clarel.encoders import load_word2vec_table

        tok = inputs.tokenizer
        word_vectors = load_word2vec_table(config.text.word2vec_path, tok.words, tok.vocab_size, config.text.word_dim)
    model = create_model(config, num_classes, image_feature_dim=inputs.image_feature_dim,
                         text_feature_dim=inputs.text_feature_dim,
                         vocab_size=inputs.tokenizer.vocab_size if inputs.tokenizer else None,
                         word_vectors=word_vectors)
    model.tokenizer = inputs.tokenizer
    return model


def model_meta(config: RunConfig, dataset: ZSLDataset, inputs: ModelInputs) -> dict[str, Any]:
    """What `load_run` needs to rebuild the model without the dataset."""
    return {
        "num_classes": dataset.num_classes,
        "image_feature_dim": inputs.image_feature_dim,
        "text_feature_dim": inputs.text_feature_dim,
        "vocab_size": inputs.tokenizer.vocab_size if inputs.tokenizer else None,
        "class_names": list(dataset.class_names),
        "dataset": dataset.name,
        "dataset_fingerprint": dataset.fingerprint,
    }


# -------------------------------------------------------------------- train
def train(config: RunConfig, out_dir: Path | str, callbacks: Sequence[Callback] = (), *,
          dataset: ZSLDataset | None = None, should_stop: Callable[[], bool] | None = None,
          resume: bool = True) -> TrainResult:
    """Train and evaluate one CLAREL run (see the module docstring).

    Args:
        config: the run configuration (validated here).
        out_dir: the run folder (created).
        callbacks: receive step/eval/epoch metrics and coarse progress.
        dataset: a loaded dataset; None = ``clarel.data.ensure_dataset(config.data)``.
        should_stop: polled every step; True saves a checkpoint and raises `TrainingInterrupted`.
        resume: continue from ``out_dir/checkpoint.pt`` when it exists (same config required).
    Returns:
        `TrainResult` with the final test-protocol `EvalResult`.
    Raises:
        ConfigError, DatasetError, WeightsUnavailableError, NonFiniteLossError, TrainingInterrupted.
    """
    config.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cbs = list(callbacks)
    ec = config.eval
    for cb in cbs:
        cb.on_progress(0.0, "loading dataset")
    if dataset is None:
        dataset = _load_dataset(config)
    if not (ec.alpha_selection == "val_run" and ec.alpha is None and config.data.protocol == "test"):
        result = _train_one(config, out_dir, cbs, dataset, should_stop, resume,
                            lambda: (ec.alpha or 0.0, ec.gamma or 0.0, {}))
    else:
        val_cfg = config.with_overrides({"data.protocol": "val", "eval.alpha_selection": "none",
                                         "name": f"{config.name}-val"})
        val_dir = out_dir / "val_run"
        log.info("alpha selection: training a twin on the validation protocol in %s", val_dir)
        if ec.val_run_parallel and resolve_device(config.optim.device).type == "cpu":
            result = _train_with_parallel_twin(config, val_cfg, out_dir, val_dir, cbs, dataset, should_stop, resume)
        else:
            val = _train_one(val_cfg, val_dir, [_Scaled(cbs, 0.0, 0.5, "val run: ", only_progress=True)],
                             dataset, should_stop, resume, lambda: (0.0, 0.0, {}))
            selected = _selection(config, val.metrics)
            result = _train_one(config, out_dir, [_Scaled(cbs, 0.5, 0.5)], dataset, should_stop, resume,
                                lambda: selected)
    for cb in cbs:
        cb.on_progress(1.0, "done")
    return result


def _selection(config: RunConfig, val_metrics: dict[str, float]) -> tuple[float, float, dict[str, float]]:
    """(alpha*, gamma*, extra metrics) from the val-protocol twin's final metrics."""
    alpha = val_metrics["alpha_best"]
    gamma = val_metrics["gamma_best"] if config.eval.gamma is None else config.eval.gamma
    log.info("alpha* = %.4g (val H %.3f -> %.3f), gamma* = %.4g", alpha, val_metrics["H_alpha0"],
             val_metrics["H_alpha_best"], gamma)
    extra = {"val_H_alpha0": val_metrics["H_alpha0"], "val_H_alpha_best": val_metrics["H_alpha_best"],
             "val_zsl_top1": val_metrics["zsl_top1"], "val_train_seconds": val_metrics["train_seconds"]}
    return alpha, gamma, extra


def _train_with_parallel_twin(config: RunConfig, val_cfg: RunConfig, out_dir: Path, val_dir: Path,
                              cbs: list[Callback], dataset: ZSLDataset, should_stop: Callable[[], bool] | None,
                              resume: bool) -> TrainResult:
    """Train the val-protocol twin in a spawned process while this one trains the test run.

    Only the final evaluation of the test run needs the twin's alpha, so on a CPU with spare
    cores the two trainings overlap (``eval.val_run_parallel``; pair it with ``optim.cpu_threads``).
    """
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    stop, queue = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_twin_main, name="clarel-val-run", daemon=True,
                       args=(val_cfg.to_json(), str(val_dir), dataset, resume, stop, queue))
    proc.start()

    def stop_both() -> bool:
        if should_stop is not None and should_stop():
            stop.set()
            return True
        return False

    def wait_for_twin() -> tuple[float, float, dict[str, float]]:
        for cb in cbs:
            cb.on_progress(0.96, "waiting for the val run (alpha selection)")
        while True:
            try:
                kind, payload = queue.get(timeout=0.5)
                break
            except Exception:  # queue.Empty
                if stop_both():
                    raise TrainingInterrupted("training stopped while waiting for the val run") from None
                if not proc.is_alive() and queue.empty():
                    raise ClarelError(f"the val-protocol run (alpha selection) died with exit code {proc.exitcode}; "
                                      f"see {val_dir}") from None
        proc.join(timeout=30)
        if kind == "ok":
            return _selection(config, payload)
        error_cls = getattr(errors_module, payload[0], ClarelError)
        raise (error_cls if isinstance(error_cls, type) and issubclass(error_cls, ClarelError) else ClarelError)(
            f"val-protocol run (alpha selection): {payload[1]}")

    try:
        return _train_one(config, out_dir, cbs, dataset, stop_both, resume, wait_for_twin)
    except BaseException:
        stop.set()
        proc.join(timeout=60)
        if proc.is_alive():
            proc.terminate()
        raise


def _twin_main(config_json: str, val_dir: str, dataset: ZSLDataset, resume: bool, stop, queue) -> None:
    """Entry point of the spawned val-protocol twin: train, then send ("ok", metrics) or ("error", ...)."""
    try:
        config = RunConfig.from_json(config_json)
        result = _train_one(config, Path(val_dir), [], dataset, stop.is_set, resume, lambda: (0.0, 0.0, {}))
        queue.put(("ok", dict(result.metrics)))
    except BaseException as e:  # report everything; the parent re-raises it
        queue.put(("error", (type(e).__name__, str(e))))


def _train_one(config: RunConfig, out_dir: Path, cbs: list[Callback], dataset: ZSLDataset,
               should_stop: Callable[[], bool] | None, resume: bool,
               selection: Callable[[], tuple[float, float, dict[str, float]]]) -> TrainResult:
    """Train one model and evaluate it at ``selection()``'s (alpha, gamma); extras join the metrics."""
    out_dir.mkdir(parents=True, exist_ok=True)
    o = config.optim
    device = resolve_device(o.device)
    if device.type == "cpu" and o.cpu_threads > 0:
        torch.set_num_threads(o.cpu_threads)
    ckpt_path = out_dir / CHECKPOINT
    state = None
    if resume and ckpt_path.is_file():
        state = load_checkpoint(ckpt_path)
        if state.get("config") != config.to_dict():
            raise ConfigError(f"{ckpt_path} was written by a different config; use another output folder "
                              "or resume=False to start over")
    random.seed(o.seed)
    np.random.seed(o.seed % 2**32)
    torch.manual_seed(o.seed)
    rng = np.random.default_rng(o.seed)

    def progress(fraction: float, message: str) -> None:
        for cb in cbs:
            cb.on_progress(fraction, message)

    progress(0.0, "preparing inputs")
    tokenizer = Tokenizer.load(out_dir / "vocab.json") if state is not None and (out_dir / "vocab.json").is_file() else None
    inputs = prepare_inputs(dataset, config, tokenizer, progress=lambda f, m: progress(0.02 * f, m))
    if inputs.tokenizer is not None:
        inputs.tokenizer.save(out_dir / "vocab.json")
    _atomic_write(out_dir / "config.json", config.to_json())
    inputs = inputs.to(device)
    meta = model_meta(config, dataset, inputs)
    model = build_model(config, dataset.num_classes, inputs).to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(weight_decay_groups(model, o.weight_decay), lr=o.lr, momentum=o.momentum,
                                dampening=0.0, nesterov=False)
    proto = dataset.protocol(config.data.protocol)
    sampler = make_sampler(o.sampler, proto.train, dataset.labels, inputs.caption_counts, batch_size=o.batch_size,
                           texts_per_image=o.texts_per_image, images_per_class=o.class_only_images, rng=rng)
    step = 0
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
        torch.set_rng_state(state["torch_rng"])
        rng.bit_generator.state = state["np_rng"]
        log.info("resumed %s at step %d", out_dir, step)
    history = _rewrite_history(out_dir / "metrics.jsonl", step, o.steps)

    def checkpoint() -> None:
        _save_checkpoint(ckpt_path, {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
            "config": config.to_dict(), "meta": meta, "torch_rng": torch.get_rng_state(),
            "np_rng": rng.bit_generator.state, "finished": step >= o.steps,
        })

    steps_per_epoch = max(1, len(proto.train) // sampler.batch_size)
    t0, start_step = time.perf_counter(), step
    epoch_losses: list[float] = []
    log_every = max(1, o.steps // 20)
    model.train()
    while step < o.steps:
        if should_stop is not None and should_stop():
            checkpoint()
            raise TrainingInterrupted(f"training stopped at step {step}/{o.steps}; checkpoint saved in {ckpt_path}")
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        terms = _train_step(model, inputs, sampler.sample(), config, device)
        values = dict(zip(terms, torch.stack([t.detach().float() for t in terms.values()]).tolist(), strict=True))
        if not all(math.isfinite(v) for v in values.values()):
            raise NonFiniteLossError(
                f"non-finite loss at step {step}: " + ", ".join(f"{k}={v:.4g}" for k, v in values.items())
                + f" (lr={lr:g}); lower optim.lr or check the inputs")
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        if o.clip_grad_norm > 0:
            clip_per_tensor(params, o.clip_grad_norm)
        optimizer.step()
        step += 1
        elapsed = time.perf_counter() - t0
        eta = elapsed / (step - start_step) * (o.steps - step)
        values.update(lr=lr, progress=0.95 * step / o.steps, eta_seconds=eta)
        for cb in cbs:
            cb.on_step_end(step, values)
        epoch_losses.append(values["loss"])
        if step % steps_per_epoch == 0:
            for cb in cbs:
                cb.on_epoch_end(step // steps_per_epoch, {"loss": float(np.mean(epoch_losses)), "step": float(step)})
            epoch_losses = []
        if step % log_every == 0 or step == o.steps:
            msg = f"step {step}/{o.steps} loss {values['loss']:.4f} (it {values['loss_it']:.3f} ti " \
                  f"{values['loss_ti']:.3f} cls {values['loss_cls']:.3f}) lr {lr:.3g} eta {eta:.0f}s"
            log.info(msg)
            progress(values["progress"], msg)
        if o.eval_every > 0 and step % o.eval_every == 0 and step < o.steps:
            result = evaluate(model, dataset, config, config.data.protocol, alpha=0.0, inputs=inputs)
            history.append(_record_eval(out_dir, step, result.metrics, cbs))
        if o.checkpoint_every > 0 and step % o.checkpoint_every == 0:
            checkpoint()
    train_seconds = time.perf_counter() - t0
    checkpoint()
    alpha, gamma, extra = selection()
    progress(0.97, "final evaluation")
    evaluation = evaluate(model, dataset, config, config.data.protocol, alpha=alpha, gamma=gamma, inputs=inputs)
    history.append(_record_eval(out_dir, step, evaluation.metrics, cbs))
    metrics = dict(evaluation.metrics)
    metrics.update(train_seconds=train_seconds, steps=float(step), **extra)
    _atomic_write(out_dir / "final_metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    model.eval()
    return TrainResult(config=config, out_dir=out_dir, checkpoint=ckpt_path, metrics=metrics,
                       evaluation=evaluation, history=history, device=str(device), model=model)


def _train_step(model: ClarelModel, inputs: ModelInputs, batch: Batch, config: RunConfig,
                device: torch.device) -> dict[str, torch.Tensor]:
    """Forward pass and loss terms of one batch (no backward)."""
    b, m = batch.image_rows.shape
    image_rows = torch.as_tensor(batch.image_rows.reshape(-1), device=inputs.images.device)
    text_rows = torch.as_tensor(batch.text_rows, device=inputs.captions.device)
    slots = torch.as_tensor(batch.text_slots, device=inputs.captions.device)
    labels = torch.as_tensor(batch.labels, device=device)
    with _autocast(device):
        f = model.embed_images(inputs.images[image_rows].to(device)).view(b, m, -1).mean(1)  # [B, D]
        caps = inputs.captions[text_rows, slots].to(device)  # [B, T, L] or [B, T, F]
        lens = None if inputs.lengths is None else inputs.lengths[text_rows, slots].to(device)
        t = model.embed_caption_bundles(caps, lens)  # [B, D]
        image_logits, text_logits = model.image_classifier(f), model.text_classifier(t)
    return clarel_loss(f.float(), t.float(), image_logits, text_logits, labels, config.loss.kappa, config.loss.lam)


def _rewrite_history(path: Path, step: int, total: int) -> list[dict[str, float]]:
    """Keep the evaluations up to ``step`` (a resumed run repeats the later ones and the final one)."""
    kept: list[dict[str, float]] = []
    if path.is_file() and step > 0:
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if row.get("step", 0) <= step and row.get("step", 0) < total:
                kept.append(row)
    _atomic_write(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept


def _record_eval(out_dir: Path, step: int, metrics: dict[str, float], cbs: list[Callback]) -> dict[str, float]:
    row = {"step": float(step), **{k: metrics[k] for k in EVAL_KEYS if k in metrics}}
    for k in ("u", "s", "H"):  # the history is at alpha 0 throughout; the final alpha is in final_metrics
        row[k] = metrics.get(f"{k}_alpha0", row.get(k, 0.0))
    with open(out_dir / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps(row) + "\n")
    for cb in cbs:
        cb.on_eval_end(step, dict(row))
    return row
