"""The bundled pix2pix checkpoint (data/checkpoints/twemoji-edges64): edge maps -> Twemoji, 64 px."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from novelty.images import assets, edges
from novelty.images.decode import decode, fit, load, save_png

CHECKPOINT = assets.BUNDLED_PIX2PIX
FILES = {"config.json", "generator.weights.h5", "holdout.json", "grid.png"}
TRAINED = "1f600.png"  # grinning face, a training pair

pytestmark = pytest.mark.skipif(not (CHECKPOINT / "generator.weights.h5").is_file(),
                                reason=f"no bundled pix2pix checkpoint at {CHECKPOINT}")


@pytest.fixture(scope="module")
def edge_inputs(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """Edge maps made in code from Twemoji (a training pair and the first four held out) and their true emoji."""
    held = json.loads((CHECKPOINT / "holdout.json").read_text())["ids"]
    assert TRAINED not in held
    folder = tmp_path_factory.mktemp("edges")
    truths = {}
    for name in (TRAINED, *held[:4]):
        truth = fit(decode(assets.twemoji_folder() / name)[0], edges.TWEMOJI_EDGES_SIZE)
        save_png(edges.edge_map(truth), folder / name)
        truths[name] = truth
    return folder, truths


def test_the_folder_holds_what_generation_and_judging_need_and_no_absolute_path():
    assert {p.name for p in CHECKPOINT.iterdir()} == FILES
    config = json.loads((CHECKPOINT / "config.json").read_text())
    assert config["architecture"] == "pix2pix" and config["image_size"] == 64
    held = json.loads((CHECKPOINT / "holdout.json").read_text())
    assert held["count"] == len(held["ids"]) > 0 and held["source"] == "twemoji-edges"
    text = "".join((CHECKPOINT / name).read_text() for name in ("config.json", "holdout.json"))
    assert "/" not in text  # ids are plain file names: no folder, absolute or not


def test_it_translates_edge_maps_deterministically_and_towards_the_emoji(edge_inputs, tmp_path):
    from novelty.gan.generate import translate

    folder, truths = edge_inputs
    first = translate(CHECKPOINT, folder, tmp_path / "a", progress=False)
    translate(CHECKPOINT, folder, tmp_path / "b", progress=False)
    errors = {}
    for name in truths:
        a, b = (tmp_path / side / "samples" / name for side in "ab")
        assert a.read_bytes() == b.read_bytes()
        output, truth = load(a, 64).astype(float), truths[name].astype(float)
        errors[name] = (np.abs(output - truth).mean(), np.abs(255 - truth).mean())  # L1 of it, of a white image
    # it colours the emoji in: far closer to the truth than a blank page, less so on pairs it never saw
    assert errors[TRAINED][0] < 0.5 * errors[TRAINED][1]
    held = [errors[name] for name in truths if name != TRAINED]
    assert np.mean([e for e, _ in held]) < 0.6 * np.mean([w for _, w in held])
    assert first["config"]["base_filters"] == json.loads((CHECKPOINT / "config.json").read_text())["base_filters"]


@pytest.mark.slow
def test_the_command_line_generates_from_the_bundled_checkpoint(edge_inputs, tmp_path):
    from novelty.gan.generate import translate

    folder, truths = edge_inputs
    done = subprocess.run([sys.executable, "-m", "novelty.cli", "generate", "--checkpoint", str(CHECKPOINT),
                           "--inputs", str(folder), "--out", str(tmp_path / "cli")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "cli" / "samples").iterdir()) == sorted(truths)
    translate(CHECKPOINT, folder, tmp_path / "api", progress=False)
    digest = {side: {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                     for p in (tmp_path / side / "samples").iterdir()} for side in ("cli", "api")}
    assert digest["cli"] == digest["api"]
