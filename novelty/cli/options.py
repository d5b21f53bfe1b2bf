"""The flags the ``novelty`` commands share, and the click types that check numbers while parsing."""

from __future__ import annotations

import click

from novelty import defaults
from novelty.embed.features import parse_reduce
from novelty.errors import NoveltyError


class _InRange:
    """For click's IntRange and FloatRange: one message for every bad value, naming the allowed range
    (click's own says "not a valid integer" without it), and nan refused (it passes click's comparisons)."""

    parse: type
    kind: str

    def __init__(self, allowed: defaults.Range):
        super().__init__(allowed.low, allowed.high, min_open=allowed.low_open, max_open=allowed.high_open)
        self.allowed = allowed

    def convert(self, value, param, ctx):
        try:
            number = self.parse(value)
        except (TypeError, ValueError, OverflowError):
            number = None
        if number is None or number not in self.allowed:
            self.fail(f"{value!r} is not {self.kind} in the range {self.allowed}.", param, ctx)
        return number


class _IntRange(_InRange, click.IntRange):
    name, kind, parse = "integer", "an integer", int


class _FloatRange(_InRange, click.FloatRange):
    name, kind, parse = "number", "a number", float


def bounded(key: str) -> click.ParamType:
    """The click type of a numeric flag: its range from ``defaults.RANGES[key]``, checked while parsing,
    before any work, with a one-line error naming the range (tests/test_flags.py walks them all)."""
    allowed = defaults.RANGES[key]
    return (_IntRange if allowed.integer else _FloatRange)(allowed)


SIZE = click.option("--size", type=click.Choice([str(s) for s in defaults.IMAGE_SIZES]),
                    default=str(defaults.IMAGE_SIZE), callback=lambda c, p, v: int(v),
                    help="Square image size in pixels.")
TRAIN_SIZE = click.option(  # pix2pix also trains at 256 px; a DCGAN refuses it with a one-line error
    "--size", type=click.Choice([str(s) for s in sorted({*defaults.IMAGE_SIZES, *defaults.PAIR_IMAGE_SIZES})]),
    default=str(defaults.IMAGE_SIZE), callback=lambda c, p, v: int(v), help="Square image size in pixels.")
DIRECTION = click.option("--direction", type=click.Choice(["AtoB", "BtoA"]), default=defaults.PAIR_DIRECTION,
                         help="Pairs: which half is the generator's input (A: the left half, or folder A/).")
FIT = click.option("--fit", "fit_mode", type=click.Choice(defaults.FIT_MODES), default=defaults.FIT_MODE,
                   help="crop: fill the square and cut the overflow; pad: keep everything, pad with white.")
SEED = click.option("--seed", type=bounded("seed"), default=defaults.SEED, help="Random seed (recorded).")
WEIGHTS_OPTION = click.option("--weights", default=defaults.WEIGHTS,
                              help="imagenet, none (random init) or a Keras VGG16 weights file.")


def options(*decorators):
    """Apply click options listed top-down, as if stacked above a command, so --help keeps their order."""
    def apply(function):
        for decorator in reversed(decorators):
            function = decorator(function)
        return function
    return apply


def _layers(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


# Options shared by the commands that embed images (analyze, validate).
LAYERS_OPTION = click.option("--layers", default=",".join(defaults.LAYERS), callback=_layers,
                             help="Comma-separated VGG16 layers.")
PREPROCESS_OPTION = click.option(
    "--preprocess", type=click.Choice(defaults.PREPROCESS_MODES), default=defaults.PREPROCESS,
    help="caffe: Keras preprocess_input (correct); original: x/127.5-1 as the 2018 demo.")
INPUT_SIZE_OPTION = click.option("--input-size", type=bounded("input_size"), default=defaults.INPUT_SIZE,
                                 help="Every image is fitted to this square before VGG16.")
BATCH_SIZE_OPTION = click.option("--batch-size", type=bounded("embed_batch_size"), default=defaults.EMBED_BATCH_SIZE,
                                 help="Images per VGG16 batch.")
FEATURE_DTYPE_OPTION = click.option(
    "--feature-dtype", type=click.Choice(defaults.FEATURE_DTYPES), default=defaults.FEATURE_DTYPE,
    help="Feature-store storage (float32 is used anyway where float16 cannot hold the values).")
# What decides the features a run's store holds besides the layers (analyze, embed: the same flags)
EMBEDDING_OPTIONS = options(WEIGHTS_OPTION, PREPROCESS_OPTION, INPUT_SIZE_OPTION, FIT, BATCH_SIZE_OPTION,
                            FEATURE_DTYPE_OPTION)


def _block1_reduce(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Check the numbers of a --block1-reduce spec while parsing, before any work (no TensorFlow)."""
    try:
        parse_reduce(value)
    except NoveltyError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


BLOCK1_REDUCE_OPTION = click.option(
    "--block1-reduce", default=defaults.BLOCK1_REDUCE, callback=_block1_reduce,
    help="Shrink block1_pool: none, sketch:D (random projection to D values; keeps most neighbours) "
         "or pool:N (N x N average pooling; keeps fewer).")

INDEX_OPTION = click.option(
    "--index", type=click.Choice(["exact", "faiss", "auto"]), default=defaults.INDEX,
    help=f"Neighbour search: exact, faiss (HNSW from {defaults.FAISS_ANN_MIN_TRAINING:,} training images "
         f"on, recall@24 measured), or auto (faiss from {defaults.FAISS_AUTO_TRAINING:,} on).")
HOLDOUT_OPTION = click.option(
    "--holdout", "holdout_fraction", type=bounded("holdout_fraction"),
    default=defaults.HOLDOUT_FRACTION, help="Share of the training images held out to calibrate the copy verdict.")
FPR_OPTION = click.option("--fpr", type=bounded("false_positive_rate"),
                          default=defaults.FALSE_POSITIVE_RATE,
                          help="False positive rate of the copy verdict (share of unseen real images flagged).")
MIRROR_OPTION = click.option("--mirror/--no-mirror", default=True,
                             help="Copy verdict: also search with every sample flipped left-right.")
ALIGN_OPTION = click.option("--align/--no-align", default=True,
                            help="Copy verdict: also match pixels of every sample, aligned over crops and "
                                 "scales, with its nearest training images (catches crops).")


def given_only_with(names: tuple[str, ...], needed: str) -> None:
    """Refuse flags the user gave (not left at their defaults) that apply only with ``needed``."""
    ctx = click.get_current_context()
    given = [f"--{name.removesuffix('_mode').replace('_', '-')}" for name in names
             if ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)]
    if given:
        raise NoveltyError(f"{', '.join(given)} applies only with {needed}")
