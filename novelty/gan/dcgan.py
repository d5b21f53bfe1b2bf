"""The DCGAN of Radford et al. (2016): its configuration, its two networks, and the checkpoint format.

Generator: dense projection of z to 4x4, then one stride-2 transposed convolution per doubling,
batch norm and ReLU between, tanh output in [-1, 1]. Discriminator: the mirror image with stride-2
convolutions and LeakyReLU(0.2), batch norm on all but the first block, one logit out.

A checkpoint is a folder holding ``config.json`` (this module's :class:`GanConfig`) and
``generator.weights.h5``; a training folder holds many of them under ``checkpoints/``. Keras is
imported lazily so that reading a config never loads TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import write_json
from novelty.gan.family import CONFIG_FILE, check_config, read_config

GENERATOR_FILE = "generator.weights.h5"
DISCRIMINATOR_FILE = "discriminator.weights.h5"
ARCHITECTURE = "dcgan"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class GanConfig:
    """Everything needed to rebuild the networks. Saved beside every checkpoint."""

    image_size: int = defaults.IMAGE_SIZE
    z_dim: int = defaults.Z_DIM
    base_filters: int = defaults.BASE_FILTERS
    kernel_size: int = defaults.KERNEL_SIZE
    architecture: str = ARCHITECTURE
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        check_config(self, sizes=defaults.IMAGE_SIZES, bounded=("z_dim", "base_filters"), architecture=ARCHITECTURE)

    @property
    def doublings(self) -> int:
        """Stride-2 blocks between 4x4 and the image size (3 at 32 px, 4 at 64, 5 at 128)."""
        return int(math.log2(self.image_size // 4))

    def filters(self, resolution: int) -> int:
        """Channels of the feature map at ``resolution`` (widest at 4x4, ``base_filters`` at size/2)."""
        return min(self.base_filters * self.image_size // (2 * resolution), self.base_filters * 8)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, folder: str | os.PathLike) -> None:
        write_json(Path(folder) / CONFIG_FILE, self.to_dict())

    @classmethod
    def load(cls, folder: str | os.PathLike) -> GanConfig:
        return read_config(cls, folder, ARCHITECTURE, FORMAT_VERSION)


def _layer_settings():
    """Radford et al.'s initialisation: weights N(0, 0.02), batch-norm scale N(1, 0.02).

    Batch-norm statistics use momentum 0.9 (PyTorch's 0.1) so that inference-mode samples track the
    fast-moving generator; Keras' default 0.99 lags by hundreds of steps early in training.
    """
    import keras

    conv = {"kernel_initializer": keras.initializers.RandomNormal(0.0, 0.02)}
    norm = {"momentum": 0.9, "epsilon": 1e-5,
            "gamma_initializer": keras.initializers.RandomNormal(1.0, 0.02)}
    return conv, norm


def build_generator(config: GanConfig):
    """z ``(N, z_dim)`` float32 -> images ``(N, size, size, 3)`` in [-1, 1]."""
    import keras
    from keras import layers

    conv, norm = _layer_settings()

    first = config.filters(4)
    inputs = keras.Input(shape=(config.z_dim,), name="z")
    x = layers.Dense(4 * 4 * first, use_bias=False, name="project", **conv)(inputs)
    x = layers.Reshape((4, 4, first))(x)
    x = layers.BatchNormalization(name="project_bn", **norm)(x)
    x = layers.ReLU()(x)
    resolution = 4
    for block in range(config.doublings - 1):
        resolution *= 2
        x = layers.Conv2DTranspose(config.filters(resolution), config.kernel_size, strides=2,
                                   padding="same", use_bias=False, name=f"up{block}", **conv)(x)
        x = layers.BatchNormalization(name=f"up{block}_bn", **norm)(x)
        x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(3, config.kernel_size, strides=2, padding="same", name="to_rgb",
                               **conv)(x)
    outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name="generator")


def build_discriminator(config: GanConfig):
    """images ``(N, size, size, 3)`` in [-1, 1] -> one real/fake logit ``(N, 1)``."""
    import keras
    from keras import layers

    conv, norm = _layer_settings()
    inputs = keras.Input(shape=(config.image_size, config.image_size, 3), name="image")
    x = inputs
    resolution = config.image_size
    for block in range(config.doublings):
        resolution //= 2
        x = layers.Conv2D(config.filters(resolution), config.kernel_size, strides=2,
                          padding="same", use_bias=block == 0, name=f"down{block}", **conv)(x)
        if block > 0:
            x = layers.BatchNormalization(name=f"down{block}_bn", **norm)(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(1, dtype="float32", name="logit", **conv)(x)
    return keras.Model(inputs, outputs, name="discriminator")


def step_folders(checkpoints: Path, required: str = GENERATOR_FILE) -> list[Path]:
    """Complete ``step-NNNNNN`` folders under ``checkpoints`` (holding ``required``), oldest first.

    Sorted by step number, not by name, so step 1,000,000 comes after step 999,999.
    """
    found = []
    for folder in checkpoints.glob("step-*"):
        digits = folder.name[len("step-"):]
        if digits.isdigit() and (folder / required).is_file():
            found.append((int(digits), folder))
    return [folder for _, folder in sorted(found)]


def latest_checkpoint(folder: str | os.PathLike, required: str = GENERATOR_FILE) -> Path | None:
    """The newest complete checkpoint of a training folder, or None.

    ``checkpoints/latest`` names it; when that pointer is missing or names a folder that is gone
    (an interrupted save, a hand-pruned folder), the newest complete ``step-*`` folder stands in.
    """
    checkpoints = Path(folder) / "checkpoints"
    name = _pointer(checkpoints)
    if name and "/" not in name and (checkpoints / name / required).is_file():
        return checkpoints / name
    found = step_folders(checkpoints, required) if checkpoints.is_dir() else []
    return found[-1] if found else None


def _pointer(checkpoints: Path) -> str | None:
    """The name ``checkpoints/latest`` holds ("" when unreadable), None when there is no pointer."""
    pointer = checkpoints / "latest"
    if not pointer.is_file():
        return None
    try:
        return pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return ""


def fallback_note(path: str | os.PathLike) -> str | None:
    """What :func:`resolve_checkpoint` used instead when a training folder's ``checkpoints/latest``
    names a checkpoint that is missing or incomplete (a hand-pruned or partly copied folder); None
    when the pointer was followed, or ``path`` is a checkpoint itself."""
    path = Path(path)
    checkpoints = path / "checkpoints"
    name = _pointer(checkpoints)
    if name is None or (path / GENERATOR_FILE).is_file():
        return None
    used = latest_checkpoint(path)
    if used is None or used.name == name:
        return None
    return (f"{checkpoints / 'latest'} names {name or '(nothing readable)'}, which is missing or incomplete; "
            f"using {used.name} instead, the newest complete checkpoint")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder for ``path``: a checkpoint itself, or a training folder (its latest)."""
    path = Path(path)
    if not path.exists():
        raise NoveltyError(f"checkpoint not found: {path}")
    if not path.is_dir():
        raise NoveltyError(f"checkpoint must be a folder (a checkpoint or a training folder), "
                           f"received a file: {path}")
    if (path / GENERATOR_FILE).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is not None:
        return latest
    raise NoveltyError(
        f"not a novelty checkpoint: {path} has neither {GENERATOR_FILE} nor a complete checkpoints/step-*"
    )


def load_generator(path: str | os.PathLike):
    """Rebuild the generator from a checkpoint's config and load its weights.

    Returns ``(model, config)``. A config that does not match the weights (another architecture,
    size or width) or an unreadable weights file gives a one-line :class:`NoveltyError`, not a
    Keras traceback.
    """
    folder = resolve_checkpoint(path)
    config = GanConfig.load(folder)
    model = build_generator(config)
    load_checked(model, folder / GENERATOR_FILE,
                 f"{config.image_size} px, z_dim {config.z_dim}, base_filters {config.base_filters}")
    return model, config


def load_checked(model, weights: Path, described: str) -> None:
    """Load ``weights`` into ``model``; a one-line :class:`NoveltyError` for an unreadable file or weights
    of other shapes than the config (``described``) gives, instead of a Keras traceback."""
    try:
        with warnings.catch_warnings():  # Keras warns once per layer it skips before it raises
            warnings.simplefilter("ignore")
            model.load_weights(weights)
    except OSError as exc:  # h5py: not an HDF5 file, truncated, unreadable
        raise NoveltyError(f"unreadable weights file {weights}: {_first_line(exc)}") from None
    except Exception as exc:  # Keras raises ValueError/KeyError for weights of another shape
        raise NoveltyError(f"{weights} does not match its {CONFIG_FILE} ({described}): {_mismatch(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def _mismatch(exc: BaseException) -> str:
    """The useful part of Keras's multi-line load error: which variable, which shapes."""
    text = str(exc)
    found = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))"
                      r"\. Target variable: <Variable path=([^,]+),", text)
    if found:
        expected, received, variable = found.groups()
        return f"{variable} needs shape {expected}, the file holds {received}"
    return _first_line(exc)
