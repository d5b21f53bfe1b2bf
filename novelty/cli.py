"""The ``novelty`` command line. Each command parses flags, calls the library, prints where results went.

Errors are translated here once: a :class:`~novelty.errors.NoveltyError` from any stage becomes a
one-line ``Error: ...`` on stderr with exit status 1, never a traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from novelty import __version__, defaults
from novelty.errors import NoveltyError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter off stderr


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except NoveltyError as exc:
            raise click.ClickException(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="novelty")
def main() -> None:
    """What did your GAN really learn? Train, generate, find nearest training images, judge, curate."""


SIZE = click.option("--size", type=click.Choice([str(s) for s in defaults.IMAGE_SIZES]),
                    default=str(defaults.IMAGE_SIZE), callback=lambda c, p, v: int(v),
                    help="Square image size in pixels.")
FIT = click.option("--fit", "fit_mode", type=click.Choice(defaults.FIT_MODES), default=defaults.FIT_MODE,
                   help="crop: fill the square and cut the overflow; pad: keep everything, pad with white.")
SEED = click.option("--seed", type=int, default=defaults.SEED, help="Random seed (recorded).")


@main.command()
@click.argument("data", type=click.Path(path_type=Path))
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Training folder (resumed if it exists).")
@SIZE
@FIT
@click.option("--steps", type=click.IntRange(min=1), default=defaults.STEPS)
@click.option("--batch-size", type=click.IntRange(min=1), default=defaults.BATCH_SIZE, help="Global batch, split over replicas.")
@click.option("--lr", "learning_rate", type=click.FloatRange(min=0, min_open=True), default=defaults.LEARNING_RATE)
@click.option("--beta1", "beta_1", type=click.FloatRange(0, 1, max_open=True), default=defaults.BETA_1)
@click.option("--z-dim", type=click.IntRange(min=1), default=defaults.Z_DIM)
@click.option("--base-filters", type=click.IntRange(min=1), default=defaults.BASE_FILTERS, help="Network width.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=defaults.CHECKPOINT_EVERY)
@click.option("--log-every", type=click.IntRange(min=1), default=defaults.LOG_EVERY)
@click.option("--flip/--no-flip", default=False, help="Random horizontal flips.")
@click.option("--jitter/--no-jitter", default=False, help="Random jitter: upscale, then random crop.")
@click.option("--strategy", type=click.Choice(["auto", "default", "mirrored", "tpu"]), default="auto",
              help="tf.distribute strategy; auto picks TPU if --tpu is given, mirrored for several GPUs.")
@click.option("--tpu", default=None, help="TPU name or grpc:// address.")
@SEED
def train(data: Path, out: Path, size: int, fit_mode: str, steps: int, batch_size: int,
          learning_rate: float, beta_1: float, z_dim: int, base_filters: int, checkpoint_every: int,
          log_every: int, flip: bool, jitter: bool, strategy: str, tpu: str | None, seed: int) -> None:
    """Train a DCGAN on DATA: an image folder or a folder written by `novelty prepare`."""
    from novelty.dcgan import GanConfig
    from novelty.pipeline import training_images
    from novelty.training import TrainOptions
    from novelty.training import train as run_training

    config = GanConfig(image_size=size, z_dim=z_dim, base_filters=base_filters)
    options = TrainOptions(steps=steps, batch_size=batch_size, learning_rate=learning_rate, beta_1=beta_1,
                           checkpoint_every=checkpoint_every, log_every=log_every, seed=seed, flip=flip,
                           jitter=jitter, strategy=strategy, tpu=tpu)
    dataset, description = training_images(data, size, fit_mode)
    click.echo(f"Training on {description}", err=True)
    last = run_training(dataset, out, config, options, source=str(data))
    click.echo(f"Latest checkpoint: {last}")
    click.echo(f"Samples: {out / 'samples'}")


@main.command()
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path),
              help="A checkpoint folder or a training folder (its latest checkpoint).")
@click.option("--n", "n", type=click.IntRange(min=1), default=defaults.N_SAMPLES, help="Number of samples.")
@SEED
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder.")
def generate(checkpoint: Path, n: int, seed: int, out: Path) -> None:
    """Generate N seeded PNG samples and a grid from a checkpoint."""
    from novelty.generate import GRID_FILE, SAMPLES_DIR
    from novelty.generate import generate as run_generate

    run_generate(checkpoint, out, n=n, seed=seed)
    click.echo(f"Wrote {n} samples to {out / SAMPLES_DIR} and a grid to {out / GRID_FILE}")


if __name__ == "__main__":
    main()
