"""The Gradio tab through `gradio_client` against a live local server (see conftest.py)."""

from __future__ import annotations

import io
import math

import numpy as np
import PIL.Image
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError

from app.gradio_app import load_examples
from app.gradio_models import BUNDLED_RUN

pytestmark = pytest.mark.slow

RANDOM_CLIP = "open_clip:ViT-S-32/random"
DEMO = f"dir:{BUNDLED_RUN.resolve()}"
TWO = "Red: a small bird with a red crown and red wings\nBlue: a large bird with a blue crown and blue wings"


@pytest.fixture(scope="module")
def images(tmp_path_factory, gradio_env):
    folder = tmp_path_factory.mktemp("gradio-images")
    rng = np.random.default_rng(0)
    paths = {}
    bird = next((gradio_env.dataset_root / "CUB_200_2011" / "images").glob("*/*.jpg"))
    paths["bird"] = bird
    noise = PIL.Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    noise.save(folder / "noise.png")
    paths["noise"] = folder / "noise.png"
    data = (folder / "noise.png").read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 2])
    paths["truncated"] = folder / "truncated.png"
    (folder / "notes.txt").write_text("this is not an image\n")
    paths["text"] = folder / "notes.txt"
    PIL.Image.new("RGB", (4000, 3000), (180, 40, 40)).save(folder / "huge.png")
    paths["huge"] = folder / "huge.png"
    PIL.Image.new("1", (14000, 13000)).save(folder / "bomb.png")  # 182 Mpixel, 22 kB
    paths["bomb"] = folder / "bomb.png"
    return paths


def _classify(client, image, descriptions, model):
    return client.predict(handle_file(str(image)), descriptions, model, api_name="/classify")


def _confidences(label_out) -> dict[str, float]:
    return {c["label"]: c["confidence"] for c in label_out["confidences"]}


def test_model_picker_lists_store_runs_and_open_clip(gradio_client, gradio_env):
    models = gradio_client.predict(api_name="/models")
    by_key = {m["key"]: m for m in models}
    run = by_key[f"run:{gradio_env.job_id}"]
    assert run["kind"] == "clarel" and run["available"] and "gradio-tiny" in run["label"]
    assert run["run_dir"] == str(gradio_env.run_dir)
    assert by_key[RANDOM_CLIP]["available"]
    laion = by_key["open_clip:ViT-B-32/laion2b_s34b_b79k"]
    assert not laion["available"] and "huggingface.co/laion" in laion["reason"]
    assert by_key[f"dir:{gradio_env.doomed_run}"]["available"]
    demo = by_key[DEMO]
    assert demo["available"] and demo["preset"] == "synthbirds" and "bundled" in demo["label"]
    # The dropdown the page shows offers the same keys; a synthbirds run is selected by default.
    dropdown, info = gradio_client.predict(api_name="/refresh_models")
    assert dropdown["value"] == DEMO
    assert [key for _, key in dropdown["choices"]] == [m["key"] for m in models]
    assert str(BUNDLED_RUN.resolve()) in info


EXAMPLES = load_examples()


def test_examples_are_shipped():
    assert len(EXAMPLES) >= 3
    for example in EXAMPLES:
        names = [line.split(":", 1)[0] for line in example["descriptions"].splitlines()]
        assert example["expected"] in names and len(names) >= 3


@pytest.mark.parametrize("example", EXAMPLES, ids=[e["expected"] for e in EXAMPLES])
def test_example_is_classified_correctly_by_the_demo_run(gradio_client, example):
    label, _, table, _ = _classify(gradio_client, example["image"], example["descriptions"], DEMO)
    assert label["label"] == example["expected"]
    assert all(isinstance(row[2], float) for row in table["data"])  # CLAREL distances shown


def test_classify_with_a_store_run_gives_distances(gradio_client, gradio_env, images):
    label, chart, table, notes = _classify(gradio_client, images["bird"], TWO, f"run:{gradio_env.job_id}")
    conf = _confidences(label)
    assert set(conf) == {"Red", "Blue"} and math.isclose(sum(conf.values()), 1.0, rel_tol=1e-6)
    rows = {r[0]: r for r in table["data"]}
    assert table["headers"] == ["class", "probability", "distance", "description"]
    d_red, d_blue = rows["Red"][2], rows["Blue"][2]
    # CLAREL probabilities are softmax(-distance) over the two descriptions.
    expected_red = 1.0 / (1.0 + math.exp(d_red - d_blue))
    assert conf["Red"] == pytest.approx(expected_red, abs=1e-3)
    assert rows["Red"][3] == "a small bird with a red crown and red wings"
    assert {r[0] for r in chart["data"]} == {"Red", "Blue"}
    assert label["label"] in notes


def test_classify_with_open_clip_random_weights(gradio_client, images):
    label, _, table, notes = _classify(gradio_client, images["noise"], TWO + "\na green bird", RANDOM_CLIP)
    conf = _confidences(label)
    assert set(conf) == {"Red", "Blue", "a green bird"}
    assert math.isclose(sum(conf.values()), 1.0, rel_tol=1e-6)
    assert all(r[2] is None for r in table["data"])  # no distances for open_clip
    assert "ViT-S-32" in notes


@pytest.mark.parametrize(
    ("image", "descriptions", "model", "message"),
    [
        ("text", TWO, RANDOM_CLIP, "is not an image this app can read"),
        ("truncated", TWO, RANDOM_CLIP, "truncated or corrupt"),
        ("bomb", TWO, RANDOM_CLIP, "too large to decode safely"),
        ("noise", "", RANDOM_CLIP, "no class descriptions given"),
        ("noise", "Red: a red bird", RANDOM_CLIP, "at least two are needed"),
        ("noise", "Jay: a blue bird\nJay: a grey bird", RANDOM_CLIP, "duplicate class names: 'Jay'"),
        ("noise", "\n".join(f"bird {i}" for i in range(201)), RANDOM_CLIP, "the limit is 200"),
        ("noise", "Red: " + "red " * 400 + "\nBlue: blue", RANDOM_CLIP, "characters long; the limit is 1000"),
        ("noise", TWO, "open_clip:ViT-B-32/laion2b_s34b_b79k", "huggingface.co/laion"),
        ("noise", TWO, "run:999999", "Run #999999 is not in the run store"),
        ("noise", TWO, "nonsense", "Unknown model 'nonsense'"),
        ("noise", TWO, "dir:/tmp", "is not offered by this server"),
    ],
)
def test_bad_input_gives_a_clear_message(gradio_client, images, image, descriptions, model, message):
    with pytest.raises(AppError) as info:
        _classify(gradio_client, images[image], descriptions, model)
    assert message in str(info.value)
    assert "Traceback" not in str(info.value)


def test_non_ascii_description_with_a_clarel_run(gradio_client, gradio_env, images):
    model = f"run:{gradio_env.job_id}"
    # A description with no word the run knows cannot be embedded meaningfully: say so.
    with pytest.raises(AppError, match="no word of description 'Oiseau' is in this run's vocabulary"):
        _classify(gradio_client, images["bird"], "Oiseau: 鳥 très rouge\n" + TWO, model)
    # Mixed text classifies, with a note naming the ignored words.
    label, _, _, notes = _classify(gradio_client, images["bird"], "Rouge: a red bird très\n" + TWO, model)
    assert "Rouge" in _confidences(label)
    assert "'très'" in notes


def test_huge_image_is_downscaled_with_a_note(gradio_client, images):
    label, _, _, notes = _classify(gradio_client, images["huge"], TWO, RANDOM_CLIP)
    assert "(4000x3000) was downscaled to 1024x768" in notes
    assert set(_confidences(label)) == {"Red", "Blue"}


def test_deleted_checkpoint_is_reported_and_server_keeps_serving(gradio_client, gradio_env, images):
    model = f"dir:{gradio_env.doomed_run}"
    _classify(gradio_client, images["bird"], TWO, model)  # loads and caches the model
    (gradio_env.doomed_run / "checkpoint.pt").unlink()
    with pytest.raises(AppError, match="checkpoint.pt was deleted or moved"):
        _classify(gradio_client, images["bird"], TWO, model)
    # Still serving other models afterwards.
    label, *_ = _classify(gradio_client, images["bird"], TWO, f"run:{gradio_env.job_id}")
    assert set(_confidences(label)) == {"Red", "Blue"}


def test_inline_image_bytes_round_trip(gradio_client, tmp_path):
    # A JPEG with EXIF-free content and a palette PNG both decode.
    buf = io.BytesIO()
    PIL.Image.new("P", (50, 40)).save(buf, format="PNG")
    (tmp_path / "palette.png").write_bytes(buf.getvalue())
    label, *_ = _classify(gradio_client, tmp_path / "palette.png", TWO, RANDOM_CLIP)
    assert set(_confidences(label)) == {"Red", "Blue"}
