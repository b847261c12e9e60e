"""Build the Gradio tab's SynthBirds examples (``assets/examples/``) and check them with a run.

    python -m app.gradio_examples --run RUN_DIR [--dataset ROOT] [--out assets/examples] [--sets 4]

Each example is an unseen-class test image of the generated SynthBirds dataset plus a description
set: the true species and a few others, each described by its attributes in the words the
SynthBirds captions use (never by name: the name is only the label shown). The script classifies
every candidate image of each target species with the run, keeps the first one it gets right and
prints how many it got right in all, so the shipped examples are honest about being picked.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
DEMO_RUN = EXAMPLES_DIR / "demo-run"  # the bundled run the examples were checked with (model weights only)
_RUN_FILES = ("config.json", "vocab.json", "final_metrics.json")

# Attribute order of a description (size goes first, as in "a small bird with ...").
_COLOUR_PARTS = {
    "crown_color": "{v} crown",
    "wing_color": "{v} wings",
    "breast_color": "{v} breast",
    "belly_color": "{v} belly",
    "tail_color": "{v} tail",
    "beak_color": "{v} beak",
    "leg_color": "{v} legs",
}
_OTHER_PARTS = {
    "wing_pattern": {"solid": "plain wings", "barred": "barred wings", "spotted": "spotted wings"},
    "tail_shape": {"forked": "forked tail", "rounded": "rounded tail", "pointed": "pointed tail",
                   "square": "square tail"},
    "beak_shape": {"conical": "conical beak", "pointed": "pointed beak", "hooked": "hooked beak"},
    "beak_length": {"short": "short beak", "long": "long beak"},
    "eye_ring": {"yes": "white eye ring", "no": "no eye ring"},
}
_ORDER = ("crown_color", "wing_color", "wing_pattern", "breast_color", "belly_color", "tail_color",
          "tail_shape", "beak_color", "beak_shape", "beak_length", "eye_ring", "leg_color")


def describe_species(attributes: dict[str, str], keys: tuple[str, ...] | None = None) -> str:
    """A caption-style description from SynthBirds attributes, e.g. ``a small bird with a red crown and ...``.

    Args:
        attributes: attribute -> value of one species (``synthbirds.json``).
        keys: attributes to mention (default: every colour attribute and the wing pattern).
    """
    keys = keys or ("crown_color", "wing_color", "wing_pattern", "breast_color", "belly_color", "tail_color")
    phrases = []
    for key in _ORDER:
        if key not in keys or key not in attributes:
            continue
        value = attributes[key]
        phrase = _COLOUR_PARTS[key].format(v=value) if key in _COLOUR_PARTS else _OTHER_PARTS[key][value]
        plural = phrase.endswith(("wings", "legs"))
        phrases.append(phrase if plural or phrase.startswith("no ") else _article(phrase) + phrase)
    size = attributes.get("size", "")
    head = f"a {size} bird" if size and (keys is None or "size" in keys) else "a bird"
    if not phrases:
        return head
    body = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return f"{head} with {body}"


def _article(phrase: str) -> str:
    return "an " if phrase[0] in "aeiou" else "a "


@dataclass(frozen=True)
class Species:
    name: str
    split: str  # "train" | "val" | "unseen" in the manifest
    family: int
    attributes: dict[str, str]


def load_species(dataset_root: Path) -> list[Species]:
    """Species of a generated SynthBirds folder, from its ``synthbirds.json`` manifest."""
    manifest = json.loads((dataset_root / "synthbirds.json").read_text())
    return [Species(s["name"], s["split"], s["family"], s["attributes"]) for s in manifest["species"]]


BASE_KEYS = ("size", "crown_color", "wing_color", "wing_pattern", "breast_color", "belly_color", "tail_color")


def description_set(target: Species, others: list[Species], mention_differences: bool = False) -> str:
    """``Name: description`` lines for the target and the distractors, in a shuffled order.

    Every line mentions the size, the plumage colours and the wing pattern; with
    `mention_differences` also any attribute in which the species of the set differ (close
    relatives differ only in a few, possibly not in plumage). Lines stay near the 30 words a
    SynthBirds run reads.
    """
    keys = BASE_KEYS
    if mention_differences:
        differing = {a for sp in others for a, v in sp.attributes.items() if target.attributes.get(a) != v}
        keys = BASE_KEYS + tuple(sorted(differing - set(BASE_KEYS)))
    lines = [f"{sp.name}: {describe_species(sp.attributes, keys)}" for sp in [target, *others]]
    random.Random(target.name).shuffle(lines)
    return "\n".join(lines)


def bundle_run(run_dir: Path, dest: Path) -> None:
    """Copy a run folder's config, vocabulary, final metrics and model weights (not the optimizer)."""
    import torch

    dest.mkdir(parents=True, exist_ok=True)
    for name in _RUN_FILES:
        if (run_dir / name).is_file():
            shutil.copyfile(run_dir / name, dest / name)
    state = torch.load(run_dir / "checkpoint.pt", map_location="cpu", weights_only=True)
    slim = {k: v for k, v in state.items() if k not in ("optimizer", "torch_rng", "np_rng")}
    torch.save(slim, dest / "checkpoint.pt")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.gradio_examples", description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="trained run folder (the synthbirds demo model)")
    parser.add_argument("--dataset", default=None, help="SynthBirds root (default: the run's data.root)")
    parser.add_argument("--out", default=str(EXAMPLES_DIR))
    parser.add_argument("--sets", type=int, default=4, help="examples to write")
    parser.add_argument("--fine", type=int, default=1,
                        help="of these, sets whose distractors are the target's close relatives (same family)")
    parser.add_argument("--distractors", type=int, default=4, help="other species per description set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bundle", action="store_true",
                        help=f"also copy the run (weights only, no optimizer state) to {DEMO_RUN.relative_to(EXAMPLES_DIR.parent.parent)}")
    parser.add_argument("--min-rate", type=float, default=0.5,
                        help="use a species as an example only if the run gets at least this share of its "
                             "test images right (so the examples are typical, not lucky)")
    args = parser.parse_args(argv)

    from clarel.config import RunConfig
    from clarel.data import load_dataset
    from clarel.paths import default_dataset_root
    from clarel.zeroshot import ZeroShotClassifier

    run_dir = Path(args.run)
    config = RunConfig.from_json((run_dir / "config.json").read_text())
    root = Path(args.dataset or config.data.root or default_dataset_root(config.data.dataset))
    species = load_species(root)
    dataset = load_dataset(root)
    clf = ZeroShotClassifier.from_run(run_dir)
    rng = random.Random(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    unseen = [s for s in species if s.split in ("unseen", "test")]
    rng.shuffle(unseen)
    examples, tried, correct = [], 0, 0
    test_unseen = dataset.splits["test_unseen"]
    for target in unseen:
        if len(examples) >= args.sets:
            break
        fine = len(examples) < args.fine
        if fine:
            distractors = [s for s in species if s.family == target.family and s.name != target.name]
            if len(distractors) < 2:
                continue
        else:
            others = [s for s in species if s.family != target.family]
            distractors = rng.sample(others, args.distractors)
        text = description_set(target, distractors, mention_differences=fine)
        cls = dataset.class_names.index(target.name) if target.name in dataset.class_names else None
        if cls is None:
            continue
        images = [i for i in test_unseen if dataset.labels[i] == cls]
        hits = []
        for i in images:
            path = Path(dataset.images_root) / dataset.image_paths[i]
            pred = clf.classify(path, text)
            tried += 1
            ok = pred.label == target.name
            correct += ok
            if ok:
                hits.append((float(np.max(pred.probabilities)), path))
        kind = "close relatives" if fine else "other families"
        print(f"{target.name}: {len(hits)}/{len(images)} test images correct among {len(distractors) + 1} "
              f"classes ({kind})")
        if not hits or len(hits) < args.min_rate * len(images):
            continue
        _, best = hits[len(hits) // 2]  # a typical correct image, not the most confident one
        file = re.sub(r"[^a-z0-9]+", "_", target.name.lower()).strip("_") + best.suffix
        shutil.copyfile(best, out / file)
        examples.append({"image": file, "descriptions": text, "expected": target.name, "source": best.name,
                         "correct_images": f"{len(hits)}/{len(images)}",
                         "distractors": "close relatives" if fine else "other families"})
    (out / "examples.json").write_text(json.dumps(examples, indent=2) + "\n")
    if args.bundle:
        bundle_run(run_dir, out / DEMO_RUN.name)
        print(f"bundled the run's weights in {out / DEMO_RUN.name}")
    print(f"wrote {len(examples)} examples to {out}; {correct}/{tried} candidate images classified correctly")
    return 0 if examples else 1


if __name__ == "__main__":
    raise SystemExit(main())
