"""Junk-planting harness: plant batches of foreign images into a real collection and measure whether
the outlier ranking puts them at the top (``benchmarks/bench_junk.py``).

Junk in a scraped collection comes in batches (a run of catalogue pages, a folder of logos), so each
kind is planted as ``share`` of the collection (1% by default), alone and all kinds mixed. Every kind
is drawn in code with Pillow from a seeded generator, so the images are alike within a kind (a batch)
but no two are the same. Per scenario the report gives precision at N (N = images planted: the share
of the top N outlier scores that are planted junk; per kind as well in the mixed scenario, with
N = that kind's count, ranked among the genuine images and that kind only), how many junk images
``is_outlier`` flags, and the share of genuine images flagged. A scenario with no junk gives the
false-flag rate on the genuine collection alone.

:data:`HELD_OUT` names the kinds that were not looked at while the outlier score was chosen
(:mod:`novelty.curate.outliers`): their figures are those of unseen junk. Product renders and
screenshots were held out for the first, kNN-only score and looked at when the global view was
added; charts and landscapes were drawn before that choice and held out from it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError

CANVAS = 192  # junk is drawn at this size, then reduced to the extractor's input size
SHARE = 0.01  # each kind planted at this share of the collection
GOAL_PRECISION = 0.8  # least precision at N, per kind and mixed
GOAL_GENUINE_FLAGGED = 0.03  # most share of genuine images flagged is_outlier
MIXED = "mixed"
CLEAN = "none"
REPORT_FILE = "junk.json"
WORDS = ("sale", "new", "price", "order", "item", "model", "size", "colour", "stock", "ship", "free", "box",
         "total", "page", "index", "menu", "file", "edit", "view", "help", "save", "open", "user", "login")


def _rgb(rng: np.random.Generator, low: int = 0, high: int = 256) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(low, high, 3))


def _text(rng: np.random.Generator, words: int) -> str:
    return " ".join(str(rng.choice(WORDS)) for _ in range(words))


def catalogue_page(rng: np.random.Generator, size: int = CANVAS):
    """A white page: a heading, a grey product box and rows of small text, a price in colour."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), _rgb(rng, 235))
    draw = ImageDraw.Draw(img)
    draw.text((8, 6), _text(rng, 3).upper(), fill=(20, 20, 20))
    box = int(rng.integers(size // 4, size // 2))
    draw.rectangle((8, 24, 8 + box, 24 + box), fill=_rgb(rng, 150, 220), outline=(90, 90, 90))
    y = 26
    while y < size - 10:
        x = 16 + box if y < 24 + box else 8
        draw.text((x, y), _text(rng, int(rng.integers(2, 6))), fill=(40, 40, 40))
        y += int(rng.integers(10, 14))
    draw.text((size - 60, size - 18), f"${rng.integers(5, 999)}.99", fill=_rgb(rng, 0, 200))
    return img


def logo(rng: np.random.Generator, size: int = CANVAS):
    """A flat background with one or two flat shapes and a short word: a logo or an icon."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), _rgb(rng))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(1, 3))):
        x0, y0 = (int(v) for v in rng.integers(0, size // 2, 2))
        x1, y1 = x0 + int(rng.integers(size // 4, size // 2)), y0 + int(rng.integers(size // 4, size // 2))
        shape = rng.integers(0, 3)
        if shape == 0:
            draw.ellipse((x0, y0, x1, y1), fill=_rgb(rng))
        elif shape == 1:
            draw.rectangle((x0, y0, x1, y1), fill=_rgb(rng))
        else:
            draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=_rgb(rng))
    draw.text((int(rng.integers(4, size // 2)), int(rng.integers(size // 2, size - 16))), _text(rng, 1).upper(),
              fill=_rgb(rng))
    return img


def line_drawing(rng: np.random.Generator, size: int = CANVAS):
    """A scanned drawing: thin dark strokes and arcs on off-white paper with scanner grain."""
    from PIL import Image, ImageDraw

    paper = int(rng.integers(215, 250))
    img = Image.new("RGB", (size, size), (paper, paper, paper - int(rng.integers(0, 15))))
    draw = ImageDraw.Draw(img)
    ink = int(rng.integers(10, 80))
    for _ in range(int(rng.integers(6, 16))):
        pts = [tuple(int(v) for v in rng.integers(0, size, 2)) for _ in range(int(rng.integers(2, 5)))]
        draw.line(pts, fill=(ink, ink, ink), width=int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(1, 5))):
        x, y = (int(v) for v in rng.integers(0, size - 40, 2))
        r = int(rng.integers(10, 40))
        draw.arc((x, y, x + r, y + r), int(rng.integers(0, 180)), int(rng.integers(180, 360)), fill=(ink, ink, ink))
    arr = np.asarray(img, np.float64) + rng.normal(0, 6, (size, size, 1))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def noise_gradient(rng: np.random.Generator, size: int = CANVAS):
    """A linear colour gradient at a random angle with fine coloured noise on top."""
    from PIL import Image

    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    a, b = np.array(_rgb(rng), np.float64), np.array(_rgb(rng), np.float64)
    arr = a + (b - a) * t[..., None] + rng.normal(0, rng.uniform(5, 40), (size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def product_render(rng: np.random.Generator, size: int = CANVAS):
    """A studio product shot: one shaded object (a ball or a box) on white with a soft shadow."""
    from PIL import Image, ImageDraw, ImageFilter

    img = Image.new("RGB", (size, size), (250, 250, 250))
    shadow = Image.new("L", (size, size), 0)
    cx, cy = (int(v) for v in rng.integers(size // 3, 2 * size // 3, 2))
    r = int(rng.integers(size // 6, size // 3))
    ImageDraw.Draw(shadow).ellipse((cx - r, cy + r - 8, cx + r, cy + r + 8), fill=120)
    img.paste((150, 150, 150), mask=shadow.filter(ImageFilter.GaussianBlur(6)))
    colour = np.array(_rgb(rng, 30, 230), np.float64)
    yy, xx = np.mgrid[0:size, 0:size]
    if rng.random() < 0.5:
        inside = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
    else:
        inside = (np.abs(xx - cx) <= r) & (np.abs(yy - cy) <= int(r * rng.uniform(0.6, 1.2)))
    light = np.clip(1.2 - np.hypot(xx - (cx - r / 2), yy - (cy - r / 2)) / (2.2 * r), 0.3, 1.2)
    arr = np.asarray(img, np.float64)
    arr[inside] = np.clip(colour * light[inside, None] + 40 * (light[inside, None] > 1.05), 0, 255)
    return Image.fromarray(arr.astype(np.uint8))


def screenshot(rng: np.random.Generator, size: int = CANVAS):
    """An application window: title bar, side panel, rows of text and a button."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), _rgb(rng, 225))
    draw = ImageDraw.Draw(img)
    bar = int(rng.integers(14, 22))
    draw.rectangle((0, 0, size, bar), fill=_rgb(rng, 40, 120))
    draw.text((6, 3), _text(rng, 2), fill=(255, 255, 255))
    side = int(rng.integers(size // 5, size // 3))
    draw.rectangle((0, bar, side, size), fill=_rgb(rng, 190, 230))
    for y in range(bar + 6, size - 10, 14):
        draw.text((4, y), str(rng.choice(WORDS)), fill=(30, 30, 30))
        draw.text((side + 6, y), _text(rng, int(rng.integers(2, 5))), fill=(20, 20, 20))
    bx, by = int(rng.integers(side + 10, size - 60)), int(rng.integers(size // 2, size - 24))
    draw.rectangle((bx, by, bx + 50, by + 18), fill=_rgb(rng, 0, 160), outline=(30, 30, 30))
    draw.text((bx + 6, by + 3), "OK", fill=(255, 255, 255))
    return img


def bar_chart(rng: np.random.Generator, size: int = CANVAS):
    """A chart from a report: axes, grid lines, coloured bars or a polyline, tick labels, on white."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    left, bottom, top = 28, size - 22, 18
    for y in range(bottom, top, -int(rng.integers(18, 30))):
        draw.line((left, y, size - 6, y), fill=(225, 225, 225))
        draw.text((2, y - 6), str(int(rng.integers(0, 99))), fill=(60, 60, 60))
    draw.line((left, top, left, bottom), fill=(0, 0, 0), width=2)
    draw.line((left, bottom, size - 6, bottom), fill=(0, 0, 0), width=2)
    bars = int(rng.integers(4, 11))
    step = (size - 12 - left) // bars
    heights = rng.uniform(0.1, 1.0, bars) * (bottom - top - 10)
    colour = _rgb(rng, 0, 220)
    if rng.random() < 0.6:
        for i, h in enumerate(heights):
            x = left + 4 + i * step
            draw.rectangle((x, bottom - int(h), x + int(step * 0.7), bottom - 1), fill=colour)
    else:
        draw.line([(left + 4 + i * step, bottom - int(h)) for i, h in enumerate(heights)], fill=colour, width=3)
    draw.text((left + 4, 2), _text(rng, 2).title(), fill=(20, 20, 20))
    return img


def landscape(rng: np.random.Generator, size: int = CANVAS):
    """A holiday snapshot: a sky gradient, a sun, layered hills with grain, from edge to edge."""
    from PIL import Image, ImageDraw

    yy = np.linspace(0, 1, size)[:, None, None]
    top_sky, low_sky = np.array(_rgb(rng, 40, 200), np.float64), np.array(_rgb(rng, 150, 256), np.float64)
    img = Image.fromarray(np.broadcast_to(top_sky + (low_sky - top_sky) * yy, (size, size, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    sx, sy, sr = int(rng.integers(20, size - 20)), int(rng.integers(10, size // 3)), int(rng.integers(8, 24))
    draw.ellipse((sx - sr, sy - sr, sx + sr, sy + sr), fill=_rgb(rng, 200))
    for layer in range(int(rng.integers(2, 5))):
        base = size // 3 + layer * size // 6 + int(rng.integers(0, 16))
        xs = np.linspace(0, size, int(rng.integers(4, 9)))
        ridge = [(int(x), int(base + rng.integers(-size // 6, size // 8))) for x in xs]
        shade = 110 - 25 * layer
        draw.polygon([(0, size), *ridge, (size, size)], fill=_rgb(rng, max(0, shade - 40), max(1, shade)))
    arr = np.asarray(img, np.float64) + rng.normal(0, 8, (size, size, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


KINDS: dict[str, Callable] = {
    "catalogue": catalogue_page, "logo": logo, "drawing": line_drawing, "noise": noise_gradient,
    "product": product_render, "screenshot": screenshot, "chart": bar_chart, "landscape": landscape,
}
HELD_OUT: tuple[str, ...] = ("chart", "landscape")  # not looked at while the outlier score was chosen


def make_junk(kind: str, count: int, size: int, seed: int = defaults.SEED) -> np.ndarray:
    """``count`` images of ``kind`` (one of :data:`KINDS`), RGB uint8 ``(count, size, size, 3)``, seeded."""
    from PIL import Image

    if kind not in KINDS:
        raise NoveltyError(f"unknown kind of junk {kind!r}; must be one of: {', '.join(KINDS)}")
    rng = np.random.default_rng([seed, list(KINDS).index(kind)])
    return np.stack([np.asarray(KINDS[kind](rng).convert("RGB").resize((size, size), Image.Resampling.LANCZOS),
                                dtype=np.uint8) for _ in range(count)])


def precision_at_n(scores: np.ndarray, is_junk: np.ndarray) -> float:
    """Share of the ``N = is_junk.sum()`` highest ``(M,)`` scores that are junk (ties broken by order)."""
    is_junk = np.asarray(is_junk, bool)
    n = int(is_junk.sum())
    if n == 0:
        return float("nan")
    top = np.argsort(-np.asarray(scores, np.float64), kind="stable")[:n]
    return float(is_junk[top].mean())


@dataclass
class Scenario:
    """One planting: which kinds, how many of each, and what the outlier stage made of it."""

    kinds: list[str]
    planted: dict[str, int]
    precision: dict[str, float]  # per kind, and MIXED over all planted kinds
    junk_flagged: dict[str, int]  # per kind: how many is_outlier flags
    genuine_flagged: float  # share of genuine images flagged is_outlier
    seconds: float  # the outlier stage on this set


@dataclass
class JunkReport:
    scenarios: dict[str, Scenario]
    settings: dict
    counts: dict
    goals: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        from dataclasses import asdict

        return {"scenarios": {name: asdict(s) for name, s in self.scenarios.items()}, "settings": self.settings,
                "counts": self.counts, "goals": self.goals}

    def table(self) -> str:
        lines = [f"{'planted':<12} {'kind':<20} {'N':>4} {'P@N':>6} {'flagged':>8} {'genuine flagged':>16}"]
        for name, s in self.scenarios.items():
            for kind in [*s.kinds, *([MIXED] if len(s.kinds) > 1 else [])] or [CLEAN]:
                n = sum(s.planted.values()) if kind == MIXED else s.planted.get(kind, 0)
                flagged = sum(s.junk_flagged.values()) if kind == MIXED else s.junk_flagged.get(kind, 0)
                p = s.precision.get(kind, float("nan"))
                unseen = " (unseen)" if kind in HELD_OUT else ""
                lines.append(f"{name:<12} {kind + unseen:<20} {n:>4} {p:>6.3f} {flagged:>8} "
                             f"{100 * s.genuine_flagged:>15.2f}%")
        return "\n".join(lines)


def evaluate(genuine: Mapping[str, np.ndarray], junk: Mapping[str, Mapping[str, np.ndarray]],
             scenarios: Mapping[str, list[str]], outliers: Callable) -> dict[str, Scenario]:
    """Plant the ``junk`` kinds of each scenario among the GENUINE features and score the whole set.

    ``genuine``: ``{layer: (N, D)}``; ``junk[kind]``: ``{layer: (n_kind, D)}``, rows L2-normalised;
    ``outliers(features)`` -> ``(outlier_score (M,), is_outlier (M,) bool)``, the run's outlier stage.
    """
    import time

    layers = tuple(genuine)
    n = len(genuine[layers[0]])
    out = {}
    for name, kinds in scenarios.items():
        labels = np.concatenate([np.full(n, -1)] + [np.full(len(junk[k][layers[0]]), i) for i, k in enumerate(kinds)])
        features = {layer: np.concatenate([genuine[layer]] + [junk[k][layer] for k in kinds]) for layer in layers}
        start = time.perf_counter()
        score, flag = outliers(features)
        seconds = time.perf_counter() - start
        precision, flagged = {}, {}
        for i, kind in enumerate(kinds):
            rows = (labels == -1) | (labels == i)  # this kind among the genuine images only
            precision[kind] = round(precision_at_n(score[rows], labels[rows] == i), 4)
            flagged[kind] = int(flag[labels == i].sum())
        if len(kinds) > 1:
            precision[MIXED] = round(precision_at_n(score, labels >= 0), 4)
        out[name] = Scenario(list(kinds), {k: int((labels == i).sum()) for i, k in enumerate(kinds)}, precision,
                             flagged, round(float(flag[labels == -1].mean()), 5), round(seconds, 3))
    return out


def content_ids(images: np.ndarray, prefix: str) -> tuple[list[str], list[str]]:
    """Ids ``prefix/0000.png``... and the sha256 of each image's pixels (the feature store's row key)."""
    hashes = [hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in images]
    return [f"{prefix}/{i:04d}.png" for i in range(len(images))], hashes


def run_junk(train_dir: str | os.PathLike, out: str | os.PathLike, *, weights: str = defaults.WEIGHTS,
             share: float = SHARE, kinds: tuple[str, ...] = tuple(KINDS), seed: int = defaults.SEED,
             batch_size: int = defaults.EMBED_BATCH_SIZE, extractor=None, progress: bool = True) -> JunkReport:
    """Embed the images of ``train_dir`` and each kind of junk (cached in ``out/features``), plant each
    kind alone, all mixed, and none; write ``out/junk.json``; return the report."""
    import time

    from novelty.curate.curation import outlier_stage
    from novelty.embed.featurestore import FeatureStore
    from novelty.files import write_json
    from novelty.images.sets import decode_set
    from novelty.search.neighbors import normalize

    if not 0 < share < 0.5:
        raise NoveltyError(f"share of each kind must be in 0 < share < 0.5, received {share!r}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise NoveltyError(f"unknown kinds of junk {unknown or kinds!r}; must be some of: {', '.join(KINDS)}")
    out = Path(out)
    if extractor is None:
        from novelty.embed.features import Extractor

        extractor = Extractor(weights=weights, seed=seed)
    layers = tuple(extractor.layers)
    size = extractor.input_size or defaults.INPUT_SIZE
    images = decode_set("training", Path(train_dir), size, defaults.FIT_MODE, progress)
    store = FeatureStore(out / "features")
    start = time.perf_counter()
    embedded = store.update("training", images.ids, images.sha256, images.images, extractor, batch_size, progress)
    embed_seconds = time.perf_counter() - start
    genuine = {layer: normalize(store.load("training", layer)[1]) for layer in layers}
    n = len(images.ids)
    count = max(1, round(share * n))
    junk = {}
    for kind in kinds:
        made = make_junk(kind, count, size, seed)
        ids, hashes = content_ids(made, kind)
        store.update(f"junk-{kind}", ids, hashes, made, extractor, batch_size, progress)
        junk[kind] = {layer: normalize(store.load(f"junk-{kind}", layer)[1]) for layer in layers}
    scenarios = {CLEAN: []} | {kind: [kind] for kind in kinds} | {MIXED: list(kinds)}

    def outliers(features):
        stage = outlier_stage(features)
        return stage.score, stage.is_outlier

    results = evaluate(genuine, junk, scenarios, outliers)
    goals = {"precision_at_n": GOAL_PRECISION, "genuine_flagged": GOAL_GENUINE_FLAGGED,
             "met": all(p >= GOAL_PRECISION for s in results.values() for p in s.precision.values())
             and all(s.genuine_flagged <= GOAL_GENUINE_FLAGGED for s in results.values())}
    report = JunkReport(results, {"train_dir": str(Path(train_dir).resolve()), "weights": extractor.weights.to_json(),
                                  "layers": list(layers), "input_size": size, "share": share, "seed": seed,
                                  "held_out_kinds": list(HELD_OUT)},
                        {"genuine": n, "per_kind": count, "skipped": images.skipped,
                         "embed_seconds": round(embed_seconds, 3), "embedded": embedded},
                        goals)
    write_json(out / REPORT_FILE, report.as_dict())
    return report
