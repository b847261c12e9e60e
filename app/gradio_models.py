"""The Gradio tab's model picker: finished runs from the job store plus open_clip models.

Each choice has a stable key (``run:<job id>``, ``dir:<run folder>``, ``open_clip:<model>/<tag>``)
that the dropdown and the ``/classify`` API use. Classifiers are built once per key and kept
(one model load per run); a run's checkpoint is checked on every use, so a deleted checkpoint gives
a clear message instead of answers from a model that no longer exists on disk.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clarel.errors import ClarelError, WeightsUnavailableError
from clarel.zeroshot import ZeroShotClassifier, resolve_open_clip_weights

logger = logging.getLogger(__name__)

# open_clip entries offered by default: the weights the clip presets use, then OpenAI's.
DEFAULT_OPEN_CLIP = ("ViT-B-32/laion2b_s34b_b79k", "ViT-B-32/openai")
RANDOM_TAGS = ("random", "none")  # "ViT-S-32/random": random init, for plumbing tests only
# The small SynthBirds run the shipped examples were checked with (weights only, ~1.3 MB), offered
# so that the tab classifies something sensible before anyone has trained a run.
BUNDLED_RUN = Path(__file__).resolve().parent.parent / "assets" / "examples" / "demo-run"


class ModelUnavailable(Exception):
    """The chosen model cannot be used; the message is shown to the user as is."""


@dataclass(frozen=True)
class ModelChoice:
    key: str  # dropdown value and API argument
    label: str  # what the dropdown shows
    kind: str  # "clarel" | "open_clip"
    available: bool  # False: selecting it explains `reason`
    reason: str = ""  # why it is unavailable / how to get it
    preset: str = ""  # CLAREL runs: the preset, to choose a sensible default
    run_dir: str = ""  # CLAREL runs: the run folder
    created: str = ""  # CLAREL runs: ISO time, newest first in the list

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "kind": self.kind,
            "available": self.available,
            "reason": self.reason,
            "preset": self.preset,
            "run_dir": self.run_dir,
        }


class ModelRegistry:
    """Lists the models the tab can use and hands out cached classifiers by key."""

    def __init__(
        self,
        db_url: str | None = None,
        run_dirs: tuple[str, ...] = (),
        open_clip: tuple[str, ...] = DEFAULT_OPEN_CLIP,
        device: str = "cpu",
        bundled_run: bool = True,
    ) -> None:
        self._db_url = db_url
        self._bundled = str(BUNDLED_RUN.resolve()) if bundled_run and (BUNDLED_RUN / "checkpoint.pt").is_file() else ""
        extra = tuple(str(Path(d).resolve()) for d in run_dirs)
        self._run_dirs = extra + ((self._bundled,) if self._bundled and self._bundled not in extra else ())
        self._open_clip = tuple(open_clip)
        self._device = device
        self._store: Any = None
        self._store_error = ""
        self._classifiers: dict[str, tuple[ZeroShotClassifier, float]] = {}
        self._lock = threading.Lock()
        self.last_listing_note = ""  # e.g. "job store unavailable: ..."

    # ------------------------------------------------------------ store
    def _open_store(self) -> Any:
        # Retried on each call until it works: the store may appear after the tab starts.
        if self._store is None:
            try:
                from jobs import open_store

                self._store = open_store(self._db_url)
                self._store_error = ""
            except Exception as e:  # the tab still serves open_clip and --run folders
                self._store_error = f"the run store could not be opened ({type(e).__name__}: {e})"
                logger.warning("%s", self._store_error)
        return self._store

    # ------------------------------------------------------------ listing
    def list_choices(self) -> list[ModelChoice]:
        """Every finished CLAREL run (newest first), extra run folders, then open_clip entries."""
        choices: list[ModelChoice] = []
        notes: list[str] = []
        store = self._open_store()
        if store is None:
            notes.append(self._store_error)
        else:
            try:
                jobs = store.list_jobs(limit=200)
            except Exception as e:
                jobs = []
                notes.append(f"listing runs failed ({type(e).__name__}: {e})")
            for job in jobs:
                if job.state != "SUCCEEDED" or not job.run_dir:
                    continue
                choices.append(_run_choice(job))
        for run_dir in self._run_dirs:
            choices.append(_dir_choice(run_dir, bundled=run_dir == self._bundled))
        for spec in self._open_clip:
            choices.append(_open_clip_choice(spec))
        self.last_listing_note = "; ".join(n for n in notes if n)
        return choices

    def default_key(self, choices: list[ModelChoice]) -> str | None:
        """The newest synthbirds run, else the newest run, else the first usable open_clip model."""
        usable = [c for c in choices if c.available]
        for pred in (lambda c: c.kind == "clarel" and c.preset == "synthbirds",
                     lambda c: c.kind == "clarel",
                     lambda c: True):
            for c in usable:
                if pred(c):
                    return c.key
        return choices[0].key if choices else None

    # ------------------------------------------------------------ loading
    def get(self, key: str) -> ZeroShotClassifier:
        """The classifier for a choice key, loaded once and reused.

        Raises:
            ModelUnavailable: unknown key, a run whose folder or checkpoint is gone, open_clip
                weights not on disk; the message says what to do.
        """
        if not key:
            raise ModelUnavailable("No model selected: pick a trained run or an open_clip model.")
        if key.startswith("open_clip:"):
            return self._get_open_clip(key)
        if key.startswith("run:"):
            run_dir = self._run_dir_of_job(key)
        elif key.startswith("dir:"):
            run_dir = key[len("dir:"):]
            if run_dir not in self._run_dirs:  # never load arbitrary paths sent through the API
                raise ModelUnavailable(
                    f"Run folder {run_dir!r} is not offered by this server; start it with --run {run_dir} "
                    "or pick a model from the list."
                )
        else:
            raise ModelUnavailable(
                f"Unknown model {key!r}. Use one of the keys listed by the /models endpoint "
                "(run:<job id>, dir:<run folder>, open_clip:<model>/<tag>)."
            )
        return self._get_run(key, Path(run_dir))

    def _run_dir_of_job(self, key: str) -> str:
        try:
            job_id = int(key[len("run:"):])
        except ValueError as e:
            raise ModelUnavailable(f"Model key {key!r} must look like run:<job id>, e.g. run:3.") from e
        store = self._open_store()
        if store is None:
            raise ModelUnavailable(f"Cannot look up run #{job_id}: {self._store_error}.")
        try:
            job = store.get_job(job_id)
        except Exception as e:
            raise ModelUnavailable(f"Run #{job_id} is not in the run store ({e}); refresh the model list.") from e
        if job.state != "SUCCEEDED" or not job.run_dir:
            raise ModelUnavailable(
                f"Run #{job_id} is {job.state}, not finished: only SUCCEEDED runs can classify. "
                "Wait for it to finish or pick another model."
            )
        return str(job.run_dir)

    def _get_run(self, key: str, run_dir: Path) -> ZeroShotClassifier:
        checkpoint = run_dir / "checkpoint.pt"
        if not checkpoint.is_file():
            with self._lock:
                self._classifiers.pop(key, None)
            what = "folder" if not run_dir.is_dir() else "checkpoint"
            raise ModelUnavailable(
                f"The {what} of run {run_dir.name!r} is missing ({checkpoint} was deleted or moved), so "
                "this model cannot classify. Retrain the run (Jobs page, Retry) or pick another model."
            )
        mtime = checkpoint.stat().st_mtime
        with self._lock:
            cached = self._classifiers.get(key)
            if cached is not None and cached[1] == mtime:
                return cached[0]
            try:
                clf = ZeroShotClassifier.from_run(run_dir, device=self._device)
            except ClarelError as e:
                raise ModelUnavailable(f"Run {run_dir.name!r} cannot be loaded: {e}") from e
            except Exception as e:  # a half-written or foreign checkpoint: say so, keep serving
                logger.exception("loading run %s failed", run_dir)
                raise ModelUnavailable(
                    f"Run {run_dir.name!r} cannot be loaded ({type(e).__name__}: {e}). "
                    "Its checkpoint may be corrupt: retrain it or pick another model."
                ) from e
            self._classifiers[key] = (clf, mtime)
            return clf

    def _get_open_clip(self, key: str) -> ZeroShotClassifier:
        model, tag = _split_open_clip(key[len("open_clip:"):])
        with self._lock:
            cached = self._classifiers.get(key)
            if cached is not None:
                return cached[0]
            try:
                clf = ZeroShotClassifier.from_open_clip(model, tag, device=self._device)
            except ClarelError as e:
                raise ModelUnavailable(str(e)) from e
            self._classifiers[key] = (clf, 0.0)
            return clf


def _run_choice(job: Any) -> ModelChoice:
    metrics = job.final_metrics or {}
    parts = [f"{k} {metrics[k]:.2f}" for k in ("zsl_top1", "H") if isinstance(metrics.get(k), int | float)]
    image_kind = ((job.config or {}).get("image") or {}).get("kind", "")
    label = f"CLAREL #{job.id} {job.name} ({job.preset})"
    if parts:
        label += " · " + ", ".join(parts)
    if image_kind == "features":
        return ModelChoice(
            key=f"run:{job.id}", label=label + " · features-only, cannot embed photos", kind="clarel",
            available=False, preset=job.preset, run_dir=str(job.run_dir),
            reason="This run was trained on precomputed image features, so it cannot embed an uploaded "
                   "photo. Pick a run trained with image.kind='cnn' or 'clip'.",
        )
    return ModelChoice(key=f"run:{job.id}", label=label, kind="clarel", available=True,
                       preset=job.preset, run_dir=str(job.run_dir), created=str(job.created_at))


def _dir_choice(run_dir: str, bundled: bool) -> ModelChoice:
    folder = Path(run_dir)
    preset, metrics = "", {}
    try:
        preset = json.loads((folder / "config.json").read_text()).get("preset", "")
        if (folder / "final_metrics.json").is_file():
            metrics = json.loads((folder / "final_metrics.json").read_text())
    except (OSError, ValueError) as e:  # shown as loadable; loading gives the precise error
        logger.warning("cannot read %s: %s", folder, e)
    label = "CLAREL bundled SynthBirds demo run (assets/examples/demo-run)" if bundled else f"CLAREL run folder {folder.name}"
    parts = [f"{k} {metrics[k]:.2f}" for k in ("zsl_top1", "H") if isinstance(metrics.get(k), int | float)]
    if parts:
        label += " · " + ", ".join(parts)
    return ModelChoice(key=f"dir:{run_dir}", label=label, kind="clarel", available=True, run_dir=run_dir,
                       preset=preset)


def _split_open_clip(spec: str) -> tuple[str, str | None]:
    model, _, tag = spec.partition("/")
    tag = tag.strip()
    return model.strip(), (None if tag.lower() in RANDOM_TAGS or not tag else tag)


def _open_clip_choice(spec: str) -> ModelChoice:
    model, tag = _split_open_clip(spec)
    key = f"open_clip:{model}/{tag or 'random'}"
    if tag is None:
        return ModelChoice(key=key, label=f"open_clip {model} · random weights (plumbing test only)",
                           kind="open_clip", available=True)
    try:
        resolve_open_clip_weights(model, tag)
    except WeightsUnavailableError as e:
        return ModelChoice(key=key, label=f"open_clip {model} / {tag} · weights not downloaded",
                           kind="open_clip", available=False, reason=str(e))
    except ClarelError as e:
        return ModelChoice(key=key, label=f"open_clip {model} / {tag} · unknown", kind="open_clip",
                           available=False, reason=str(e))
    return ModelChoice(key=key, label=f"open_clip {model} / {tag} (zero-shot)", kind="open_clip", available=True)


def open_clip_specs_from_env(default: tuple[str, ...] = DEFAULT_OPEN_CLIP) -> tuple[str, ...]:
    """open_clip entries from ``CLAREL_GRADIO_OPEN_CLIP`` (comma-separated ``model/tag``), else the default."""
    raw = os.environ.get("CLAREL_GRADIO_OPEN_CLIP", "").strip()
    return tuple(s.strip() for s in raw.split(",") if s.strip()) if raw else default
