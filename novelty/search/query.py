"""Nearest TRAINING images of a new image, in an existing run: the web demo's query.

The image is treated exactly like the run's own images: fitted to the run's ``input_size`` with its
``fit`` mode, embedded by an extractor rebuilt from ``run.json`` (weights, preprocessing, layers,
block1 reduction), then searched against the TRAINING features the run stored (``RUN/features``) through the exact
backend of :mod:`novelty.search.backends`, whatever the run used: one query reads the store once,
block by block (about a second per million 2,048-d rows here), where building the run's FAISS graph
would take minutes at 100k images; so the query's lists are exact even in a FAISS run. The extractor is built on the first search, not before: opening a run stays cheap.
A stored layer made with other parameters (another weights file, say) is refused, never compared.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import read_json
from novelty.run.folder import RunFolder

TRAINING = "training"


class QueryIndex:
    """Search a run's TRAINING features with new images.

    ``extractor``: anything with ``layers``, ``params(layer)`` and ``embed(images, batch_size,
    progress)`` like :class:`novelty.embed.features.Extractor`; None builds the run's own on first use.
    """

    def __init__(self, run: str | os.PathLike, extractor=None) -> None:
        folder = RunFolder(run).require()
        self.root = folder.root
        self.run = read_json(folder.run_json)
        self.layers: tuple[str, ...] = tuple(self.run.get("layers") or defaults.LAYERS)
        self.k = int(self.run.get("k") or defaults.TOP_K)
        self.input_size: int | None = self.run.get("input_size")
        self.fit_mode: str = self.run.get("fit") or defaults.FIT_MODE
        self._extractor = extractor
        self._training: dict[str, tuple[list[str], np.ndarray]] = {}
        from novelty.search.backends import make_backend

        self.backend = make_backend("exact")  # one query: a single pass over the store beats building an index
        self._lock = threading.Lock()

    @property
    def extractor(self):
        """The run's feature extractor (weights resolved and checked on first use)."""
        if self._extractor is None:
            from novelty.embed.features import Extractor

            weights = self.run.get("weights") or {}
            requested = weights.get("path") if weights.get("source") == "file" else weights.get("requested")
            features = self.run.get("features") or {}
            extractor = Extractor(weights=requested or defaults.WEIGHTS,
                                  preprocess=self.run.get("preprocess") or defaults.PREPROCESS,
                                  input_size=self.input_size, layers=self.layers,
                                  block1_reduce=features.get("block1_reduce", defaults.BLOCK1_REDUCE),
                                  seed=int(weights.get("seed", self.run.get("seed", defaults.SEED))))
            if weights.get("sha256") and extractor.weights.sha256 != weights["sha256"]:
                raise NoveltyError(f"the weights found for {requested!r} (sha256 {extractor.weights.sha256[:12]}) "
                                   f"differ from the run's ({weights['sha256'][:12]}); re-run `novelty analyze`")
            self._extractor = extractor
        return self._extractor

    def training(self, layer: str) -> tuple[list[str], np.ndarray]:
        """The stored TRAINING ``(ids, features (M, D))`` of ``layer``, checked against the extractor."""
        if layer not in self._training:
            from novelty.embed.featurestore import FeatureStore

            store = FeatureStore(RunFolder(self.root).features_dir)
            meta = store.meta(TRAINING, layer)
            if meta is None:
                raise NoveltyError(f"this run has no stored {layer} training features "
                                   f"({RunFolder(self.root).features_dir}); re-run `novelty analyze`")
            expected = self.extractor.params(layer)
            if meta.get("params") != expected:
                raise NoveltyError(f"stored {layer} training features were made with other settings "
                                   f"({meta.get('params')}) than the run's extractor ({expected})")
            self._training[layer] = store.load(TRAINING, layer)
        return self._training[layer]

    def search(self, image: np.ndarray, k: int | None = None) -> dict[str, list[tuple[str, float]]]:
        """The ``k`` nearest TRAINING images of one RGB uint8 ``(H, W, 3)`` image, per layer, best first:
        ``{layer: [(training id, cosine similarity), ...]}``."""
        from novelty.images.decode import fit
        from novelty.search.neighbors import top_k

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise NoveltyError(f"expected one uint8 RGB image (H, W, 3), received {image.dtype} {image.shape}")
        k = self.k if k is None else int(k)
        with self._lock:  # one embedding at a time: the model is shared and memory-hungry
            stored = {layer: self.training(layer) for layer in self.layers}  # fails early, before any model
            if self.input_size is not None:
                image = fit(image, int(self.input_size), self.fit_mode)
            features = self.extractor.embed(image[None], batch_size=1, progress=False)
            found = {}
            for layer in self.layers:
                ids, training = stored[layer]
                if features[layer].shape[1] != training.shape[1]:
                    raise NoveltyError(f"the image gives {features[layer].shape[1]} {layer} features, the run "
                                       f"stored {training.shape[1]}; its size does not match the run's")
                indices, similarities = top_k(features[layer], training, min(k, len(ids)), backend=self.backend)
                found[layer] = [(ids[int(i)], float(s)) for i, s in zip(indices[0], similarities[0], strict=True)]
        return found


def query_image(run: str | os.PathLike, path: str | os.PathLike, k: int | None = None
                ) -> dict[str, list[tuple[str, float]]]:
    """Decode the image file at ``path`` and return its nearest TRAINING images in ``run`` per layer."""
    from novelty.images.decode import decode

    image, _ = decode(Path(path))
    return QueryIndex(run).search(image, k)
