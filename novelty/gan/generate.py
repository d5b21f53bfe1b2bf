"""Generate from a checkpoint: seeded samples of a DCGAN, or one output per input image of a pix2pix.

The same checkpoint and seed (DCGAN), or the same checkpoint and input files (pix2pix), give
identical files. A checkpoint of one family given the other's request gets a one-line error.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

from novelty import bounds, defaults
from novelty.errors import NoveltyError
from novelty.files import write_json, write_text

GRID_FILE = "grid.png"
MANIFEST_FILE = "generated.json"
SAMPLES_DIR = "samples"  # the PNGs live apart from the grid so the folder can be analysed as is


def sample(checkpoint: str | os.PathLike, n: int = defaults.N_SAMPLES, seed: int = defaults.SEED,
           batch_size: int = 256) -> tuple[np.ndarray, dict]:
    """``n`` samples as ``(n, size, size, 3)`` uint8 plus the checkpoint's config as a dict."""
    from novelty.gan.dcgan import load_generator
    from novelty.gan.training import fixed_noise, to_uint8

    check_request(n, seed)
    check_family(checkpoint, inputs=False)
    model, config = load_generator(checkpoint)
    noise = fixed_noise(n, config.z_dim, seed)
    images = np.empty((n, config.image_size, config.image_size, 3), np.uint8)  # filled in place: no second copy
    for i in range(0, n, batch_size):
        images[i:i + batch_size] = to_uint8(model(noise[i:i + batch_size], training=False))
    return images, config.to_dict()


def check_family(checkpoint: str | os.PathLike, *, inputs: bool) -> Path:
    """The checkpoint folder of ``checkpoint``; a one-line error when its family does not take the request:
    a pix2pix checkpoint needs input images, a DCGAN one generates from noise and takes none."""
    from novelty.gan.dcgan import ARCHITECTURE as DCGAN
    from novelty.gan.dcgan import resolve_checkpoint
    from novelty.gan.family import config_architecture
    from novelty.gan.pix2pix import ARCHITECTURE as PIX2PIX

    folder = resolve_checkpoint(checkpoint)
    found = config_architecture(folder)
    if found == PIX2PIX and not inputs:
        raise NoveltyError(f"{checkpoint} is a pix2pix checkpoint: it translates input images, give them "
                           "with --inputs DIR (`novelty generate`, or `novelty analyze` to judge the outputs); it "
                           "draws no samples from noise")
    if found == DCGAN and inputs:
        raise NoveltyError(f"{checkpoint} is a DCGAN checkpoint: it generates from noise and takes no --inputs "
                           "(give --n and --seed instead)")
    return folder


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
        ours = {name.split("/")[0] for name in names}  # a name may lie in a subfolder
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


def output_names(ids: list[str]) -> list[str]:
    """The PNG file of each input id: its path with the extension replaced by ``.png``, or with ``.png``
    added where two inputs would share a name (``a.jpg`` and ``a.png`` -> ``a.jpg.png``, ``a.png.png``)."""
    plain = [str(Path(ident).with_suffix(".png").as_posix()) for ident in ids]
    taken = {name for name in plain if plain.count(name) > 1}
    return [f"{ident}.png" if name in taken else name for ident, name in zip(ids, plain, strict=True)]


def translate(checkpoint: str | os.PathLike, inputs: str | os.PathLike, out: str | os.PathLike, *,
              fit_mode: str = defaults.FIT_MODE, batch_size: int = 64, progress: bool = True) -> dict:
    """``novelty generate --inputs``: one PNG per input image under ``out/samples/``, named after it, by a
    pix2pix checkpoint's generator; a grid of input | output rows and a manifest. Deterministic: the
    generator runs in inference mode (no dropout, batch norm's moving statistics), one image at a time
    as far as the result goes. Each input is fitted to the checkpoint's size by ``fit_mode`` (crop or pad,
    as for training). Unusable inputs are listed with their reasons in ``out/skipped.csv``.

    Returns the manifest written (``generated.json``).
    """
    from novelty.gan.pix2pix import load_translator
    from novelty.images.decode import grid, iter_folder, save_png
    from novelty.images.records import SKIPPED_FILE, skipped_csv

    folder = check_family(checkpoint, inputs=True)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise NoveltyError(f"--out must be a folder, received a file: {out}")
    model, config = load_translator(folder)
    ids, images, skipped = [], [], []
    for item in iter_folder(inputs, config.image_size, fit_mode, progress, desc="inputs"):
        if item.image is None:
            skipped.append((item.id, item.reason))
        else:
            ids.append(item.id)
            images.append(item.image)
    if not ids:
        raise NoveltyError(f"no usable input images in {inputs}: all {len(skipped)} files skipped"
                           + (f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
    names = output_names(ids)
    _check_out(out, names)
    sources = np.stack(images)
    outputs = run_translator(model, sources, batch_size)
    for name, image in zip(names, outputs, strict=True):
        save_png(image, out / SAMPLES_DIR / name)
    shown = min(len(ids), defaults.PAIR_GRID_ROWS)
    save_png(grid(np.stack([sources[:shown], outputs[:shown]], axis=1).reshape(-1, *sources.shape[1:]), columns=2),
             out / GRID_FILE)
    write_text(out / SKIPPED_FILE, skipped_csv(skipped))
    manifest = {"checkpoint": str(folder), "inputs": str(inputs), "fit": fit_mode, "config": config.to_dict(),
                "files": dict(zip(ids, names, strict=True)), "skipped": len(skipped)}
    write_json(out / MANIFEST_FILE, manifest)
    return manifest


def run_translator(model, sources: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """A pix2pix generator's outputs, uint8 ``(N, S, S, 3)``, for fitted inputs uint8 ``(N, S, S, 3)``, in
    inference mode (no dropout): the same inputs give the same outputs."""
    from novelty.gan.family import to_uint8

    return np.concatenate([to_uint8(model(sources[i:i + batch_size].astype(np.float32) / 127.5 - 1.0,
                                          training=False)) for i in range(0, len(sources), batch_size)])


class ImageTranslator:
    """A pix2pix checkpoint's generator, loaded once, translating one image at a time (the web app's
    upload-to-generate): the image is fitted to the checkpoint's size by ``fit_mode`` as
    ``generate --inputs`` fits it."""

    def __init__(self, checkpoint: str | os.PathLike, fit_mode: str = defaults.FIT_MODE):
        from novelty.gan.pix2pix import load_translator

        self.model, self.config = load_translator(check_family(checkpoint, inputs=True))
        self.fit_mode = fit_mode

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The output, uint8 ``(S, S, 3)``, for one RGB uint8 ``(H, W, 3)`` image."""
        from novelty.images.decode import fit

        return run_translator(self.model, fit(image, self.config.image_size, self.fit_mode)[None])[0]
