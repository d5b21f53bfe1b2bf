"""Shared fixtures: tiny images made in code, with the answer planted in them.

Reusable by every test module:
- ``asymmetric_image(height, width)``: a uint8 ``(H, W, 3)`` image whose four quadrants differ and
  whose channels carry row and column gradients, so a transpose, flip or channel swap shows.
- ``encode_image_bytes(image, format="PNG", **save_kwargs)``: an array or PIL image as file bytes.
- ``write_image(path, image, format=None, **save_kwargs)``: write an array, a PIL image or raw bytes.
- ``image_folder(files, name="images")``: a folder from ``{relative path: array | PIL image | bytes}``.
- ``png_bytes(pixels, bit_depth=8)``: a PNG written by hand (16-bit RGB, which Pillow cannot write).
- ``png_header(width, height)``: a PNG whose header claims a size, with almost no pixel data.
- ``bad_images()``: a folder of awkward files and the outcome planted for each id.
- ``special_files(folder)``: plant a named pipe, a socket, a device link, symlink loops, dangling
  symlinks and a link to a folder among the images of ``folder``; ``unblocked(folder)`` turns a
  wait on such a pipe into a test failure.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# The ids in ``bad_images`` that must come out as images, and the reason (a substring) for the rest.
BAD_IMAGE_OUTCOMES: dict[str, str | None] = {
    "ok/plain.png": None,
    "truncated.jpg": "truncated",
    "truncated.png": "truncated",
    "empty.png": "empty file",
    "notes.txt": "not a readable image",
    "cmyk.jpg": None,
    "gray16.png": None,
    "rgb16.png": None,
    "palette.png": None,
    "palette_transparent.png": None,
    "gray.png": None,
    "la.png": None,
    "rgba.png": None,
    "animated.gif": None,
    "bomb.png": "too large",
    "ünïcødé 画像.png": None,
    "a/same.png": None,
    "b/same.png": None,
    "rotated.jpg": None,
    "mislabelled.jpg": None,
    "bad-\\xff.png": "not valid UTF-8",
}


def make_asymmetric_image(height: int = 64, width: int = 64) -> np.ndarray:
    """Quadrants with distinct base colours plus a row gradient in red and a column gradient in green."""
    y, x = np.mgrid[0:height, 0:width]
    top, left = y < height // 2, x < width // 2
    image = np.zeros((height, width, 3), np.int64)
    image[top & left] = (0, 0, 0)
    image[top & ~left] = (128, 0, 60)
    image[~top & left] = (0, 128, 120)
    image[~top & ~left] = (128, 128, 250)
    image[..., 0] += (y * 127) // max(height - 1, 1)
    image[..., 1] += (x * 127) // max(width - 1, 1)
    return image.astype(np.uint8)


def make_png(pixels: np.ndarray, bit_depth: int = 8) -> bytes:
    """Encode ``(H, W)`` gray or ``(H, W, 3)`` RGB pixels as a PNG by hand (8 or 16 bits per sample)."""
    pixels = np.asarray(pixels)
    color_type = 0 if pixels.ndim == 2 else 2
    height, width = pixels.shape[:2]
    dtype = ">u2" if bit_depth == 16 else np.uint8
    rows = pixels.astype(dtype).reshape(height, -1).view(np.uint8).reshape(height, -1)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b"")


def make_png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` RGB pixels but carries a few bytes: no allocation."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
            + _chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_image(image: np.ndarray | Image.Image, format: str = "PNG", **save_kwargs) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=format, **save_kwargs)
    return buffer.getvalue()


def _write(path: Path, image, format: str | None = None, **save_kwargs) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(image, bytes):
        path.write_bytes(image)
    else:
        fmt = format or {".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF"}.get(path.suffix.lower(), "PNG")
        path.write_bytes(encode_image(image, fmt, **save_kwargs))
    return path


def planted_copy_folders(root: Path, n_train: int, size: int, seed: int = 3) -> tuple[Path, Path]:
    """``root/train`` of ``n_train`` noise images ``t000.png``..; ``root/gen`` with ``g_copy.png`` (training
    ``t007.png`` pixel for pixel) and 5 fresh noise samples ``g0.png``..``g4.png``."""
    rng = np.random.default_rng(seed)
    train, gen = root / "train", root / "gen"
    train.mkdir()
    gen.mkdir()
    images = rng.integers(0, 256, (n_train, size, size, 3), dtype=np.uint8)
    for i, img in enumerate(images):
        Image.fromarray(img).save(train / f"t{i:03d}.png")
    Image.fromarray(images[7]).save(gen / "g_copy.png")
    for i, img in enumerate(rng.integers(0, 256, (5, size, size, 3), dtype=np.uint8)):
        Image.fromarray(img).save(gen / f"g{i}.png")
    return train, gen


@pytest.fixture
def asymmetric_image() -> Callable[..., np.ndarray]:
    return make_asymmetric_image


@pytest.fixture
def png_bytes() -> Callable[..., bytes]:
    return make_png


@pytest.fixture
def png_header() -> Callable[[int, int], bytes]:
    return make_png_header


@pytest.fixture
def encode_image_bytes() -> Callable[..., bytes]:
    """``encode_image_bytes(image, format="PNG", **save_kwargs) -> bytes``."""
    return encode_image


@pytest.fixture
def write_image() -> Callable[..., Path]:
    """``write_image(path, image, format=None, **save_kwargs)``; the format follows the suffix."""
    return _write


@pytest.fixture
def image_folder(tmp_path: Path) -> Callable[..., Path]:
    """``image_folder({"a.png": array, "sub/b.jpg": bytes, ...}, name="images") -> folder``."""

    def make(files: dict[str, object], name: str = "images") -> Path:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        for relative, image in files.items():
            _write(root / relative, image)
        return root

    return make


@pytest.fixture
def bad_images(tmp_path: Path) -> Callable[..., tuple[Path, dict[str, str | None]]]:
    """``bad_images(name="bad", side=32) -> (folder, outcomes)``: every awkward file kind, tiny.

    Most images are ``side`` x ``side`` (so fitting them to ``side`` needs no resampling).

    ``outcomes`` maps each id to None (must decode) or a substring of its skip reason. Planted
    answers: in ``rgba.png``, ``la.png`` and ``palette_transparent.png`` pixel (0, 0) is fully
    transparent (must become white); ``animated.gif`` is red then blue (the first frame, red, wins);
    ``rotated.jpg`` is stored 16 wide x 8 high with EXIF orientation 6 (shown 8 wide x 16 high);
    ``gray16.png`` holds 0, 257, 32896 and 65535 (must map to 0, 1, 128 and 255); ``bomb.png``
    claims 20000 x 20000 pixels in a few bytes.
    """

    def make(name: str = "bad", side: int = 32) -> tuple[Path, dict[str, str | None]]:
        root = tmp_path / name
        rng = np.random.default_rng(0)
        noise = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
        jpeg = encode_image(noise, "JPEG", quality=90)
        png = encode_image(noise, "PNG")
        _write(root / "ok/plain.png", png)
        _write(root / "truncated.jpg", jpeg[: len(jpeg) // 2])
        _write(root / "truncated.png", png[: len(png) // 2])
        _write(root / "empty.png", b"")
        _write(root / "notes.txt", b"these are not the pixels you are looking for\n")
        _write(root / "cmyk.jpg", Image.fromarray(noise).convert("CMYK"), "JPEG")
        _write(root / "gray16.png", Image.fromarray(
            np.array([[0, 257], [32896, 65535]], dtype=np.uint16)))
        rgb16 = np.zeros((4, 4, 3), np.uint16)
        rgb16[..., 0], rgb16[..., 1], rgb16[..., 2] = 65535, 32896, 257
        _write(root / "rgb16.png", make_png(rgb16, bit_depth=16))
        palette = Image.fromarray(noise).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
        _write(root / "palette.png", palette)
        transparent_palette = palette.copy()
        transparent_palette.putpixel((0, 0), 7)
        _write(root / "palette_transparent.png", transparent_palette, transparency=7)
        _write(root / "gray.png", Image.fromarray(noise[..., 0]))
        la = Image.fromarray(np.stack([noise[..., 0], np.full((side, side), 255, np.uint8)], -1), "LA")
        la.putpixel((0, 0), (0, 0))
        _write(root / "la.png", la)
        rgba = np.concatenate([noise, np.full((side, side, 1), 255, np.uint8)], axis=-1)
        rgba[0, 0] = (0, 0, 0, 0)
        _write(root / "rgba.png", rgba)
        red = Image.new("RGB", (12, 12), (255, 0, 0))
        blue = Image.new("RGB", (12, 12), (0, 0, 255))
        _write(root / "animated.gif", red, "GIF", save_all=True, append_images=[blue], duration=100)
        _write(root / "bomb.png", make_png_header(20000, 20000))
        _write(root / "ünïcødé 画像.png", png)
        _write(root / "a/same.png", noise)
        _write(root / "b/same.png", noise[::-1])
        exif = Image.Exif()
        exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
        _write(root / "rotated.jpg", make_asymmetric_image(8, 16), "JPEG", exif=exif, quality=95)
        _write(root / "mislabelled.jpg", png)
        with open(os.path.join(os.fsencode(root), b"bad-\xff.png"), "wb") as handle:
            handle.write(png)
        (root / ".hidden.png").write_bytes(png)  # hidden files are not candidates at all
        return root, dict(BAD_IMAGE_OUTCOMES)

    return make


# The ids planted by ``special_files``, and a substring of the reason each must be skipped with.
SPECIAL_FILE_REASONS: dict[str, str] = {
    "pipe.jpg": "is a named pipe (FIFO), not a regular file",
    "socket.png": "is a socket, not a regular file",
    "zero.png": "is a symlink to a character device, not a regular file",
    "pipe-link.png": "is a symlink to a named pipe (FIFO)",
    "loop.png": "is a symlink loop",
    "loop-a.png": "is a symlink loop",
    "loop-b.png": "is a symlink loop",
    "dangling.png": "is a dangling symlink: its target missing.png does not exist",
    "linked-folder": "is a symlink to a folder, not a regular file",
}


@pytest.fixture
def special_files() -> Callable[[Path, str], dict[str, str]]:
    """``special_files(folder, image_name) -> {id: reason}``: every special file kind among real images.

    ``image_name`` (an image already in ``folder``) gains a working symlink, ``good-link.png``, which
    must be used like the image itself. ``zero.png`` links to ``/dev/zero``, which never ends.
    """

    def make(folder: Path, image_name: str) -> dict[str, str]:
        os.mkfifo(folder / "pipe.jpg")
        with contextlib.chdir(folder), socket.socket(socket.AF_UNIX) as sock:
            sock.bind("socket.png")  # relative: the full path may exceed the 108-byte socket limit
        (folder / "zero.png").symlink_to("/dev/zero")
        (folder / "pipe-link.png").symlink_to("pipe.jpg")
        (folder / "loop.png").symlink_to("loop.png")
        (folder / "loop-a.png").symlink_to("loop-b.png")
        (folder / "loop-b.png").symlink_to("loop-a.png")
        (folder / "dangling.png").symlink_to("missing.png")
        (folder / "real-folder").mkdir()  # empty: its link must be reported, not followed
        (folder / "linked-folder").symlink_to("real-folder", target_is_directory=True)
        (folder / "good-link.png").symlink_to(image_name)
        return dict(SPECIAL_FILE_REASONS)

    return make


@contextlib.contextmanager
def unblocked(folder: Path, seconds: float = 20) -> Iterator[list[str]]:
    """Fail instead of hanging when code in the block waits on the named pipes in ``folder``.

    After ``seconds`` a watchdog opens each pipe for writing and closes it, which lets a blocked
    reader go on (it reads an empty file); the test then fails on the list it yields, non-empty.
    Signals cannot do this: with TensorFlow loaded they may reach another thread.
    """
    fired: list[str] = []
    done = threading.Event()

    def release() -> None:
        while not done.wait(seconds):  # again and again: the code may open the next pipe
            for pipe in folder.rglob("*"):
                if pipe.is_fifo() and not pipe.is_symlink():
                    with contextlib.suppress(OSError):
                        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
                        fired.append(pipe.name)

    watchdog = threading.Thread(target=release, daemon=True)
    watchdog.start()
    try:
        yield fired
    finally:
        done.set()


@pytest.fixture(scope="session")
def conditional_run(tmp_path_factory):
    """A conditional (pix2pix) run folder made by the real pipeline (tests/webhelpers.py), shared by the
    web API and browser tests."""
    from webhelpers import make_conditional_run

    return make_conditional_run(tmp_path_factory.mktemp("conditional"))
