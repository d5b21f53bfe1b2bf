"""PNG plots of a run's verdicts and curation (matplotlib, Agg backend: no display needed).

Each function takes plain numbers and a path, writes one PNG atomically and returns nothing;
matplotlib is imported inside, so importing this module is free.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence

import numpy as np

from novelty.files import write_bytes


def _figure(width: float = 6.4, height: float = 4.0, grid: tuple[int, int] | None = None):
    """(pyplot, figure, axes): one axes, or a ``(rows, columns)`` array of them with ``grid``."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if grid is None:
        return plt, *plt.subplots(figsize=(width, height), dpi=100)
    return plt, *plt.subplots(*grid, figsize=(width, height), dpi=100, squeeze=False)


def _save(plt, fig, path: str | os.PathLike) -> None:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    write_bytes(path, buffer.getvalue())


def similarity_histogram(path: str | os.PathLike, layer: str, heldout: np.ndarray, generated: np.ndarray,
                         threshold: float | None, fpr: float) -> None:
    """Nearest-training similarity of GENERATED samples against that of HELD-OUT real images."""
    plt, fig, ax = _figure()
    shown = threshold is not None and np.isfinite(threshold)
    values = np.concatenate([np.ravel(heldout), np.ravel(generated)] + ([[threshold]] if shown else []))
    bins = np.linspace(float(values.min()), float(values.max()) + 1e-9, 41)
    ax.hist(heldout, bins=bins, density=True, alpha=0.55, color="tab:blue",
            label=f"held-out real, nearest training image outside its group (n={len(heldout)})")
    ax.hist(generated, bins=bins, density=True, alpha=0.55, color="tab:orange",
            label=f"generated, nearest training image (n={len(generated)})")
    if shown:
        ax.axvline(threshold, color="tab:red", linestyle="--",
                   label=f"copy threshold {threshold:.3f} (false positive rate {fpr:g})")
    ax.set_xlabel(f"cosine similarity to the nearest training image ({layer})" if layer != "aligned" else
                  "aligned pixel match with the best-aligned training image")
    ax.set_ylabel("density")
    ax.set_title(f"{layer}: generated samples vs unseen real images")
    ax.legend(fontsize=8, loc="upper left")
    _save(plt, fig, path)


def copy_rate_interval(path: str | os.PathLike, rate: float, bootstrap: Sequence[float],
                       exact: Sequence[float], fpr: float, n: int, confidence: float) -> None:
    """The copy rate with its bootstrap and exact intervals, beside the false positive rate."""
    plt, fig, ax = _figure(6.4, 2.6)
    for y, (low, high), label, colour in ((1, bootstrap, "bootstrap", "tab:orange"),
                                         (0, exact, "exact (Clopper-Pearson)", "tab:purple")):
        ax.plot([low, high], [y, y], color=colour, linewidth=3, label=f"{confidence:.0%} {label}: "
                f"{low:.3f} to {high:.3f}")
        ax.plot([rate], [y], "o", color="black")
    ax.axvline(fpr, color="tab:red", linestyle="--", label=f"false positive rate {fpr:g} (no copying)")
    ax.set_yticks([0, 1], ["exact", "bootstrap"])
    ax.set_ylim(-0.8, 1.8)
    ax.set_xlim(0, max(0.05, float(exact[1]) * 1.15, fpr * 2))
    ax.set_xlabel(f"share of {n} generated samples flagged as copies (rate {rate:.3f})")
    ax.legend(fontsize=8, loc="upper right")
    _save(plt, fig, path)


def outlier_histogram(path: str | os.PathLike, scores: np.ndarray, threshold: float) -> None:
    """Distribution of training images' outlier scores with the outlier cut."""
    plt, fig, ax = _figure()
    scores = np.asarray(scores, dtype=np.float64)
    ax.hist(scores, bins=50, color="tab:green", alpha=0.8)
    ax.axvline(threshold, color="tab:red", linestyle="--",
               label=f"outlier cut {threshold:g} ({int((scores > threshold).sum())} images above)")
    ax.set_yscale("log")
    ax.set_xlabel("outlier score (largest robust z of log k-th neighbour distance over layers and scales)")
    ax.set_ylabel("training images")
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def copying_cells(path: str | os.PathLike, z_by_layer: Mapping[str, Sequence[float | None]],
                  c_t: Mapping[str, float | None]) -> None:
    """Per-cell Z scores of the data-copying test, one row of bars per layer."""
    plt, fig, ax = _figure()
    layers = list(z_by_layer)
    width = 0.8 / max(1, len(layers))
    for i, layer in enumerate(layers):
        zs = [np.nan if z is None else z for z in z_by_layer[layer]]
        ct = c_t.get(layer)
        label = f"{layer}: C_T = {ct:.2f}" if ct is not None else f"{layer}: C_T undefined"
        ax.bar(np.arange(len(zs)) + i * width, zs, width=width, label=label)
    ax.axhline(-3, color="tab:red", linestyle="--", label="-3: strong evidence of copying")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("cell (k-means on training features); missing bars: too few samples")
    ax.set_ylabel("Mann-Whitney Z (negative: closer than real)")
    ax.legend(fontsize=8)
    _save(plt, fig, path)


def image_pairs(path: str | os.PathLike, pairs: Sequence[tuple[np.ndarray, np.ndarray, str]], title: str) -> None:
    """Pairs of RGB uint8 images side by side, each pair captioned, in rows of up to four pairs."""
    per_row = min(4, len(pairs))
    rows = -(-len(pairs) // per_row)
    plt, fig, axes = _figure(3.2 * per_row, 2.0 * rows + 0.5, grid=(rows, per_row))
    for ax, (a, b, caption) in zip(axes.ravel(), pairs, strict=False):
        gap = np.full((a.shape[0], max(2, a.shape[1] // 16), 3), 255, np.uint8)
        ax.imshow(np.concatenate([a, gap, b], axis=1))
        ax.set_title(caption, fontsize=6.5)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    _save(plt, fig, path)


def validation_rates(path: str | os.PathLike, rates: Mapping[str, Mapping[str, tuple[float, float, float]]],
                     copy_goal: float, unseen_goal: float, fpr: float, unseen_row: str = "unseen") -> None:
    """Share flagged per kind of planted copy and for unseen real images: one bar per column (the
    combined verdict, then each layer alone) with its exact 95% interval, and the goals as lines.
    ``rates[row][column] = (rate, low, high)``."""
    plt, fig, ax = _figure(8.0, 4.8)
    rows = list(rates)
    columns = list(next(iter(rates.values())))
    width = 0.8 / len(columns)
    for j, column in enumerate(columns):
        values = np.array([rates[row][column] for row in rows], dtype=np.float64)
        x = np.arange(len(rows)) + (j - (len(columns) - 1) / 2) * width
        ax.bar(x, values[:, 0], width=width, label=column,
               yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]], capsize=2)
    ax.axhline(copy_goal, color="tab:green", linestyle="--", linewidth=1, label=f"copies: goal >= {copy_goal:g}")
    ax.axhline(unseen_goal, color="tab:red", linestyle=":", linewidth=1,
               label=f"{unseen_row} real images: goal <= {unseen_goal:g}")
    ax.set_xticks(np.arange(len(rows)), [f"{row}\n(false positives)" if row == unseen_row else row for row in rows])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f"share flagged at a false positive rate of {fpr:g}")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False)
    _save(plt, fig, path)


def mode_shares(path: str | os.PathLike, table: Sequence[Mapping], effective: Mapping[str, float]) -> None:
    """Per mode (largest first), its share of the TRAINING set beside the GENERATED share with its 95%
    interval; bars coloured by status (missed, under-produced, over-produced, reproduced)."""
    colours = {"missed": "#c0392b", "under-produced": "#e67e22", "over-produced": "#8e44ad", "reproduced": "#3a5bd9"}
    rows = sorted(table, key=lambda r: -r["training_share"])
    x = np.arange(len(rows))
    plt, fig, ax = _figure(max(6.4, 0.32 * len(rows) + 2), 4.0)
    ax.bar(x - 0.2, [r["training_share"] for r in rows], 0.4, color="#9aa5b1", label="training share")
    generated = np.array([r["generated_share"] for r in rows])
    low, high = (np.array([r["generated_ci"][i] for r in rows]) for i in (0, 1))
    ax.bar(x + 0.2, generated, 0.4, color=[colours.get(r["status"], "#3a5bd9") for r in rows],
           yerr=[np.maximum(0, generated - low), np.maximum(0, high - generated)], capsize=2,
           error_kw={"elinewidth": 0.8})
    missed = [i for i, r in enumerate(rows) if r["status"] == "missed"]
    ax.scatter(x[missed] + 0.2, np.zeros(len(missed)), marker="x", color=colours["missed"], zorder=3, clip_on=False)
    from matplotlib.patches import Patch

    handles = [Patch(color="#9aa5b1", label="training share")]
    handles += [Patch(color=colour, label=f"samples: {status}") for status, colour in colours.items()]
    ax.legend(handles=handles, fontsize=7, ncol=2, title="error bars: the samples' 95% interval; x: missed",
              title_fontsize=7)
    ax.set_xticks(x, [str(r["mode"]) for r in rows], fontsize=7)
    ax.set_xlabel("mode (largest first)")
    ax.set_ylabel("share")
    ax.set_title(f"Modes: samples spread over {effective.get('generated', 0):.1f} effective modes, "
                 f"the training set over {effective.get('training', 0):.1f}", fontsize=9)
    _save(plt, fig, path)
