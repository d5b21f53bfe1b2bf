"""Train a generator family on the shared loop: the DCGAN's options, and where ``train`` is assembled.

pix2pix is trained by :func:`novelty.gan.pix2pix_family.train_pairs`; both families are listed in
:data:`FAMILIES`, by the ``architecture`` their configs save.

:func:`train` picks the family of the config (:data:`FAMILIES`), wires the quality curve
(:mod:`novelty.gan.tracking`) in as a hook, and runs :func:`novelty.gan.loop.train`: the loop owns the
training folder's layout, checkpoints, resume and logs (see :mod:`novelty.gan.loop`), the family its
networks, step and input stream (see :mod:`novelty.gan.family`). Besides the loop's files a DCGAN
folder holds::

    quality.csv, quality.png       block5_pool PRDC while training (novelty.gan.tracking)

With ``--ema`` a checkpoint's ``generator.weights.h5`` holds the averaged generator (what is sampled
and loaded by ``generate`` and ``analyze``) and ``generator.training.weights.h5`` the one trained.
Settings that change the result cannot change on an existing folder (:data:`RESULT_OPTIONS`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from novelty import bounds, defaults
from novelty.gan import loop
from novelty.gan.dcgan import GanConfig
from novelty.gan.dcgan_family import DCGAN, TRAINING_GENERATOR_FILE, fixed_noise
from novelty.gan.family import GeneratorFamily, LoopOptions, to_uint8
from novelty.gan.loop import (
    DATA_POSITION,
    KEEP_CHECKPOINTS,
    STATE_FILE,
    STRATEGIES,
    latest_step,
    make_strategy,
)
from novelty.gan.pix2pix_family import Pix2Pix
from novelty.gan.recipe import parse_diffaugment
from novelty.gan.tracking import QualityHook

__all__ = ["DATA_POSITION", "FAMILIES", "KEEP_CHECKPOINTS", "RESULT_OPTIONS", "STATE_FILE", "STRATEGIES",
           "TRAINING_GENERATOR_FILE", "TrainOptions", "check_resume", "fixed_noise", "latest_step",
           "make_strategy", "to_uint8", "train"]

FAMILIES: dict[str, type[GeneratorFamily]] = {DCGAN.name: DCGAN, Pix2Pix.name: Pix2Pix}  # by config ``architecture``
RESULT_OPTIONS = DCGAN.result_options
_Trainer = DCGAN  # the name benchmarks and tests reach the built DCGAN by


@dataclass(frozen=True)
class TrainOptions(LoopOptions):
    """How to train a DCGAN: the loop, the optimiser, augmentation and distribution, the recipe options."""

    ema: float = defaults.EMA  # decay of the generator's moving average; 0 = off
    diffaugment: tuple[str, ...] = ()  # DiffAugment policies (novelty.gan.recipe.DIFFAUGMENT_POLICIES)
    label_smoothing: float = defaults.LABEL_SMOOTHING  # one-sided: real target 1 - this
    quality_every: int = defaults.QUALITY_EVERY  # steps between PRDC evaluations; 0 = off
    quality_samples: int = defaults.QUALITY_SAMPLES
    weights: str = defaults.WEIGHTS  # VGG16 weights of the PRDC evaluations

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("ema", "label_smoothing", "quality_every", "quality_samples"):
            bounds.check(name, getattr(self, name))
        object.__setattr__(self, "diffaugment", parse_diffaugment(self.diffaugment))


def check_resume(out: Path, config: GanConfig, options: TrainOptions) -> dict:
    """Refuse another network or another :data:`RESULT_OPTIONS` value on a folder that holds a run.

    Returns the folder's earlier ``train.json`` record ({} for a new folder or one without it).
    """
    return loop.check_resume(out, config, options, FAMILIES[config.architecture].result_options)


def train(dataset, out: str | os.PathLike, config: GanConfig, options: TrainOptions, *,
          source: str = "", progress: bool = True, strategy=None) -> Path:
    """Train on ``dataset`` (single uint8 images) into folder ``out``, resuming if it holds a run.

    Returns the folder of the last checkpoint. ``dataset`` is an unbatched tf.data dataset of
    ``(size, size, 3)`` uint8 images (see :mod:`novelty.images.pipeline`).
    """
    quality = QualityHook(Path(out), dataset, options.quality_every, options.weights, options.quality_samples,
                          options.seed, config.z_dim)
    return loop.train(FAMILIES[config.architecture], dataset, out, config, options, source=source,
                      progress=progress, strategy=strategy, hooks=(quality,))
