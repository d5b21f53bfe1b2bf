"""The shared training loop (novelty.gan.loop) with a family it has never seen, and its hooks.

``Paired`` below is a pix2pix-shaped family written only against novelty.gan.family: it learns
``(input, target)`` pairs with an L1 + adversarial loss, its own config and options (not DCGAN's,
not TrainOptions). The loop gives it checkpoints, exact resume, sample grids, TensorBoard and hooks.
"""

from __future__ import annotations

import ast
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_training import _logged

from novelty.errors import NoveltyError
from novelty.gan import loop
from novelty.gan.family import GeneratorFamily, TrainingHook, to_uint8

SIZE = 8
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class PairedConfig:
    image_size: int = SIZE
    filters: int = 4
    architecture: str = "paired"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def save(self, folder: Path) -> None:
        (Path(folder) / "config.json").write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, folder: Path) -> PairedConfig:
        return cls(**json.loads((Path(folder) / "config.json").read_text()))


@dataclass(frozen=True)
class PairedOptions:
    steps: int = 4
    batch_size: int = 4
    checkpoint_every: int = 2
    log_every: int = 1
    strategy: str = "auto"
    tpu: str | None = None
    devices: tuple[str, ...] | None = None
    seed: int = 0
    l1_weight: float = 100.0


class Paired(GeneratorFamily):
    """input -> target (its colours inverted) with an L1 + PatchGAN-style adversarial loss, tiny convolutional networks."""

    name = "paired"
    result_options = ("batch_size", "seed", "l1_weight")

    def __init__(self, config: PairedConfig, options: PairedOptions, strategy):
        import keras
        import tensorflow as tf

        self.config, self.options = config, options
        keras.utils.set_random_seed(options.seed)
        shape = (config.image_size, config.image_size, 3)
        with strategy.scope():
            self.generator = keras.Sequential([keras.Input(shape), keras.layers.Conv2D(3, 3, padding="same",
                                                                                       activation="tanh")])
            self.discriminator = keras.Sequential([keras.Input((*shape[:2], 6)), keras.layers.Conv2D(1, 3)])
            self.optimizers = [keras.optimizers.Adam(1e-2) for _ in range(2)]
            for opt, model in zip(self.optimizers, (self.generator, self.discriminator), strict=True):
                opt.build(model.trainable_variables)
            self.rng = tf.random.Generator.from_seed(options.seed)
        self.grid_pairs = None
        bce = keras.losses.BinaryCrossentropy(from_logits=True)

        def replica_step(pair):
            source, target = pair
            source = source + 0.01 * self.rng.normal(tf.shape(source))  # uses (and saves) the random state
            with tf.GradientTape(persistent=True) as tape:
                made = self.generator(source, training=True)
                real = self.discriminator(tf.concat([source, target], -1), training=True)
                fake = self.discriminator(tf.concat([source, made], -1), training=True)
                d_loss = bce(tf.ones_like(real), real) + bce(tf.zeros_like(fake), fake)
                l1 = tf.reduce_mean(tf.abs(target - made))
                g_loss = bce(tf.ones_like(fake), fake) + options.l1_weight * l1
            for opt, loss, model in zip(self.optimizers, (g_loss, d_loss), (self.generator, self.discriminator),
                                        strict=True):
                opt.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                        model.trainable_variables, strict=True))
            return {"g_loss": g_loss, "d_loss": d_loss, "l1": l1}

        self._step = tf.function(lambda batch: strategy.run(replica_step, args=(batch,)))

    @classmethod
    def check_data(cls, dataset, config: PairedConfig) -> None:
        if not isinstance(dataset.element_spec, tuple):
            raise NoveltyError("paired training data must be (input, target) pairs")

    def input_stream(self, dataset, skip: int):
        import tensorflow as tf

        self.grid_pairs = next(iter(dataset.batch(2)))
        scaled = dataset.map(lambda *pair: tuple(tf.cast(x, tf.float32) / 127.5 - 1.0 for x in pair))
        return scaled.repeat().skip(skip).batch(self.options.batch_size, drop_remainder=True)

    def distributed_step(self, batch) -> dict:
        return self._step(batch)

    @property
    def sampler(self):
        return self.generator

    def save_weights(self, folder: Path) -> None:
        self.config.save(folder)
        self.generator.save_weights(folder / "generator.weights.h5")
        self.discriminator.save_weights(folder / "discriminator.weights.h5")

    def load_weights(self, folder: Path) -> None:
        self.generator.load_weights(folder / "generator.weights.h5")
        self.discriminator.load_weights(folder / "discriminator.weights.h5")

    def state_arrays(self) -> dict[str, np.ndarray]:
        state = {f"opt{j}/{i}": np.asarray(v) for j, opt in enumerate(self.optimizers)
                 for i, v in enumerate(opt.variables)}
        return {**state, "rng": self.rng.state.numpy()}

    def load_state(self, state) -> None:
        for j, opt in enumerate(self.optimizers):
            for i, v in enumerate(opt.variables):
                v.assign(state[f"opt{j}/{i}"])
        self.rng.reset(state["rng"])

    def sample_grid(self) -> np.ndarray:
        source, target = (np.asarray(x) for x in self.grid_pairs)
        made = to_uint8(self.generator(source.astype(np.float32) / 127.5 - 1.0, training=False))
        return np.concatenate([np.concatenate(row, axis=1) for row in zip(source, made, target, strict=True)])


class Recorder(TrainingHook):
    """Records every call; logs one scalar every other step; may refuse in check()."""

    def __init__(self, out: Path, refuse: bool = False):
        self.out, self.refuse, self.calls = out, refuse, []

    def check(self) -> None:
        self.calls.append(("check", (self.out / "train.json").exists()))
        if self.refuse:
            raise NoveltyError("hook refused")

    def start(self, step: int, steps: int) -> None:
        self.calls.append(("start", step, steps))

    def after_step(self, step: int, family: GeneratorFamily) -> dict[str, float]:
        self.calls.append(("after_step", step, family.sampler is family.generator))
        return {"hook/step_squared": float(step * step)} if step % 2 == 0 else {}


def _pairs():
    import tensorflow as tf

    from novelty.images.pipeline import dataset_from_array

    source = np.random.default_rng(0).integers(0, 256, (12, SIZE, SIZE, 3), dtype=np.uint8)
    return tf.data.Dataset.zip((dataset_from_array(source), dataset_from_array(255 - source)))


def _arrays(folder: Path) -> dict[str, np.ndarray]:
    import h5py

    with np.load(folder / loop.STATE_FILE) as state:
        found = {f"state/{k}": state[k] for k in state.files}
    for name in ("generator.weights.h5", "discriminator.weights.h5"):
        with h5py.File(folder / name, "r") as handle:
            handle.visititems(lambda key, item, name=name: found.__setitem__(f"{name}/{key}", item[()])
                              if isinstance(item, h5py.Dataset) else None)
    return found


@pytest.fixture(scope="module")
def paired_runs(tmp_path_factory) -> dict:
    """One run straight to step 5; one to step 3 then resumed to 5, with a recording hook on each call."""
    base = tmp_path_factory.mktemp("loop")
    whole, resumed = base / "whole", base / "resumed"
    hooks = {"whole": Recorder(whole), "first": Recorder(resumed), "second": Recorder(resumed)}
    last = loop.train(Paired, _pairs(), whole, PairedConfig(), PairedOptions(steps=5), progress=False,
                      hooks=[hooks["whole"]])
    loop.train(Paired, _pairs(), resumed, PairedConfig(), PairedOptions(steps=3), progress=False,
               hooks=[hooks["first"]])
    loop.train(Paired, _pairs(), resumed, PairedConfig(), PairedOptions(steps=5), progress=False,
               hooks=[hooks["second"]])
    return {"whole": whole, "resumed": resumed, "last": last, "hooks": hooks}


@pytest.mark.slow
def test_the_loop_checkpoints_a_family_it_does_not_know(paired_runs: dict) -> None:
    whole = paired_runs["whole"]
    assert paired_runs["last"] == whole / "checkpoints" / "step-000005"
    assert loop.latest_step(whole) == "step-000005"
    assert sorted(p.name for p in (whole / "checkpoints").glob("step-*")) == [
        "step-000002", "step-000004", "step-000005"]  # every 2 steps and the last, the newest 3 kept
    state = _arrays(whole / "checkpoints" / "step-000005")
    assert int(state["state/step"]) == 5 and int(state[f"state/{loop.DATA_POSITION}"]) == 5 * 4
    assert {"state/rng", "state/opt0/0", "state/opt1/0"} <= state.keys()
    record = json.loads((whole / "train.json").read_text())
    assert record["options"]["l1_weight"] == 100.0 and record["config"]["architecture"] == "paired"
    grid = np.asarray(Image.open(whole / "samples" / "step-000005.png"))
    assert grid.shape == (2 * SIZE, 3 * SIZE, 3)  # the family's own grid: input | generated | target rows
    logged = _logged(whole)
    assert [step for step, _ in logged["l1"]] == [1, 2, 3, 4, 5]
    assert logged["l1"][-1][1] < logged["l1"][0][1]  # it learns: the L1 loss falls over five steps


@pytest.mark.slow
def test_a_resumed_run_of_another_family_ends_where_an_uninterrupted_one_does(paired_runs: dict) -> None:
    whole = _arrays(paired_runs["whole"] / "checkpoints" / "step-000005")
    resumed = _arrays(paired_runs["resumed"] / "checkpoints" / "step-000005")
    assert whole.keys() == resumed.keys()
    for key in whole:
        np.testing.assert_array_equal(whole[key], resumed[key], err_msg=key)


@pytest.mark.slow
def test_hooks_are_called_in_order_and_their_scalars_logged(paired_runs: dict) -> None:
    hooks = paired_runs["hooks"]
    assert hooks["whole"].calls == [("check", False), ("start", 0, 5)] + [
        ("after_step", step, True) for step in range(1, 6)]
    assert hooks["second"].calls == [("check", True), ("start", 3, 5), ("after_step", 4, True),
                                     ("after_step", 5, True)]
    assert _logged(paired_runs["whole"])["hook/step_squared"] == [(2, 4.0), (4, 16.0)]


@pytest.mark.slow
def test_changed_family_options_on_the_same_folder_are_refused(paired_runs: dict) -> None:
    with pytest.raises(NoveltyError, match=r"already holds a training run with other settings \(l1_weight: "
                                           r"saved 100.0 vs requested 10.0\)"):
        loop.train(Paired, _pairs(), paired_runs["whole"], PairedConfig(),
                   PairedOptions(steps=6, l1_weight=10.0), progress=False)


def test_a_hook_that_refuses_stops_the_call_before_anything_is_written(tmp_path: Path) -> None:
    out = tmp_path / "run"
    hook = Recorder(out, refuse=True)
    with pytest.raises(NoveltyError, match="hook refused"):
        loop.train(Paired, _pairs(), out, PairedConfig(), PairedOptions(), progress=False, hooks=[hook])
    assert hook.calls == [("check", False)]
    assert list(out.iterdir()) == []


def test_the_family_refuses_its_data_before_the_folder_is_made(tmp_path: Path) -> None:
    from novelty.images.pipeline import dataset_from_array

    single = dataset_from_array(np.zeros((4, SIZE, SIZE, 3), np.uint8))
    with pytest.raises(NoveltyError, match=r"\(input, target\) pairs"):
        loop.train(Paired, single, tmp_path / "run", PairedConfig(), PairedOptions(), progress=False)
    assert not (tmp_path / "run").exists()


def test_dcgan_is_the_registered_family_of_its_config() -> None:
    from novelty.gan.dcgan import GanConfig
    from novelty.gan.dcgan_family import DCGAN
    from novelty.gan.training import FAMILIES, RESULT_OPTIONS

    assert FAMILIES[GanConfig().architecture] is DCGAN and issubclass(DCGAN, GeneratorFamily)
    assert RESULT_OPTIONS == DCGAN.result_options and "diffaugment" in RESULT_OPTIONS


@pytest.mark.parametrize("module", ["loop", "family"])
def test_the_loop_imports_no_family_and_no_later_stage(module: str) -> None:
    """The loop knows families and hooks by their interface only: never DCGAN, tracking, embed or judge."""
    tree = ast.parse((ROOT / "novelty" / "gan" / f"{module}.py").read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    banned = ("novelty.gan.dcgan_family", "novelty.gan.tracking", "novelty.gan.training", "novelty.embed",
              "novelty.judge", "novelty.search")
    assert not [name for name in imported if name and name.startswith(banned)]
    assert "numpy" in imported  # the walk did see the module's imports
