"""The README stays in step with the CLI and the defaults table; the CLI stays light to import."""

from __future__ import annotations

import re
import shlex
import shutil
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
        "import novelty.search.neighbors, novelty.images.decode, novelty.judge.calibration, novelty.judge.prdc, novelty.judge.copying;"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_bad_flag_is_one_line_error():
    result = CliRunner().invoke(main, ["generate", "--checkpoint", "/nonexistent/ckpt", "--out", "x"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "checkpoint not found" in result.output


PATH_LINE = "source .venv/bin/activate"
PLACEHOLDER = re.compile(r"^(?:[A-Z]+|\.\.\.)$")  # IMAGES, DIR, N, ...: a synopsis, not a runnable example


def readme_examples() -> list[list[str]]:
    """Every runnable `novelty ...` example of the README, split as a shell would: each line of its
    ```bash blocks and each inline example with options and values and no placeholders (not a bare
    mention such as `novelty curate --list`)."""
    lines = [line for block in re.findall(r"```bash\n(.*?)```", README, re.S) for line in block.splitlines()]
    inline = [shlex.split(span) for span in re.findall(r"`(novelty [a-z][^`]*)`", README)]
    examples = [shlex.split(line, comments=True) for line in lines] + [args for args in inline if len(args) > 3]
    return [args for args in examples if args and not any(PLACEHOLDER.match(arg) for arg in args)]


def test_readme_says_once_near_the_top_how_novelty_gets_on_the_path():
    first_example = min(README.index(f"novelty {command}") for command in main.commands)
    assert README.count(PATH_LINE) == 1 and README.index(PATH_LINE) < first_example
    assert re.search(r"^setup:", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    for other in (".venv/bin/novelty", "bin/novelty"):  # one form throughout
        assert other not in README, other
    # the CLI is never run as a module; `python -m novelty.images.assets` is a different, helper program
    assert not re.search(r"python -m novelty(\.cli)?\s", README)
    for block in re.findall(r"```bash\n(.*?)```", README, re.S):
        for line in block.splitlines():
            assert not line.strip() or line.startswith("novelty "), line


def test_every_readme_example_is_a_valid_command_line():
    examples = readme_examples()
    assert len(examples) >= 8
    for args in examples:
        assert args[0] == "novelty" and args[1] in main.commands, args
        command = main.commands[args[1]]
        command.make_context(args[1], args[2:])  # raises on a missing, unknown or malformed option


def test_the_readme_recipe_writes_nothing_into_the_checkout():
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout: cannot ask git what it ignores")
    outputs = [args[i + 1] for args in readme_examples() for i, arg in enumerate(args[:-1])
               if arg in ("--out", "--quarantine")]
    assert "runs/masks-run" in outputs and len(outputs) >= 5
    inside = [path for path in outputs if not path.startswith(("~", "/"))]
    for path in inside:  # run from the checkout: a relative path lands in it, so git must ignore it
        ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=ROOT)
        assert ignored.returncode == 0, f"the README writes {path} into the checkout, and git does not ignore it"
