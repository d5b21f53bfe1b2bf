"""Every numeric flag of every command refuses out-of-range, negative, huge and non-numeric values with a
one-line error naming the allowed range, while parsing, before any work; the library refuses them too.

The CLI walk enumerates ``novelty.cli.main``'s commands and their numeric options, so a new flag is
covered without touching this file. Each command's body is replaced by a recorder: the test proves
the error comes before the command starts (no imports of TensorFlow, no files, no memory).
"""

from __future__ import annotations

import math
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner

from novelty import bounds, defaults
from novelty.analysis import AnalyzeOptions, analyze
from novelty.cli import main
from novelty.embed.features import Extractor, parse_reduce
from novelty.errors import NoveltyError
from novelty.gan.dcgan import GanConfig
from novelty.gan.generate import generate, sample
from novelty.gan.training import TrainOptions
from novelty.judge.validate import validate

HUGE = "99999999999999999999"


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


def _is_numeric(param: click.Parameter) -> bool:
    kind = param.type
    if isinstance(kind, click.types.IntParamType | click.types.FloatParamType):
        return True
    return isinstance(kind, click.Choice) and all(str(c).lstrip("-").isdigit() for c in kind.choices)


NUMERIC = [(path, command, param) for path, command in _commands(main) for param in command.params
           if isinstance(param, click.Option) and _is_numeric(param)]


def _bad_values(kind: click.ParamType) -> list[str]:
    """Non-numeric, huge, non-finite and just-outside-the-edge values for ``kind``."""
    values = ["abc", "", "1.5x", "0x10", HUGE, "-" + HUGE, "nan", "inf", "-inf", "1e400"]
    if isinstance(kind, click.Choice):
        return [*values, "-1", "1.5"]
    step = 1 if isinstance(kind, click.types.IntParamType) else None

    low, high = getattr(kind, "min", None), getattr(kind, "max", None)  # None: unbounded (a plain int)

    def outside(edge: float, is_open: bool, direction: float) -> str:
        if is_open:
            return str(edge)
        return str(edge + direction) if step else repr(math.nextafter(edge, direction * math.inf))

    values += [outside(edge, getattr(kind, f"{end}_open"), direction)
               for edge, end, direction in ((low, "min", -1), (high, "max", 1)) if edge is not None]
    if step:
        values.append("1.5")
    if low is None or low >= 0:
        values.append("-1")
    return values


def _required_args(command: click.Command, tmp_path: Path) -> list[str]:
    """Placeholder values for the command's required arguments and options (paths that do not exist)."""
    args: list[str] = []
    for param in command.params:
        if param.required:
            value = str(tmp_path / "missing" / param.name)
            args += [value] if isinstance(param, click.Argument) else [param.opts[0], value]
    return args


CASES = [pytest.param(path, param.opts[0], value, id=f"{' '.join(path)} {param.opts[0]} {value!r}")
         for path, command, param in NUMERIC for value in _bad_values(param.type)]


def _assert_refused(path: tuple[str, ...], flag: str, value: str, tmp_path: Path, monkeypatch,
                    allowed: list[str]) -> None:
    command = dict(_commands(main))[path]
    started: list[dict] = []
    monkeypatch.setattr(command, "callback", lambda **kwargs: started.append(kwargs))
    result = CliRunner().invoke(main, [*path, *_required_args(command, tmp_path), flag, value])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert started == [], f"{flag} {value!r} was accepted: the command started"
    assert result.exit_code not in (0, None) and isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert lines and all(line.startswith(("Usage:", "Try ")) for line in lines[:-1]), result.output
    error = lines[-1]
    assert error.startswith("Error: ") and f"'{flag}'" in error and len(error) < 300, error
    for word in allowed:
        assert word in error, f"the error does not name the allowed range: {error}"


@pytest.mark.parametrize(("path", "flag", "value"), CASES)
def test_every_numeric_flag_refuses_bad_values_before_any_work(path, flag, value, tmp_path, monkeypatch):
    param = next(p for _, c, p in NUMERIC if c is dict(_commands(main))[path] and p.opts[0] == flag)
    kind = param.type
    allowed = ([f"'{c}'" for c in kind.choices] if isinstance(kind, click.Choice)
               else [str(getattr(kind, end, None)) for end in ("min", "max")])
    _assert_refused(path, flag, value, tmp_path, monkeypatch, allowed)


def test_the_walk_finds_the_numeric_flags_and_each_has_both_bounds():
    found = {(" ".join(path), param.opts[0]) for path, _, param in NUMERIC}
    for expected in [("generate", "--seed"), ("generate", "--n"), ("train", "--seed"), ("analyze", "--seed"),
                     ("analyze", "--n"), ("validate", "--seed"), ("train", "--lr"), ("serve", "--port"),
                     ("prepare", "--shard-size"), ("train", "--size")]:
        assert expected in found
    assert len(found) >= 25
    for _, _, param in NUMERIC:
        if not isinstance(param.type, click.Choice):
            assert param.type.min is not None and param.type.max is not None, param.opts
            assert param.default is None or param.type.convert(param.default, param, None) == param.default


@pytest.mark.parametrize("command", ["analyze", "validate"])
@pytest.mark.parametrize("value", ["sketch:-1", f"sketch:{HUGE}", "sketch:8", "sketch:65537", "pool:1",
                                   "pool:257", "pool:abc", "pool:", "pool:²", "pca:16"])
def test_block1_reduce_numbers_are_checked_while_parsing(command, value, tmp_path, monkeypatch):
    _assert_refused((command,), "--block1-reduce", value, tmp_path, monkeypatch, ["65536", "256"])


# The library's edge: API users get the same ranges as NoveltyError before anything is loaded or written.

@pytest.mark.parametrize(("key", "value"), [
    ("seed", -1), ("seed", 2**32), ("seed", 1.0), ("seed", True), ("seed", "3"), ("seed", None),
    ("n_samples", int(HUGE)), ("n_samples", 0), ("learning_rate", float("nan")), ("learning_rate", math.inf),
    ("holdout_fraction", 1.0), ("beta_1", 1.0),
])
def test_check_refuses_values_outside_the_table(key, value):
    with pytest.raises(NoveltyError, match=rf"{key} must be an? \w+ in the range .*, received: "):
        bounds.check(key, value)


def test_check_accepts_numpy_numbers_and_the_edges():
    assert bounds.check("seed", np.int64(7)) == 7
    assert bounds.check("holdout_fraction", np.float32(0.25)) == np.float32(0.25)
    assert bounds.check("seed", 0) == 0 and bounds.check("seed", 2**32 - 1) == 2**32 - 1
    assert bounds.check("beta_1", 0.0) == 0.0 and bounds.check("learning_rate", 1.0) == 1.0


def test_every_default_lies_in_its_range():
    pairs = {"seed": defaults.SEED, "shard_size": defaults.SHARD_SIZE, "steps": defaults.STEPS,
             "checkpoint_every": defaults.CHECKPOINT_EVERY, "log_every": defaults.LOG_EVERY,
             "batch_size": defaults.BATCH_SIZE, "learning_rate": defaults.LEARNING_RATE, "beta_1": defaults.BETA_1,
             "z_dim": defaults.Z_DIM, "base_filters": defaults.BASE_FILTERS, "n_samples": defaults.N_SAMPLES,
             "top_k": defaults.TOP_K, "input_size": defaults.INPUT_SIZE, "embed_batch_size": defaults.EMBED_BATCH_SIZE,
             "holdout_fraction": defaults.HOLDOUT_FRACTION, "false_positive_rate": defaults.FALSE_POSITIVE_RATE,
             "validate_copies": defaults.VALIDATE_COPIES, "unseen_fraction": defaults.VALIDATE_UNSEEN_FRACTION,
             "port": defaults.PORT, "ema": defaults.EMA, "label_smoothing": defaults.LABEL_SMOOTHING,
             "quality_every": defaults.QUALITY_EVERY, "quality_samples": defaults.QUALITY_SAMPLES,
             "l1_lambda": defaults.L1_LAMBDA, "bottleneck_dense": defaults.BOTTLENECK_DENSE,
             "pair_holdout": defaults.PAIR_HOLDOUT}
    for key, value in pairs.items():
        assert value in defaults.RANGES[key], key


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"steps": int(HUGE)}, {"learning_rate": float("nan")},
                                    {"beta_1": -0.1}, {"batch_size": 10**6}, {"checkpoint_every": 0},
                                    {"ema": 1.0}, {"label_smoothing": 0.5}, {"quality_every": -1},
                                    {"quality_samples": 9}])
def test_train_options_refuse_out_of_range_values(kwargs):
    with pytest.raises(NoveltyError, match=f"{next(iter(kwargs))} must be"):
        TrainOptions(**kwargs)


@pytest.mark.parametrize("kwargs", [{"z_dim": int(HUGE)}, {"base_filters": 100_000}])
def test_gan_config_refuses_sizes_that_would_not_fit(kwargs):
    with pytest.raises(NoveltyError, match=f"{next(iter(kwargs))} must be"):
        GanConfig(**kwargs)


def test_generate_refuses_bad_n_and_seed_before_loading_or_writing(tmp_path):
    missing = tmp_path / "no-checkpoint"  # a checkpoint is never looked at: the numbers are checked first
    with pytest.raises(NoveltyError, match="number of samples must be an integer in the range 1<=x<=100000"):
        sample(missing, n=int(HUGE))
    with pytest.raises(NoveltyError, match="number of samples"):
        generate(missing, tmp_path / "out", n=int(HUGE))
    with pytest.raises(NoveltyError, match="seed must be an integer in the range 0<=x<=4294967295, received: -1"):
        generate(missing, tmp_path / "out", seed=-1)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"n": 0}, {"n": int(HUGE)}])
def test_analyze_refuses_bad_seed_and_n_before_any_work(tmp_path, kwargs):
    with pytest.raises(NoveltyError, match="must be an integer in the range"):
        analyze(tmp_path / "train", tmp_path / "run", options=AnalyzeOptions(weights="none"), **kwargs)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("kwargs", [{"k": 0}, {"k": int(HUGE)}, {"input_size": 10**6}, {"batch_size": -1},
                                    {"fpr": float("nan")}, {"holdout_fraction": 0.0}])
def test_analyze_options_refuse_out_of_range_values(kwargs):
    with pytest.raises(NoveltyError, match=f"{next(iter(kwargs))} must be"):
        AnalyzeOptions(**kwargs)


@pytest.mark.parametrize("kwargs", [{"seed": -1}, {"copies": int(HUGE)}, {"unseen_fraction": 1.5},
                                    {"fpr": 0.0}, {"batch_size": 0}])
def test_validate_refuses_out_of_range_values_before_any_work(tmp_path, kwargs):
    with pytest.raises(NoveltyError, match=f"{next(iter(kwargs))} must be"):
        validate(tmp_path / "train", tmp_path / "out", weights="none", **kwargs)
    assert not (tmp_path / "out").exists()


def test_extractor_refuses_sizes_that_would_not_fit():
    with pytest.raises(NoveltyError, match="input size must be an integer in the range 32<=x<=512"):
        Extractor(weights="none", input_size=10**6)
    with pytest.raises(NoveltyError, match="sketch:D with D >= 16 and <= 65536"):
        parse_reduce(f"sketch:{HUGE}")


def test_prepare_and_judge_run_refuse_out_of_range_values(tmp_path):
    from novelty.images.records import prepare
    from novelty.judge.verdicts import judge_run

    with pytest.raises(NoveltyError, match="shard size must be an integer in the range"):
        prepare(tmp_path, tmp_path / "out", shard_size=int(HUGE))
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"layers": ["block5_pool"], "seed": -5}', encoding="utf-8")
    with pytest.raises(NoveltyError, match="seed must be an integer in the range 0<=x<=4294967295, received: -5"):
        judge_run(run)
    with pytest.raises(NoveltyError, match="fpr must be a number in the range"):
        judge_run(run, fpr=float("nan"), seed=0)
