"""The plots of a verdict (``plots/*.png``): held-out against generated similarities per piece of
evidence, the copy-rate interval, outlier scores, the held-out images closest to a training image
beside it, and C_T's cells (drawn by :mod:`novelty.plots`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.run.folder import RunFolder


def _pair_images(train_dir: Path | None, pairs: Sequence[dict]) -> list[tuple[np.ndarray, np.ndarray, str]]:
    """(held-out image, nearest training image, caption) for :func:`novelty.plots.image_pairs`,
    read from the run's training folder; pairs whose files cannot be read are left out."""
    from novelty.images.decode import ImageError, load

    if not pairs or train_dir is None or not train_dir.is_dir():
        return []
    shown = []
    for pair in pairs:
        try:
            a, b = (load(train_dir / pair[key], defaults.PLOT_THUMBNAIL) for key in ("heldout_id", "nearest_id"))
        except (ImageError, OSError):
            continue
        sims = ", ".join(f"{layer.split('_')[0]} {value:.3f}" for layer, value in pair["similarity"].items())
        shown.append((a, b, f"{pair['heldout_id']} ~ {pair['nearest_id']}\n{sims}"))
    return shown


def write_plots(run: RunFolder, result, train_dir: Path | None) -> list[Path]:
    """Draw the plots of an :class:`novelty.judge.verdicts.Assessment` into the run folder; returns their paths."""
    from novelty import plots as plotting

    data, summary = result.plot_data, result.summary
    fpr = summary["settings"]["false_positive_rate"]
    paths = []
    for layer, held in data["held_sims"].items():
        path = run.plots_dir / f"similarity_{layer}.png"
        plotting.similarity_histogram(path, layer, held, data["gen_sims"][layer], data["thresholds"][layer], fpr)
        paths.append(path)
    rate = data["rate"]
    path = run.plots_dir / "copy_rate.png"
    plotting.copy_rate_interval(path, rate["rate"], rate["bootstrap_interval"], rate["exact_interval"], fpr,
                                rate["n"], rate["confidence"])
    paths.append(path)
    path = run.plots_dir / "outlier_scores.png"
    plotting.outlier_histogram(path, data["outlier_score"], defaults.OUTLIER_Z)
    paths.append(path)
    pairs = _pair_images(train_dir, data["closest_heldout"])
    if pairs:
        path = run.plots_dir / "closest_heldout_pairs.png"
        plotting.image_pairs(path, pairs, "The held-out real images (left) that come closest to a training image "
                                          "(right): the unseen images the copy threshold must not flag")
        paths.append(path)
    path = run.plots_dir / "copying_cells.png"
    plotting.copying_cells(path, {layer: [c.z for c in t.cells] for layer, t in data["ct"].items()},
                           {layer: (None if np.isnan(t.c_t) else t.c_t) for layer, t in data["ct"].items()})
    paths.append(path)
    if "modes" in summary.get("modes", {}):
        path = run.plots_dir / "modes.png"
        plotting.mode_shares(path, summary["modes"]["modes"], summary["modes"]["effective_modes"])
        paths.append(path)
    return paths
