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
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import write_json

CONFIG_FILE = "config.json"
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
        if self.image_size not in defaults.IMAGE_SIZES:
            allowed = ", ".join(map(str, defaults.IMAGE_SIZES))
            raise NoveltyError(f"image size must be one of: {allowed}; received: {self.image_size}")
        for name in ("z_dim", "base_filters", "kernel_size"):
            if getattr(self, name) < 1:
                raise NoveltyError(f"{name} must be positive, received: {getattr(self, name)}")

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
        path = Path(folder) / CONFIG_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise NoveltyError(f"not a novelty checkpoint: {path} is missing") from None
        except (OSError, ValueError) as exc:
            raise NoveltyError(f"unreadable checkpoint config {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("architecture") != ARCHITECTURE:
            found = data.get("architecture") if isinstance(data, dict) else type(data).__name__
            raise NoveltyError(
                f"checkpoint {folder} holds architecture {found!r}; this version reads {ARCHITECTURE!r}"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise NoveltyError(f"checkpoint config {path} has unknown fields: {', '.join(unknown)}")
        return cls(**data)


def build_generator(config: GanConfig):
    """z ``(N, z_dim)`` float32 -> images ``(N, size, size, 3)`` in [-1, 1]."""
    import keras
    from keras import layers

    first = config.filters(4)
    inputs = keras.Input(shape=(config.z_dim,), name="z")
    x = layers.Dense(4 * 4 * first, use_bias=False, name="project")(inputs)
    x = layers.Reshape((4, 4, first))(x)
    x = layers.BatchNormalization(name="project_bn")(x)
    x = layers.ReLU()(x)
    resolution = 4
    for block in range(config.doublings - 1):
        resolution *= 2
        x = layers.Conv2DTranspose(config.filters(resolution), config.kernel_size, strides=2,
                                   padding="same", use_bias=False, name=f"up{block}")(x)
        x = layers.BatchNormalization(name=f"up{block}_bn")(x)
        x = layers.ReLU()(x)
    x = layers.Conv2DTranspose(3, config.kernel_size, strides=2, padding="same", name="to_rgb")(x)
    outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name="generator")


def build_discriminator(config: GanConfig):
    """images ``(N, size, size, 3)`` in [-1, 1] -> one real/fake logit ``(N, 1)``."""
    import keras
    from keras import layers

    inputs = keras.Input(shape=(config.image_size, config.image_size, 3), name="image")
    x = inputs
    resolution = config.image_size
    for block in range(config.doublings):
        resolution //= 2
        x = layers.Conv2D(config.filters(resolution), config.kernel_size, strides=2,
                          padding="same", use_bias=block == 0, name=f"down{block}")(x)
        if block > 0:
            x = layers.BatchNormalization(name=f"down{block}_bn")(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(inputs, outputs, name="discriminator")


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The checkpoint folder for ``path``: a checkpoint itself, or a training folder (its latest)."""
    path = Path(path)
    if not path.exists():
        raise NoveltyError(f"checkpoint not found: {path}")
    if (path / GENERATOR_FILE).is_file():
        return path
    latest = path / "checkpoints" / "latest"
    if latest.is_file():
        step_dir = path / "checkpoints" / latest.read_text(encoding="utf-8").strip()
        if (step_dir / GENERATOR_FILE).is_file():
            return step_dir
    raise NoveltyError(
        f"not a novelty checkpoint: {path} has neither {GENERATOR_FILE} nor checkpoints/latest"
    )


def load_generator(path: str | os.PathLike):
    """Rebuild the generator from a checkpoint's config and load its weights.

    Returns ``(model, config)``. A config that does not match the weights (another architecture,
    size or width) gives a one-line :class:`NoveltyError`, not a Keras traceback.
    """
    folder = resolve_checkpoint(path)
    config = GanConfig.load(folder)
    model = build_generator(config)
    try:
        model.load_weights(folder / GENERATOR_FILE)
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError for mismatched files
        raise NoveltyError(
            f"checkpoint {folder} does not match its config ({config.image_size} px, "
            f"base_filters={config.base_filters}): {str(exc).splitlines()[0][:160]}"
        ) from None
    return model, config
