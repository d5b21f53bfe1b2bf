"""Conditional outputs (pix2pix): each output beside its own ground truth.

A run made by ``novelty analyze --inputs`` (:mod:`novelty.conditional`) records in ``run.json``
"conditional" which output answers which input and, where the input is one half of a known pair, that
pair's target (its *truth*, embedded as the feature set ``truth``). The verdict stays the calibrated
one of :mod:`novelty.judge.verdicts` (nearest TRAINING target against held-out real targets), with one
conditional rule on top: an output that is at least as close to its own truth as to its nearest
training target, in every layer, *follows its input* and is not a copy, however close that training
target is (the truth resembling a training target is the data's doing, not the generator's). An output
closer to another pair's training target than to its own truth, by more than the held-out real targets
allow, reproduces that target instead of following its input: a copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from novelty.errors import NoveltyError

TRUTH_SET = "truth"  # the feature store's set of ground-truth targets
TOLERANCE = 1e-5  # cosine rounding: an output identical to its truth ties with a training twin of it


@dataclass
class Truth:
    """Per GENERATED output (row-aligned with the generated ids): its truth's id ("" where none), the
    pair's side of the training split ("heldout", "trained" or ""), and the cosine similarity of output
    and truth per layer (NaN where none)."""

    ids: list[str]
    split: list[str]
    similarity: dict[str, np.ndarray]

    @property
    def known(self) -> np.ndarray:
        return np.array([bool(ident) for ident in self.ids])

    def follows(self, nearest: Mapping[str, np.ndarray]) -> np.ndarray:
        """``(M,)`` bool: at least as close to its truth as to its nearest training target (``nearest``:
        layer -> ``(M,)`` similarity), in every layer."""
        out = self.known.copy()
        for layer, sims in self.similarity.items():
            out &= np.nan_to_num(sims, nan=-np.inf) >= np.asarray(nearest[layer], np.float64) - TOLERANCE
        return out

    def ranks(self, layer: str, list_similarities: np.ndarray) -> np.ndarray:
        """``(M,)`` the truth's place among each output's neighbour list in ``layer`` (``(M, k)``
        similarities): 1 + the neighbours closer than it, so k + 1 means below every listed one."""
        sims = np.nan_to_num(self.similarity[layer], nan=-np.inf)
        return 1 + (np.asarray(list_similarities) > sims[:, None] + TOLERANCE).sum(axis=1)

    def add_cells(self, rows: list[dict], lists: Mapping[str, np.ndarray], follows: np.ndarray) -> None:
        """Add the truth columns (:data:`novelty.run.tables.SAMPLES`) to ``samples.csv`` rows."""
        ranks = {layer: self.ranks(layer, lists[layer]) for layer in self.similarity}
        for i, row in enumerate(rows):
            known = bool(self.ids[i])
            row |= {"truth_id": self.ids[i], "truth_split": self.split[i], "follows_truth": bool(follows[i])}
            for layer, sims in self.similarity.items():
                row[f"truth_similarity_{layer}"] = round(float(sims[i]), 6) if known else ""
                row[f"truth_rank_{layer}"] = int(ranks[layer][i]) if known else ""

    def summary(self, follows: np.ndarray, flagged: np.ndarray, is_copy: np.ndarray,
                lists: Mapping[str, np.ndarray]) -> dict:
        """``summary.json`` "conditional": how many outputs have a truth, follow it, were cleared by it."""
        known = self.known
        top = {layer: int((self.ranks(layer, lists[layer])[known] == 1).sum()) for layer in self.similarity}
        return {"rule": "copy = calibrated copy (or identical to a training target) and not at least as close to "
                        "its own ground truth as to its nearest training target in every layer",
                "outputs": len(self.ids), "with_truth": int(known.sum()),
                "heldout_truth": sum(s == "heldout" for s in self.split),
                "follows_truth": int(follows.sum()), "cleared": int((flagged & follows).sum()),
                "copies": int(is_copy.sum()), "truth_first": top,
                "truth_similarity_median": {layer: float(np.median(s[known])) if known.any() else None
                                            for layer, s in self.similarity.items()}}


def load_truth(store, manifest: dict, generated_ids: Sequence[str], generated: Mapping[str, np.ndarray],
               layers: Sequence[str]) -> Truth | None:
    """The :class:`Truth` of a conditional run (None for any other run): ``run.json`` "conditional"
    "truth" maps output id -> truth id, whose features are the store's :data:`TRUTH_SET`."""
    from novelty.search.neighbors import normalize

    conditional = manifest.get("conditional")
    if not conditional:
        return None
    mapping, split = conditional.get("truth") or {}, conditional.get("truth_split") or {}
    ids = [mapping.get(g, "") for g in generated_ids]
    sims = {layer: np.full(len(ids), np.nan) for layer in layers}
    if any(ids):
        truth_ids, truth = store.load_layers(TRUTH_SET, layers)
        row = {t: j for j, t in enumerate(truth_ids)}
        missing = sorted({t for t in ids if t and t not in row})
        if missing:
            raise NoveltyError(f"the run's truth features lack {missing[0]}; re-run `novelty analyze --inputs`")
        have = np.flatnonzero([bool(t) for t in ids])
        for layer in layers:
            gen = normalize(np.asarray(generated[layer][have], np.float32))
            tru = normalize(np.asarray(truth[layer], np.float32)[[row[ids[i]] for i in have]])
            sims[layer][have] = (gen * tru).sum(axis=1)
    return Truth(ids, [split.get(t, "") if t else "" for t in ids], sims)


def cache_part(store, manifest: dict, layers: Sequence[str]) -> dict | None:
    """What a conditional run's verdicts further depend on (for the verdicts' cache key)."""
    conditional = manifest.get("conditional")
    if not conditional:
        return None
    return {"conditional": conditional,
            "truth": [(store.meta(TRUTH_SET, layer) or {}).get("data") for layer in layers]}
