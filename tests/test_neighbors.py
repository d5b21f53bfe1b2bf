"""Exact cosine top-k against a brute-force reference, and the neighbours file format."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from novelty.errors import NoveltyError
from novelty.search.neighbors import load_neighbors, normalize, save_neighbors, top_k


def reference(generated: np.ndarray, training: np.ndarray) -> np.ndarray:
    """The full (N, M) cosine matrix in float64."""
    def unit(x):
        x = x.astype(np.float64)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    return unit(generated) @ unit(training).T


def assert_exact_top_k(indices, sims, generated, training, k, atol=1e-6):
    """Right shapes, scores are the true scores of the returned rows, best first, and no better row missed."""
    full = reference(generated, training)
    best = -np.sort(-full, axis=1)[:, :k]
    assert indices.shape == sims.shape == (len(generated), k)
    assert indices.dtype == np.int64 and sims.dtype == np.float32
    for row in indices:
        assert len(set(row.tolist())) == k
    np.testing.assert_allclose(sims, np.take_along_axis(full, indices, axis=1), atol=atol)
    np.testing.assert_allclose(sims, best, atol=atol)
    assert np.all(np.diff(sims, axis=1) <= 0)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return (rng.standard_normal((37, 16)).astype(np.float32),   # GENERATED
            rng.standard_normal((101, 16)).astype(np.float32))  # TRAINING


def lattice(rng, rows, dim=12):
    """Rows with four entries of +-1 and the rest 0: unit vectors of +-0.5, so every cosine is a
    multiple of 0.25 computed exactly, whatever the summation order: many exact ties."""
    x = np.zeros((rows, dim), dtype=np.float32)
    for r in range(rows):
        cols = rng.choice(dim, size=4, replace=False)
        x[r, cols] = rng.choice([-1.0, 1.0], size=4)
    return x


@pytest.mark.parametrize("chunk_size", [None, (3, 2), (7, 13), (5, 100), (37, 101), (64, 1000)])
@pytest.mark.parametrize("k", [1, 5, 101])
def test_matches_brute_force(data, chunk_size, k):
    generated, training = data
    indices, sims = top_k(generated, training, k, chunk_size=chunk_size)
    assert_exact_top_k(indices, sims, generated, training, k)


@pytest.mark.parametrize("chunk_size", [None, 1, (4, 3), (9, 25), (50, 7)])
def test_ties_go_to_the_lower_training_index(chunk_size):
    rng = np.random.default_rng(1)
    generated, training = lattice(rng, 23), lattice(rng, 60)
    training[40] = training[2]  # an exact duplicate: must come right after row 2
    full = reference(generated, training)
    expected = np.argsort(-full, axis=1, kind="stable")[:, :10]
    indices, sims = top_k(generated, training, 10, chunk_size=chunk_size)
    np.testing.assert_array_equal(indices, expected)
    np.testing.assert_array_equal(sims, np.take_along_axis(full, expected, axis=1).astype(np.float32))
    assert len(np.unique(sims)) < sims.size / 4  # the data really is full of ties


def test_float16_is_computed_in_float32(data):
    generated, training = (x.astype(np.float16) for x in data)
    indices, sims = top_k(generated, training, 5, chunk_size=(8, 16))
    expected = top_k(generated.astype(np.float32), training.astype(np.float32), 5, chunk_size=(8, 16))
    np.testing.assert_array_equal(indices, expected[0])
    np.testing.assert_array_equal(sims, expected[1])
    assert sims.dtype == np.float32


def test_planted_copy_is_found_first_with_score_one(data):
    generated, training = data
    training = training.copy()
    training[77] = generated[3] * 2.5  # a memorised sample, at another scale
    indices, sims = top_k(generated, training, 3, chunk_size=(10, 30))
    assert indices[3, 0] == 77
    assert 1 - 1e-6 <= sims[3, 0] <= 1.0
    assert sims[3, 1] < 0.99


def test_convention_generated_rows_are_queries(data):
    generated, training = data  # 37 GENERATED, 101 TRAINING
    indices, _ = top_k(generated, training, 4)
    assert indices.shape == (37, 4) and indices.max() < 101
    swapped, _ = top_k(training, generated, 4)
    assert swapped.shape == (101, 4) and swapped.max() < 37


def test_zero_rows_have_similarity_zero(data):
    generated, training = (x.copy() for x in data)
    generated[0] = 0
    training[:] = np.abs(training)  # all positive cosines, so a zero row is never a neighbour...
    generated[1:] = np.abs(generated[1:])
    training[50] = 0  # ...except of the zero query, for which everything ties at 0
    indices, sims = top_k(generated, training, 3)
    np.testing.assert_array_equal(indices[0], [0, 1, 2])
    np.testing.assert_array_equal(sims[0], [0, 0, 0])
    assert 50 not in indices[1:]
    np.testing.assert_array_equal(normalize(training)[50], 0)


def test_no_generated_rows(data):
    indices, sims = top_k(data[0][:0], data[1], 5)
    assert indices.shape == sims.shape == (0, 5)


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 102}, "k=102 .* only 101 rows"),
    ({"k": 0}, "positive integer, received 0"),
    ({"backend": "annoy"}, "unknown backend 'annoy'.*exact, faiss"),
    ({"chunk_size": 0}, "chunk_size must be"),
    ({"chunk_size": (4, 0)}, "chunk_size must be"),
])
def test_bad_arguments(data, kwargs, message):
    with pytest.raises(NoveltyError, match=message):
        top_k(*data, **kwargs)


def test_bad_features(data):
    generated, training = data
    with pytest.raises(NoveltyError, match="dimension: 16 vs 8"):
        top_k(generated, training[:, :8])
    with pytest.raises(NoveltyError, match="2-D"):
        top_k(generated[0], training)
    bad = training.copy()
    bad[9, 3] = np.nan
    with pytest.raises(NoveltyError, match="row 9 has non-finite"):
        top_k(generated, bad)


def test_faiss_backend_agrees(data):
    pytest.importorskip("faiss")
    generated, training = data
    indices, sims = top_k(generated, training, 6, backend="faiss", chunk_size=(10, 40))
    assert_exact_top_k(indices, sims, generated, training, 6)
    exact = top_k(generated, training, 6)
    np.testing.assert_array_equal(indices, exact[0])


def test_faiss_backend_missing_is_a_clear_error(data, monkeypatch):
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    with pytest.raises(NoveltyError, match="needs the faiss package"):
        top_k(*data, backend="faiss")


def test_save_and_load_neighbors(tmp_path, data):
    generated, training = data
    indices, sims = top_k(generated, training, 3)
    gen_ids = [f"sample_{i:03d}.png" for i in range(len(generated))]
    train_ids = [f"train/{i}.jpg" for i in range(len(training))]
    path = tmp_path / "neighbors" / "block5_pool.json"
    save_neighbors(path, gen_ids, train_ids, indices, sims)
    table = load_neighbors(path)
    assert list(table) == gen_ids
    first = table["sample_000.png"]
    assert [e["id"] for e in first] == [train_ids[j] for j in indices[0]]
    assert [e["score"] for e in first] == [round(float(s), 6) for s in sims[0]]
    assert json.loads(path.read_text())["sample_001.png"][0]["id"] == train_ids[indices[1, 0]]
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left nothing behind


def test_save_neighbors_checks_its_input(tmp_path, data):
    indices, sims = top_k(*data, 2)
    with pytest.raises(NoveltyError, match="36 generated ids for 37 rows"):
        save_neighbors(tmp_path / "n.json", ["a"] * 36, ["t"] * 101, indices, sims)
    with pytest.raises(NoveltyError, match=r"indices must lie in \[0, 5\)"):
        save_neighbors(tmp_path / "n.json", [str(i) for i in range(37)], ["t"] * 5, indices, sims)


@pytest.mark.parametrize("text, message", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold an object"),
    ('{"a": [{"id": 3, "score": 0.5}]}', "neighbours of 'a' must be a list"),
])
def test_load_neighbors_rejects_bad_files(tmp_path, text, message):
    path = tmp_path / "n.json"
    if text is not None:
        path.write_text(text)
    with pytest.raises(NoveltyError, match=message):
        load_neighbors(path)
