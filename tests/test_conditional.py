"""Conditional (pix2pix) verdicts: planted generators written as output folders, judged by the real
pipeline (``novelty analyze --inputs``) with random VGG weights. Pairs: the embedded masks, each input
its Canny edge map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import novelty
from novelty.analysis import AnalyzeOptions
from novelty.conditional import analyze_conditional
from novelty.images.decode import save_png
from novelty.judge import planted
from novelty.run import tables

MASKS = Path(__file__).resolve().parents[1] / "data" / "masks" / "images"
PAIRS, HELD = 100, 24
OPTIONS = AnalyzeOptions(weights="none", input_size=32, holdout_fraction=0.5, fpr=0.1, progress=False, align=False)


@pytest.fixture(scope="module")
def pair_set(tmp_path_factory):
    """A pair folder (``A/`` edges, ``B/`` masks), the held-out inputs in their own folder, and the arrays."""
    root = tmp_path_factory.mktemp("pairs")
    edges, masks, ids = planted.edge_pairs(MASKS, 32, PAIRS)
    names = [f"{Path(i).stem}.png" for i in ids]
    for name, edge, mask in zip(names, edges, masks, strict=True):
        save_png(edge, root / "pairs" / "A" / name)
        save_png(mask, root / "pairs" / "B" / name)
    held = np.random.default_rng(0).permutation(PAIRS)[:HELD]
    train = np.setdiff1d(np.arange(PAIRS), held)
    for j in held:
        save_png(edges[j], root / "inputs" / names[j])
    return {"root": root, "edges": edges, "masks": masks, "names": names, "held": held, "train": train}


def _judge(pair_set, kind: str, tmp_path: Path):
    """Judge a planted generator's outputs; every kind in one run folder, so the targets are embedded once."""
    s = pair_set
    run_dir = s["root"] / "run"
    names = [s["names"][j] for j in s["held"]]
    out = tmp_path / kind
    if kind == "truthful":
        planted.truthful(out, names, s["masks"][s["held"]])
    else:
        planted.memorising(out, names, s["edges"][s["held"]], s["edges"][s["train"]], s["masks"][s["train"]],
                           noise=3 if kind == "memorising-noisy" else 0)
    if kind == "truthful":  # through the Python API, which takes the same inputs
        run = novelty.analyze(s["root"] / "pairs", out=run_dir, inputs=s["root"] / "inputs",
                              generated=out, weights="none", input_size=32, holdout_fraction=0.5, fpr=0.1,
                              align=False, progress=False)
        assert run.samples.truth_id.tolist() == run.samples.id.tolist()
    else:
        analyze_conditional(s["root"] / "pairs", run_dir, inputs=s["root"] / "inputs", generated=out, options=OPTIONS)
    table = tables.read_table(run_dir / "samples.csv", tables.SAMPLES)
    return table.rows, tables.read_document(run_dir / "summary.json", tables.SUMMARY)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["memorising", "memorising-noisy"])
def test_a_memorising_generator_is_flagged(pair_set, tmp_path, kind) -> None:
    rows, summary = _judge(pair_set, kind, tmp_path)
    assert len(rows) == HELD
    flagged = sum(row["is_copy"] for row in rows)
    assert flagged >= 0.9 * HELD, [(r["id"], r["copy_p_value"], r["follows_truth"]) for r in rows]
    assert all(row["truth_id"] == row["id"] and row["truth_split"] is None for row in rows)  # no checkpoint: unknown
    assert summary["conditional"]["with_truth"] == HELD
    if kind == "memorising":  # the exact copy is the training target itself
        assert sum(bool(row["identical_id"]) for row in rows) >= 0.9 * HELD


@pytest.mark.slow
def test_a_generator_that_returns_the_truth_is_not_flagged(pair_set, tmp_path) -> None:
    rows, summary = _judge(pair_set, "truthful", tmp_path)
    assert sum(row["is_copy"] for row in rows) <= 0.05 * HELD
    assert all(row["follows_truth"] for row in rows)
    assert all(row["truth_rank_block5_pool"] == 1 and row["truth_similarity_block5_pool"] > 0.999 for row in rows)
    assert summary["conditional"]["follows_truth"] == HELD
    # the output's own truth is not among the training targets searched
    run_dir = pair_set["root"] / "run"
    assert not (run_dir / "targets" / rows[0]["truth_id"]).exists()
    assert (run_dir / "truth" / rows[0]["truth_id"]).is_file()


def test_an_output_follows_its_truth_only_when_at_least_as_close_to_it_in_every_layer() -> None:
    from novelty.judge.conditional import Truth

    truth = Truth(ids=["a.png", "b.png", "c.png", ""], split=["heldout", "trained", "heldout", ""],
                  similarity={"l1": np.array([0.9, 0.9, 0.5, np.nan]), "l5": np.array([0.95, 0.7, 0.99, np.nan])})
    nearest = {"l1": np.array([0.8, 0.8, 0.8, 0.1]), "l5": np.array([0.95, 0.8, 0.5, 0.1])}
    assert truth.follows(nearest).tolist() == [True, False, False, False]  # a tie counts as following
    lists = np.array([[0.96, 0.95, 0.9], [0.8, 0.75, 0.6], [0.99, 0.98, 0.4], [0.1, 0.1, 0.1]])
    assert truth.ranks("l5", lists)[:3].tolist() == [2, 3, 1]
    rows = [{} for _ in range(4)]
    truth.add_cells(rows, {"l1": lists, "l5": lists}, truth.follows(nearest))
    assert rows[3]["truth_id"] == "" and rows[3]["truth_rank_l5"] == "" and rows[0]["truth_rank_l5"] == 2
    flagged = np.array([True, True, False, True])
    summary = truth.summary(truth.follows(nearest), flagged, flagged & ~truth.follows(nearest),
                            {"l1": lists, "l5": lists})
    assert (summary["with_truth"], summary["follows_truth"], summary["cleared"], summary["copies"]) == (3, 1, 1, 2)
