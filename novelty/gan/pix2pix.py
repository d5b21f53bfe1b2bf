"""pix2pix (Isola et al., 2017) as in the TensorFlow pix2pix tutorial: its config and its two networks.

Generator: a U-Net. One stride-2 4x4 convolution per halving from the image size down to 1x1 (8 at
256 px, 7 at 128, 6 at 64, 5 at 32), LeakyReLU(0.2), batch norm on all but the first; then one
stride-2 transposed convolution per doubling back up (7 at 256 px), ReLU, batch norm, each joined
(concatenated) with the encoder's map of the same size; dropout 0.5 on the first three up blocks (as
many as there are at small sizes), during training only; a last transposed convolution to 3 channels
and tanh. Widths: ``base_filters`` x 1, 2, 4, 8, 8, ... ``bottleneck_dense`` > 0 adds that many
fully connected layers (width of the bottleneck, ReLU) at the 1x1 bottleneck, so that what goes
through it can move anywhere in the picture.

Discriminator: a PatchGAN on the input and the image side by side in channels (6 channels). At 256 px
it is the tutorial's 70x70 PatchGAN: three stride-2 convolutions (64, 128, 256 wide), then a stride-1
convolution (512) and a stride-1 one-logit convolution, so each logit sees a 70x70 patch. Smaller
sizes keep the patch at about a quarter of the image by using fewer stride-2 convolutions
(:meth:`Pix2PixConfig.patch_downs`): 2 at 128 px (34x34 patches), 1 at 64 px (16x16) and at 32 px
(16x16, half the image).

A checkpoint holds ``config.json`` (:class:`Pix2PixConfig`), ``generator.weights.h5`` (the U-Net)
and ``discriminator.weights.h5``. Keras is imported lazily.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from novelty import defaults
from novelty.files import write_json
from novelty.gan.family import CONFIG_FILE, check_config, read_config

ARCHITECTURE = "pix2pix"
FORMAT_VERSION = 1
DROPOUT_BLOCKS = 3  # up blocks with dropout, as in the paper


@dataclass(frozen=True)
class Pix2PixConfig:
    """Everything needed to rebuild the two networks. Saved beside every checkpoint."""

    image_size: int = defaults.IMAGE_SIZE
    base_filters: int = defaults.BASE_FILTERS
    bottleneck_dense: int = defaults.BOTTLENECK_DENSE
    kernel_size: int = defaults.KERNEL_SIZE
    architecture: str = ARCHITECTURE
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        check_config(self, sizes=defaults.PAIR_IMAGE_SIZES, bounded=("base_filters", "bottleneck_dense"), architecture=ARCHITECTURE, size_name="pix2pix image size")

    @property
    def levels(self) -> int:
        """Stride-2 down blocks of the U-Net, to 1x1: 8 at 256 px, 6 at 64 px."""
        return int(math.log2(self.image_size))

    def widths(self) -> list[int]:
        """Channels of each down block: base x 1, 2, 4, 8, 8, ..."""
        return [self.base_filters * min(2**i, 8) for i in range(self.levels)]

    @property
    def patch_downs(self) -> int:
        """Stride-2 convolutions of the PatchGAN: 3 at 256 px (70x70 patches), 2 at 128, 1 below."""
        return max(1, self.levels - 5)

    @property
    def patch_size(self) -> int:
        """The receptive field of one PatchGAN logit, in pixels (70 at 256 px)."""
        jumps = [2**i for i in range(self.patch_downs)] + [2**self.patch_downs] * 2
        return 1 + sum((self.kernel_size - 1) * j for j in jumps)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, folder: str | os.PathLike) -> None:
        write_json(Path(folder) / CONFIG_FILE, self.to_dict())

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Pix2PixConfig:
        return read_config(cls, folder, ARCHITECTURE, FORMAT_VERSION)


def build_unet(config: Pix2PixConfig):
    """Input images ``(N, size, size, 3)`` in [-1, 1] -> generated images, same shape, in [-1, 1]."""
    import keras
    from keras import layers

    from novelty.gan.dcgan import _layer_settings

    conv, norm = _layer_settings()
    k = config.kernel_size
    inputs = keras.Input(shape=(config.image_size, config.image_size, 3), name="input_image")
    x, skips = inputs, []
    for i, width in enumerate(config.widths()):
        x = layers.Conv2D(width, k, strides=2, padding="same", use_bias=False, name=f"down{i}", **conv)(x)
        if i > 0:
            x = layers.BatchNormalization(name=f"down{i}_bn", **norm)(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
        skips.append(x)
    bottleneck = config.widths()[-1]
    if config.bottleneck_dense:
        x = layers.Flatten(name="bottleneck_flat")(x)
        for i in range(config.bottleneck_dense):
            x = layers.Dense(bottleneck, activation="relu", name=f"bottleneck_dense{i}", **conv)(x)
        x = layers.Reshape((1, 1, bottleneck))(x)
    for i, (width, skip) in enumerate(zip(reversed(config.widths()[:-1]), reversed(skips[:-1]), strict=True)):
        x = layers.Conv2DTranspose(width, k, strides=2, padding="same", use_bias=False, name=f"up{i}", **conv)(x)
        x = layers.BatchNormalization(name=f"up{i}_bn", **norm)(x)
        if i < DROPOUT_BLOCKS:
            x = layers.Dropout(0.5, name=f"up{i}_dropout")(x)
        x = layers.ReLU()(x)
        x = layers.Concatenate(name=f"skip{i}")([x, skip])
    x = layers.Conv2DTranspose(3, k, strides=2, padding="same", name="to_rgb", **conv)(x)
    outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name="unet")


def build_patch_discriminator(config: Pix2PixConfig):
    """``[input, image]``, each ``(N, size, size, 3)`` in [-1, 1] -> logits ``(N, P, P, 1)``, one per patch."""
    import keras
    from keras import layers

    from novelty.gan.dcgan import _layer_settings

    conv, norm = _layer_settings()
    k, size = config.kernel_size, config.image_size
    source = keras.Input(shape=(size, size, 3), name="input_image")
    image = keras.Input(shape=(size, size, 3), name="image")
    x = layers.Concatenate()([source, image])
    for i in range(config.patch_downs):
        x = layers.Conv2D(config.base_filters * 2**i, k, strides=2, padding="same", use_bias=False,
                          name=f"down{i}", **conv)(x)
        if i > 0:
            x = layers.BatchNormalization(name=f"down{i}_bn", **norm)(x)
        x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = layers.ZeroPadding2D()(x)
    x = layers.Conv2D(config.base_filters * 2**config.patch_downs, k, strides=1, use_bias=False, name="wide",
                      **conv)(x)
    x = layers.BatchNormalization(name="wide_bn", **norm)(x)
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    x = layers.ZeroPadding2D()(x)
    outputs = layers.Conv2D(1, k, strides=1, dtype="float32", name="patch_logits", **conv)(x)
    return keras.Model([source, image], outputs, name="patch_discriminator")


def load_translator(path: str | os.PathLike):
    """The U-Net of a pix2pix checkpoint (a step folder, or a training folder's latest): ``(model, config)``.

    One-line :class:`NoveltyError` for an unreadable file or weights that do not fit the config.
    """
    from novelty.gan.dcgan import GENERATOR_FILE, load_checked, resolve_checkpoint

    folder = resolve_checkpoint(path)
    config = Pix2PixConfig.load(folder)
    model = build_unet(config)
    load_checked(model, folder / GENERATOR_FILE, f"{config.image_size} px, base_filters {config.base_filters}, "
                 f"bottleneck_dense {config.bottleneck_dense}")
    return model, config
