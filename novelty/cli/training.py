"""`novelty train`'s flags and what it runs for each generator family (DCGAN, pix2pix).

The command itself lives in :mod:`novelty.cli.commands` with the others; the flags that apply to one
family only are refused by name with the other (``DCGAN_ONLY``, ``PIX2PIX_ONLY``).
"""

from __future__ import annotations

from pathlib import Path

import click

from novelty import defaults
from novelty.cli.options import DIRECTION, FIT, TRAIN_SIZE, bounded, options
from novelty.gan import training
from novelty.gan.dcgan import GanConfig
from novelty.images.pairs import PAIR_LAYOUTS
from novelty.images.pipeline import training_images

TRAIN_OPTIONS = options(
    click.option("--out", required=True, type=click.Path(path_type=Path), help="Training folder (resumed if it exists)."),
    click.option("--model", type=click.Choice(["dcgan", "pix2pix"]), default="dcgan",
                 help="dcgan: images from noise; pix2pix: image-to-image, trained on pairs."),
    TRAIN_SIZE,
    FIT,
    click.option("--steps", type=bounded("steps"), default=defaults.STEPS),
    click.option("--batch-size", type=bounded("batch_size"), default=defaults.BATCH_SIZE, help="Global batch, split over replicas."),
    click.option("--lr", "learning_rate", type=bounded("learning_rate"), default=defaults.LEARNING_RATE),
    click.option("--beta1", "beta_1", type=bounded("beta_1"), default=defaults.BETA_1),
    click.option("--z-dim", type=bounded("z_dim"), default=defaults.Z_DIM),
    click.option("--base-filters", type=bounded("base_filters"), default=defaults.BASE_FILTERS, help="Network width."),
    click.option("--checkpoint-every", type=bounded("checkpoint_every"), default=defaults.CHECKPOINT_EVERY),
    click.option("--log-every", type=bounded("log_every"), default=defaults.LOG_EVERY),
    click.option("--flip/--no-flip", default=False, help="Random horizontal flips."),
    click.option("--jitter/--no-jitter", default=False, help="Random jitter: upscale, then random crop."),
    click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "tpu"]), default="auto",
                 help="tf.distribute strategy; auto picks TPU if --tpu is given, mirrored for several GPUs."),
    click.option("--tpu", default=None, help="TPU name or grpc:// address."),
    click.option("--ema", type=bounded("ema"), default=defaults.EMA,
                 help="Decay of a moving average of the generator, sampled and saved (0: off; e.g. 0.999)."),
    click.option("--diffaugment", default=defaults.DIFFAUGMENT, metavar="POLICIES",
                 help="DiffAugment of real and generated images before the discriminator: a comma-separated "
                      "list of color, translation, cutout (empty: off)."),
    click.option("--label-smoothing", type=bounded("label_smoothing"), default=defaults.LABEL_SMOOTHING,
                 help="One-sided: the discriminator's target for real images is 1 - this."),
    click.option("--quality-every", type=bounded("quality_every"), default=defaults.QUALITY_EVERY,
                 help="Steps between block5_pool PRDC evaluations, written to quality.csv/png (0: off)."),
    click.option("--quality-samples", type=bounded("quality_samples"), default=defaults.QUALITY_SAMPLES,
                 help="Fixed-noise samples, and training images, per PRDC evaluation."),
)
PIX2PIX_OPTIONS = options(
    click.option("--pairs", type=click.Choice(["auto", *PAIR_LAYOUTS]), default="auto",
                 help="pix2pix, DATA a pair folder: its layout (auto: folders if it holds A/ and B/)."),
    DIRECTION,
    click.option("--l1-lambda", type=bounded("l1_lambda"), default=defaults.L1_LAMBDA,
                 help="pix2pix: weight of the L1 term of the generator's loss."),
    click.option("--bottleneck-dense", type=bounded("bottleneck_dense"), default=defaults.BOTTLENECK_DENSE,
                 help="pix2pix: fully connected layers at the U-Net's bottleneck."),
    click.option("--cross-flip/--no-cross-flip", default=False,
                 help="pix2pix: also flip the input alone at random, pairing a flipped input with its unflipped target."),
    click.option("--holdout", "pair_holdout", type=bounded("pair_holdout"), default=defaults.PAIR_HOLDOUT,
                 help="pix2pix: share of the pairs kept aside for judging, never trained on (ids in OUT/holdout.json)."),
)
DCGAN_ONLY = ("z_dim", "ema", "diffaugment", "label_smoothing", "quality_every", "quality_samples", "weights")
PIX2PIX_ONLY = ("pairs", "direction", "l1_lambda", "bottleneck_dense", "cross_flip", "pair_holdout")


# Flags whose value a training folder records: CLI name -> (file, key). On a folder that holds a run, each
# of these left out of the command line takes the folder's value, so that `novelty train DATA --out RUN`
# resumes RUN as it was started even after a default changed; one given explicitly is checked instead.
SAVED_FLAGS = {"model": ("config.json", "architecture"), "size": ("config.json", "image_size"),
               "z_dim": ("config.json", "z_dim"), "base_filters": ("config.json", "base_filters"),
               "bottleneck_dense": ("config.json", "bottleneck_dense"),
               **{name: ("train.json", name) for name in (
                   "batch_size", "learning_rate", "beta_1", "seed", "flip", "jitter", "ema", "diffaugment",
                   "label_smoothing", "l1_lambda", "cross_flip")},
               "pair_holdout": ("train.json", "holdout")}


def resume_defaults(out: Path, model: str, settings: dict) -> tuple[str, dict, list[str]]:
    """``(model, settings, taken)``: the flags left at their defaults replaced by the values the training
    folder ``out`` recorded (its model too), and ``taken`` the flags so replaced as ``--name value``."""
    from novelty.files import read_json

    try:
        saved = {"config.json": read_json(out / "config.json")}
    except (OSError, ValueError):
        return model, settings, []  # a new folder (or none to read): check_resume says the rest
    try:
        saved["train.json"] = dict(read_json(out / "train.json")["options"])
    except (OSError, ValueError, KeyError, TypeError):
        saved["train.json"] = {}
    ctx = click.get_current_context()
    params = {param.name: param for param in ctx.command.params}
    values, taken = {"model": model, **settings}, []
    for name, (file, key) in SAVED_FLAGS.items():
        if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT):
            continue  # given on the command line: check_resume compares it
        if name not in values or key not in saved[file]:
            continue  # a flag of the other family, or a value this folder never recorded
        value = saved[file][key]
        value = ",".join(value) if name == "diffaugment" else value
        if value != values[name]:
            values[name] = value
            taken.append(_flag(params[name], value))
    return values.pop("model"), values, taken


def _flag(param: click.Parameter, value) -> str:
    """How ``value`` of ``param`` is written on a command line (``--flip``, ``--no-flip``, ``--lr 0.001``)."""
    if isinstance(value, bool):
        return param.opts[0] if value else param.secondary_opts[0]
    return f"{param.opts[0]} {value if value != '' else chr(34) * 2}"


def loop_settings(settings: dict) -> dict:
    names = ("steps", "batch_size", "learning_rate", "beta_1", "checkpoint_every", "log_every", "seed", "flip",
             "jitter", "strategy", "tpu")
    return {name: settings[name] for name in names}


def train_dcgan(data: Path, out: Path, size: int, fit_mode: str, z_dim: int, base_filters: int, **settings) -> None:
    config = GanConfig(image_size=size, z_dim=z_dim, base_filters=base_filters)
    options = training.TrainOptions(**loop_settings(settings), ema=settings["ema"],
                                    diffaugment=settings["diffaugment"], label_smoothing=settings["label_smoothing"],
                                    quality_every=settings["quality_every"],
                                    quality_samples=settings["quality_samples"], weights=settings["weights"])
    training.check_resume(out, config, options)  # before decoding DATA, which can take minutes
    dataset, description = training_images(data, size, fit_mode)
    click.echo(f"Training on {description}", err=True)
    last = training.train(dataset, out, config, options, source=str(data))
    click.echo(f"Latest checkpoint: {last}")
    click.echo(f"Samples: {out / 'samples'}")
    if (out / "quality.csv").is_file():
        click.echo(f"Quality (block5_pool PRDC by step): {out / 'quality.csv'}, {out / 'quality.png'}")


def train_pix2pix(data: Path, out: Path, size: int, fit_mode: str, base_filters: int, **settings) -> None:
    from novelty.gan.pix2pix import Pix2PixConfig
    from novelty.gan.pix2pix_family import HOLDOUT_FILE, Pix2PixOptions, train_pairs
    from novelty.images.pairs import pair_dataset

    config = Pix2PixConfig(image_size=size, base_filters=base_filters, bottleneck_dense=settings["bottleneck_dense"])
    options = Pix2PixOptions(**loop_settings(settings), l1_lambda=settings["l1_lambda"],
                             cross_flip=settings["cross_flip"], holdout=settings["pair_holdout"])
    training.check_resume(out, config, options)  # before decoding DATA
    layout = None if settings["pairs"] == "auto" else settings["pairs"]
    dataset, ids, description = pair_dataset(data, size, fit_mode, layout, settings["direction"])
    click.echo(f"Training on {description}", err=True)
    last = train_pairs(dataset, ids, out, config, options, source=str(data))
    click.echo(f"Latest checkpoint: {last}")
    click.echo(f"Samples (input | generated | target): {out / 'samples'}")
    click.echo(f"Held-out pairs: {out / HOLDOUT_FILE}")
