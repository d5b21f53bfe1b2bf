"""What a generator family gives the shared training loop (:mod:`novelty.gan.loop`), and what a hook gets.

A family is one kind of GAN: its networks, optimisers and training step, the input stream it learns
from, the files its checkpoints hold and the picture saved beside each checkpoint. The loop owns
everything else and never looks inside a family: the tf.distribute strategy, the step counter and the
input position, ``state.npz``, writing, naming, pruning and resuming checkpoints, the progress bar,
TensorBoard, and the hooks (quality tracking) it calls after each step.

DCGAN (:mod:`novelty.gan.dcgan_family`, networks in :mod:`novelty.gan.dcgan`) is the first family;
pix2pix (Isola et al., 2017, as in the TensorFlow pix2pix tutorial) the second, built as planned
here without touching the loop: :mod:`novelty.gan.pix2pix_family` (networks in
:mod:`novelty.gan.pix2pix`), registered in :data:`novelty.gan.training.FAMILIES` under ``"pix2pix"``:

- its config (:class:`~novelty.gan.pix2pix.Pix2PixConfig`, ``architecture = "pix2pix"``) holds the image
  size, the width and the dense bottleneck layers; its options add the L1 weight (lambda = 100),
  cross-flip and the held-out share to the loop's fields;
- :meth:`check_data` accepts a dataset of ``(input, target)`` pairs of uint8 images;
  :meth:`input_stream` shuffles, jitters and flips each pair alike, batches it and starts at pair
  ``skip`` (:func:`~novelty.images.pipeline.augment_pairs_and_batch`), and keeps the first
  ``grid_size`` pairs for :meth:`sample_grid`;
- ``__init__`` builds the U-Net generator and the PatchGAN discriminator (it judges ``(input, image)``
  pairs, one logit per patch) and two Adam optimisers in the strategy's scope; :meth:`distributed_step`
  takes a batch of pairs, the discriminator loss is BCE(real pair -> 1) + BCE(generated pair -> 0), the
  generator loss BCE(generated pair -> 1) + lambda * mean |target - G(input)|, averaged over the global
  batch;
- :meth:`save_weights`/:meth:`load_weights` write its config and its two networks (``sampler`` is the
  U-Net, saved as ``generator.weights.h5``); :meth:`state_arrays` its optimisers' variables and its
  dropout layers' random state; :meth:`sample_grid` rows of input | generated | target;
- the held-out pairs' ids are written by a :class:`TrainingHook` when the run starts (``holdout.json``).

The loop then gives it checkpoints every ``--checkpoint-every`` steps, exact resume, ``Ctrl-C`` safety,
TensorBoard curves of whatever :meth:`distributed_step` returns and the sample grids, unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from novelty import bounds, defaults
from novelty.errors import NoveltyError

CONFIG_FILE = "config.json"  # a family's network config, in a training folder and in each checkpoint


@dataclass(frozen=True)
class LoopOptions:
    """The fields every family's options hold: the loop's, Adam's, the seed, the shared augmentation flags.

    A family's options subclass it and add their own fields (and may change ``grid_size``'s default).
    """

    steps: int = defaults.STEPS
    batch_size: int = defaults.BATCH_SIZE  # global: split over replicas
    learning_rate: float = defaults.LEARNING_RATE
    beta_1: float = defaults.BETA_1
    checkpoint_every: int = defaults.CHECKPOINT_EVERY
    log_every: int = defaults.LOG_EVERY
    seed: int = defaults.SEED
    flip: bool = False
    jitter: bool = False
    strategy: str = "auto"
    tpu: str | None = None
    devices: tuple[str, ...] | None = None  # explicit devices for MirroredStrategy
    grid_size: int = defaults.GRID_SIZE

    def __post_init__(self) -> None:
        from novelty.gan.loop import STRATEGIES

        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "learning_rate", "beta_1", "seed"):
            bounds.check(name, getattr(self, name))  # the fields are named as their ranges in defaults.RANGES
        if self.grid_size < 1:
            raise NoveltyError(f"grid_size must be positive, received: {self.grid_size}")
        if self.strategy not in STRATEGIES:
            raise NoveltyError(f"unknown strategy {self.strategy!r}; must be one of: {', '.join(STRATEGIES)}")
        if self.strategy == "tpu" and not self.tpu:
            raise NoveltyError("strategy 'tpu' needs --tpu NAME (a TPU name or grpc:// address)")


class GeneratorFamily(ABC):
    """One kind of GAN, built for one training call: ``family(config, options, strategy)``.

    ``config`` is the family's network config (``architecture``, ``to_dict``, ``save(folder)`` and the
    classmethod ``load(folder)``); ``options`` a frozen dataclass holding at least the loop's fields
    (``steps``, ``batch_size``, ``checkpoint_every``, ``log_every``, ``strategy``, ``tpu``, ``devices``)
    and the :attr:`result_options`. The constructor builds the networks, optimisers and random state
    under ``strategy.scope()``, seeded from ``options``, so that two constructions train alike.
    """

    name: ClassVar[str]
    # options that change the weights a run reaches: they cannot change on a folder that holds a run
    result_options: ClassVar[tuple[str, ...]]

    @classmethod
    @abstractmethod
    def check_data(cls, dataset, config) -> None:
        """Refuse a dataset this family cannot train on with ``config`` (before anything is written)."""

    @abstractmethod
    def input_stream(self, dataset, skip: int):
        """The batched tf.data stream of global batches, starting ``skip`` elements in.

        It must be a pure function of the options' seed and ``skip``, so that a resumed run reads the
        same batches as an uninterrupted one (the loop saves how many elements were consumed).
        """

    @abstractmethod
    def distributed_step(self, batch) -> dict:
        """One training step on a distributed global batch; scalars summed over replicas, by name."""

    @property
    @abstractmethod
    def sampler(self):
        """The network that is sampled: saved as the checkpoint's generator and given to the hooks."""

    @abstractmethod
    def save_weights(self, folder: Path) -> None:
        """Write the config and every network into checkpoint ``folder`` (the loop adds ``state.npz``)."""

    @abstractmethod
    def load_weights(self, folder: Path) -> None:
        """Load every network from checkpoint ``folder``, written by :meth:`save_weights`."""

    @abstractmethod
    def state_arrays(self) -> dict[str, np.ndarray]:
        """The rest of what the next step depends on: optimiser variables, random generator state."""

    @abstractmethod
    def load_state(self, state) -> None:
        """Restore :meth:`state_arrays` from ``state`` (a loaded ``state.npz``, read by key)."""

    @abstractmethod
    def sample_grid(self) -> np.ndarray:
        """The picture saved beside each checkpoint: one uint8 ``(H, W, 3)`` image."""


class TrainingHook:
    """Something the loop calls while training, without the loop importing it (quality tracking).

    Every method has a do-nothing default, so a hook overrides what it needs.
    """

    def check(self) -> None:
        """Called before the loop writes anything: raise :class:`NoveltyError` to stop the call."""

    def start(self, step: int, steps: int) -> None:
        """Called once the run is restored at ``step``, before the first step towards ``steps``."""

    def after_step(self, step: int, family: GeneratorFamily) -> dict[str, float]:
        """Called after each step; returns scalars to log to TensorBoard at ``step`` (often none)."""
        return {}


def check_image_spec(spec, size: int, noun: str) -> None:
    """Refuse a tf.data element spec that is not uint8 ``(size, size, 3)`` (``noun``: what the message
    calls the images); dimensions tf.data does not know pass."""
    if spec.dtype.name != "uint8":
        raise NoveltyError(f"{noun} must be uint8 (0-255), received {spec.dtype.name}")
    if spec.shape.rank is None:
        return
    dims = tuple(spec.shape.as_list())
    wanted = (size, size, 3)
    if len(dims) != 3 or any(d not in (None, w) for d, w in zip(dims, wanted, strict=True)):
        raise NoveltyError(f"{noun} must be {wanted} for a {size} px network, received {dims}")


def adam_optimizers(options: LoopOptions, *networks) -> list:
    """One Adam (``options``' learning rate and beta1) per network, built on its trainable variables so
    that their state exists before a checkpoint is restored into it."""
    import keras

    optimizers = []
    for network in networks:
        optimizer = keras.optimizers.Adam(options.learning_rate, beta_1=options.beta_1)
        optimizer.build(network.trainable_variables)
        optimizers.append(optimizer)
    return optimizers


def variables_state(groups: dict[str, list]) -> dict[str, np.ndarray]:
    """``{"name/i": value}`` of each group's variables (optimisers, random states) for ``state.npz``."""
    return {f"{name}/{i}": np.asarray(v) for name, variables in groups.items() for i, v in enumerate(variables)}


def load_variables_state(groups: dict[str, list], state) -> None:
    """Assign what :func:`variables_state` saved back to the same groups of variables."""
    for name, variables in groups.items():
        for i, v in enumerate(variables):
            v.assign(state[f"{name}/{i}"])


def to_uint8(images) -> np.ndarray:
    """Generator output in [-1, 1], ``(N, H, W, 3)`` -> uint8 with the same layout."""
    arr = np.asarray(images, dtype=np.float32)
    return np.clip(np.rint((arr + 1.0) * 127.5), 0, 255).astype(np.uint8)


def check_config(config, *, sizes: tuple[int, ...], bounded: tuple[str, ...], architecture: str,
                 size_name: str = "image size") -> None:
    """Validate a family's network config at construction: every int field an integer (not a bool),
    ``image_size`` one of ``sizes``, each of ``bounded`` inside its ``defaults.RANGES`` range, a
    positive ``kernel_size`` and the family's ``architecture``; one-line errors naming the value."""
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.type in ("int", int) and (not isinstance(value, int) or isinstance(value, bool)):
            raise NoveltyError(f"{field.name} must be an integer, received: {value!r}")
    if config.image_size not in sizes:
        allowed = ", ".join(map(str, sizes))
        raise NoveltyError(f"{size_name} must be one of: {allowed}; received: {config.image_size}")
    for name in bounded:
        bounds.check(name, getattr(config, name))
    if config.kernel_size < 1:
        raise NoveltyError(f"kernel_size must be positive, received: {config.kernel_size}")
    if config.architecture != architecture:
        raise NoveltyError(f"architecture must be {architecture!r}, received: {config.architecture!r}")


def read_config(cls, folder: str | os.PathLike, architecture: str, format_version: int):
    """A family's config dataclass ``cls`` from ``folder/config.json``: one-line errors for a missing or
    unreadable file, another architecture, unknown or missing fields, or a newer format."""
    path = Path(folder) / CONFIG_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NoveltyError(f"not a novelty checkpoint: {path} is missing") from None
    except (OSError, ValueError) as exc:
        raise NoveltyError(f"unreadable checkpoint config {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("architecture") != architecture:
        found = data.get("architecture") if isinstance(data, dict) else type(data).__name__
        raise NoveltyError(f"checkpoint {folder} holds architecture {found!r}; this version reads {architecture!r}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise NoveltyError(f"checkpoint config {path} has unknown fields: {', '.join(unknown)}")
    missing = sorted(known - set(data))  # never fill a saved network's shape from today's defaults
    if missing:
        raise NoveltyError(f"checkpoint config {path} lacks fields: {', '.join(missing)}")
    version = data["format_version"]
    if isinstance(version, int) and version > format_version:
        raise NoveltyError(f"checkpoint config {path} has format_version {version}; this version "
                           f"of novelty reads up to {format_version}: upgrade novelty")
    try:
        return cls(**data)
    except NoveltyError as exc:
        raise NoveltyError(f"checkpoint config {path}: {exc}") from None


def config_architecture(folder: str | os.PathLike) -> str | None:
    """The "architecture" a checkpoint's config names (which family made it), None when unreadable."""
    try:
        data = json.loads((Path(folder) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("architecture") if isinstance(data, dict) else None
