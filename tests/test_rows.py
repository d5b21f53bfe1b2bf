"""Feature rows normalised as they are read (novelty.search.rows.UnitRows): every way the verdicts read
a set gives what a normalised copy would, without one; the models fitted on big sets (outlier score's
PCA, C_T cells, modes) give the same answers read a block at a time.

Planted: seeded float16 rows written as the feature store writes them (a memory-mapped .npy), one of
them all zeros (a blank image at a ReLU layer), so the "zero rows stay zero" convention is checked too.
"""

from __future__ import annotations

import numpy as np
import pytest

from novelty.curate.outliers import hotelling_z
from novelty.errors import NoveltyError
from novelty.judge import modes
from novelty.judge.copying import data_copying_test
from novelty.search.neighbors import normalize, top_k
from novelty.search.rows import UnitRows, fit_rows, transform


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((500, 24)) + 3 * rng.standard_normal((1, 24))).astype(np.float16)
    x[17] = 0
    path = tmp_path_factory.mktemp("training") / "block5_pool-0a1b2c3d.npy"
    np.save(path, x)
    return np.load(path, mmap_mode="r")


def test_every_read_is_the_normalised_copy(stored):
    view, copy = UnitRows(stored), normalize(stored)
    assert view.shape == copy.shape and len(view) == 500 and view.dtype == np.float32
    pick = np.array([3, 499, 17, 3])
    mask = np.zeros(500, bool)
    mask[::7] = True
    for key in (slice(10, 60), pick, mask, slice(None, None, 5)):
        np.testing.assert_array_equal(view[key], copy[key])
    np.testing.assert_array_equal(view[17], np.zeros(24, np.float32))  # a zero row stays zero
    np.testing.assert_array_equal(np.asarray(view), copy)
    sub = view.subset(np.array([9, 4, 250]))
    np.testing.assert_array_equal(sub[1:], copy[[4, 250]])
    np.testing.assert_array_equal(sub.subset(np.array([2, 0]))[:], copy[[250, 9]])  # a view of a view
    assert view.filename is not None and view.filename.name == "block5_pool-0a1b2c3d.npy" and sub.filename is None
    with pytest.raises(NoveltyError, match="integer or boolean"):
        view[np.array([0.5])]


def test_searches_on_a_view_match_searches_on_a_copy(stored):
    view, copy = UnitRows(stored), normalize(stored)
    found, expected = top_k(view[:40], view, 24, chunk_size=64), top_k(copy[:40], copy, 24, chunk_size=64)
    np.testing.assert_array_equal(found[0], expected[0])
    np.testing.assert_array_equal(found[1], expected[1])


def test_models_fitted_on_views_and_subsamples(stored):
    view, copy = UnitRows(stored), normalize(stored)
    np.testing.assert_allclose(hotelling_z(view, components=8), hotelling_z(copy, components=8), atol=1e-6)
    assert fit_rows(500, 1000) == slice(None)
    rows = fit_rows(500, 100, seed=3)
    assert len(rows) == 100 and (np.diff(rows) > 0).all()  # sorted, no repeats
    from sklearn.decomposition import PCA

    pca = PCA(4, random_state=0).fit(copy[rows])
    np.testing.assert_allclose(transform(pca, view, block=33), pca.transform(copy), atol=1e-5)
    reference = np.arange(0, 500, 2)
    held = copy[1:200:2]
    on_view = data_copying_test(view.subset(reference), held, copy[300:400] + 0, seed=0)
    on_copy = data_copying_test(copy[reference], held, copy[300:400] + 0, seed=0)
    assert on_view.n_cells == on_copy.n_cells and on_view.c_t == pytest.approx(on_copy.c_t, abs=1e-6)


def test_modes_are_assigned_a_block_at_a_time():
    rng = np.random.default_rng(1)
    rows = np.concatenate([rng.normal(c, 0.3, (150, 16)) for c in (-2.0, 0.0, 2.0)]).astype(np.float32)
    model = modes.fit_modes(rows, seed=0)
    whole, blocked = model.assign(rows, block=len(rows)), model.assign(rows, block=37)
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_allclose(whole[1], blocked[1], rtol=1e-6)
