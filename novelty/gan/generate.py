"""Generate seeded samples from a checkpoint: the same checkpoint and seed give identical files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from novelty import bounds, defaults
from novelty.errors import NoveltyError
from novelty.files import write_json

GRID_FILE = "grid.png"
MANIFEST_FILE = "generated.json"
SAMPLES_DIR = "samples"  # the PNGs live apart from the grid so the folder can be analysed as is


def sample(checkpoint: str | os.PathLike, n: int = defaults.N_SAMPLES, seed: int = defaults.SEED,
           batch_size: int = 256) -> tuple[np.ndarray, dict]:
    """``n`` samples as ``(n, size, size, 3)`` uint8 plus the checkpoint's config as a dict."""
    from novelty.gan.dcgan import load_generator
    from novelty.gan.training import fixed_noise, to_uint8

    check_request(n, seed)
    model, config = load_generator(checkpoint)
    noise = fixed_noise(n, config.z_dim, seed)
    images = np.empty((n, config.image_size, config.image_size, 3), np.uint8)  # filled in place: no second copy
    for i in range(0, n, batch_size):
        images[i:i + batch_size] = to_uint8(model(noise[i:i + batch_size], training=False))
    return images, config.to_dict()


def check_request(n: int, seed: int) -> None:
    """Refuse a number of samples or a seed outside ``defaults.RANGES`` before anything is loaded or
    allocated; ``n`` has an upper bound because the samples are held in memory."""
    bounds.check("n_samples", n, "number of samples")
    bounds.check("seed", seed)


def sample_names(n: int) -> list[str]:
    """File names of ``n`` samples, zero-padded so they sort in generation order."""
    width = max(4, len(str(n - 1)))
    return [f"sample-{i:0{width}d}.png" for i in range(n)]


def generate(checkpoint: str | os.PathLike, out: str | os.PathLike, n: int = defaults.N_SAMPLES,
             seed: int = defaults.SEED) -> Path:
    """Write ``n`` PNG samples (``out/samples/``), a grid and a manifest into ``out``; returns ``out``.

    When a training folder's ``latest`` names a missing checkpoint, a warning on stderr (and in the
    manifest's "warnings") says which one was used instead."""
    from novelty.gan.dcgan import fallback_note, resolve_checkpoint
    from novelty.images.decode import grid, save_png

    check_request(n, seed)
    out = Path(out)
    names = sample_names(n)
    _check_out(out, names)
    images, config = sample(checkpoint, n, seed)
    note = fallback_note(checkpoint)
    if note is not None:
        print(f"Warning: {note}", file=sys.stderr)
    for name, image in zip(names, images, strict=True):
        save_png(image, out / SAMPLES_DIR / name)
    save_png(grid(images[: min(n, 100)]), out / GRID_FILE)
    write_json(out / MANIFEST_FILE, {
        "checkpoint": str(resolve_checkpoint(checkpoint)), "n": n, "seed": seed,
        "config": config, "files": names, "warnings": [note] if note else [],
    })
    return out


def _check_out(out: Path, names: list[str]) -> None:
    """Refuse an ``out`` that is a file, or whose samples folder holds images this run would not write.

    Rewriting our own ``sample-NNNN.png`` names is fine; mixing them with other files is not, since
    the folder is later analysed as one set of generated images (and nothing deletes a user's file).
    """
    if out.exists() and not out.is_dir():
        raise NoveltyError(f"--out must be a folder, received a file: {out}")
    folder = out / SAMPLES_DIR
    if folder.is_dir():
        ours = set(names)
        others = sorted(p.name for p in folder.iterdir() if p.name not in ours and not p.name.startswith("."))
        if others:
            raise NoveltyError(
                f"{folder} already holds {len(others)} other files (e.g. {others[0]}); "
                "choose an empty --out so the samples are not mixed with them"
            )


def samples_folder(path: str | os.PathLike) -> Path:
    """The folder of sample images for ``path``: ``path/samples`` for a generate output, else ``path``."""
    path = Path(path)
    if (path / MANIFEST_FILE).is_file() and (path / SAMPLES_DIR).is_dir():
        return path / SAMPLES_DIR
    return path
