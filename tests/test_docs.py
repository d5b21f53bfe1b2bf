"""The README stays in step with the CLI and the defaults table; the CLI stays light to import."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from novelty import defaults
from novelty.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_commands():
    lines = [line.strip() for line in README.splitlines()[1:6] if line.strip()]
    assert lines[0].startswith("make demo")
    assert lines[1].startswith("make test")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_is_documented(command):
    assert f"novelty {command}" in README, f"README does not document `novelty {command}`"


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help(command):
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_readme_defaults_match_the_table():
    table = {
        "top-24": defaults.TOP_K == 24,
        "z = 100": defaults.Z_DIM == 100,
        "2e-4": defaults.LEARNING_RATE == 2e-4,
        "beta1 = 0.5": defaults.BETA_1 == 0.5,
    }
    for phrase, holds in table.items():
        assert phrase in README and holds, phrase
    for layer in defaults.LAYERS:
        assert layer in README
    assert f"{defaults.HOLDOUT_FRACTION:.0%}" in README
    assert f"{defaults.FALSE_POSITIVE_RATE:.0%}" in README


def test_help_and_import_do_not_load_tensorflow():
    code = (
        "import sys; from click.testing import CliRunner; import novelty; from novelty.cli import main;"
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0;"
        "import novelty.neighbors, novelty.images, novelty.calibration, novelty.prdc, novelty.copying;"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_bad_flag_is_one_line_error():
    result = CliRunner().invoke(main, ["generate", "--checkpoint", "/nonexistent/ckpt", "--out", "x"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "checkpoint not found" in result.output
