"""A deterministic generator of synthetic images with captions, for the offline CLIP.

Every image is a *scene* drawn with Pillow from a seed: 1–3 objects (shape, colour, size, texture,
position on a 3×3 grid), a background (colour + texture), sometimes a sign with a word and
sometimes a printed serial-number label. The caption is built from the same attributes, so the
attributes are the ground truth for training, for the demo's metadata and for evaluation.

Public pieces:

* :data:`VOCABULARY` — the attribute lists (also the tag vocabulary of the model server).
* :func:`make_scene` / :func:`render` / :func:`caption` — one scene, its pixels, its caption.
* :func:`phone_photo` — a simulated phone photo of a picture (crop, rotation, perspective, blur,
  brightness, JPEG quality 30), for the similar-photo evaluation and for training augmentation.
* :func:`make_eval_set` / :func:`write_eval_set` — the held-out evaluation set: images, metadata
  and queries with the ids of the relevant images (format in :func:`make_eval_set`).

Determinism: everything goes through :class:`random.Random` seeded with integers and Pillow's
built-in font (``ImageFont.load_default(size=...)``), so the same seed gives the same pixels on any
machine with the same Pillow.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "BACKGROUND_COLOURS",
    "COLOURS",
    "EvalSet",
    "GENERATOR_VERSION",
    "POSITIONS",
    "SHAPES",
    "SIZES",
    "TEXTURES",
    "VOCABULARY",
    "WORDS",
    "Scene",
    "SceneObject",
    "caption",
    "caption_spec",
    "caption_variants",
    "make_eval_set",
    "make_scene",
    "matches",
    "phone_photo",
    "render",
    "scene_tags",
    "write_eval_set",
]

GENERATOR_VERSION = 1

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "diamond", "cross", "heart")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 35),
    "orange": (245, 135, 20),
    "yellow": (245, 215, 40),
    "green": (40, 160, 60),
    "blue": (35, 75, 215),
    "purple": (130, 50, 170),
    "pink": (245, 130, 190),
    "brown": (120, 75, 35),
    "black": (20, 20, 20),
    "white": (245, 245, 245),
}
# Backgrounds use a subset so a background never looks like one big object.
BACKGROUND_COLOURS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "gray": (140, 140, 140),
    "black": (20, 20, 20),
    "beige": (225, 205, 165),
    "blue": (35, 75, 215),
    "green": (40, 160, 60),
}
SIZES: dict[str, float] = {"small": 0.25, "medium": 0.35, "large": 0.46}  # radius as a share of a grid cell
TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted", "checked")
POSITIONS: tuple[str, ...] = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
WORDS: tuple[str, ...] = (
    "SALE", "OPEN", "STOP", "EXIT", "HOTEL", "CAFE", "TAXI", "PIZZA", "BOOK", "MUSIC",
    "PARK", "BANK", "SHOP", "FOOD", "GAME", "MILK", "FISH", "BIKE", "RAIN", "GOLD",
)
ROWS: tuple[str, ...] = ("top", "middle", "bottom")

#: Attribute lists; the model server's tag vocabulary is the union of these words.
VOCABULARY: dict[str, list[str]] = {
    "shapes": list(SHAPES),
    "colours": list(COLOURS),
    "background_colours": list(BACKGROUND_COLOURS),
    "sizes": list(SIZES),
    "textures": list(TEXTURES),
    "positions": list(POSITIONS),
    "words": [w.lower() for w in WORDS],
}

@dataclass(frozen=True)
class SceneObject:
    shape: str
    colour: str
    size: str
    texture: str
    position: str
    # drawing details (fractions of the image side), kept so render() needs no randomness
    cx: float
    cy: float
    angle: float


@dataclass(frozen=True)
class Scene:
    id: str
    seed: int
    background: str
    background_texture: str
    objects: tuple[SceneObject, ...]
    word: str | None = None
    word_row: str | None = None
    word_plate: str = "white"
    serial: str | None = None
    serial_row: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        """JSON-ready attributes (the demo's metadata and the evaluation ground truth)."""
        d = asdict(self)
        d.pop("extra")
        d["objects"] = [
            {k: v for k, v in asdict(o).items() if k not in ("cx", "cy", "angle")} for o in self.objects
        ]
        d["caption"] = caption(self)
        d["tags"] = scene_tags(self)
        d["generator_version"] = GENERATOR_VERSION
        return d


# --------------------------------------------------------------------------------------------
# scenes


def _serial(rng: random.Random) -> str:
    letters = "ABCDEFGHJKLMNPRSTUVWXYZ"
    return f"SN {rng.randint(1000, 9999)}-{rng.choice(letters)}{rng.choice(letters)}"


def make_scene(seed: int, *, scene_id: str | None = None) -> Scene:
    """The scene for ``seed`` (pure function of the seed)."""
    rng = random.Random(seed)
    bg = rng.choice(list(BACKGROUND_COLOURS))
    bg_tex = rng.choices(TEXTURES, weights=(4, 2, 2, 2))[0]
    rows = list(ROWS)
    word = word_row = serial = serial_row = None
    plate = "white"
    if rng.random() < 0.4:
        word = rng.choice(WORDS)
        word_row = rng.choice(rows)
        rows.remove(word_row)
        plate = rng.choice(("white", "black"))
    if rng.random() < 0.2:
        serial = _serial(rng)
        serial_row = rng.choice(rows)
        rows.remove(serial_row)
    cells = [p for i, p in enumerate(POSITIONS) if ROWS[i // 3] in rows]
    n = rng.choices((1, 2, 3), weights=(3, 4, 3))[0]
    n = min(n, len(cells))
    chosen_cells = rng.sample(cells, n)
    objects: list[SceneObject] = []
    for pos in sorted(chosen_cells, key=POSITIONS.index):
        colour = rng.choice([c for c in COLOURS if c != bg])
        size = rng.choice(list(SIZES))
        idx = POSITIONS.index(pos)
        r = SIZES[size]
        slack = max(0.0, 0.5 - r) * 0.6  # jitter inside the cell without leaving it
        cx = (idx % 3 + 0.5 + rng.uniform(-slack, slack)) / 3
        cy = (idx // 3 + 0.5 + rng.uniform(-slack, slack)) / 3
        objects.append(
            SceneObject(
                shape=rng.choice(SHAPES),
                colour=colour,
                size=size,
                texture=rng.choices(TEXTURES, weights=(5, 2, 2, 2))[0],
                position=pos,
                cx=round(cx, 4),
                cy=round(cy, 4),
                angle=round(rng.uniform(-15, 15), 2),
            )
        )
    return Scene(
        id=scene_id or f"synth-{seed}",
        seed=seed,
        background=bg,
        background_texture=bg_tex,
        objects=tuple(objects),
        word=word,
        word_row=word_row,
        word_plate=plate,
        serial=serial,
        serial_row=serial_row,
    )


# --------------------------------------------------------------------------------------------
# drawing


def _shape_points(shape: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    def rot(pts: Iterable[tuple[float, float]]) -> list[tuple[float, float]]:
        a = math.radians(angle)
        ca, sa = math.cos(a), math.sin(a)
        return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in pts]

    def regular(k: int, start: float, rad: float = r) -> list[tuple[float, float]]:
        return [
            (rad * math.cos(start + 2 * math.pi * i / k), rad * math.sin(start + 2 * math.pi * i / k))
            for i in range(k)
        ]

    if shape == "square":
        s = r * 0.85
        return rot([(-s, -s), (s, -s), (s, s), (-s, s)])
    if shape == "triangle":
        return rot([(0.0, -r), (r * 0.95, r * 0.75), (-r * 0.95, r * 0.75)])
    if shape == "hexagon":
        return rot(regular(6, 0.0))
    if shape == "diamond":
        return rot([(0.0, -r), (r * 0.7, 0.0), (0.0, r), (-r * 0.7, 0.0)])
    if shape == "star":
        pts = []
        for i in range(10):
            rad = r if i % 2 == 0 else r * 0.42
            t = -math.pi / 2 + math.pi * i / 5
            pts.append((rad * math.cos(t), rad * math.sin(t)))
        return rot(pts)
    if shape == "cross":
        a, b = r * 0.32, r * 0.95
        return rot([(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b),
                    (-a, a), (-b, a), (-b, -a), (-a, -a)])
    if shape == "heart":
        pts = []
        for i in range(40):
            t = 2 * math.pi * i / 40
            x = 16 * math.sin(t) ** 3
            y = -(13 * math.cos(t) - 5 * math.cos(2 * t) - 2 * math.cos(3 * t) - math.cos(4 * t))
            pts.append((x * r / 17, y * r / 17 + r * 0.05))
        return rot(pts)
    raise ValueError(shape)


def _contrast(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    lum = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return (25, 25, 25) if lum > 150 else (240, 240, 240)


def _texture(size: tuple[int, int], base: tuple[int, int, int], texture: str, period: int) -> Image.Image:
    img = Image.new("RGB", size, base)
    if texture == "plain":
        return img
    other = _contrast(base)
    d = ImageDraw.Draw(img)
    w, h = size
    period = max(4, period)
    if texture == "striped":  # diagonal stripes
        half = max(2, period // 2)
        for k in range(-h, w + h, period):
            d.polygon([(k, 0), (k + half, 0), (k + half - h, h), (k - h, h)], fill=other)
    elif texture == "dotted":
        rad = max(1, period // 4)
        for y in range(period // 2, h, period):
            for x in range(period // 2, w, period):
                d.ellipse([x - rad, y - rad, x + rad, y + rad], fill=other)
    elif texture == "checked":
        for y in range(0, h, period):
            for x in range(0, w, period):
                if (x // period + y // period) % 2:
                    d.rectangle([x, y, x + period - 1, y + period - 1], fill=other)
    else:
        raise ValueError(texture)
    return img


def _fit_font(text: str, max_w: float, max_h: float) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    size = max(8, int(max_h))
    while size > 8:
        font = ImageFont.load_default(size=size)
        x0, y0, x1, y1 = font.getbbox(text)
        if x1 - x0 <= max_w and y1 - y0 <= max_h:
            return font
        size = int(size * 0.9)
    return ImageFont.load_default(size=8)


def render(scene: Scene, size: int = 256) -> Image.Image:
    """Draw ``scene`` as an RGB image of ``size``×``size`` pixels."""
    S = size
    img = _texture((S, S), BACKGROUND_COLOURS[scene.background], scene.background_texture, S // 12)
    cell = S / 3
    for o in scene.objects:
        r = SIZES[o.size] * cell
        cx, cy = o.cx * S, o.cy * S
        x0, y0 = int(cx - r) - 2, int(cy - r) - 2
        box = (x0, y0, int(cx + r) + 3, int(cy + r) + 3)
        bw, bh = box[2] - box[0], box[3] - box[1]
        mask = Image.new("L", (bw, bh), 0)
        md = ImageDraw.Draw(mask)
        lx, ly = cx - x0, cy - y0
        if o.shape == "circle":
            md.ellipse([lx - r, ly - r, lx + r, ly + r], fill=255)
        else:
            md.polygon(_shape_points(o.shape, lx, ly, r, o.angle), fill=255)
        fill = _texture((bw, bh), COLOURS[o.colour], o.texture, max(4, int(r / 2.5)))
        img.paste(fill, box[:2], mask)
        if o.shape == "circle":  # a thin rim: white, or a contrasting one around white circles
            rim = _contrast(BACKGROUND_COLOURS[scene.background]) if o.colour == "white" else (255, 255, 255)
            ImageDraw.Draw(img).ellipse([cx - r, cy - r, cx + r, cy + r], outline=rim, width=max(1, S // 128))
    d = ImageDraw.Draw(img)
    if scene.word and scene.word_row:
        row = ROWS.index(scene.word_row)
        plate = (245, 245, 245) if scene.word_plate == "white" else (20, 20, 20)
        ink = _contrast(plate)
        top, bottom = row * cell + cell * 0.12, (row + 1) * cell - cell * 0.12
        d.rectangle([S * 0.06, top, S * 0.94, bottom], fill=plate, outline=ink, width=max(1, S // 128))
        font = _fit_font(scene.word, S * 0.8, (bottom - top) * 0.72)
        d.text((S / 2, (top + bottom) / 2), scene.word, fill=ink, font=font, anchor="mm")
    if scene.serial and scene.serial_row:
        row = ROWS.index(scene.serial_row)
        top, bottom = row * cell + cell * 0.25, (row + 1) * cell - cell * 0.25
        d.rectangle([S * 0.1, top, S * 0.9, bottom], fill=(250, 250, 250), outline=(20, 20, 20), width=1)
        font = _fit_font(scene.serial, S * 0.74, (bottom - top) * 0.7)
        d.text((S / 2, (top + bottom) / 2), scene.serial, fill=(15, 15, 15), font=font, anchor="mm")
    return img


# --------------------------------------------------------------------------------------------
# captions


def _describe(o: SceneObject, *, with_size: bool = True, with_texture: bool = True) -> str:
    parts = ["a"]
    if with_size:
        parts.append(o.size)
    if with_texture and o.texture != "plain":
        parts.append(o.texture)
    parts += [o.colour, o.shape]
    text = " ".join(parts)
    return text.replace("a orange", "an orange")


def _join(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _background(scene: Scene) -> str:
    tex = "" if scene.background_texture == "plain" else scene.background_texture + " "
    return f"on a {tex}{scene.background} background"


def caption(scene: Scene) -> str:
    """The canonical caption, e.g. 'a large red circle and a small striped blue square on a white
    background with the word SALE'."""
    text = _join([_describe(o) for o in scene.objects]) + " " + _background(scene)
    extras = []
    if scene.word:
        extras.append(f"the word {scene.word}")
    if scene.serial:
        extras.append("a serial number label")
    if extras:
        text += " with " + " and ".join(extras)
    return text


def scene_tags(scene: Scene) -> list[str]:
    """Attribute words present in the scene, from :data:`VOCABULARY` (sorted, unique)."""
    tags: set[str] = set()
    for o in scene.objects:
        tags.update((o.shape, o.colour, o.size))
        if o.texture != "plain":
            tags.add(o.texture)
    if scene.word:
        tags.add(scene.word.lower())
    return sorted(tags)


def _obj_spec(o: SceneObject, *, with_size: bool = True, with_texture: bool = True,
              with_position: bool = False) -> dict[str, str]:
    spec = {"colour": o.colour, "shape": o.shape}
    if with_size:
        spec["size"] = o.size
    if with_texture:
        spec["texture"] = o.texture
    if with_position:
        spec["position"] = o.position
    return spec


def caption_spec(scene: Scene) -> dict[str, Any]:
    """The matching rule of the canonical caption (see :func:`matches`)."""
    return {
        "objects": [_obj_spec(o) for o in scene.objects],
        "n_objects": len(scene.objects),
        "background": scene.background,
        "background_texture": scene.background_texture,
        "word": scene.word,
        "serial": scene.serial is not None,
    }


def caption_variants(scene: Scene, rng: random.Random) -> tuple[str, dict[str, Any]]:
    """A random training caption and its matching rule: the canonical caption, a reordered or
    partial one (with positions), or a short query (one attribute, one object, the word), so that
    single-word queries work too. The rule tells which other scenes the text also describes."""
    k = rng.random()
    objs = list(scene.objects)
    if k < 0.35:
        return caption(scene), caption_spec(scene)
    if k < 0.5:  # reordered, positions, optional parts
        rng.shuffle(objs)
        descs, specs = [], []
        for o in objs:
            ws, wt, wp = rng.random() < 0.7, rng.random() < 0.8, rng.random() < 0.5
            d = _describe(o, with_size=ws, with_texture=wt)
            if wp:
                d += f" at the {o.position}" if o.position != "center" else " in the center"
            descs.append(d)
            specs.append(_obj_spec(o, with_size=ws, with_texture=wt, with_position=wp))
        spec: dict[str, Any] = {"objects": specs, "n_objects": len(objs)}
        text = ("a photo of " if rng.random() < 0.3 else "") + _join(descs)
        if rng.random() < 0.6:
            text += " " + _background(scene)
            spec["background"] = scene.background
            spec["background_texture"] = scene.background_texture
        if scene.word and rng.random() < 0.8:
            text += f" with the word {scene.word}"
            spec["word"] = scene.word
        if scene.serial and rng.random() < 0.5:
            text += " with a serial number label"
            spec["serial"] = True
        return text, spec
    # short queries
    o = rng.choice(objs)
    options: list[tuple[str, dict[str, Any]]] = [
        (o.colour, {"objects": [{"colour": o.colour}]}),
        # shapes are the hardest attribute to see at the model's input size: ask for them more
        (o.shape, {"objects": [{"shape": o.shape}]}),
        (o.shape, {"objects": [{"shape": o.shape}]}),
        (f"a {o.shape}", {"objects": [{"shape": o.shape}]}),
        (f"{o.colour} {o.shape}", {"objects": [{"colour": o.colour, "shape": o.shape}]}),
        (f"a {o.colour} {o.shape}", {"objects": [{"colour": o.colour, "shape": o.shape}]}),
        (_describe(o), {"objects": [_obj_spec(o)]}),
        (f"{o.size} {o.shape}", {"objects": [{"size": o.size, "shape": o.shape}]}),
    ]
    if o.texture != "plain":
        options += [
            (o.texture, {"objects": [{"texture": o.texture}]}),
            (f"{o.texture} {o.shape}", {"objects": [{"texture": o.texture, "shape": o.shape}]}),
            (f"{o.texture} {o.colour} {o.shape}",
             {"objects": [{"texture": o.texture, "colour": o.colour, "shape": o.shape}]}),
        ]
    if scene.background_texture != "plain":
        options.append((f"{scene.background_texture} background",
                        {"background_texture": scene.background_texture}))
    options.append((f"{scene.background} background", {"background": scene.background}))
    if scene.word:
        w = scene.word
        options += [(w, {"word": w}), (w.lower(), {"word": w}), (f"the word {w}", {"word": w}),
                    (f"a sign that says {w}", {"word": w})] * 3
    if scene.serial:
        options.append(("a serial number label", {"serial": True}))
    return rng.choice(options)


def matches(spec: dict[str, Any], scene: Scene) -> bool:
    """Whether ``scene`` satisfies a caption's matching rule (from :func:`caption_variants`)."""
    for key in ("background", "background_texture", "word"):
        if key in spec and getattr(scene, key) != spec[key]:
            return False
    if "serial" in spec and (scene.serial is not None) != spec["serial"]:
        return False
    if "n_objects" in spec and len(scene.objects) != spec["n_objects"]:
        return False
    wanted = spec.get("objects", [])
    if not wanted:
        return True

    def ok(o: SceneObject, want: dict[str, str]) -> bool:
        return all(getattr(o, k) == v for k, v in want.items())

    if "n_objects" in spec:  # an enumeration of all objects: a one-to-one match
        return any(all(ok(o, w) for o, w in zip(perm, wanted))
                   for perm in itertools.permutations(scene.objects))
    return all(any(ok(o, w) for o in scene.objects) for w in wanted)


# --------------------------------------------------------------------------------------------
# phone photos


def phone_photo(img: Image.Image, seed: int) -> Image.Image:
    """A simulated phone photo of ``img``: crop, rotation ±15°, perspective, blur, brightness and
    JPEG quality 30. Returns an RGB image of the same size (deterministic for ``seed``)."""
    rng = random.Random(seed)
    w, h = img.size
    src = img.convert("RGB")
    # crop 85–97 % of each side
    cw, ch = int(w * rng.uniform(0.85, 0.97)), int(h * rng.uniform(0.85, 0.97))
    x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
    out = src.crop((x0, y0, x0 + cw, y0 + ch)).resize((w, h), Image.Resampling.BILINEAR)
    fill = tuple(int(c) for c in rng.choice(((90, 90, 90), (200, 195, 185), (40, 35, 30))))
    out = out.rotate(rng.uniform(-15, 15), resample=Image.Resampling.BILINEAR, expand=False, fillcolor=fill)
    # perspective: move each corner by up to 6 %
    m = 0.06
    quad = []
    for cx, cy in ((0, 0), (0, h), (w, h), (w, 0)):
        quad += [cx + rng.uniform(-m, m) * w, cy + rng.uniform(-m, m) * h]
    out = out.transform((w, h), Image.Transform.QUAD, quad, resample=Image.Resampling.BILINEAR, fillcolor=fill)
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.4) * w / 256))
    factor = rng.uniform(0.7, 1.3)
    out = out.point(lambda v: min(255, int(v * factor)))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=30)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


# --------------------------------------------------------------------------------------------
# evaluation set


@dataclass
class EvalSet:
    """Held-out images, their metadata and the queries (see :func:`make_eval_set`)."""

    seed: int
    scenes: list[Scene]
    queries: list[dict[str, Any]]
    image_size: int = 256

    def images(self) -> Iterable[tuple[str, Image.Image]]:
        for s in self.scenes:
            yield s.id, render(s, self.image_size)

    def query_image(self, query: dict[str, Any]) -> Image.Image:
        """The phone photo for an ``image`` query."""
        scene = next(s for s in self.scenes if s.id == query["source_id"])
        return phone_photo(render(scene, self.image_size), query["photo_seed"])


EVAL_SEED_OFFSET = 10_000_000  # eval scenes use seeds far from training's stream


def make_eval_set(n_images: int = 500, seed: int = 1, *, image_size: int = 256,
                  n_image_queries: int | None = None) -> EvalSet:
    """The held-out evaluation set: ``n_images`` scenes with unique captions and their queries.

    Image ids are ``eval-{seed}-{i:05d}``; the file name of an image is ``{id}.png``. Each query is
    ``{"id", "type", "relevant": [image ids], ...}`` with ``type`` one of:

    * ``text`` — ``"text"``: a natural-language query; ``"kind"`` says which: ``caption`` (the
      canonical caption of one image; relevant = that image), ``word`` (a single attribute word such
      as ``red``/``circle``/``striped``), ``object`` (``red circle``), ``sign`` (``SALE``: images whose
      sign shows the word). ``attributes`` holds the matching rule.
    * ``ocr`` — ``"text"``: a serial number as printed (``SN 4411-AB``); relevant = the image with it.
    * ``image`` — ``"source_id"`` and ``"photo_seed"``: the query image is
      ``phone_photo(render(scene), photo_seed)``; relevant = the source image (identical-photo search).
    """
    rng = random.Random(seed)
    scenes: list[Scene] = []
    seen: set[str] = set()
    s = EVAL_SEED_OFFSET + seed * 1_000_003
    while len(scenes) < n_images:
        s += 1
        sc = make_scene(s, scene_id=f"eval-{seed}-{len(scenes):05d}")
        cap = caption(sc)
        if cap in seen:  # unique captions, so caption→image has one right answer
            continue
        seen.add(cap)
        scenes.append(sc)

    queries: list[dict[str, Any]] = []

    def add(q: dict[str, Any]) -> None:
        if q["relevant"]:
            q["id"] = f"q{len(queries):04d}"
            queries.append(q)

    def with_objects(pred: Any) -> list[str]:
        return [sc.id for sc in scenes if any(pred(o) for o in sc.objects)]

    # captions of a sample of images
    for sc in rng.sample(scenes, min(len(scenes), max(20, n_images // 5))):
        add({"type": "text", "kind": "caption", "text": caption(sc), "relevant": [sc.id],
             "attributes": {"image": sc.id}})
    # single words
    for colour in COLOURS:
        add({"type": "text", "kind": "word", "text": colour, "attributes": {"colour": colour},
             "relevant": with_objects(lambda o, c=colour: o.colour == c)})
    for shape in SHAPES:
        add({"type": "text", "kind": "word", "text": shape, "attributes": {"shape": shape},
             "relevant": with_objects(lambda o, v=shape: o.shape == v)})
    for tex in TEXTURES[1:]:
        add({"type": "text", "kind": "word", "text": tex, "attributes": {"texture": tex},
             "relevant": with_objects(lambda o, v=tex: o.texture == v)})
    # colour + shape objects (a fixed random sample of pairs)
    pairs = [(c, sh) for c in COLOURS for sh in SHAPES]
    for c, sh in rng.sample(pairs, min(len(pairs), 24)):
        add({"type": "text", "kind": "object", "text": f"{c} {sh}", "attributes": {"colour": c, "shape": sh},
             "relevant": with_objects(lambda o, c=c, sh=sh: o.colour == c and o.shape == sh)})
    # signs
    for w in WORDS:
        add({"type": "text", "kind": "sign", "text": w, "attributes": {"word": w},
             "relevant": [sc.id for sc in scenes if sc.word == w]})
    # OCR: serial numbers (unique by construction of the random draw; checked)
    serials: dict[str, list[str]] = {}
    for sc in scenes:
        if sc.serial:
            serials.setdefault(sc.serial, []).append(sc.id)
    for serial, ids in sorted(serials.items()):
        add({"type": "ocr", "text": serial, "attributes": {"serial": serial}, "relevant": ids})
    # phone photos
    n_img_q = n_images if n_image_queries is None else n_image_queries
    for sc in rng.sample(scenes, min(n_img_q, len(scenes))):
        add({"type": "image", "source_id": sc.id, "photo_seed": rng.randrange(2**31), "relevant": [sc.id]})
    return EvalSet(seed=seed, scenes=scenes, queries=queries, image_size=image_size)


def write_eval_set(eval_set: EvalSet, out_dir: Path, *, write_query_images: bool = True) -> Path:
    """Write ``images/*.png``, ``metadata.jsonl``, ``queries.yaml`` (and ``query_images/*.jpg``)."""
    import yaml

    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    with open(out_dir / "metadata.jsonl", "w", encoding="utf-8") as f:
        for sc in eval_set.scenes:
            render(sc, eval_set.image_size).save(out_dir / "images" / f"{sc.id}.png")
            meta = sc.metadata()
            meta["file_name"] = f"{sc.id}.png"
            f.write(json.dumps(meta, sort_keys=True) + "\n")
    queries = []
    for q in eval_set.queries:
        q = dict(q)
        if q["type"] == "image" and write_query_images:
            (out_dir / "query_images").mkdir(exist_ok=True)
            name = f"{q['id']}.jpg"
            eval_set.query_image(q).save(out_dir / "query_images" / name, quality=95)
            q["image_file"] = f"query_images/{name}"
        queries.append(q)
    doc = {
        "generator": "kit.models.synth.make_eval_set",
        "generator_version": GENERATOR_VERSION,
        "seed": eval_set.seed,
        "n_images": len(eval_set.scenes),
        "image_size": eval_set.image_size,
        "queries": queries,
    }
    with open(out_dir / "queries.yaml", "w", encoding="utf-8") as f:
        yaml.safe_dump(doc, f, sort_keys=False, width=120)
    return out_dir
