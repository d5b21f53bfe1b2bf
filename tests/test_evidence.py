"""Copy evidence is pluggable: each piece is one object whose declared columns are the ones written,
and a piece that is no part of the registry still joins the calibrated rule or makes copies itself."""

from __future__ import annotations

import numpy as np
import pytest

from novelty.errors import NoveltyError
from novelty.judge.alignment import AlignedMatch, TrainingPixels
from novelty.judge.evidence import (
    CALIBRATED_COLUMNS,
    Evidence,
    EvidenceFailed,
    Found,
    LayerCosine,
    Queries,
    find,
)
from novelty.judge.identical import IdenticalCopy
from novelty.judge.runinputs import FolderReadError
from novelty.judge.verdicts import EVIDENCE, assess

FIXED = ("id", "verdict", "copy_score", "is_copy", "copy_p_value", "layer_agreement", "duplicate_group")


def _features(seed: int = 0, n: int = 300, m: int = 6) -> tuple[dict, dict, list[str], list[str]]:
    """TRAINING and GENERATED features at two layers; sample 0 is training image 10 exactly."""
    rng = np.random.default_rng(seed)
    train = {"a": rng.random((n, 8)), "b": rng.random((n, 5))}
    gen = {layer: rng.random((m, x.shape[1])) for layer, x in train.items()}
    for layer in train:
        gen[layer][0] = train[layer][10]
    return train, gen, [f"t{i}" for i in range(n)], [f"s{i}" for i in range(m)]


class Echo(Evidence):
    """A calibrated piece outside the registry: layer ``a``'s similarity again, under its own name."""

    name, help, label = "echo", "layer a again", "echo"
    extra_columns = ("echo_note",)

    def compute(self, queries: Queries, found: dict) -> Found:
        return found["a"]._replace(detail=["seen"] * len(found["a"].index))

    def cells(self, found: Found, i: int, training_ids) -> dict:
        return {"echo_note": found.detail[i]}

    @classmethod
    def from_run(cls, source) -> list[Evidence]:
        return [cls()]


class Planted(Evidence):
    """A decisive piece outside the registry: sample 3 copies training image 7, whatever it looks like."""

    name, help, label, decisive = "planted", "a copy known beforehand", "planted", True

    def compute(self, queries: Queries, found: dict) -> Found:
        index = np.full(len(queries.lists["a"][0]), -1)
        index[3] = 7
        return Found(index, (index >= 0).astype(float), np.zeros(len(index), bool))

    @classmethod
    def from_run(cls, source) -> list[Evidence]:
        return [cls()]


def test_the_registry_declares_the_samples_columns_in_order():
    train, gen, tids, gids = _features()
    rng = np.random.default_rng(1)
    train_grey = rng.random((len(tids), 64, 64)).astype(np.float16) * 255
    gen_grey = rng.random((len(gids), 64, 64)).astype(np.float16) * 255
    gen_grey[0] = train_grey[10]

    def check(candidates):
        found = np.where(candidates[:, 0] == 10, 10, -1)
        return found, ["same pixels" if j >= 0 else "" for j in found]

    pieces = [AlignedMatch(TrainingPixels(lambda idx: np.repeat(train_grey[idx, :, :, None], 3, -1).astype(np.uint8)),
                           gen_grey), IdenticalCopy(check), LayerCosine("b"), LayerCosine("a")]
    result = assess(train, gen, tids, gids, k=5, fpr=0.05, evidence=pieces)
    ordered = [LayerCosine("b"), LayerCosine("a"), *pieces[1::-1]]  # layers keep theirs, then EVIDENCE order
    assert [type(p) for p in ordered] == [LayerCosine, LayerCosine, *EVIDENCE[1:]]
    assert all(p.help and p.label for p in ordered) and len({p.name for p in ordered}) == len(ordered)
    calibrated_cols = [f"{p.name}_{c}" for p in ordered if not p.decisive for c in CALIBRATED_COLUMNS]
    extra = [c for p in ordered for c in p.extra_columns]
    assert list(result.samples[0]) == [*FIXED, *calibrated_cols, *extra]
    assert ordered[-1].columns == ("aligned_nearest_id", "aligned_similarity", "aligned_mirrored",
                                   "aligned_heldout_share", "aligned_p_value", "aligned_scale", "aligned_crop")
    assert ordered[2].columns == ("identical_id", "identical_kind")  # decisive: no calibrated columns
    first = result.samples[0]
    assert first["identical_id"] == "t10" and first["is_copy"] is True and first["aligned_nearest_id"] == "t10"
    settings = result.summary["settings"]
    assert settings["aligned_pixel_match"] is True and settings["identical_check"] is True
    assert result.summary["copies"]["identical"] == 1


def test_a_piece_outside_the_registry_joins_the_verdict():
    train, gen, tids, gids = _features()
    plain = assess(train, gen, tids, gids, k=5, fpr=0.05)
    assert plain.summary["copies"]["identical"] is None and plain.summary["settings"]["identical_check"] is False
    assert "planted" not in plain.summary["copies"] and plain.samples[3]["is_copy"] is False
    result = assess(train, gen, tids, gids, k=5, fpr=0.05,
                    evidence=[Planted(), Echo(), LayerCosine("a"), LayerCosine("b")])
    row = result.samples[3]
    assert row["is_copy"] is True and row["verdict"] == "copy" and result.summary["copies"]["planted"] == 1
    assert sum(r["is_copy"] for r in result.samples) == 2  # sample 0 (exact) and the planted one
    assert set(result.summary["calibration"]["thresholds"]) == {"a", "b", "echo"}
    assert row["echo_similarity"] == row["a_similarity"] and row["echo_note"] == "seen"
    assert list(row)[-1] == "echo_note" and f"echo_{CALIBRATED_COLUMNS[-1]}" in row
    with pytest.raises(NoveltyError, match="its own name"):
        assess(train, gen, tids, gids, evidence=[LayerCosine("a"), LayerCosine("a"), LayerCosine("b")])


def test_decisive_evidence_is_not_computed_for_heldout_images_and_failures_name_their_piece():
    lists = {"a": (np.array([[1, 2], [0, 2]]), np.array([[0.9, 0.5], [0.8, 0.7]]))}
    mirrored = {"a": (np.array([[2, 1], [1, 2]]), np.array([[0.95, 0.4], [0.6, 0.5]]))}
    heldout = Queries(lists, mirrored, heldout=np.array([4, 5]))
    found = find([LayerCosine("a"), Planted()], heldout)
    assert list(found) == ["a"]
    assert found["a"].index.tolist() == [2, 0] and found["a"].mirrored.tolist() == [True, False]
    assert found["a"].score.tolist() == [0.95, 0.8]

    def gone(indices):
        raise FolderReadError("cannot re-read a training image: t2")

    with pytest.raises(EvidenceFailed, match="t2") as caught:
        find([LayerCosine("a"), AlignedMatch(gone)], heldout)
    assert caught.value.piece.label == "aligned pixel match"
