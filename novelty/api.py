"""The Python API: run an analysis, open a run folder, look at samples beside their neighbours.

Example::

    import novelty
    run = novelty.analyze(train="data/train", checkpoint="data/checkpoints/masks64", n=64, out="runs/a")
    run.samples.query("verdict == 'copy'")      # a pandas DataFrame, one row per generated sample
    run.neighbors(run.samples.id[0])            # rank, training id, score
    run.show(run.samples.id[0])                 # the sample beside its 24 neighbours (inline in Jupyter)

pandas is imported here, on first use of the API (``novelty.analyze`` etc. load this module lazily).
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.images.decode import ImageError, decode
from novelty.run import tables
from novelty.run.folder import RunFolder
from novelty.run.imagefiles import file_inside
from novelty.search.neighbors import load_neighbors


def analyze(train: str | os.PathLike, *, out: str | os.PathLike, generated: str | os.PathLike | None = None,
            checkpoint: str | os.PathLike | None = None, n: int = defaults.N_SAMPLES, seed: int = defaults.SEED,
            layers: tuple[str, ...] = defaults.LAYERS, k: int = defaults.TOP_K, weights: str = defaults.WEIGHTS,
            input_size: int = defaults.INPUT_SIZE, fit_mode: str = defaults.FIT_MODE,
            holdout_fraction: float = defaults.HOLDOUT_FRACTION, fpr: float = defaults.FALSE_POSITIVE_RATE,
            mirror: bool = True, align: bool = True, progress: bool = True, inputs: str | os.PathLike | None = None,
            direction: str = defaults.PAIR_DIRECTION) -> Run:
    """Compare GENERATED images (a folder, or ``n`` samples of ``checkpoint``) with the TRAINING images
    in ``train``, judge them as ``novelty analyze`` does, and return the run folder ``out`` as a :class:`Run`.

    ``inputs`` (pix2pix, as ``novelty analyze --inputs``): a folder of input images; ``train`` is then a
    pair folder or prepared pairs, the outputs are the pix2pix ``checkpoint``'s for them (or ``generated``,
    named after them), and each is judged against the training targets and its own ground truth
    (:mod:`novelty.conditional`; the ``truth_*`` columns of :attr:`Run.samples`).

    >>> run = novelty.analyze(train="train/", generated="samples/", out="runs/a", weights="none")  # doctest: +SKIP
    >>> run.samples.verdict.value_counts()  # doctest: +SKIP
    """
    from novelty.analysis import AnalyzeOptions
    from novelty.analysis import analyze as run_analyze

    if (generated is None) == (checkpoint is None):
        raise NoveltyError("give exactly one of generated= (a folder of images) and checkpoint=")
    options = AnalyzeOptions(layers=tuple(layers), k=k, weights=weights, input_size=input_size, fit_mode=fit_mode,
                             holdout_fraction=holdout_fraction, fpr=fpr, mirror=mirror, align=align,
                             progress=progress)
    if inputs is not None:
        from novelty.conditional import analyze_conditional

        analyze_conditional(train, out, inputs=inputs, checkpoint=checkpoint, generated=generated,
                            direction=direction, seed=seed, options=options)
        return open_run(out)
    run_analyze(train, out, generated=generated, checkpoint=checkpoint, n=n, seed=seed, options=options)
    return open_run(out)


def open_run(path: str | os.PathLike) -> Run:
    """Open a run folder written by ``novelty analyze`` (or :func:`analyze`).

    >>> run = novelty.open_run("runs/a")  # doctest: +SKIP
    """
    return Run(path)


def _require(path: Path) -> Path:
    """``path`` itself, or the one-line error for a run folder that lacks it."""
    if not path.is_file():
        raise tables.older(path.parent, f"no {path.name}")
    return path


class Run:
    """A judged run folder: its verdict tables as DataFrames, its summary and its neighbour lists.

    >>> run = Run("runs/a")  # doctest: +SKIP
    >>> run.neighbors("s0.png").head(3)  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike):
        self.folder = RunFolder(path).require()
        self.path = self.folder.root
        self._cache: dict[str, object] = {"manifest": tables.read_document(self.folder.run_json, tables.RUN_JSON)}
        if self.folder.summary_json.is_file():  # a run judged by an older version is refused here, at once
            self._cache["summary"] = tables.read_document(self.folder.summary_json, tables.SUMMARY)

    @property
    def manifest(self) -> dict:
        """The run's ``run.json``."""
        return self._cache["manifest"]

    @property
    def summary(self) -> dict:
        """The run's ``summary.json`` (verdict statistics and settings)."""
        if "summary" not in self._cache:
            self._cache["summary"] = tables.read_document(_require(self.folder.summary_json), tables.SUMMARY)
        return self._cache["summary"]

    @property
    def samples(self) -> pd.DataFrame:
        """One row per generated sample (``samples.csv``, dtypes as :data:`novelty.run.tables.SAMPLES` declares)."""
        return tables.read_table(_require(self.folder.samples_csv), tables.SAMPLES, {"evidence": self.layers}).frame()

    @property
    def training(self) -> pd.DataFrame:
        """One row per training image (``training.csv``, dtypes as :data:`novelty.run.tables.TRAINING` declares)."""
        return tables.read_table(_require(self.folder.training_csv), tables.TRAINING).frame()

    @property
    def modes(self) -> pd.DataFrame:
        """One row per mode of the training set: counts, shares, their ratio, the samples' 95% interval
        and the status (missed, under-produced, over-produced, reproduced); empty when modes were off.

        >>> run.modes.query("status == 'missed'")  # doctest: +SKIP
        """
        table = (self.summary.get("modes") or {}).get("modes") or []
        return pd.DataFrame(table).set_index("mode") if table else pd.DataFrame()

    def more_like(self, examples: Sequence[str], not_ids: Sequence[str] = (), limit: int | None = None
                  ) -> pd.DataFrame:
        """The other training images ranked by likeness to the ``examples`` (training ids) and unlikeness
        to ``not_ids``, both layers, as ``novelty more-like`` ranks them: id, score, rank (best first).

        >>> run.more_like(["logo_01.png", "logo_07.png", "logo_12.png"]).head(20)  # doctest: +SKIP
        """
        from novelty.curate.morelike import more_like

        return pd.DataFrame(more_like(self.path, list(examples), list(not_ids)).rows(limit),
                            columns=["id", "score", "rank"])

    @property
    def layers(self) -> list[str]:
        """The feature layers searched."""
        return list(self.manifest.get("layers") or [])

    def _neighbor_table(self, layer: str) -> dict[str, list[dict]]:
        if layer not in self.layers:
            raise NoveltyError(f"layer {layer!r} was not searched in {self.path}; searched: {', '.join(self.layers)}")
        key = f"neighbors/{layer}"
        if key not in self._cache:
            self._cache[key] = load_neighbors(self.folder.neighbors(layer))
        return self._cache[key]

    def neighbors(self, sample_id: str, layer: str = defaults.LAYERS[-1], k: int = defaults.TOP_K) -> pd.DataFrame:
        """The top-``k`` training neighbours of generated ``sample_id`` in ``layer``: rank, training_id, score."""
        table = self._neighbor_table(layer)
        if sample_id not in table:
            raise NoveltyError(f"no generated sample {sample_id!r} in {self.path}")
        entries = table[sample_id][:k]
        return pd.DataFrame({"rank": np.arange(1, len(entries) + 1, dtype=np.int64),
                             "training_id": [e["id"] for e in entries],
                             "score": np.array([e["score"] for e in entries], dtype=np.float64)})

    def _image_path(self, set_dir: str, ident: str) -> Path | None:
        """The image file of ``ident`` in the run's ``set_dir`` folder; None if it is gone or would leave it."""
        return file_inside(Path(self.manifest.get(set_dir) or ""), ident)

    def show(self, sample_id: str, layer: str = defaults.LAYERS[-1]) -> NeighborGrid:
        """The sample beside its 24 nearest training images, with scores; displays inline in Jupyter."""
        near = self.neighbors(sample_id, layer)
        cells = [(self._image_path("generated_dir", sample_id), f"sample {sample_id}")]
        cells += [(self._image_path("train_dir", t), f"{r}. {s:.3f}")
                  for r, t, s in zip(near["rank"], near["training_id"], near["score"], strict=True)]
        return NeighborGrid(cells, title=f"{sample_id} in {layer}")

    def _repr_html_(self) -> str:
        counts = self.manifest.get("counts") or {}
        copies = (self.summary.get("copies") or {}) if self.folder.summary_json.is_file() else {}
        text = (f"novelty run <code>{html.escape(str(self.path))}</code>: {counts.get('generated', '?')} generated, "
                f"{counts.get('training', '?')} training images; layers {html.escape(', '.join(self.layers))}")
        if copies.get("n"):
            text += f"; {copies.get('count')} of {copies['n']} samples flagged as copies"
        return f"<p>{text}</p>"

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"


class NeighborGrid:
    """An image grid (first cell the sample) that Jupyter displays inline via ``_repr_png_``."""

    def __init__(self, cells: list[tuple[Path | None, str]], title: str = "", side: int = 96, columns: int = 9):
        self.cells, self.title, self.side, self.columns = cells, title, side, columns

    def image(self):
        """The grid as a PIL image (missing image files are drawn grey)."""
        from PIL import Image, ImageDraw

        side, cols = self.side, self.columns
        rows = -(-len(self.cells) // cols)
        label = 14
        grid = Image.new("RGB", (cols * side, rows * (side + label)), "white")
        draw = ImageDraw.Draw(grid)
        for i, (path, caption) in enumerate(self.cells):
            x, y = (i % cols) * side, (i // cols) * (side + label)
            grid.paste(_tile(path, side), (x, y))
            draw.text((x + 2, y + side), caption[:16], fill="black")
        return grid

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.image().save(buf, format="PNG")
        return buf.getvalue()

    def _repr_html_(self) -> str:
        data = base64.b64encode(self._repr_png_()).decode("ascii")
        return f'<figure><img src="data:image/png;base64,{data}"/><figcaption>{html.escape(self.title)}</figcaption></figure>'


def _tile(path: Path | None, side: int):
    """The image at ``path`` decoded as the analysis decodes it, fitted to ``side``; grey when gone or undecodable."""
    from PIL import Image

    if path is not None:
        try:
            return Image.fromarray(decode(path)[0]).resize((side, side))
        except ImageError:
            pass
    return Image.new("RGB", (side, side), "grey")
