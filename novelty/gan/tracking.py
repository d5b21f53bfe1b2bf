"""Sample quality tracked while training: the tool's own block5_pool PRDC, every ``--quality-every`` steps.

A fixed-seed sample of the generator (the averaged one under ``--ema``) is compared with a fixed,
seeded subsample of the training set, both embedded by VGG16 exactly as ``novelty analyze`` does
(``--weights``, caffe preprocessing, 64 px input, rows L2-normalised). The training side is embedded
once per run and cached in the training folder; the curve goes to ``quality.csv`` (one row per
evaluated step; a resumed run drops the rows of the steps it redoes), to TensorBoard beside the loss,
and to ``quality.png``.

Layout in the training folder::

    quality.csv                    step, precision, recall, density, coverage, k, n_training, n_generated
    quality.png                    the four curves against the step
    quality/training-features.npz  the training subsample's features, with the parameters that made them
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import write_bytes, write_text
from novelty.gan.dcgan_family import fixed_noise
from novelty.gan.family import GeneratorFamily, TrainingHook, to_uint8

LAYER = "block5_pool"
QUALITY_CSV = "quality.csv"
QUALITY_PNG = "quality.png"
CACHE_FILE = "quality/training-features.npz"
METRICS = ("precision", "recall", "density", "coverage")
COLUMNS = ("step", *METRICS, "k", "n_training", "n_generated")


def read_quality(path: str | os.PathLike) -> list[dict]:
    """Rows of a ``quality.csv`` (numbers parsed), oldest step first; [] when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        rows = [{k: (int(v) if k in ("step", "k", "n_training", "n_generated") else float(v))
                 for k, v in row.items()} for row in csv.DictReader(handle)]
    return sorted(rows, key=lambda row: row["step"])


def write_quality(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write ``rows`` (dicts with :data:`COLUMNS`) as ``quality.csv``, atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.6f}" if k in METRICS else row[k]) for k in COLUMNS})
    write_text(path, buffer.getvalue())


def plot_quality(path: str | os.PathLike, rows: list[dict]) -> None:
    """Precision, recall, density and coverage against the training step, one PNG."""
    from novelty.plots import _figure, _save

    plt, fig, ax = _figure()
    steps = [row["step"] for row in rows]
    for name in METRICS:
        ax.plot(steps, [row[name] for row in rows], marker="o", markersize=3, label=name)
    last = rows[-1] if rows else {"n_generated": 0, "n_training": 0, "k": defaults.PRDC_K}
    ax.set_xlabel("training step")
    ax.set_ylabel(f"{LAYER} PRDC")
    ax.set_title(f"{last['n_generated']} fixed-noise samples vs {last['n_training']} training images "
                 f"(k = {last['k']})", fontsize=10)
    ax.set_ylim(0, max([1.05] + [row["density"] * 1.05 for row in rows]))  # density may pass 1
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def keep_until(out: str | os.PathLike, step: int) -> None:
    """Drop the ``quality.csv`` rows of steps after ``step`` (a resumed run redoes them), so no step
    appears twice, whether or not the resumed run tracks quality."""
    path = Path(out) / QUALITY_CSV
    rows = read_quality(path)
    kept = [row for row in rows if row["step"] <= step]
    if len(kept) != len(rows):
        write_quality(path, kept)
        if kept:
            plot_quality(Path(out) / QUALITY_PNG, kept)


def training_subsample(dataset, n: int, seed: int) -> np.ndarray:
    """A seeded subsample of ``n`` images (all of them when fewer) of an unbatched uint8 dataset,
    in dataset order: ``(min(n, N), H, W, 3)`` uint8. Reads the dataset once."""
    from novelty.images.pipeline import _count

    count = _count(dataset, exact=True)
    chosen = np.sort(np.random.default_rng(seed).choice(count, min(n, count), replace=False))
    wanted, picked = set(chosen.tolist()), []
    for index, image in enumerate(dataset.take(int(chosen[-1]) + 1).as_numpy_iterator()):
        if index in wanted:
            picked.append(image)
    return np.stack(picked)


class QualityTracker:
    """Computes and records PRDC of a generator's fixed-noise sample against the cached training side."""

    def __init__(self, out: Path, dataset, weights: str, n: int, seed: int, z_dim: int):
        from novelty.embed.features import Extractor

        self.out, self.dataset, self.n, self.seed = Path(out), dataset, n, seed
        self.extractor = Extractor(weights=weights, input_size=defaults.INPUT_SIZE, layers=(LAYER,), seed=seed)
        self.noise = fixed_noise(n, z_dim, seed + 1)  # not the grid's noise: another draw of the same seed
        self.training: np.ndarray | None = None

    def _params(self) -> dict:
        return {**self.extractor.params(LAYER), "n": self.n, "seed": self.seed}

    def prepare(self) -> None:
        """Embed the training subsample, or load it from the training folder when cached with these
        parameters (before training when the call will evaluate; never when it will not)."""
        from novelty.search.neighbors import normalize

        cache = self.out / CACHE_FILE
        params = json.dumps(self._params(), sort_keys=True)
        if cache.is_file():
            with np.load(cache) as saved:
                if str(saved["params"]) == params:
                    self.training = saved["features"]
                    return
        images = training_subsample(self.dataset, self.n, self.seed)
        if len(images) <= defaults.PRDC_K:
            raise NoveltyError(f"--quality-every needs more than {defaults.PRDC_K} training images for "
                               f"PRDC with k = {defaults.PRDC_K}, the data holds {len(images)}")
        self.training = normalize(self.extractor.embed(images, progress=False)[LAYER])
        buffer = io.BytesIO()
        np.savez(buffer, features=self.training, params=np.asarray(params))
        write_bytes(cache, buffer.getvalue())

    def evaluate(self, generator, step: int) -> dict:
        """PRDC of ``generator``'s fixed-noise sample at ``step``; appends the row, redraws the plot."""
        from novelty.judge.prdc import compute_prdc
        from novelty.search.neighbors import normalize

        if self.training is None:
            self.prepare()
        images = np.concatenate([to_uint8(generator(self.noise[i:i + 64], training=False))
                                 for i in range(0, self.n, 64)])
        generated = normalize(self.extractor.embed(images, progress=False)[LAYER])
        row = {"step": step, **compute_prdc(self.training, generated, defaults.PRDC_K).as_dict()}
        rows = [r for r in read_quality(self.out / QUALITY_CSV) if r["step"] < step] + [row]
        write_quality(self.out / QUALITY_CSV, rows)
        plot_quality(self.out / QUALITY_PNG, rows)
        return row


class QualityHook(TrainingHook):
    """The PRDC curve as a hook of the training loop: every ``every`` steps, one :class:`QualityTracker`
    evaluation of the family's sampler, logged to TensorBoard as ``quality/<metric>``.

    With ``every`` 0 it only drops the ``quality.csv`` rows of the steps a resumed call redoes.
    """

    def __init__(self, out: Path, dataset, every: int, weights: str, n: int, seed: int, z_dim: int):
        self.out, self.dataset, self.every = Path(out), dataset, every
        self.weights, self.n, self.seed, self.z_dim = weights, n, seed, z_dim
        self.tracker: QualityTracker | None = None

    def check(self) -> None:
        """Resolve ``--weights`` now: a missing weights file stops the call before any training."""
        if not self.every:
            return
        try:
            self.tracker = QualityTracker(self.out, self.dataset, self.weights, self.n, self.seed, self.z_dim)
        except NoveltyError as exc:
            raise NoveltyError(f"{exc} (for the quality curve; --quality-every 0 turns it off)") from None

    def start(self, step: int, steps: int) -> None:
        keep_until(self.out, step)  # the quality rows of steps this call redoes
        if self.tracker is not None and steps // self.every > step // self.every:
            self.tracker.prepare()  # an evaluation is due in this call: embed (or load) the training side
            # now, so that too little data or unusable weights stop the call before it trains

    def after_step(self, step: int, family: GeneratorFamily) -> dict[str, float]:
        if self.tracker is None or step % self.every:
            return {}
        quality = self.tracker.evaluate(family.sampler, step)
        return {f"quality/{name}": quality[name] for name in METRICS}
