"""SynthBirds captions: a small grammar with synonyms and several sentence shapes.

Each caption mentions 2-5 attributes chosen among those *visible* in the image, described as
they look (a juvenile's dull crown is called dull). With a small probability one mentioned value
is wrong, like an annotator's mistake; the generator records which. Captions never contain class
names or numbers.
"""

from __future__ import annotations

import random

from clarel.data._synth_species import ATTRIBUTES

MISTAKE_RATE = 0.04  # chance that one value in a caption is wrong

COLOUR_WORDS = {
    "red": ("red", "bright red", "crimson", "scarlet"),
    "orange": ("orange", "bright orange", "tangerine"),
    "yellow": ("yellow", "bright yellow", "lemon yellow"),
    "green": ("green", "bright green", "emerald"),
    "blue": ("blue", "bright blue", "cobalt blue"),
    "purple": ("purple", "violet"),
    "brown": ("brown", "dark brown", "chestnut"),
    "black": ("black", "jet black"),
    "white": ("white", "snowy white"),
    "grey": ("grey", "gray", "slate grey"),
    "pink": ("pink", "pinkish"),
}

# colour attribute -> (noun phrases with the colour as {c}, predicate subject, plural?)
_COLOUR_PARTS = {
    "crown_color": (("a {c} crown", "a {c} head", "a {c} cap", "a {c} crown patch"),
                    ("crown", "head", "top of its head"), False),
    "wing_color": (("{c} wings", "{c} wing feathers", "{c} secondaries"), ("wings", "wing feathers"), True),
    "breast_color": (("a {c} breast", "a {c} chest", "{c} breast feathers"), ("breast", "chest"), False),
    "belly_color": (("a {c} belly", "a {c} abdomen", "a {c} underbelly"), ("belly", "abdomen"), False),
    "tail_color": (("a {c} tail", "{c} tail feathers", "{c} rectrices"), ("tail", "tail feathers"), False),
    "beak_color": (("a {c} beak", "a {c} bill"), ("beak", "bill"), False),
    "leg_color": (("{c} legs", "{c} feet", "{c} tarsi"), ("legs", "feet"), True),
}

_WORDS = {
    "wing_pattern": {
        "solid": ("plain wings", "solid coloured wings", "unmarked wings"),
        "barred": ("barred wings", "striped wings", "wings with bars", "wingbars"),
        "spotted": ("spotted wings", "speckled wings", "wings with spots"),
    },
    "tail_shape": {
        "forked": ("a forked tail", "a split tail", "a deeply forked tail"),
        "rounded": ("a rounded tail", "a fan shaped tail", "a round tail"),
        "pointed": ("a pointed tail", "a pointy tail", "a long pointed tail"),
        "square": ("a square tail", "a straight-edged tail", "a blunt tail"),
    },
    "eye_ring": {
        "yes": ("a white eye ring", "a white ring around its eye", "a white eyering"),
        "no": ("no eye ring", "no ring around the eye", "plain eyes"),
    },
}
_BEAK_SHAPE = {"conical": ("cone-shaped", "conical", "thick"), "pointed": ("pointed", "thin", "sharp"),
               "hooked": ("hooked", "curved", "hook-tipped")}
_BEAK_LENGTH = {"short": ("short", "stubby", "small"), "long": ("long", "elongated")}
_SIZE = {"small": ("small", "tiny", "little"), "medium": ("medium sized", "medium-sized", "average sized"),
         "large": ("large", "big", "very large")}
_SUBJECT = ("this {s}bird", "the {s}bird", "this particular {s}bird")


def _join(parts: list[str], rng: random.Random) -> str:
    if len(parts) == 1:
        return parts[0]
    conj = " and " if rng.random() < 0.85 else " as well as "
    return ", ".join(parts[:-1]) + conj + parts[-1]


def _phrases(rng: random.Random, said: dict[str, str]) -> list[tuple[str, str | None]]:
    """Noun phrases for the mentioned attributes (size excluded): (phrase, predicate-or-None)."""
    out: list[tuple[str, str | None]] = []
    done: set[str] = set()
    # A breast and belly of one colour read better together.
    if said.get("breast_color") and said.get("breast_color") == said.get("belly_color") and rng.random() < 0.7:
        c = rng.choice(COLOUR_WORDS[said["breast_color"]])
        out.append((f"a {c} {rng.choice(('breast and belly', 'chest and belly', 'underside'))}", None))
        done |= {"breast_color", "belly_color"}
    if any(k in said for k in ("beak_shape", "beak_length")):
        words = []
        if "beak_length" in said:
            words.append(rng.choice(_BEAK_LENGTH[said["beak_length"]]))
        if "beak_color" in said:
            words.append(rng.choice(COLOUR_WORDS[said["beak_color"]]))
            done.add("beak_color")
        if "beak_shape" in said:
            words.append(rng.choice(_BEAK_SHAPE[said["beak_shape"]]))
        noun = rng.choice(("beak", "bill"))
        article = "an" if words[0][0] in "aeiou" else "a"
        out.append((f"{article} {' '.join(words)} {noun}", None))
        done |= {"beak_shape", "beak_length"}
    if "tail_shape" in said and "tail_color" in said and rng.random() < 0.6:
        shape = rng.choice(_WORDS["tail_shape"][said["tail_shape"]]).split(" ", 1)[1]
        c = rng.choice(COLOUR_WORDS[said["tail_color"]])
        out.append((f"a {c} {shape}", None))
        done |= {"tail_shape", "tail_color"}
    for attr, value in said.items():
        if attr in done or attr == "size":
            continue
        if attr in _COLOUR_PARTS:
            nps, subjects, plural = _COLOUR_PARTS[attr]
            c = rng.choice(COLOUR_WORDS[value])
            pred = f"its {rng.choice(subjects)} {'are' if plural else 'is'} {c}"
            out.append((rng.choice(nps).format(c=c), pred))
        else:
            out.append((rng.choice(_WORDS[attr][value]), None))
    rng.shuffle(out)
    return out


def caption(rng: random.Random, said: dict[str, str]) -> str:
    """One caption mentioning exactly the attributes in ``said`` (values as written)."""
    size = said.get("size")
    s = rng.choice(_SIZE[size]) + " " if size else ""
    phrases = _phrases(rng, said)
    nps = [p for p, _ in phrases]
    subject = rng.choice(_SUBJECT).format(s=s)
    shape = rng.randrange(8)
    preds = [i for i, (_, pred) in enumerate(phrases) if pred]
    if shape == 0 or not nps:
        text = f"{subject} has {_join(nps, rng)}" if nps else f"this is a {s}bird"
    elif shape == 1:
        text = f"a {s}bird with {_join(nps, rng)}"
    elif shape == 2:
        text = f"this is a {s}bird with {_join(nps, rng)}"
    elif shape == 3 and preds and len(nps) > 1:
        i = preds[0]
        rest = [p for j, p in enumerate(nps) if j != i]
        text = f"{subject} has {_join(rest, rng)}, and {phrases[i][1]}"
    elif shape == 4 and preds and len(nps) > 1:
        i = preds[-1]
        rest = [p for j, p in enumerate(nps) if j != i]
        text = f"{phrases[i][1].replace('its ', 'the ', 1)} and this {s}bird has {_join(rest, rng)}"
    elif shape == 5:
        text = f"a {s}bird that has {_join(nps, rng)}"
    elif shape == 6:
        text = f"{_join(nps, rng)} on this {s}bird" if len(nps) > 1 else f"{subject} has {nps[0]}"
    else:
        text = f"{s}bird with {_join(nps, rng)}" if s else f"{subject} has {_join(nps, rng)}"
    text = " ".join(text.split())
    return text + ("." if rng.random() < 0.8 else "")


def image_captions(rng: random.Random, visible: dict[str, str], n: int = 10) -> tuple[list[str], list[dict]]:
    """``n`` captions of one image and, for each, what it says (``{"said": {...}, "mistake": attr|None}``)."""
    attrs = list(visible)
    texts, notes = [], []
    for _ in range(n):
        k = rng.randint(2, min(5, len(attrs)))
        chosen = rng.sample(attrs, k)
        said = {a: visible[a] for a in chosen}
        mistake = None
        if rng.random() < MISTAKE_RATE:
            mistake = rng.choice(chosen)
            said[mistake] = rng.choice([v for v in ATTRIBUTES[mistake] if v != said[mistake]])
        texts.append(caption(rng, said))
        notes.append({"said": said, "mistake": mistake})
    return texts, notes


def value_words(attr: str, value: str) -> tuple[str, ...]:
    """The words a caption may use for ``attr = value`` (one of them appears whenever it is mentioned)."""
    if attr in _COLOUR_PARTS:
        return COLOUR_WORDS[value]
    if attr == "beak_shape":
        return _BEAK_SHAPE[value]
    if attr == "beak_length":
        return _BEAK_LENGTH[value]
    if attr == "size":
        return _SIZE[value]
    return tuple(p.split(" ", 1)[1] if p.startswith(("a ", "an ")) else p for p in _WORDS[attr][value])
