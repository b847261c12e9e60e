"""Groups of jobs: sweeps over config values, repeated seeds, and the paper's reproduction
protocol (method doc §6.2): N seeds on the validation protocol -> alpha* = mean of each seed's
best alpha -> N seeds on the test protocol evaluated at alpha*. Mixed into `jobs.store.Store`.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select

from clarel.config import RunConfig, get_preset
from jobs.db import FinalMetricRow, GroupRow, JobRow, JobState, aware, utcnow
from jobs.records import GroupInfo, GroupSummary, JobNotFound, JobsError, SettingAggregate

log = logging.getLogger(__name__)

SUMMARY_KEYS = ("u", "s", "H", "zsl_top1")
REPRODUCE_PRESETS = {"cub": "paper-cub", "flowers": "paper-flowers", "synthbirds": "synthbirds"}
# Method doc §9.4: the default configuration (kappa = lambda = 0.5, validated alpha), mean of 10 runs, in %.
PAPER_NUMBERS: dict[str, dict[str, float]] = {
    "cub": {"u": 59.9, "s": 52.3, "H": 55.9},
    "flowers": {"u": 72.8, "s": 74.3, "H": 73.5},
    "synthbirds": {},
}


@dataclass(frozen=True)
class ReproductionReport:
    """Where a reproduction stands and its table (percent, mean ± std over seeds) next to the paper's."""

    group_id: int
    dataset: str
    phase: int  # 1: validation runs, 2: test runs at alpha*, -1: stopped (no validation run succeeded)
    seeds: int
    alpha_star: float | None
    val_best_alphas: tuple[float, ...]
    rows: tuple[tuple[str, float | None, float | None, int, float | None], ...]  # metric, mean, std, n, paper
    state_counts: dict[str, int]
    done: bool
    message: str


def sweep_points(sweep: dict[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """Every combination of the sweep lists, e.g. ``{"a": [1, 2]}`` -> ``[{"a": 1}, {"a": 2}]``."""
    if not sweep:
        return [{}]
    for key, values in sweep.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or len(values) == 0:
            raise JobsError(f"sweep {key!r} needs a non-empty list of values, e.g. {key}=0,0.5,1")
    keys = list(sweep)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(list(sweep[k]) for k in keys))]


def _label(setting: dict[str, Any]) -> str:
    return " ".join(f"{k.split('.')[-1]}={v}" for k, v in setting.items())


class GroupsMixin:
    """Methods of `Store` for groups (``self.db``, ``self._insert_job`` come from `Store`)."""

    def submit_group(
        self,
        preset: str,
        overrides: dict[str, Any] | Sequence[str] | None = None,
        *,
        name: str | None = None,
        sweep: dict[str, Sequence[Any]] | None = None,
        seeds: int = 1,
        priority: int = 0,
        max_attempts: int = 3,
        kind: str | None = None,
        phase: int = 0,
        spec_extra: dict[str, Any] | None = None,
    ) -> list[int]:
        """Queue ``sweep`` x ``seeds`` jobs of a preset as one group (all configs checked first)."""
        if seeds < 1:
            raise JobsError(f"seeds={seeds} must be at least 1")
        base = get_preset(preset, list(overrides) if isinstance(overrides, tuple) else overrides)
        points = sweep_points(sweep)
        jobs: list[tuple[RunConfig, dict[str, Any], int, str]] = []
        for point in points:
            for i in range(seeds):
                seed = base.optim.seed + i
                cfg = base.with_overrides({**point, "optim.seed": seed})
                label = " ".join(p for p in (_label(point), f"seed={seed}" if seeds > 1 else "") if p)
                jobs.append((cfg, point, seed, f"{name or base.name} {label}".strip()))
        kind = kind or ("sweep" if sweep else "seeds")
        spec = {"preset": preset, "overrides": _overrides_dict(overrides), "sweep": {k: list(v) for k, v in (sweep or {}).items()},
                "seeds": seeds, **(spec_extra or {})}
        with self.db.session() as s:
            group = GroupRow(name=name or f"{base.name} {kind}", kind=kind, spec=spec, phase=max(phase, 1) if kind == "reproduce" else 0,
                             created_at=utcnow())
            s.add(group)
            s.flush()
            ids = [self._insert_job(s, cfg.to_dict(), name=job_name, preset=preset, group_id=group.id, setting=point,
                                    seed=seed, phase=phase, priority=priority, max_attempts=max_attempts)
                   for cfg, point, seed, job_name in jobs]
        log.info("queued group %s (%s): %d jobs", group.id, kind, len(ids))
        return ids

    # ------------------------------------------------------------ reads
    def groups(self) -> list[GroupInfo]:
        """Every group, newest first, with its job ids and how many jobs are in each state."""
        with self.db.session(write=False) as s:
            rows = list(s.scalars(select(GroupRow).order_by(GroupRow.id.desc())))
            return [self._group_info(s, g) for g in rows]

    def get_group(self, group_id: int) -> GroupInfo:
        with self.db.session(write=False) as s:
            g = s.get(GroupRow, group_id)
            if g is None:
                raise JobNotFound(f"no group with id {group_id}; `python -m jobs groups` lists them")
            return self._group_info(s, g)

    @staticmethod
    def _group_info(s, g: GroupRow) -> GroupInfo:  # noqa: ANN001
        jobs = s.execute(select(JobRow.id, JobRow.state).where(JobRow.group_id == g.id).order_by(JobRow.id)).all()
        counts: dict[str, int] = {}
        for _, state in jobs:
            counts[state] = counts.get(state, 0) + 1
        return GroupInfo(id=g.id, name=g.name, kind=g.kind, spec=dict(g.spec), phase=g.phase,
                         created_at=aware(g.created_at), job_ids=tuple(j for j, _ in jobs), state_counts=counts)

    def group_summary(self, group_id: int) -> GroupSummary:
        """Mean ± std (sample std over seeds) of the final metrics per sweep point (and phase)."""
        group = self.get_group(group_id)
        with self.db.session(write=False) as s:
            jobs = s.execute(select(JobRow.id, JobRow.state, JobRow.setting, JobRow.phase)
                             .where(JobRow.group_id == group_id).order_by(JobRow.id)).all()
            finals = self._finals(s, [j[0] for j in jobs])
        buckets: dict[tuple[int, str], list[tuple[int, str, dict[str, Any]]]] = {}
        for job_id, state, setting, phase in jobs:
            buckets.setdefault((phase, json.dumps(setting or {}, sort_keys=True)), []).append((job_id, state, setting or {}))
        rows = []
        for (phase, _), members in buckets.items():
            done = [finals.get(j, {}) for j, st, _ in members if st == JobState.SUCCEEDED.value]
            keys = sorted(set.intersection(*(set(d) for d in done))) if done else []
            mean = {k: float(np.mean([d[k] for d in done])) for k in keys}
            std = {k: float(np.std([d[k] for d in done], ddof=1)) if len(done) > 1 else 0.0 for k in keys}
            rows.append(SettingAggregate(setting=dict(members[0][2]), phase=phase, job_ids=tuple(j for j, _, _ in members),
                                         n_succeeded=len(done), mean=mean, std=std))
        return GroupSummary(group=group, rows=tuple(rows))

    # ------------------------------------------------------------ reproduction (§6.2)
    def reproduce(self, dataset: str, seeds: int = 3, overrides: dict[str, Any] | Sequence[str] | None = None,
                  *, priority: int = 0) -> int:
        """Queue phase 1 of the paper's protocol for ``dataset`` and return the group id.

        Phase 1: ``seeds`` runs on the validation protocol (alpha curve over ``eval.alpha_grid``).
        `advance_reproduction` queues phase 2 once they are all finished.
        """
        if dataset not in REPRODUCE_PRESETS:
            raise JobsError(f"unknown dataset {dataset!r} to reproduce; choose one of: {', '.join(REPRODUCE_PRESETS)}")
        phase1 = {**_overrides_dict(overrides), "data.protocol": "val", "eval.alpha_selection": "none", "eval.alpha": None}
        ids = self.submit_group(REPRODUCE_PRESETS[dataset], phase1, name=f"reproduce-{dataset}", seeds=seeds,
                                kind="reproduce", phase=1, priority=priority,
                                spec_extra={"dataset": dataset, "user_overrides": _overrides_dict(overrides),
                                            "alpha_star": None})
        return self.get_job(ids[0]).group_id

    def advance_reproduction(self, group_id: int) -> list[int]:
        """Queue phase 2 (test protocol at alpha*) once every phase-1 job is finished.

        Safe to call from several processes: the group row is locked and its phase moved in the
        same transaction. Returns the ids queued now (empty if not ready or already done).
        """
        with self.db.session() as s:
            g = s.scalars(select(GroupRow).where(GroupRow.id == group_id).with_for_update()).first()
            if g is None:
                raise JobNotFound(f"no group with id {group_id}")
            if g.kind != "reproduce" or g.phase != 1:
                return []
            jobs = s.execute(select(JobRow.id, JobRow.state).where(JobRow.group_id == group_id, JobRow.phase == 1)).all()
            if any(not JobState(state).terminal for _, state in jobs):
                return []
            ok = [j for j, state in jobs if state == JobState.SUCCEEDED.value]
            best = [float(v) for v in s.scalars(select(FinalMetricRow.value).where(
                FinalMetricRow.job_id.in_(ok), FinalMetricRow.key == "alpha_best"))] if ok else []
            spec = dict(g.spec)
            if not best:
                g.phase = -1
                spec["error"] = "no validation run succeeded, so alpha* cannot be chosen; retry the failed jobs"
                g.spec = spec
                return []
            alpha_star = round(float(np.mean(best)), 6)
            spec.update(alpha_star=alpha_star, val_best_alphas=best)
            overrides = {**spec.get("user_overrides", {}), "data.protocol": "test", "eval.alpha_selection": "fixed",
                         "eval.alpha": alpha_star}
            base = get_preset(spec["preset"], overrides)
            ids = []
            for i in range(int(spec["seeds"])):
                seed = base.optim.seed + i
                cfg = base.with_overrides({"optim.seed": seed})
                ids.append(self._insert_job(s, cfg.to_dict(), name=f"{g.name} test seed={seed}", preset=spec["preset"],
                                            group_id=group_id, setting={}, seed=seed, phase=2, priority=0,
                                            max_attempts=3))
            g.phase = 2
            g.spec = spec
        log.info("reproduction %s: alpha* = %.4f from %d validation runs; queued %s", group_id, alpha_star, len(best), ids)
        return ids

    def advance_reproductions(self) -> list[int]:
        """`advance_reproduction` for every reproduction still in phase 1."""
        with self.db.session(write=False) as s:
            gids = list(s.scalars(select(GroupRow.id).where(GroupRow.kind == "reproduce", GroupRow.phase == 1)))
        return [j for gid in gids for j in self.advance_reproduction(gid)]

    def reproduction_report(self, group_id: int) -> ReproductionReport:
        """The reproduction's state and table: u, s, H, zsl_top1 in % (mean ± std over the test seeds)."""
        self.advance_reproduction(group_id)
        group = self.get_group(group_id)
        if group.kind != "reproduce":
            raise JobsError(f"group {group_id} is a {group.kind}, not a reproduction")
        dataset = group.spec.get("dataset", "")
        with self.db.session(write=False) as s:
            test_ids = list(s.scalars(select(JobRow.id).where(JobRow.group_id == group_id, JobRow.phase == 2,
                                                              JobRow.state == JobState.SUCCEEDED.value)))
            n_phase2 = s.scalar(select(func.count()).select_from(JobRow).where(JobRow.group_id == group_id,
                                                                                JobRow.phase == 2))
            finals = self._finals(s, test_ids)
        rows = []
        for key in SUMMARY_KEYS:
            vals = [100.0 * finals[j][key] for j in test_ids if key in finals.get(j, {})]
            mean = float(np.mean(vals)) if vals else None
            std = float(np.std(vals, ddof=1)) if len(vals) > 1 else (0.0 if vals else None)
            rows.append((key, mean, std, len(vals), PAPER_NUMBERS.get(dataset, {}).get(key)))
        unfinished = sum(n for st, n in group.state_counts.items() if st in ("QUEUED", "RUNNING"))
        done = group.phase == 2 and unfinished == 0 and n_phase2 > 0
        if group.phase == -1:
            message = group.spec.get("error", "stopped")
        elif group.phase == 1:
            message = f"phase 1/2: validation runs ({unfinished} unfinished) to choose alpha*"
        elif not done:
            message = f"phase 2/2: test runs at alpha*={group.spec.get('alpha_star')} ({unfinished} unfinished)"
        else:
            message = f"finished: {len(test_ids)}/{n_phase2} test runs succeeded"
        return ReproductionReport(
            group_id=group_id, dataset=dataset, phase=group.phase, seeds=int(group.spec.get("seeds", 0)),
            alpha_star=group.spec.get("alpha_star"), val_best_alphas=tuple(group.spec.get("val_best_alphas", ())),
            rows=tuple(rows), state_counts=group.state_counts, done=done, message=message)


def _overrides_dict(overrides: dict[str, Any] | Sequence[str] | None) -> dict[str, Any]:
    from clarel.config import parse_overrides

    if not overrides:
        return {}
    if isinstance(overrides, dict):
        return dict(overrides)
    return parse_overrides(list(overrides))
