"""Command line: ``python -m clarel.data synth|check|download|ensure-demo``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time

from clarel.errors import ClarelError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m clarel.data", description="Zero-shot datasets: generate, check, fetch.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="generate SynthBirds in the CUB layout")
    s.add_argument("--out", required=True, help="destination folder (must not exist or be empty)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--classes", type=int, default=50)
    s.add_argument("--images-per-class", type=int, default=60)
    s.add_argument("--size", type=int, default=64, help="image side in pixels (16-224)")
    s.add_argument("--force", action="store_true", help="replace an existing folder")

    c = sub.add_parser("check", help="load and validate a dataset folder, print split counts")
    c.add_argument("root")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--no-cache", action="store_true", help="ignore and do not write the dataset cache")

    d = sub.add_parser("download", help="fetch CUB or Flowers from the official addresses")
    d.add_argument("dataset", choices=["cub", "flowers"])
    d.add_argument("--to", required=True, help="dataset root to create")

    e = sub.add_parser("ensure-demo", help="generate the default SynthBirds under CLAREL_HOME if missing; print its path")
    e.add_argument("--seed", type=int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "synth":
            from clarel.data.synth import generate_synthbirds

            t0 = time.perf_counter()
            out = generate_synthbirds(args.out, seed=args.seed, classes=args.classes,
                                      images_per_class=args.images_per_class, size=args.size, overwrite=args.force)
            print(f"SynthBirds: {args.classes} species x {args.images_per_class} images ({args.size} px, "
                  f"seed {args.seed}) written to {out} in {time.perf_counter() - t0:.1f} s")
        elif args.command == "check":
            from clarel.data.load import load_dataset

            # The loaders log each warning; they are printed once below (also on a cached reload).
            logging.getLogger("clarel.data").setLevel(logging.ERROR)
            ds = load_dataset(args.root, use_cache=not args.no_cache)
            for w in ds.warnings:
                print(f"warning: {w}", file=sys.stderr)
            summary = ds.summary()
            if args.json:
                print(json.dumps(summary))
            else:
                print(f"{summary['dataset']} at {ds.root}: {ds.num_images} images, {summary['classes']} classes "
                      f"({summary['seen_classes']} seen, {summary['unseen_classes']} unseen), "
                      f"{summary['captions_per_image']} captions per image")
                for split, n in summary["splits"].items():
                    print(f"  {split:<12} {n:>6} images  {len(ds.classes_of(split)):>4} classes")
        elif args.command == "download":
            from clarel.data.download import download

            print(f"{args.dataset} laid out under {download(args.dataset, args.to)}")
        elif args.command == "ensure-demo":
            from clarel.data.load import ensure_synthbirds

            print(ensure_synthbirds(seed=args.seed))
    except ClarelError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
