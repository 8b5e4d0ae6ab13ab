"""Images from outside the generated domain, for held-out checks of the similar-photo labels.

The offline CLIP was trained on :mod:`kit.models.synth` scenes (shapes on textures with printed
words). These are drawn differently on purpose: plain colour fields (down to 8×8), logos (a word
in a ring or a badge), road signs (STOP octagon, yield triangle, arrow, speed limit) and objects
(car, house, tree, cup), each on a plain or photographic-noise background. :func:`variants` makes
the edits a user's copies go through, labelled with what `oskit similar` must call them:
recompression and resizing → ``identical`` (same picture, other bytes); crops, small rotations,
quarter turns and a brightness change → ``near-identical`` (the same picture, edited).
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont

__all__ = ["HeldoutImage", "heldout_images", "variants"]

_COLOURS = {"red": (220, 30, 35), "magenta": (230, 0, 200), "blue": (30, 70, 220), "green": (30, 160, 60),
            "yellow": (245, 210, 20), "orange": (250, 130, 20), "black": (15, 15, 15), "white": (245, 245, 245),
            "teal": (0, 140, 140), "brown": (120, 70, 30)}


@dataclass
class HeldoutImage:
    name: str
    kind: str  # field, logo, sign, object
    image: Image.Image


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _canvas(rng: random.Random, size: int) -> Image.Image:
    if rng.random() < 0.5:
        return Image.new("RGB", (size, size), tuple(rng.randrange(180, 256) for _ in range(3)))  # type: ignore[arg-type]
    # seeded noise (Image.effect_noise is not reproducible): the same seed gives the same bytes
    import numpy as np

    gen = np.random.default_rng(rng.randrange(2**32))
    grey = np.clip(128 + gen.normal(0, rng.uniform(20, 60), (size, size)), 0, 255).astype("uint8")
    noise = Image.fromarray(grey, "L").convert("RGB")
    tint = Image.new("RGB", (size, size), tuple(rng.randrange(60, 200) for _ in range(3)))  # type: ignore[arg-type]
    return Image.blend(noise, tint, 0.6).filter(ImageFilter.GaussianBlur(2))


def _poly(cx: float, cy: float, r: float, n: int, rot: float) -> list[tuple[float, float]]:
    return [(cx + r * math.cos(rot + 2 * math.pi * k / n), cy + r * math.sin(rot + 2 * math.pi * k / n))
            for k in range(n)]


def _sign(rng: random.Random, size: int, which: str) -> Image.Image:
    img = _canvas(rng, size)
    d = ImageDraw.Draw(img)
    c = size / 2
    if which == "stop":
        d.polygon(_poly(c, c, size * 0.4, 8, math.pi / 8), fill=_COLOURS["red"], outline="white", width=4)
        d.text((c, c), "STOP", fill="white", font=_font(size // 7), anchor="mm")
    elif which == "yield":
        d.polygon(_poly(c, c * 1.1, size * 0.42, 3, math.pi / 2), fill="white", outline=_COLOURS["red"], width=10)
    elif which == "arrow":
        d.rectangle((size * 0.1, size * 0.3, size * 0.9, size * 0.7), fill=_COLOURS["blue"])
        d.polygon([(size * 0.25, c), (size * 0.6, size * 0.38), (size * 0.6, size * 0.62)], fill="white")
        d.rectangle((size * 0.55, size * 0.45, size * 0.8, size * 0.55), fill="white")
    else:  # speed limit
        d.ellipse((size * 0.12, size * 0.12, size * 0.88, size * 0.88), fill="white", outline=_COLOURS["red"], width=12)
        d.text((c, c), str(rng.choice((30, 50, 70, 90))), fill="black", font=_font(size // 4), anchor="mm")
    d.rectangle((c - 4, size * 0.9, c + 4, size), fill=(90, 90, 90))
    return img


def _logo(rng: random.Random, size: int, word: str) -> Image.Image:
    colour = _COLOURS[rng.choice(list(_COLOURS))]
    img = Image.new("RGB", (size, size), "white" if rng.random() < 0.5 else (25, 25, 40))
    d = ImageDraw.Draw(img)
    if rng.random() < 0.5:
        d.ellipse((size * 0.15, size * 0.15, size * 0.85, size * 0.85), outline=colour, width=size // 16)
    else:
        d.rounded_rectangle((size * 0.1, size * 0.3, size * 0.9, size * 0.7), radius=size // 10, fill=colour)
    d.text((size / 2, size / 2), word, fill=(240, 240, 240) if colour != _COLOURS["white"] else "black",
           font=_font(size // 6), anchor="mm")
    return img


def _object(rng: random.Random, size: int, which: str) -> Image.Image:
    img = _canvas(rng, size)
    d = ImageDraw.Draw(img)
    col = _COLOURS[rng.choice(["red", "blue", "green", "yellow", "orange", "teal"])]
    s = size
    if which == "car":
        d.rectangle((s * 0.15, s * 0.5, s * 0.85, s * 0.68), fill=col)
        d.polygon([(s * 0.3, s * 0.5), (s * 0.38, s * 0.36), (s * 0.62, s * 0.36), (s * 0.7, s * 0.5)], fill=col)
        for x in (0.3, 0.7):
            d.ellipse((s * (x - 0.07), s * 0.62, s * (x + 0.07), s * 0.76), fill="black")
    elif which == "house":
        d.rectangle((s * 0.25, s * 0.45, s * 0.75, s * 0.85), fill=col)
        d.polygon([(s * 0.2, s * 0.45), (s * 0.5, s * 0.2), (s * 0.8, s * 0.45)], fill=(120, 40, 30))
        d.rectangle((s * 0.45, s * 0.65, s * 0.55, s * 0.85), fill=(60, 40, 20))
    elif which == "tree":
        d.rectangle((s * 0.46, s * 0.55, s * 0.54, s * 0.9), fill=(100, 60, 20))
        d.ellipse((s * 0.25, s * 0.15, s * 0.75, s * 0.62), fill=_COLOURS["green"])
    else:  # cup
        d.rectangle((s * 0.3, s * 0.35, s * 0.62, s * 0.8), fill=col)
        d.arc((s * 0.52, s * 0.42, s * 0.76, s * 0.68), 270, 90, fill=col, width=s // 20)
    return img


def heldout_images(seed: int = 0, *, size: int = 256) -> list[HeldoutImage]:
    """The held-out set: 10 plain fields (2 of them 8×8), 6 logos, 8 signs, 8 objects."""
    rng = random.Random(seed)
    out: list[HeldoutImage] = []
    for i, (name, rgb) in enumerate(_COLOURS.items()):
        side = 8 if i in (1, 4) else size
        out.append(HeldoutImage(f"field-{name}-{side}", "field", Image.new("RGB", (side, side), rgb)))
    for word in ("ACME", "NOVA", "ZEN", "KORU", "OSKIT", "LUMA"):
        out.append(HeldoutImage(f"logo-{word.lower()}", "logo", _logo(rng, size, word)))
    for which in ("stop", "yield", "arrow", "speed"):
        for k in range(2):
            out.append(HeldoutImage(f"sign-{which}-{k}", "sign", _sign(rng, size, which)))
    for which in ("car", "house", "tree", "cup"):
        for k in range(2):
            out.append(HeldoutImage(f"object-{which}-{k}", "object", _object(rng, size, which)))
    return out


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def variants(img: Image.Image, seed: int = 0) -> list[tuple[str, str, Image.Image]]:
    """``(edit, expected label, image)`` for one held-out image (see the module docstring)."""
    rng = random.Random(seed)
    w, h = img.size
    big = img if min(w, h) >= 64 else img.resize((256, 256), Image.Resampling.NEAREST)
    W, H = big.size
    out: list[tuple[str, str, Image.Image]] = [
        ("jpeg-q35", "identical", _jpeg(img, 35)),
        ("resize-half", "identical", big.resize((W // 2, H // 2), Image.Resampling.LANCZOS)),
    ]
    # a crop or quarter turn of a plain field is the same picture, pixel for pixel
    plain = all(lo == hi for lo, hi in big.convert("RGB").getextrema())
    edited = "identical" if plain else "near-identical"
    m = rng.uniform(0.08, 0.15)
    out.append(("crop", edited, big.crop((int(W * m), int(H * m), int(W * (1 - m)), int(H * (1 - m))))))
    out.append(("rotate-10", "near-identical", big.rotate(rng.choice((-10, 10)), resample=Image.Resampling.BILINEAR,
                                                           fillcolor=(128, 128, 128))))
    out.append(("rotate-90", edited, big.rotate(90, expand=True)))
    out.append(("brighter", "near-identical", ImageEnhance.Brightness(big).enhance(1.25)))
    return out
