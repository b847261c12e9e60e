"""Unit tests of `clarel.zeroshot`: description parsing, image checks, scoring, the open_clip path."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import PIL.Image
import pytest
import torch

from clarel.errors import ClarelError, WeightsUnavailableError
from clarel.zeroshot import (
    MAX_DESCRIPTIONS,
    MAX_IMAGE_SIDE,
    ClassDescription,
    ZeroShotClassifier,
    ZeroShotInputError,
    clarel_scores,
    clip_scores,
    load_image,
    parse_descriptions,
    vocabulary_notes,
)

torch.set_num_threads(1)


def _png_bytes(size=(40, 30), mode="RGB", color=(200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    PIL.Image.new(mode, size, color).save(buf, format="PNG")
    return buf.getvalue()


# ---------------------------------------------------------------- descriptions
def test_parse_names_and_plain_lines():
    got = parse_descriptions("Cardinal: a red bird with a black face\n\n  a blue bird with a crest  \n")
    assert got == [
        ClassDescription("Cardinal", "a red bird with a black face"),
        ClassDescription("a blue bird with a crest", "a blue bird with a crest"),
    ]


def test_parse_list_and_long_prefix_is_not_a_name():
    long_prefix = "a bird that looks like this when seen from far away in the evening light: red"
    got = parse_descriptions([long_prefix, "Jay: blue"])
    assert got[0].name == got[0].text == long_prefix
    assert got[1] == ClassDescription("Jay", "blue")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no class descriptions"),
        ("  \n\n", "no class descriptions"),
        ("a red bird", "at least two are"),
        ("Jay: blue bird\njay: a crested bird", "duplicate class names: 'jay' (lines 1 and 2)"),
        ("Jay:\nCardinal: red", "gives no description after the colon"),
        ("short\n" + "x" * 1001, "line 2 is 1001 characters long"),
    ],
)
def test_parse_rejects_with_a_clear_message(text, fragment):
    with pytest.raises(ZeroShotInputError, match=None) as info:
        parse_descriptions(text)
    assert fragment in str(info.value)


def test_parse_limit_on_count():
    ok = [f"bird number {i}" for i in range(MAX_DESCRIPTIONS)]
    assert len(parse_descriptions(ok)) == MAX_DESCRIPTIONS
    with pytest.raises(ZeroShotInputError, match=f"201 class descriptions given; the limit is {MAX_DESCRIPTIONS}"):
        parse_descriptions(ok + ["one more"])


def test_vocabulary_notes_unknown_long_and_empty():
    split = str.split
    vocab = {"red", "bird", "blue"}
    descs = parse_descriptions("A: red bird zzz\nB: blue bird")
    notes = vocabulary_notes(descs, split, vocab, max_words=5)
    assert notes == ["Words this run never saw in training are ignored: 'zzz'."]
    long = parse_descriptions("A: red red red bird bird blue\nB: blue")
    assert "longer than the 5 words" in vocabulary_notes(long, split, vocab, max_words=5)[0]
    with pytest.raises(ZeroShotInputError, match="no word of description 'Oiseau' is in this run's vocabulary"):
        vocabulary_notes(parse_descriptions("Oiseau: rouge é\nB: blue"), split, vocab)


# ---------------------------------------------------------------- images
def test_load_image_from_bytes_path_and_pil(tmp_path):
    data = _png_bytes()
    path = tmp_path / "x.png"
    path.write_bytes(data)
    for source in (data, path, str(path), PIL.Image.open(io.BytesIO(data))):
        image, notes = load_image(source)
        assert image.mode == "RGB" and image.size == (40, 30) and notes == []


def test_load_image_converts_transparency_and_16bit():
    rgba = PIL.Image.new("RGBA", (8, 8), (255, 0, 0, 0))  # fully transparent: white background
    image, _ = load_image(rgba)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    deep = PIL.Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    image, _ = load_image(deep)
    assert image.mode == "RGB" and image.getpixel((7, 7))[0] == 255


def test_load_image_downscales_huge_with_note():
    image, notes = load_image(PIL.Image.new("RGB", (4000, 1000)))
    assert max(image.size) == MAX_IMAGE_SIDE and image.size == (1024, 256)
    assert notes and "4000x1000" in notes[0] and "1024x256" in notes[0]


def test_load_image_big_jpeg_and_exif_rotation():
    photo = PIL.Image.new("RGB", (3000, 2000), (90, 20, 30))
    exif = photo.getexif()
    exif[0x0112] = 6  # stored sideways: shown rotated by 90 degrees
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", exif=exif.tobytes())
    image, notes = load_image(buf.getvalue())
    assert image.size == (683, 1024)
    assert notes == ["The image (2000x3000) was downscaled to 683x1024 before classification."]


def test_load_image_rejects_a_decompression_bomb():
    buf = io.BytesIO()
    PIL.Image.new("1", (14000, 13000)).save(buf, format="PNG")  # 182 Mpixel in a 22 kB file
    with pytest.raises(ZeroShotInputError, match="too large to decode safely"):
        load_image(buf.getvalue())


def test_load_image_rejects_non_image_truncated_and_missing(tmp_path):
    with pytest.raises(ZeroShotInputError, match="not an image this app can read"):
        load_image(b"hello, this is text")
    noisy = PIL.Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 300, 3), dtype=np.uint8))
    buf = io.BytesIO()
    noisy.save(buf, format="PNG")
    data = buf.getvalue()
    with pytest.raises(ZeroShotInputError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])
    with pytest.raises(ZeroShotInputError, match="does not exist"):
        load_image(tmp_path / "missing.png")


# ---------------------------------------------------------------- scoring oracles
def test_clarel_scores_match_a_naive_loop():
    rng = np.random.default_rng(0)
    img, txt = rng.normal(size=8), rng.normal(size=(5, 8))
    probs, dists = clarel_scores(img, txt)
    naive_d = [sum((txt[k, j] - img[j]) ** 2 for j in range(8)) ** 0.5 for k in range(5)]
    naive_p = np.exp(-np.array(naive_d)) / np.exp(-np.array(naive_d)).sum()
    np.testing.assert_allclose(dists, naive_d, rtol=1e-12)
    np.testing.assert_allclose(probs, naive_p, rtol=1e-12)
    # Large distances (CLAREL's are ~60) must not underflow to NaN.
    probs, _ = clarel_scores(img * 1000, txt)
    assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-12


def test_clip_scores_match_cosine_softmax():
    rng = np.random.default_rng(1)
    img, txt = rng.normal(size=6), rng.normal(size=(3, 6))
    probs = clip_scores(img, txt, logit_scale=100.0)
    cos = [txt[k] @ img / np.linalg.norm(txt[k]) / np.linalg.norm(img) for k in range(3)]
    expected = np.exp(100 * np.array(cos) - 100 * max(cos))
    np.testing.assert_allclose(probs, expected / expected.sum(), rtol=1e-10)


# ---------------------------------------------------------------- open_clip path
@pytest.fixture(scope="module")
def random_clip():
    return ZeroShotClassifier.from_open_clip("ViT-S-32", None)


def test_open_clip_random_init_classifies_and_caches(random_clip):
    calls = []
    embed = random_clip._backend.embed_texts

    def counting(texts):
        calls.append(list(texts))
        return embed(texts)

    random_clip._backend.embed_texts = counting
    try:
        image = PIL.Image.new("RGB", (64, 48), (10, 200, 30))
        pred = random_clip.classify(image, "Red: a red bird\nGreen: a green bird\na blue bird")
        assert pred.labels == ["Red", "Green", "a blue bird"]
        assert pred.descriptions == ["a red bird", "a green bird", "a blue bird"]
        assert pred.distances is None and random_clip.kind == "open_clip"
        assert pred.probabilities.shape == (3,) and abs(pred.probabilities.sum() - 1) < 1e-9
        again = random_clip.classify(image, ["a green bird", "a red bird", "a yellow bird"])
        # Only the new text is embedded the second time; scores of cached texts are unchanged.
        assert calls == [["a red bird", "a green bird", "a blue bird"], ["a yellow bird"]]
        direct = random_clip.embed_descriptions(["a red bird", "a green bird"])
        assert direct.shape[0] == 2
        np.testing.assert_allclose(
            again.probabilities[:2] / again.probabilities[:2].sum(),
            pred.probabilities[[1, 0]] / pred.probabilities[[1, 0]].sum(),
            rtol=1e-5,
        )
    finally:
        random_clip._backend.embed_texts = embed


def test_open_clip_missing_weights_fail_fast_with_instructions():
    with pytest.raises(WeightsUnavailableError) as info:
        ZeroShotClassifier.from_open_clip("ViT-B-32", "laion2b_s34b_b79k")
    message = str(info.value)
    assert "huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message
    with pytest.raises(WeightsUnavailableError, match="does not exist"):
        ZeroShotClassifier.from_open_clip("ViT-S-32", "/nonexistent/open_clip_model.safetensors")


def test_open_clip_unknown_names():
    with pytest.raises(ClarelError, match="unknown open_clip model 'ViT-Nope'"):
        ZeroShotClassifier.from_open_clip("ViT-Nope", None)
    with pytest.raises(ClarelError, match="laion2b_s34b_b79k"):
        ZeroShotClassifier.from_open_clip("ViT-B-32", "no-such-tag")


def test_clarel_does_not_import_ui_or_db_packages():
    code = (
        "import sys, clarel.zeroshot;"
        "bad = [m for m in ('gradio', 'streamlit', 'sqlalchemy', 'jobs', 'app') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
