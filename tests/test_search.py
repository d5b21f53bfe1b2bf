"""The search room (novelty.search.backends): exact and FAISS behind one interface, the rule that picks
one, the recall an approximate search records, and every neighbour question going through it.

Planted: seeded clustered features (40 centres in 32 dimensions) whose exact top-24 is the answer an
approximate index must find; a tiny image run (random VGG16) searched with ``--index faiss``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import planted_copy_folders

from novelty import defaults
from novelty.cli import main
from novelty.errors import NoveltyError
from novelty.run import tables
from novelty.search import backends
from novelty.search.backends import (
    ExactBackend,
    FaissBackend,
    faiss_params,
    recall_at_k,
    resolve_index,
)
from novelty.search.neighbors import top_k

pytest.importorskip("faiss")
ROOT = Path(__file__).resolve().parents[1]
SIZE, N_TRAIN = 32, 60


def clustered(rng: np.random.Generator, n: int, centres: np.ndarray, spread: float = 1.0) -> np.ndarray:
    """Rows near one of ``centres`` each, float16 as the feature store keeps them."""
    x = centres[rng.integers(0, len(centres), n)] + spread * rng.standard_normal((n, centres.shape[1]))
    return x.astype(np.float16)


@pytest.fixture(scope="module")
def sets():
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((40, 32))
    return clustered(rng, 300, centres), clustered(rng, 3000, centres)


def test_faiss_probing_every_list_finds_the_exact_lists(sets):
    generated, training = sets
    exact = top_k(generated, training, 24)
    found = top_k(generated, training, 24, backend=FaissBackend(params={"kind": "ivf_flat", "nlist": 16, "nprobe": 16}))
    assert recall_at_k(generated, training, found[0])[0] == 1.0
    np.testing.assert_allclose(found[1], exact[1], atol=1e-5)


def test_faiss_ivf_recall_is_measured_and_recorded(sets):
    generated, training = sets
    backend = FaissBackend(seed=3, params={"kind": "ivf_flat", "nlist": 32, "nprobe": 8}, recall_queries=100)
    idx, _ = top_k(generated, training, 24, backend=backend)
    (search,) = backend.searches
    recall, queries = recall_at_k(generated, training, idx, 100, seed=3)
    assert search["recall_at_k"] == recall and search["recall_queries"] == queries == 100
    assert search["nlist"] == 32 and search["nprobe"] == 8 and search["queries"] == 300
    assert 0.95 <= recall < 1.0  # approximate, and still finding nearly all of the exact top-24
    few = FaissBackend(params={"kind": "ivf_flat", "nlist": 32, "nprobe": 1})
    top_k(generated, training, 24, backend=few)
    assert few.searches[0]["recall_at_k"] < recall  # fewer lists probed: measurably worse, not hidden


def test_faiss_default_rule_on_a_small_set_agrees_with_exact(sets):
    generated, training = sets
    exact = top_k(generated, training, 24)
    found = top_k(generated, training, 24, backend="faiss")
    assert np.mean([len(np.intersect1d(a, b)) / 24 for a, b in zip(found[0], exact[0], strict=True)]) >= 0.999


def test_exact_backend_is_todays_top_k(sets):
    generated, training = sets
    via_backend = top_k(generated, training, 24, backend=ExactBackend())
    default = top_k(generated, training, 24)
    assert all(np.array_equal(a, b) for a, b in zip(via_backend, default, strict=True))


def test_faiss_parameters_follow_the_stated_rule():
    assert faiss_params(defaults.FAISS_ANN_MIN_TRAINING - 1) == {"kind": "flat"}
    hnsw = {"kind": "hnsw_flat", "M": 32, "efConstruction": 80}
    assert faiss_params(defaults.FAISS_ANN_MIN_TRAINING) == faiss_params(100_000) == {**hnsw, "efSearch": 64}
    assert faiss_params(100_001) == faiss_params(1_000_000) == {**hnsw, "efSearch": 128}
    # the graph's own copy of the rows: float32 up to the stated size, float16 beyond (1M x 4,096: 8 GB, not 16)
    assert faiss_params(100_000, 4096)["kind"] == "hnsw_flat"
    assert faiss_params(1_000_000, 2048) == faiss_params(1_000_000, 4096) == {**hnsw, "kind": "hnsw_fp16",
                                                                               "efSearch": 128}
    assert faiss_params(defaults.FAISS_GRAPH_FLOAT32_MAX_BYTES // (4 * 512), 512)["kind"] == "hnsw_flat"


def test_hnsw_agrees_with_exact_and_never_leaves_a_hole(sets):
    generated, training = sets
    exact = top_k(generated, training, 24)
    backend = FaissBackend(params={"kind": "hnsw_flat", "M": 8, "efConstruction": 40, "efSearch": 16})
    found = top_k(generated, training, 40, backend=backend)  # k above efSearch: raised to k
    assert (found[0] >= 0).all() and backend.searches[0]["recall_at_k"] >= 0.95
    assert np.mean([len(np.intersect1d(a, b)) / 24 for a, b in zip(found[0][:, :24], exact[0], strict=True)]) >= 0.95


def test_float16_graph_agrees_with_exact_and_is_saved_under_its_own_name(tmp_path, sets):
    """The graph kind of a million rows, on a small set: float16 rows lose nothing worth having against
    exact search (the store keeps float16 too), and its saved file says which precision it holds."""
    generated, training = sets
    (tmp_path / "training").mkdir()
    np.save(tmp_path / "training" / "block5_pool-00000001.npy", training)
    stored = np.load(tmp_path / "training" / "block5_pool-00000001.npy", mmap_mode="r")
    params = {"kind": "hnsw_fp16", "M": 16, "efConstruction": 80, "efSearch": 64}
    backend = FaissBackend(params=params, folder=tmp_path / "index")
    found = top_k(generated, stored, 24, backend=backend)
    exact = top_k(generated, training, 24)
    assert backend.searches[0]["recall_at_k"] >= 0.95 and backend.searches[0]["kind"] == "hnsw_fp16"
    assert np.abs(found[1][:, 0] - exact[1][:, 0]).max() < 2e-3  # scores read from float16 rows: close, not equal
    (saved,) = (tmp_path / "index").glob("*.faiss")
    assert saved.name == "training-block5_pool-00000001-hnsw-M16-efc80-fp16.faiss"
    again = FaissBackend(params=params, folder=tmp_path / "index")
    np.testing.assert_array_equal(top_k(generated, stored, 24, backend=again)[0], found[0])
    assert again.searches[0]["graph"] == f"{saved.name}: read"


def test_index_choice_and_the_million_refusal(monkeypatch):
    assert resolve_index("auto", defaults.FAISS_AUTO_TRAINING - 1) == "exact"
    assert resolve_index("auto", defaults.FAISS_AUTO_TRAINING) == "faiss"
    assert resolve_index("exact", 10 * defaults.EXACT_MAX_TRAINING) == "exact"  # asked for by name
    with pytest.raises(NoveltyError, match=r"^exact search over 1,000,000 training images .*--index faiss"):
        resolve_index("exact", defaults.EXACT_MAX_TRAINING, explicit=False)
    monkeypatch.setitem(sys.modules, "faiss", None)  # no faiss: auto falls back to exact, up to the limit
    assert resolve_index("auto", defaults.FAISS_AUTO_TRAINING) == "exact"
    with pytest.raises(NoveltyError, match="--index faiss"):
        resolve_index("auto", defaults.EXACT_MAX_TRAINING)
    with pytest.raises(NoveltyError, match="unknown index 'annoy'"):
        resolve_index("annoy", 10)


def test_no_module_outside_the_search_room_searches_by_itself():
    """Static half of "every neighbour question goes through the interface": nothing outside
    novelty/search builds an index, calls the exact kernel or multiplies normalised features."""
    pattern = re.compile(r"import faiss|exact_top_k|IndexFlat|IndexIVF|normalize\([^)]*\)\s*@")
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "novelty").rglob("*.py"))
                 if "search" not in p.parts and pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


class Recording(ExactBackend):
    """Exact search that notes each call's (queries, training rows, k)."""

    calls: list[tuple[int, int, int]] = []

    def search(self, generated, training, k, chunks, progress):
        Recording.calls.append((len(generated), len(training), k))
        return super().search(generated, training, k, chunks, progress)

    def similarities(self, training, direction, block=None):
        Recording.calls.append(("similarities", len(training)))
        return super().similarities(training, direction, block)


@pytest.mark.slow
def test_every_neighbour_question_goes_through_the_backend(tmp_path, monkeypatch):
    import novelty
    from novelty.search.query import QueryIndex

    train, gen = planted_copy_folders(tmp_path, N_TRAIN, SIZE)
    monkeypatch.setitem(backends.BACKENDS, "exact", Recording)
    Recording.calls = []
    run = novelty.analyze(train, generated=gen, out=tmp_path / "run", weights="none", input_size=SIZE,
                          layers=("block5_pool",), k=24, progress=False, mirror=False)
    assert Recording.calls[0] == (6, N_TRAIN, 24)  # analyze: samples -> training top-24
    assert (N_TRAIN, N_TRAIN, 25) in Recording.calls  # verdicts: training self-neighbours (+ itself)
    assert (6, N_TRAIN, 6) in Recording.calls  # verdicts: the 6 held-out images -> training
    assert (6, 6, 6) in Recording.calls  # verdicts: samples' self-neighbours (mode collapse)
    Recording.calls = []
    run.more_like(["t001.png"])
    assert Recording.calls == [("similarities", N_TRAIN)]
    Recording.calls = []
    QueryIndex(tmp_path / "run").search(np.zeros((SIZE, SIZE, 3), np.uint8), k=5)
    assert Recording.calls == [(1, N_TRAIN, 5)]


@pytest.mark.slow
def test_faiss_run_records_its_recall_everywhere(tmp_path, monkeypatch):
    from novelty.run.browse import RunView

    train, gen = planted_copy_folders(tmp_path, N_TRAIN, SIZE)
    monkeypatch.setattr(defaults, "FAISS_ANN_MIN_TRAINING", 32)  # a real HNSW graph on 60 images
    result = CliRunner().invoke(main, ["analyze", "--train", str(train), "--generated", str(gen), "--out",
                                       str(tmp_path / "run"), "--weights", "none", "--input-size", str(SIZE),
                                       "--layers", "block5_pool", "--index", "faiss", "--no-mirror"])
    assert result.exit_code == 0, result.output
    run_json = tables.read_document(tmp_path / "run" / "run.json", tables.RUN_JSON)
    summary = tables.read_document(tmp_path / "run" / "summary.json", tables.SUMMARY)
    assert run_json["index"] == "faiss"
    recorded = run_json["search_index"]
    (search,) = recorded["searches"]
    assert search["layer"] == "block5_pool" and search["kind"] == "hnsw_flat" and search["efSearch"] == 64
    assert recorded["recall_at_k"] == search["recall_at_k"] >= 0.95 and recorded["recall_queries"] == 1000
    assert len(summary["search_index"]["searches"]) > 1  # the verdicts' self-neighbours and held-out queries too
    (graph,) = (tmp_path / "run" / "index").glob("*.faiss")  # analyze built and saved it, the verdicts read it
    assert search["graph"] == f"{graph.name}: built and saved"
    verdicts = [s for s in summary["search_index"]["searches"] if s["search"] == "verdicts"]
    assert verdicts and all(s["graph"] == f"{graph.name}: read" for s in verdicts if s["training"] == N_TRAIN)
    assert summary["search_index"]["recall_at_k"] == min(s["recall_at_k"] for s in summary["search_index"]["searches"])
    assert f"recall@24 against exact search {summary['search_index']['recall_at_k']:.3f}" in result.output
    assert RunView.load(tmp_path / "run").summary()["search_index"] == summary["search_index"]
    from novelty.search.query import QueryIndex

    assert QueryIndex(tmp_path / "run").backend.name == "exact"  # one query: a pass over the store, exact


def test_web_summary_shows_recall():
    from webdemo.schemas import Summary

    script = (ROOT / "webdemo" / "static" / "js" / "summary.js").read_text(encoding="utf-8")
    assert "recallCard(summary.search_index)" in script and "search_index" in Summary.model_fields


def test_readme_states_the_rule_and_thresholds_of_defaults():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Large collections"):text.index("## Layout of the code")]
    for number in (defaults.FAISS_AUTO_TRAINING, defaults.EXACT_MAX_TRAINING, defaults.FAISS_ANN_MIN_TRAINING,
                   defaults.RECALL_QUERIES):
        assert f"{number:,}" in section
    stated = {"M": defaults.FAISS_HNSW_M, "efConstruction": defaults.FAISS_HNSW_EF_CONSTRUCTION,
              "efSearch": defaults.FAISS_HNSW_EF_SEARCH}
    for name, value in stated.items():
        assert f"`{name}` = {value}" in section
    assert "--index faiss" in section


def test_hnsw_graph_is_saved_once_and_read_back(tmp_path, sets):
    """A graph over a stored file is built once, saved under the run's index/, read by a later backend
    (same neighbours), and replaced when the stored file changes (the store renames it on every change)."""
    generated, training = sets
    params = {"kind": "hnsw_flat", "M": 8, "efConstruction": 40, "efSearch": 32}
    (tmp_path / "training").mkdir()
    np.save(tmp_path / "training" / "block5_pool-00000001.npy", training)
    stored = np.load(tmp_path / "training" / "block5_pool-00000001.npy", mmap_mode="r")
    first = FaissBackend(params=params, folder=tmp_path / "index")
    found = top_k(generated, stored, 24, backend=first)
    (saved,) = (tmp_path / "index").glob("*.faiss")
    assert saved.name == "training-block5_pool-00000001-hnsw-M8-efc40.faiss"
    assert first.searches[0]["graph"] == f"{saved.name}: built and saved"
    top_k(generated[:5], stored, 24, backend=first)  # a second question: the graph in memory, not rebuilt
    assert "graph" in first.searches[1] and saved.stat().st_mtime_ns == saved.stat().st_mtime_ns
    again = FaissBackend(params=params, folder=tmp_path / "index")
    np.testing.assert_array_equal(top_k(generated, stored, 24, backend=again)[0], found[0])
    assert again.searches[0]["graph"] == f"{saved.name}: read"
    np.save(tmp_path / "training" / "block5_pool-00000002.npy", training[:2000])
    changed = np.load(tmp_path / "training" / "block5_pool-00000002.npy", mmap_mode="r")
    top_k(generated, changed, 24, backend=FaissBackend(params=params, folder=tmp_path / "index"))
    assert [p.name for p in (tmp_path / "index").glob("*.faiss")] == ["training-block5_pool-00000002-hnsw-M8-efc40.faiss"]
    in_memory = FaissBackend(params=params, folder=tmp_path / "elsewhere")
    top_k(generated, np.asarray(training), 24, backend=in_memory)  # no stored file behind it: nothing saved
    assert not (tmp_path / "elsewhere").exists() and "graph" not in in_memory.searches[0]
