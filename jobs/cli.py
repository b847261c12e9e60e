"""Command line of the job runner: ``python -m jobs <command>``.

    submit --preset NAME [--set k=v ...] [--sweep k=v1,v2 ...] [--seeds N]
    list | show ID | cancel ID | retry ID | export ID --format json|csv
    groups | group ID | workers | migrate | worker [worker options]
    reproduce cub|flowers|synthbirds [--seeds N]      reproduce --status [GROUP]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from clarel.config import list_presets, parse_overrides, parse_value
from clarel.errors import ClarelError
from jobs.groups import REPRODUCE_PRESETS, ReproductionReport
from jobs.records import JobInfo, JobsError
from jobs.store import Store, open_store


def parse_sweep(items: list[str]) -> dict[str, list[Any]]:
    """``["loss.kappa=0,0.5,1"]`` -> ``{"loss.kappa": [0, 0.5, 1]}``."""
    sweep: dict[str, list[Any]] = {}
    for item in items:
        if "=" not in item:
            raise JobsError(f"--sweep {item!r} must look like key=v1,v2,..., e.g. loss.kappa=0,0.5,1")
        key, raw = item.split("=", 1)
        values = [parse_value(v.strip()) for v in raw.split(",") if v.strip() != ""]
        if not values:
            raise JobsError(f"--sweep {key} has no values; e.g. {key}=0,0.5,1")
        sweep[key.strip()] = values
    return sweep


def _fmt_time(dt) -> str:  # noqa: ANN001
    return dt.strftime("%Y-%m-%d %H:%M:%S") if dt else "-"


def _job_line(j: JobInfo) -> str:
    h = j.final_metrics.get("H")
    extra = f"H={h:.3f}" if h is not None else (f"{100 * j.progress:.0f}% {j.progress_message}" if j.state == "RUNNING" else "")
    return f"{j.id:>5}  {j.state:<9}  {j.name[:40]:<40}  {j.preset[:14]:<14}  {extra}"


def _show(j: JobInfo, store: Store) -> str:
    lines = [f"job {j.id}: {j.name}", f"  state      {j.state}" + (" (cancel requested)" if j.cancel_requested and j.state == "RUNNING" else ""),
             f"  preset     {j.preset or '-'}   group {j.group_id if j.group_id is not None else '-'}",
             f"  attempts   {j.attempts}/{j.max_attempts}   worker {j.worker_id or '-'}   device {j.device or '-'}",
             f"  created    {_fmt_time(j.created_at)}   started {_fmt_time(j.started_at)}   finished {_fmt_time(j.finished_at)}",
             f"  progress   {100 * j.progress:.0f}% {j.progress_message}"
             + (f" (eta {j.eta_seconds:.0f} s)" if j.eta_seconds and j.state == "RUNNING" else ""),
             f"  run dir    {j.run_dir or '-'}"]
    if j.setting:
        lines.append(f"  setting    {json.dumps(j.setting)}")
    if j.final_metrics:
        lines.append("  final metrics:")
        lines += [f"    {k:<16} {v:.4f}" for k, v in sorted(j.final_metrics.items())]
    if j.error_summary:
        lines += ["  error:", "    " + j.error_summary.replace("\n", "\n    ")]
    if j.error_traceback:
        lines += ["  traceback (tail):", "    " + j.error_traceback.replace("\n", "\n    ")]
    tail = store.log_tail(j.id, lines=15)
    if tail:
        lines += ["  log (tail):", "    " + tail.replace("\n", "\n    ")]
    return "\n".join(lines)


def format_report(r: ReproductionReport) -> str:
    """The reproduction table: mean ± std (percent) over the test seeds, next to the paper's numbers."""
    lines = [f"reproduction {r.group_id} ({r.dataset}, {r.seeds} seeds): {r.message}"]
    if r.alpha_star is not None:
        best = ", ".join(f"{a:g}" for a in r.val_best_alphas)
        lines.append(f"alpha* = {r.alpha_star:.4g} (mean of the validation runs' best alphas: {best})")
    lines.append(f"{'metric':<10}{'ours (mean ± std, %)':>24}{'n':>4}{'paper (%)':>12}")
    for key, mean, std, n, paper in r.rows:
        ours = f"{mean:.1f} ± {std:.1f}" if mean is not None else "-"
        lines.append(f"{key:<10}{ours:>24}{n:>4}{(f'{paper:.1f}' if paper is not None else '-'):>12}")
    if r.dataset == "synthbirds":
        lines.append("(SynthBirds is this project's synthetic set: the paper has no numbers for it)")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m jobs", description="CLAREL Studio job runner and run store.")
    p.add_argument("--db", default=None, help="database URL (default $CLAREL_DB_URL or the SQLite file in CLAREL_HOME)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("submit", help="queue a preset (optionally a sweep and/or several seeds)")
    s.add_argument("--preset", required=True, help=f"one of: {', '.join(list_presets())}")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V", help="config override, e.g. optim.steps=200")
    s.add_argument("--sweep", action="append", default=[], metavar="K=V1,V2", help="sweep values, e.g. loss.kappa=0,0.5,1")
    s.add_argument("--seeds", type=int, default=1, help="runs per setting with optim.seed 0..N-1")
    s.add_argument("--name", default=None)
    s.add_argument("--priority", type=int, default=0, help="higher runs first")

    ls = sub.add_parser("list", help="one row per job: id, state, name")
    ls.add_argument("--state", default=None, choices=["QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"])
    ls.add_argument("--group", type=int, default=None)
    ls.add_argument("--limit", type=int, default=200)

    for name, text in (("show", "details of one job"), ("cancel", "cancel a job"), ("retry", "queue a failed or cancelled job again")):
        c = sub.add_parser(name, help=text)
        c.add_argument("id", type=int)
    e = sub.add_parser("export", help="a job's info and metrics as JSON or CSV")
    e.add_argument("id", type=int)
    e.add_argument("--format", choices=["json", "csv"], default="json")
    e.add_argument("-o", "--output", default=None, help="file to write (default stdout)")

    sub.add_parser("groups", help="sweeps, seed groups and reproductions")
    g = sub.add_parser("group", help="mean ± std of u, s, H, zsl per setting of a group")
    g.add_argument("id", type=int)
    sub.add_parser("workers", help="workers and whether they are alive")
    sub.add_parser("migrate", help="create or upgrade the database schema")
    sub.add_parser("worker", help="run a worker (same options as python -m jobs.worker)", add_help=False)

    r = sub.add_parser("reproduce", help="the paper's protocol: val seeds -> alpha* -> test seeds")
    r.add_argument("dataset", nargs="?", choices=sorted(REPRODUCE_PRESETS))
    r.add_argument("--seeds", type=int, default=3)
    r.add_argument("--set", dest="overrides", action="append", default=[], metavar="K=V")
    r.add_argument("--status", nargs="?", const=-1, type=int, default=None, metavar="GROUP",
                   help="show a reproduction (default the newest; of DATASET if given) and queue phase 2 when ready")
    r.add_argument("--wait", action="store_true", help="with --status: wait until it is finished")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "worker" in argv:  # everything after `worker` belongs to the worker's own parser
        i = argv.index("worker")
        if i == 0 or argv[i - 1] != "--db":
            from jobs.worker import main as worker_main

            pre = argv[:i]
            db = ["--db", pre[pre.index("--db") + 1]] if "--db" in pre else []
            return worker_main(db + argv[i + 1:])
    args = build_parser().parse_args(argv)
    try:
        store = open_store(args.db)
        return _dispatch(args, store)
    except (JobsError, ClarelError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


def _dispatch(args: argparse.Namespace, store: Store) -> int:
    cmd = args.command
    if cmd == "migrate":
        from jobs.store import head_revision

        print(f"schema at revision {head_revision()} ({store.url.split('@')[-1]})")
    elif cmd == "submit":
        if args.seeds < 1:
            raise JobsError(f"--seeds {args.seeds} must be at least 1")
        overrides = parse_overrides(args.overrides)
        ids = store.submit(args.preset, overrides, name=args.name, sweep=parse_sweep(args.sweep) or None,
                           seeds=args.seeds, priority=args.priority)
        group = store.get_job(ids[0]).group_id
        print(f"queued {len(ids)} job(s): {', '.join(map(str, ids))}" + (f" (group {group})" if group else ""))
    elif cmd == "list":
        jobs = store.list_jobs(args.limit, state=args.state, group_id=args.group)
        print(f"{'id':>5}  {'state':<9}  {'name':<40}  {'preset':<14}")
        for j in jobs:
            print(_job_line(j))
    elif cmd == "show":
        print(_show(store.get_job(args.id), store))
    elif cmd == "cancel":
        state = store.cancel(args.id)
        print(f"job {args.id}: {state}" + (" (cancel requested; its worker stops it within 5 s)" if state == "RUNNING" else ""))
    elif cmd == "retry":
        print(f"job {store.retry(args.id)} queued again")
    elif cmd == "export":
        text = store.export_job(args.id, args.format)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(text)
            print(f"wrote {args.output}")
        else:
            sys.stdout.write(text if text.endswith("\n") else text + "\n")
    elif cmd == "groups":
        for g in store.groups():
            counts = " ".join(f"{k}={v}" for k, v in sorted(g.state_counts.items()))
            print(f"{g.id:>4}  {g.kind:<9}  {g.name[:40]:<40}  {len(g.job_ids)} jobs  {counts}")
    elif cmd == "group":
        summary = store.group_summary(args.id)
        print(f"group {summary.group.id}: {summary.group.name} ({summary.group.kind})")
        for row in summary.rows:
            cells = "  ".join(f"{k}={100 * row.mean[k]:.1f}±{100 * row.std[k]:.1f}" for k in ("u", "s", "H", "zsl_top1")
                              if k in row.mean)
            label = json.dumps(row.setting) if row.setting else "(base)"
            print(f"  {label:<30} phase {row.phase}  {row.n_succeeded}/{len(row.job_ids)} done  {cells}")
    elif cmd == "workers":
        for w in store.workers():
            print(f"{w.worker_id:<36} {'alive' if w.alive else 'dead':<6} {w.state:<8} job {w.current_job_id or '-'}  "
                  f"last heartbeat {_fmt_time(w.last_heartbeat)}  {w.host} pid {w.pid} device {w.device or 'auto'}")
    elif cmd == "reproduce":
        return _reproduce(args, store)
    return 0


def _reproduce(args: argparse.Namespace, store: Store) -> int:
    if args.status is None:
        if args.dataset is None:
            raise JobsError("give a dataset (cub, flowers, synthbirds) or --status [GROUP]")
        if args.seeds < 1:
            raise JobsError(f"--seeds {args.seeds} must be at least 1")
        gid = store.reproduce(args.dataset, seeds=args.seeds, overrides=parse_overrides(args.overrides))
        print(f"reproduction group {gid}: queued {args.seeds} validation-protocol run(s) of {args.dataset}; "
              f"the test-protocol runs follow once they finish (`python -m jobs reproduce --status {gid}`)")
        return 0
    gid = args.status
    if gid == -1:
        candidates = [g for g in store.groups() if g.kind == "reproduce"
                      and (args.dataset is None or g.spec.get("dataset") == args.dataset)]
        if not candidates:
            raise JobsError("no reproduction found; start one with `python -m jobs reproduce synthbirds`")
        gid = candidates[0].id
    report = store.reproduction_report(gid)
    while args.wait and not report.done and report.phase != -1:
        time.sleep(5)
        report = store.reproduction_report(gid)
    print(format_report(report))
    return 0
