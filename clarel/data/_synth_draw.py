"""Drawing one SynthBirds image with Pillow.

The bird is drawn facing right in a unit square (body, breast, belly, wing, head, crown, eye,
beak, tail, legs), on its own transparent layer at twice the output resolution; then an optional
leaf cluster hides one part, and the layer is flipped, rotated, scaled and pasted on a random
background. Lighting changes brightness and tint a little, never enough to change a colour name.
"""

from __future__ import annotations

import math
import random

from PIL import Image, ImageDraw, ImageEnhance

RGB = {
    "red": (205, 30, 35), "orange": (240, 130, 20), "yellow": (245, 215, 40),
    "green": (55, 165, 60), "blue": (40, 90, 215), "purple": (135, 50, 165),
    "brown": (125, 78, 38), "black": (28, 28, 28), "white": (242, 242, 242),
    "grey": (135, 135, 140), "pink": (235, 150, 165),
}

_BACKGROUNDS = ("sky", "foliage", "ground", "overcast", "dusk")


def _jitter(rng: random.Random, colour: tuple[int, int, int], amount: int = 14) -> tuple[int, int, int]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in colour)  # type: ignore[return-value]


def _background(rng: random.Random, w: int) -> Image.Image:
    kind = rng.choice(_BACKGROUNDS)
    top, bottom = {
        "sky": ((120, 170, 235), (200, 225, 250)),
        "foliage": ((40, 95, 45), (95, 140, 70)),
        "ground": ((170, 150, 110), (110, 90, 60)),
        "overcast": ((175, 178, 185), (215, 215, 220)),
        "dusk": ((230, 150, 120), (250, 205, 150)),
    }[kind]
    top, bottom = _jitter(rng, top, 25), _jitter(rng, bottom, 25)
    # A vertical gradient from a 1-pixel-wide strip (cheap), then soft blobs as clutter.
    strip = Image.new("RGB", (1, 2))
    strip.putpixel((0, 0), top)
    strip.putpixel((0, 1), bottom)
    img = strip.resize((w, w), Image.BILINEAR)
    draw = ImageDraw.Draw(img)
    for _ in range(rng.randint(2, 6)):
        x, y, r = rng.random() * w, rng.random() * w, (0.05 + 0.15 * rng.random()) * w
        base = bottom if rng.random() < 0.5 else top
        draw.ellipse((x - r, y - r * 0.7, x + r, y + r * 0.7), fill=_jitter(rng, base, 30))
    return img


def _ellipse_points(cx: float, cy: float, rx: float, ry: float, tilt_deg: float, n: int = 24) -> list:
    t = math.radians(tilt_deg)
    pts = []
    for k in range(n):
        a = 2 * math.pi * k / n
        x, y = rx * math.cos(a), ry * math.sin(a)
        pts.append((cx + x * math.cos(t) - y * math.sin(t), cy + x * math.sin(t) + y * math.cos(t)))
    return pts


def _contrast(colour: str) -> tuple[int, int, int]:
    r, g, b = RGB[colour]
    return (25, 25, 25) if 0.3 * r + 0.6 * g + 0.1 * b > 120 else (240, 240, 240)


def draw_bird(rng: random.Random, look: dict[str, str], pose: dict, size: int) -> Image.Image:
    """Render one image.

    Args:
        look: attribute -> value as this individual looks (plumage variant already applied).
        pose: ``flying`` (bool), ``flip`` (bool), ``angle`` (deg), ``scale``, ``dx``, ``dy``
            (fractions of the image), ``occluder`` (part name or None), ``light`` (factor).
        size: output side in pixels.
    """
    w = size * 2 if size <= 112 else size
    layer = Image.new("RGBA", (w, w), (0, 0, 0, 0))
    d = ImageDraw.Draw(layer)

    def box(cx: float, cy: float, rx: float, ry: float) -> tuple[float, float, float, float]:
        return ((cx - rx) * w, (cy - ry) * w, (cx + rx) * w, (cy + ry) * w)

    def poly(pts: list) -> list:
        return [(x * w, y * w) for x, y in pts]

    def col(name: str) -> tuple[int, int, int]:
        return _jitter(rng, RGB[name], 10)

    flying = pose["flying"]
    if not flying:  # perch branch behind the feet
        y = 0.84 + rng.uniform(-0.01, 0.01)
        d.line([(0.0, y * w), (w, (y + rng.uniform(-0.05, 0.05)) * w)], fill=_jitter(rng, (95, 65, 35), 15),
               width=max(2, int(0.035 * w)))
        # legs and toes
        lc = col(look["leg_color"])
        lw = max(1, int(0.02 * w))
        for x0 in (0.43, 0.50):
            d.line(poly([(x0, 0.68), (x0 - 0.02, 0.84)]), fill=lc, width=lw)
            d.line(poly([(x0 - 0.02, 0.84), (x0 + 0.03, 0.845)]), fill=lc, width=lw)

    # tail (behind the body)
    tc = col(look["tail_color"])
    shape = look["tail_shape"]
    if shape == "forked":
        pts = [(0.27, 0.52), (0.05, 0.45), (0.14, 0.57), (0.05, 0.69), (0.27, 0.61)]
    elif shape == "rounded":
        d.polygon(poly(_ellipse_points(0.15, 0.58, 0.12, 0.085, 10)), fill=tc)
        pts = [(0.27, 0.52), (0.15, 0.52), (0.15, 0.64), (0.27, 0.61)]
    elif shape == "pointed":
        pts = [(0.27, 0.51), (0.02, 0.61), (0.27, 0.62)]
    else:  # square
        pts = [(0.27, 0.52), (0.07, 0.48), (0.07, 0.68), (0.27, 0.61)]
    d.polygon(poly(pts), fill=tc)

    # body: belly colour everywhere, the breast as a chord over the front
    body = box(0.46, 0.56, 0.22, 0.15)
    d.ellipse(body, fill=col(look["belly_color"]))
    d.chord(body, start=-55, end=105, fill=col(look["breast_color"]))

    # wing with its pattern
    wc_name = look["wing_color"]
    wc, mark = col(wc_name), _contrast(wc_name)
    if flying:
        wing = [(0.30, 0.52), (0.22, 0.16), (0.36, 0.10), (0.56, 0.50)]
        d.polygon(poly(wing), fill=wc)
        # bars across the raised wing, between its left and right edges at three heights
        stripes = [((0.24 + (y - 0.16) * 0.22, y), (0.34 + (y - 0.10) * 0.5, y)) for y in (0.22, 0.30, 0.38)]
        spots = [(0.30, 0.22), (0.36, 0.30), (0.42, 0.40), (0.33, 0.40), (0.30, 0.32)]
    else:
        d.polygon(poly(_ellipse_points(0.40, 0.52, 0.18, 0.09, -12)), fill=wc)
        stripes = [((0.30 + 0.07 * k, 0.45 - 0.005 * k), (0.26 + 0.07 * k, 0.60 - 0.01 * k)) for k in range(3)]
        spots = [(0.30, 0.52), (0.37, 0.48), (0.44, 0.50), (0.36, 0.56), (0.48, 0.46)]
    if look["wing_pattern"] == "barred":
        for a, b in stripes:
            d.line(poly([a, b]), fill=mark, width=max(1, int(0.022 * w)))
    elif look["wing_pattern"] == "spotted":
        for x, y in spots:
            d.ellipse(box(x, y, 0.018, 0.018), fill=mark)

    # head (face takes the breast colour), crown cap, eye and eye ring
    head = box(0.70, 0.38, 0.115, 0.115)
    d.ellipse(head, fill=col(look["breast_color"]))
    d.chord(head, start=185, end=355, fill=col(look["crown_color"]))
    if look["eye_ring"] == "yes":
        d.ellipse(box(0.74, 0.385, 0.034, 0.034), fill=(250, 250, 250))
    d.ellipse(box(0.74, 0.385, 0.018, 0.018), fill=(10, 10, 10))

    # beak
    bc = col(look["beak_color"])
    long_ = look["beak_length"] == "long"
    x0 = 0.80
    if look["beak_shape"] == "conical":
        n = 0.11 if long_ else 0.06
        pts = [(x0, 0.345), (x0 + n, 0.39), (x0, 0.43)]
    elif look["beak_shape"] == "pointed":
        n = 0.17 if long_ else 0.09
        pts = [(x0, 0.37), (x0 + n, 0.395), (x0, 0.41)]
    else:  # hooked
        n = 0.12 if long_ else 0.07
        pts = [(x0, 0.35), (x0 + n, 0.37), (x0 + n + 0.015, 0.42), (x0 + n - 0.02, 0.395), (x0, 0.425)]
    d.polygon(poly(pts), fill=bc)

    # a leaf cluster in front of one part
    occ = pose["occluder"]
    if occ:
        cx, cy, r = {"head": (0.73, 0.38, 0.17), "wing": (0.38, 0.48, 0.15),
                     "tail": (0.13, 0.57, 0.15), "lower": (0.42, 0.74, 0.15)}[occ]
        for _ in range(9):
            lx, ly = cx + rng.uniform(-r, r) * 0.6, cy + rng.uniform(-r, r) * 0.6
            leaf = _jitter(rng, (34, 80, 36), 15) if rng.random() < 0.8 else _jitter(rng, (90, 70, 40), 15)
            d.polygon(poly(_ellipse_points(lx, ly, r * 0.55, r * 0.3, rng.uniform(0, 180), 12)), fill=leaf)
        d.ellipse(box(cx, cy, r * 0.8, r * 0.8), fill=_jitter(rng, (34, 80, 36), 10))

    if pose["flip"]:
        layer = layer.transpose(Image.FLIP_LEFT_RIGHT)
    layer = layer.rotate(pose["angle"], resample=Image.BICUBIC)
    side = max(8, int(w * pose["scale"]))
    layer = layer.resize((side, side), Image.BILINEAR)

    img = _background(rng, w)
    px = int((w - side) / 2 + pose["dx"] * w)
    py = int((w - side) / 2 + pose["dy"] * w)
    img.paste(layer, (px, py), layer)

    img = ImageEnhance.Brightness(img).enhance(pose["light"])
    tint = Image.new("RGB", (w, w), _jitter(rng, (128, 128, 128), 60))
    img = Image.blend(img, tint, 0.06)
    if w != size:
        img = img.resize((size, size), Image.BILINEAR)
    return img
