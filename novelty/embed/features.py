"""Features: VGG16 activations of RGB uint8 images, flattened per layer.

Two preprocessing modes (``defaults.PREPROCESS_MODES``):

- ``caffe`` (default, correct for ImageNet weights): ``keras.applications.vgg16.preprocess_input`` on
  0..255 RGB, i.e. RGB -> BGR, then subtract the ImageNet channel means (103.939, 116.779, 123.68).
- ``original``: the 2018 masks demo's pipeline, ``x / 127.5 - 1`` in RGB and no mean subtraction.
  It is what the published reference lists were computed with; use it to reproduce them.

Optionally ``block1_pool`` (65,536 values per image at 64 px) is reduced (``block1_reduce``):
``"sketch:D"`` keeps D values by signed feature hashing, a sparse random projection that preserves
cosines on average (:func:`sketch`); ``"pool:N"`` averages N x N cells (:func:`reduce_pool`). On the
masks (64 px), the top-24 lists keep 0.92 (sketch:16384), 0.86 (sketch:4096), 0.74 (sketch:1024) but
only 0.74 (pool:2) and 0.49 (pool:4) of the exact entries (benchmarks/bench_analyze.py --full).
TensorFlow/Keras are imported only when a model is first needed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from novelty import bounds, defaults
from novelty.embed.weights import CONV_LAYERS, WeightsSource, build_vgg16, resolve
from novelty.errors import NoveltyError
from novelty.images.decode import fit

IMAGENET_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
MIN_INPUT_SIZE = defaults.RANGES["input_size"].low  # five 2x2 poolings
POOL_LAYERS: tuple[str, ...] = tuple(f"block{b}_pool" for b in range(1, 6))
LAYER_NAMES: tuple[str, ...] = tuple(name for name, _, _ in CONV_LAYERS) + POOL_LAYERS
REDUCED_LAYER = "block1_pool"


def preprocess(images: np.ndarray, mode: str = defaults.PREPROCESS) -> np.ndarray:
    """uint8 RGB ``(N, H, W, 3)`` -> float32 ``(N, H, W, 3)`` network input for ``mode``.

    ``caffe`` equals ``keras.applications.vgg16.preprocess_input(images.astype("float32"))``;
    ``original`` is ``images / 127.5 - 1`` (the 2018 pipeline).
    """
    check_preprocess(mode)
    x = np.asarray(images, dtype=np.float32)
    if mode == "original":
        return x / np.float32(127.5) - np.float32(1.0)
    return x[..., ::-1] - IMAGENET_MEAN_BGR


def check_preprocess(mode: str) -> str:
    if mode not in defaults.PREPROCESS_MODES:
        raise NoveltyError(f"unknown preprocess mode {mode!r}; must be one of: {', '.join(defaults.PREPROCESS_MODES)}")
    return mode


def check_layers(layers: Sequence[str]) -> tuple[str, ...]:
    layers = tuple(layers)
    if not layers:
        raise NoveltyError("no layers given; choose from: " + ", ".join(LAYER_NAMES))
    for layer in layers:
        if layer not in LAYER_NAMES:
            raise NoveltyError(f"unknown layer {layer!r}; must be one of: {', '.join(LAYER_NAMES)}")
    if len(set(layers)) != len(layers):
        raise NoveltyError(f"layers repeat: {', '.join(layers)}")
    return layers


def check_input_size(size: int | None) -> int | None:
    if size is not None and size < MIN_INPUT_SIZE:
        raise NoveltyError(f"input size must be at least {MIN_INPUT_SIZE} for VGG16, received: {size}")
    return size


SKETCH_SEED = 0  # fixed: the hashing is part of the feature definition, the same in every run
REDUCE_KINDS = {"pool": "block1_pool", "sketch": "block1_sketch"}  # kind -> the range of its N in defaults.RANGES


def parse_reduce(spec: str | None) -> tuple[str, int] | None:
    """``None``/``"none"`` -> None; ``"pool:N"`` or ``"sketch:D"`` (within their ranges) -> (kind, number)."""
    if spec is None or spec == "none":
        return None
    kind, _, value = str(spec).partition(":")
    if kind in REDUCE_KINDS and value.isdecimal() and int(value) in defaults.RANGES[REDUCE_KINDS[kind]]:
        return kind, int(value)
    pool, sketch = (defaults.RANGES[REDUCE_KINDS[name]] for name in ("pool", "sketch"))
    raise NoveltyError(f"invalid block1 reduction {spec!r}; must be none, sketch:D with D >= {sketch.low} "
                       f"and <= {sketch.high} (e.g. sketch:4096) or pool:N with N >= {pool.low} and "
                       f"<= {pool.high} (e.g. pool:2)")


@functools.lru_cache(maxsize=4)
def _sketch_matrix(in_dim: int, out_dim: int, seed: int):
    """The hashing as a sparse ``(out_dim, in_dim)`` CSR matrix: row h holds the signs of the inputs hashed to h."""
    import scipy.sparse

    rng = np.random.default_rng(seed)
    buckets = rng.integers(0, out_dim, in_dim)
    signs = rng.choice(np.array([-1.0, 1.0], np.float32), in_dim)
    return scipy.sparse.csr_matrix((signs, (buckets, np.arange(in_dim))), shape=(out_dim, in_dim))


def sketch(features: np.ndarray, dim: int, seed: int = SKETCH_SEED, block: int = 256) -> np.ndarray:
    """Signed feature hashing of ``(N, D)`` rows -> float32 ``(N, dim)``: input column i is added, with a
    random sign, to output column h(i) (a sparse random projection). Inner products are preserved in
    expectation, so cosine neighbours are kept approximately; the same ``(D, dim, seed)`` always
    gives the same hashing. ``block`` rows at a time, each transposed to contiguous columns first (the
    product over the rows' strided columns was 2.5 to 3.5 times slower on the masks' block1_pool)."""
    x = np.asarray(features, np.float32).reshape(len(features), -1)
    hashing = _sketch_matrix(x.shape[1], dim, seed)
    out = np.empty((len(x), dim), np.float32)
    for start in range(0, len(x), block):
        out[start:start + block] = (hashing @ np.ascontiguousarray(x[start:start + block].T)).T
    return out


def reduce_block1(features: np.ndarray, reduce: tuple[str, int]) -> np.ndarray:
    """Apply a parsed reduction to spatial block1_pool features ``(N, H, W, C)`` -> float32 ``(N, D')``."""
    kind, number = reduce
    if kind == "pool":
        return reduce_pool(features, number).reshape(len(features), -1)
    return sketch(features, number)


def reduce_pool(features: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool spatial features ``(N, H, W, C)`` by ``factor`` -> ``(N, H//f, W//f, C)`` float32.

    Rows and columns beyond a multiple of ``factor`` are dropped (as Keras ``AveragePooling2D``).
    """
    n, h, w, c = features.shape
    if h < factor or w < factor:
        raise NoveltyError(f"cannot pool {h}x{w} features by {factor}")
    hh, ww = h // factor, w // factor
    x = np.asarray(features[:, :hh * factor, :ww * factor], np.float32)
    return x.reshape(n, hh, factor, ww, factor, c).mean(axis=(2, 4))


def feature_dim(layer: str, input_size: int, block1_reduce: tuple[str, int] | None = None) -> int:
    """Flattened length of ``layer`` at a square ``input_size``."""
    channels = {name: c_out for name, _, c_out in CONV_LAYERS}
    block = int(layer[5])
    if layer.endswith("_pool"):
        side, c = input_size >> block, channels[f"block{block}_conv1"]
    else:
        side, c = input_size >> (block - 1), channels[layer]
    if layer == REDUCED_LAYER and block1_reduce:
        kind, number = block1_reduce
        if kind == "sketch":
            return number
        side //= number
    return side * side * c


def conv_flops(input_size: int) -> int:
    """Floating-point operations (2 per multiply-add) of VGG16's 13 convs for one square image.

    About 2.5 GFLOP at 64 px and 10 GFLOP at 128 px; the pools and ReLUs are negligible.
    """
    total, side = 0, input_size
    for name, c_in, c_out in CONV_LAYERS:
        if name.endswith("conv1") and name != "block1_conv1":
            side //= 2
        total += 2 * side * side * 9 * c_in * c_out
    return total


class LazyImages:
    """Images read on demand: ``len`` is ``len(keys)``, and ``[i:j]`` is ``read(keys[i:j])``, a uint8
    ``(j - i, H, W, 3)`` array. What :meth:`Extractor.embed_batches` takes in place of an array, so a set
    far larger than memory (rows of a folder decoded again, a flipped view) is read a batch at a time."""

    def __init__(self, keys: Sequence | np.ndarray, read: Callable[[Sequence | np.ndarray], np.ndarray]):
        self.keys = keys
        self.read = read

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, rows: slice) -> np.ndarray:
        if not isinstance(rows, slice):
            raise NoveltyError(f"LazyImages are read by slices, received: {type(rows).__name__}")
        return self.read(self.keys[rows])


class Extractor:
    """VGG16 features of chosen layers. The weights are resolved at construction (cheap: a file hash),
    the Keras model is built once, on the first :meth:`embed`.

    ``input_size`` None embeds images at their own (common) size; an int fits any image of another
    size first (``images.fit`` with ``fit_mode``, centre crop by default). ``embedded`` counts the
    images embedded so far.
    """

    def __init__(self, weights: str | os.PathLike = defaults.WEIGHTS, preprocess: str = defaults.PREPROCESS,
                 input_size: int | None = None, layers: Sequence[str] = defaults.LAYERS,
                 block1_reduce: str | None = defaults.BLOCK1_REDUCE, seed: int = defaults.SEED,
                 fit_mode: str = defaults.FIT_MODE):
        if fit_mode not in defaults.FIT_MODES:
            raise NoveltyError(f"unknown fit mode {fit_mode!r}; must be one of: {', '.join(defaults.FIT_MODES)}")
        self.fit_mode = fit_mode
        self.preprocess = check_preprocess(preprocess)
        self.input_size = None if input_size is None else bounds.check("input_size", input_size, "input size")
        self.layers = check_layers(layers)
        self.block1_reduce = parse_reduce(block1_reduce)
        self.weights: WeightsSource = resolve(weights, seed=seed)
        self.embedded = 0
        self._model = None

    def params(self, layer: str) -> dict:
        """Everything that determines ``layer``'s features besides the image: the feature-cache key."""
        return {"weights_sha256": self.weights.sha256, "preprocess": self.preprocess,
                "input_size": self.input_size, "fit": self.fit_mode, "layer": layer,
                "block1_reduce": ":".join(map(str, self.block1_reduce))
                if layer == REDUCED_LAYER and self.block1_reduce else None}

    def feature_dim(self, layer: str, image_size: int | None = None) -> int:
        """Flattened length of ``layer`` for images of ``image_size`` (used when ``input_size`` is None)."""
        size = self.input_size or image_size
        if size is None:
            raise NoveltyError("feature_dim needs an image size when the extractor's input_size is None")
        return feature_dim(layer, size, self.block1_reduce)

    @property
    def model(self):
        """The Keras model with one output per layer (built on first use)."""
        if self._model is None:
            import keras

            base = build_vgg16(self.weights, self.input_size)
            self._model = keras.Model(base.input, [base.get_layer(name).output for name in self.layers])
        return self._model

    def _prepare(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise NoveltyError(f"expected uint8 images (N, H, W, 3), received {images.dtype} {images.shape}")
        size = self.input_size
        if size is not None and images.shape[1:3] != (size, size):
            images = np.stack([fit(image, size, self.fit_mode) for image in images]) if len(images) else \
                np.zeros((0, size, size, 3), np.uint8)
        check_input_size(min(images.shape[1:3]))
        return images

    def embed_batches(self, images: np.ndarray | LazyImages, batch_size: int = defaults.EMBED_BATCH_SIZE,
                      progress: bool = True, desc: str = "embedding") -> Iterator[dict[str, np.ndarray]]:
        """Yield ``{layer: float32 (b, D)}`` for consecutive batches of ``images`` (uint8 ``(N, H, W, 3)``,
        or a :class:`LazyImages` read a batch at a time).

        Images are fitted and preprocessed a batch at a time: memory stays at one batch, whatever N is.
        """
        from tqdm.auto import tqdm

        if batch_size < 1:
            raise NoveltyError(f"batch size must be positive, received: {batch_size}")
        if not isinstance(images, LazyImages):
            images = np.asarray(images)
        self._prepare(images[:0])  # a wrong dtype or shape fails before any work
        model = self.model if len(images) else None
        with tqdm(total=len(images), desc=desc, unit="img", disable=not progress) as bar:
            for start in range(0, len(images), batch_size):
                batch = preprocess(self._prepare(images[start:start + batch_size]), self.preprocess)
                outputs = model.predict_on_batch(batch)
                if not isinstance(outputs, (list, tuple)):
                    outputs = [outputs]
                result = {}
                for layer, out in zip(self.layers, outputs, strict=True):
                    out = np.asarray(out, np.float32)
                    if layer == REDUCED_LAYER and self.block1_reduce:
                        out = reduce_block1(out, self.block1_reduce)
                    result[layer] = out.reshape(len(batch), -1)
                self.embedded += len(batch)
                bar.update(len(batch))
                yield result

    def embed(self, images: np.ndarray, batch_size: int = defaults.EMBED_BATCH_SIZE,
              progress: bool = True, desc: str = "embedding") -> dict[str, np.ndarray]:
        """``{layer: float32 (N, D)}`` flattened features of uint8 ``(N, H, W, 3)`` images."""
        chunks: dict[str, list[np.ndarray]] = {layer: [] for layer in self.layers}
        for batch in self.embed_batches(images, batch_size, progress, desc):
            for layer, feats in batch.items():
                chunks[layer].append(feats)
        return {layer: np.concatenate(parts) if parts else
                np.zeros((0, self.feature_dim(layer, np.shape(images)[1])), np.float32)
                for layer, parts in chunks.items()}


class MirroredExtractor:
    """An :class:`Extractor` seen through a left-right flip: the same layers and settings, every image
    mirrored before it is embedded, and ``"view": "mirror"`` in each cache key, so a feature store keeps
    (and caches) a set's mirrored features apart from its plain ones."""

    view = "mirror"

    def __init__(self, base: Extractor):
        self.base = base
        self.layers = base.layers

    def params(self, layer: str) -> dict:
        return self.base.params(layer) | {"view": self.view}

    def feature_dim(self, layer: str, image_size: int | None = None) -> int:
        return self.base.feature_dim(layer, image_size)

    @staticmethod
    def _mirror(images: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(np.asarray(images)[:, :, ::-1])

    def embed_batches(self, images: np.ndarray | LazyImages, batch_size: int = defaults.EMBED_BATCH_SIZE,
                      progress: bool = True, desc: str = "embedding") -> Iterator[dict[str, np.ndarray]]:
        """:meth:`Extractor.embed_batches` of the images flipped left-right, a batch at a time."""
        return self.base.embed_batches(LazyImages(images, self._mirror), batch_size, progress, desc)

    def embed(self, images: np.ndarray, batch_size: int = defaults.EMBED_BATCH_SIZE,
              progress: bool = True, desc: str = "embedding") -> dict[str, np.ndarray]:
        """:meth:`Extractor.embed` of the images flipped left-right."""
        return self.base.embed(self._mirror(images), batch_size, progress, desc)
