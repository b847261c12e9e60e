"""Command line: ``python -m clarel train|eval|presets``.

    python -m clarel train --preset synthbirds [--set optim.steps=200 ...] --out /tmp/run
    python -m clarel eval /tmp/run

Both print progress lines and, as the LAST line, one JSON object with the headline metrics.
A bad config or argument exits with code 2 and a message saying what to fix.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from clarel.errors import ClarelError, ConfigError

HEADLINE = ("zsl_top1", "u", "s", "H", "alpha", "H_alpha0", "ausuc")


def _headline(metrics: dict) -> str:
    return json.dumps({k: round(float(metrics[k]), 6) for k in HEADLINE if k in metrics})


class _PrintProgress:
    """Prints coarse progress lines (at most one per second, plus each eval)."""

    def __init__(self) -> None:
        self.last = 0.0

    def on_step_end(self, step, metrics):  # noqa: D401 - Callback protocol
        pass

    def on_epoch_end(self, epoch, metrics):
        pass

    def on_eval_end(self, step, metrics):
        print(f"[eval] step {step}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items() if k != "step"), flush=True)

    def on_progress(self, fraction, message):
        now = time.monotonic()
        if now - self.last >= 1.0 or fraction >= 1.0:
            self.last = now
            print(f"[{100 * fraction:5.1f}%] {message}", flush=True)


def _cmd_train(args: argparse.Namespace) -> int:
    from clarel.config import get_preset
    from clarel.train import train

    config = get_preset(args.preset, list(args.set or []))
    if args.name:
        config.name = args.name
    print(f"training preset {args.preset!r} into {args.out}", flush=True)
    result = train(config, Path(args.out), [_PrintProgress()], resume=not args.restart)
    m = result.metrics
    extra = f" (val run {m['val_train_seconds']:.1f}s)" if "val_train_seconds" in m else ""
    print(f"trained {int(m['steps'])} steps on {result.device} in {m['train_seconds']:.1f}s{extra}", flush=True)
    print(_headline(m), flush=True)
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from clarel.data import ensure_dataset
    from clarel.evaluate import evaluate
    from clarel.run_io import load_run

    run = load_run(args.run_dir, device=args.device)
    alpha = args.alpha if args.alpha is not None else run.final_metrics.get("alpha", run.config.eval.alpha)
    gamma = run.final_metrics.get("gamma", run.config.eval.gamma)
    dataset = ensure_dataset(run.config.data)
    result = evaluate(run.model, dataset, run.config, run.config.data.protocol, alpha=alpha, gamma=gamma)
    print(f"evaluated {args.run_dir} on the {result.protocol} protocol ({len(result.labels)} images)", flush=True)
    print(_headline(result.metrics), flush=True)
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from clarel.config import get_preset, list_presets

    for name in list_presets():
        cfg = get_preset(name)
        print(f"{name:14s} image={cfg.image.kind:8s} text={cfg.text.kind:5s} steps={cfg.optim.steps}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clarel", description="Train and evaluate CLAREL models.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every library message")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train a run from a preset")
    p.add_argument("--preset", required=True, help="preset name (see `python -m clarel presets`)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. optim.steps=200")
    p.add_argument("--out", required=True, help="run folder to write (resumed if it holds a checkpoint)")
    p.add_argument("--name", help="run name")
    p.add_argument("--restart", action="store_true", help="ignore an existing checkpoint in --out")
    p.set_defaults(func=_cmd_train)
    p = sub.add_parser("eval", help="re-evaluate a saved run folder")
    p.add_argument("run_dir")
    p.add_argument("--alpha", type=float, help="rescaling factor (default: the run's chosen alpha)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=_cmd_eval)
    p = sub.add_parser("presets", help="list the presets")
    p.set_defaults(func=_cmd_presets)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return args.func(args)
    except ConfigError as e:
        print(f"error: bad configuration: {e}", file=sys.stderr)
        return 2
    except ClarelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume from the last checkpoint", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
