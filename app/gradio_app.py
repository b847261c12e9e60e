"""Gradio tab: classify an image against free-text class descriptions.

    python -m app.gradio_app [--host 127.0.0.1] [--port 7860] [--run DIR ...] [--open-clip MODEL/TAG ...]

Scores with `clarel.zeroshot.ZeroShotClassifier`, the same classifier the Streamlit pages use.
API endpoints (for `gradio_client` and scripts): ``/classify(image, descriptions, model)`` and
``/models()``; the Streamlit Classify page embeds this page.
"""

from __future__ import annotations

import os

# Offline product: a missing pretrained tag must fail at once, and Gradio must not phone home.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from app.gradio_models import ModelChoice, ModelRegistry, ModelUnavailable, open_clip_specs_from_env  # noqa: E402
from clarel.errors import ClarelError  # noqa: E402
from clarel.zeroshot import ZeroShotInputError, load_image  # noqa: E402

logger = logging.getLogger(__name__)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
TOP_K = 5  # classes shown in the label; the chart and table show all

INTRO = """# CLAREL zero-shot classifier
Upload, paste or photograph an image, describe each candidate class on its own line
(`Name: description` shows the name and embeds the description), pick a model and press **Classify**.
CLAREL runs score a class by its distance to the image in the learned joint space
(probability = softmax of minus the distance); open_clip models use CLIP's cosine logits."""


def checked_image(**kwargs: Any) -> gr.Image:
    """A `gr.Image` whose decoding errors reach the user as a message, not a generic "Error".

    Wraps the instance's `preprocess` (a subclass would make Gradio write a .pyi stub next to this
    file at import time).
    """
    image = gr.Image(**kwargs)
    decode = image.preprocess

    @functools.wraps(decode)
    def preprocess(payload: Any) -> Any:
        try:
            return decode(payload)
        except gr.Error:
            raise
        except Exception as e:
            # Let clarel say precisely what is wrong (not an image, too large, ...), as for
            # files that Gradio accepts but clarel rejects later.
            path = getattr(payload, "path", None)
            try:
                if path:
                    load_image(path)
            except ZeroShotInputError as reason:
                raise gr.Error(str(reason)) from e
            name = getattr(payload, "orig_name", None) or "the upload"
            raise gr.Error(
                f"{name!s} is not an image this app can read ({type(e).__name__}). "
                "Upload a PNG, JPEG, GIF, BMP, WebP or TIFF file."
            ) from e

    image.preprocess = preprocess  # type: ignore[method-assign]
    return image


def load_examples(examples_dir: Path = EXAMPLES_DIR) -> list[dict[str, str]]:
    """Example sets from ``assets/examples/examples.json``: image path, descriptions, expected name."""
    index = examples_dir / "examples.json"
    if not index.is_file():
        return []
    items = json.loads(index.read_text())
    return [
        {"image": str(examples_dir / item["image"]), "descriptions": item["descriptions"],
         "expected": item.get("expected", "")}
        for item in items
        if (examples_dir / item["image"]).is_file()
    ]


def build_app(registry: ModelRegistry) -> gr.Blocks:
    """The Gradio Blocks app (not launched)."""

    def model_dropdown_update() -> tuple[Any, str]:
        choices = registry.list_choices()
        key = registry.default_key(choices)
        return (
            gr.update(choices=[(c.label, c.key) for c in choices], value=key),
            describe_choice(choices, key, registry.last_listing_note),
        )

    def on_model_change(key: str) -> str:
        return describe_choice(registry.list_choices(), key, registry.last_listing_note)

    def list_models() -> list[dict[str, Any]]:
        """Every model the picker offers, with its key (the /classify `model` argument)."""
        return [c.as_dict() for c in registry.list_choices()]

    def classify(image: str | None, descriptions: str, model: str):
        return run_classification(registry, image, descriptions, model)

    initial = registry.list_choices()
    initial_key = registry.default_key(initial)
    with gr.Blocks(title="CLAREL zero-shot classifier") as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                image = checked_image(
                    label="Image", type="filepath", image_mode=None,
                    sources=["upload", "clipboard", "webcam"], height=300,
                )
                descriptions = gr.Textbox(
                    label="Class descriptions (one per line, optionally 'Name: description')",
                    lines=8, max_lines=30,
                    placeholder="Cardinal: a red bird with a black face and a thick orange beak\n"
                                "Blue jay: a blue bird with a white belly and a crest",
                )
                with gr.Row():
                    model = gr.Dropdown(
                        label="Model", choices=[(c.label, c.key) for c in initial], value=initial_key,
                        allow_custom_value=True, scale=4,
                    )
                    refresh = gr.Button("Refresh models", scale=1, size="sm")
                model_info = gr.Markdown(describe_choice(initial, initial_key, registry.last_listing_note))
                submit = gr.Button("Classify", variant="primary")
            with gr.Column(scale=1):
                label = gr.Label(label=f"Top {TOP_K}", num_top_classes=TOP_K)
                chart = gr.BarPlot(
                    x="class", y="probability", sort="-y", y_lim=[0, 1], label="Probability per class",
                    x_label_angle=-30,
                )
                table = gr.Dataframe(
                    label="Scores",
                    headers=["class", "probability", "distance", "description"], interactive=False,
                )
                notes = gr.Markdown(label="Notes")
        examples = load_examples()
        if examples:
            gr.Examples(
                examples=[[e["image"], e["descriptions"]] for e in examples],
                inputs=[image, descriptions],
                label="SynthBirds examples (checked with the bundled demo run: unseen species, described by their attributes)",
            )

        submit.click(classify, [image, descriptions, model], [label, chart, table, notes], api_name="classify")
        refresh.click(model_dropdown_update, None, [model, model_info], api_name="refresh_models")
        model.change(on_model_change, model, model_info, api_name=False)
        demo.load(model_dropdown_update, None, [model, model_info], api_name=False)
        gr.api(list_models, api_name="models")
    return demo


def describe_choice(choices: list[ModelChoice], key: str | None, listing_note: str = "") -> str:
    """The line under the model picker: what the model is, or how to make it usable."""
    lines: list[str] = []
    if listing_note:
        lines.append(f"⚠ {listing_note}")
    if not any(c.kind == "clarel" for c in choices):
        lines.append("No finished CLAREL run yet: train one (e.g. the `synthbirds` preset) on the Train page.")
    choice = next((c for c in choices if c.key == key), None)
    if choice is not None:
        if not choice.available:
            lines.append(f"**Not usable:** {choice.reason}")
        elif choice.kind == "clarel":
            lines.append(f"CLAREL run folder: `{choice.run_dir}`")
        else:
            lines.append("open_clip zero-shot (no CLAREL training); probabilities from CLIP logits.")
    return "\n\n".join(lines)


def run_classification(registry: ModelRegistry, image: str | None, descriptions: str, model: str):
    """Handler of /classify: returns (label dict, bar-chart frame, score table, notes markdown).

    Every user mistake becomes a `gr.Error` with the message from `clarel`; the server keeps serving.
    """
    if not image:
        raise gr.Error("No image: upload, paste or take a photo first.")
    try:
        classifier = registry.get(model)
        pred = classifier.classify(image, descriptions or "")
    except (ModelUnavailable, ClarelError) as e:
        raise gr.Error(str(e)) from e
    except Exception as e:
        logger.exception("classification failed")
        raise gr.Error(
            f"Classification failed unexpectedly ({type(e).__name__}: {e}). The server is still running; "
            "try another image or model."
        ) from e

    for note in pred.notes:
        gr.Warning(note)
    probs = [float(p) for p in pred.probabilities]
    distances = [None] * len(probs) if pred.distances is None else [round(float(d), 4) for d in pred.distances]
    table = pd.DataFrame(
        {"class": pred.labels, "probability": [round(p, 4) for p in probs], "distance": distances,
         "description": pred.descriptions}
    ).sort_values("probability", ascending=False, kind="stable")
    chart = pd.DataFrame({"class": pred.labels, "probability": probs})
    header = f"**{pred.label}** ({max(probs):.1%}) with `{classifier.name}`"
    notes = "\n\n".join([header] + [f"ℹ {n}" for n in pred.notes])
    return {name: p for name, p in zip(pred.labels, probs)}, chart, table, notes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.gradio_app", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: localhost only)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLAREL_GRADIO_PORT", "7860")))
    parser.add_argument("--db-url", default=None, help="run store URL (default: $CLAREL_DB_URL or the SQLite file)")
    parser.add_argument("--run", action="append", default=[], metavar="DIR",
                        help="also offer this run folder (repeatable)")
    parser.add_argument("--open-clip", action="append", default=None, metavar="MODEL/TAG",
                        help="open_clip entries (repeatable; 'MODEL/random' = random weights); "
                             "default: $CLAREL_GRADIO_OPEN_CLIP or ViT-B-32 laion2b + openai")
    parser.add_argument("--no-demo-run", action="store_true",
                        help="do not offer the bundled SynthBirds demo run (assets/examples/demo-run)")
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="torch CPU threads for inference (default 1: one image at a time is fastest on a "
                             "busy machine and leaves the cores to the training worker; 0 = torch's default)")
    parser.add_argument("--root-path", default=None, help="URL prefix when served behind a proxy")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "httpx"):  # migration plugin chatter and Gradio's own health checks
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.torch_threads > 0:
        import torch

        torch.set_num_threads(args.torch_threads)
    registry = ModelRegistry(
        db_url=args.db_url, run_dirs=tuple(args.run),
        open_clip=tuple(args.open_clip) if args.open_clip else open_clip_specs_from_env(),
        bundled_run=not args.no_demo_run,
    )
    demo = build_app(registry)
    demo.queue(default_concurrency_limit=2)
    print(f"CLAREL Gradio tab on http://{args.host}:{args.port}", flush=True)
    demo.launch(
        server_name=args.host, server_port=args.port, show_error=True, root_path=args.root_path,
        allowed_paths=[str(EXAMPLES_DIR)], footer_links=["api"], max_file_size="50mb", ssr_mode=False,
    )


if __name__ == "__main__":
    main()
