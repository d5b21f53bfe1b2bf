"""Decoding awkward files: each one converts correctly or is skipped with a reason, never a traceback."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import unblocked
from PIL import Image

from novelty import defaults
from novelty.errors import NoveltyError
from novelty.files import NotRegularFile, sha256_file
from novelty.images import decode as images
from novelty.images.decode import ImageError, decode, fit, iter_folder, load_folder

WHITE = (255, 255, 255)


@pytest.fixture
def bad_folder(bad_images):
    return bad_images()


def test_every_awkward_file_is_converted_or_skipped_with_its_reason(bad_folder):
    root, outcomes = bad_folder
    seen = {}
    for ident, _path, arr, info, reason, _sha in iter_folder(root, 32, progress=False):
        seen[ident] = (arr, info, reason)
    assert set(seen) == set(outcomes), "hidden files are ignored; every other file is reported once"
    for ident, expected in outcomes.items():
        arr, info, reason = seen[ident]
        if expected is None:
            assert reason is None, f"{ident} should decode, was skipped: {reason}"
            assert arr.shape == (32, 32, 3) and arr.dtype == np.uint8
        else:
            assert arr is None and info is None, f"{ident} should be skipped"
            assert expected in reason, f"{ident}: {reason!r} should mention {expected!r}"
            assert "\n" not in reason


@pytest.mark.parametrize("name", ["rgba.png", "la.png", "palette_transparent.png"])
def test_transparent_pixel_becomes_white(bad_folder, name):
    root, _ = bad_folder
    arr, info = decode(root / name)
    assert tuple(arr[0, 0]) == WHITE
    assert tuple(arr[5, 5]) != WHITE or name == "la.png"  # opaque pixels keep their colour
    assert info.mode in ("RGBA", "LA", "P")


def test_opaque_rgba_keeps_colours(bad_folder):
    root, _ = bad_folder
    arr, _ = decode(root / "rgba.png")
    reference, _ = decode(root / "ok/plain.png")
    np.testing.assert_array_equal(arr[1:], reference[1:])


def test_sixteen_bit_gray_maps_full_range_without_clipping(bad_folder):
    root, _ = bad_folder
    arr, info = decode(root / "gray16.png")
    assert info.mode.startswith("I;16") or info.mode == "I"
    np.testing.assert_array_equal(arr[..., 0], [[0, 1], [128, 255]])
    np.testing.assert_array_equal(arr[..., 0], arr[..., 2])


def test_dark_sixteen_bit_image_is_not_read_as_eight_bit(png_bytes):
    # Every value is below 256: an 8-bit reading would make it bright (200), the 16-bit one is ~black.
    arr, _ = decode(png_bytes(np.full((3, 3), 200, np.uint16), bit_depth=16))
    assert arr.max() <= 1


def test_sixteen_bit_rgb(bad_folder):
    root, _ = bad_folder
    arr, _ = decode(root / "rgb16.png")
    assert tuple(arr[0, 0]) == (255, 128, 1)


def test_palette_grayscale_and_cmyk_convert_to_rgb(bad_folder):
    root, _ = bad_folder
    reference, _ = decode(root / "ok/plain.png")
    gray, info = decode(root / "gray.png")
    assert info.mode == "L"
    np.testing.assert_array_equal(gray[..., 0], reference[..., 0])
    np.testing.assert_array_equal(gray[..., 0], gray[..., 1])
    cmyk, info = decode(root / "cmyk.jpg")
    assert info.mode == "CMYK" and info.format == "JPEG"
    assert np.abs(cmyk.astype(int) - reference).mean() < 40  # lossy, but the same picture
    palette, info = decode(root / "palette.png")
    assert info.mode == "P" and len(np.unique(palette.reshape(-1, 3), axis=0)) <= 8


def test_animated_gif_uses_first_frame(bad_folder):
    root, _ = bad_folder
    arr, info = decode(root / "animated.gif")
    assert info.frames == 2
    assert tuple(arr[6, 6]) == (255, 0, 0)


def test_exif_orientation_is_applied(bad_folder, asymmetric_image):
    root, _ = bad_folder
    arr, info = decode(root / "rotated.jpg")
    assert arr.shape == (16, 8, 3) and info.original_size == (8, 16)
    stored = asymmetric_image(8, 16)
    expected = np.rot90(stored, k=-1)  # orientation 6: rotate 90 degrees clockwise
    assert np.abs(arr.astype(int) - expected).mean() < 12
    assert np.abs(arr.astype(int) - np.rot90(stored, k=1)).mean() > 40


def test_corrupt_exif_keeps_the_image(asymmetric_image, encode_image_bytes):
    exif = Image.Exif()
    exif[0x0112] = 99  # no such orientation
    data = encode_image_bytes(asymmetric_image(8, 8), "JPEG", exif=exif)
    arr, _ = decode(data)
    assert arr.shape == (8, 8, 3)


def test_mislabelled_png_named_jpg_decodes_by_content(bad_folder):
    root, _ = bad_folder
    arr, info = decode(root / "mislabelled.jpg")
    assert info.format == "PNG"
    reference, _ = decode(root / "ok/plain.png")
    np.testing.assert_array_equal(arr, reference)


def test_bomb_header_is_refused_before_decoding(png_header):
    with pytest.raises(ImageError, match="too large"):
        decode(png_header(20000, 20000))
    # Between Pillow's warning and error thresholds our own limit is the one that fires.
    with pytest.raises(ImageError, match="too large: 10000x10000"):
        decode(png_header(10000, 10000))


def test_max_pixels_is_read_at_call_time(monkeypatch, png_bytes):
    data = png_bytes(np.zeros((10, 10), np.uint8))
    assert decode(data, max_pixels=100)[0].shape == (10, 10, 3)
    with pytest.raises(ImageError, match="limit 99"):
        decode(data, max_pixels=99)
    monkeypatch.setattr(defaults, "MAX_IMAGE_PIXELS", 50)
    with pytest.raises(ImageError, match="too large"):
        decode(data)


@pytest.mark.parametrize("data, reason", [
    (b"", "empty file"),
    (b"GIF89a" + b"\x00" * 4, "not a readable image"),
    (b"\x89PNG\r\n\x1a\n", "not a readable image"),
    (b"hello", "unknown or unsupported format"),
])
def test_junk_bytes_give_one_line_reasons(data, reason):
    with pytest.raises(ImageError, match=reason) as caught:
        decode(data)
    assert "\n" not in str(caught.value)


def test_missing_file_and_folder_paths(tmp_path):
    with pytest.raises(ImageError, match="cannot read file"):
        decode(tmp_path / "nope.png")
    with pytest.raises(ImageError, match="is a folder"):
        decode(tmp_path)


def test_ids_are_relative_posix_paths_and_duplicates_differ(bad_folder):
    root, _ = bad_folder
    ids = [ident for ident, *_ in iter_folder(root, 16, progress=False)]
    assert "a/same.png" in ids and "b/same.png" in ids
    assert "ünïcødé 画像.png" in ids
    assert len(ids) == len(set(ids))
    assert ids.index("a/same.png") < ids.index("b/same.png")  # stable, sorted walk


def test_fit_crop_and_pad_are_centred_and_not_transposed(asymmetric_image):
    wide = asymmetric_image(16, 32)
    cropped = fit(wide, 16, "crop")
    np.testing.assert_array_equal(cropped, wide[:, 8:24])  # no resize needed: exact centre crop
    padded = fit(wide, 16, "pad")
    assert padded.shape == (16, 16, 3)
    assert (padded[:4] == 255).all() and (padded[-4:] == 255).all()  # white bands top and bottom
    assert not (padded[4:12] == 255).all()


def test_bad_fit_arguments_raise_novelty_error(tmp_path):
    with pytest.raises(NoveltyError, match="must be one of: crop, pad"):
        fit(np.zeros((4, 4, 3), np.uint8), 4, "stretch")
    with pytest.raises(NoveltyError, match="must be one of"):
        list(iter_folder(tmp_path, 4, "stretch", progress=False))


def test_load_folder_messages(tmp_path, image_folder):
    with pytest.raises(NoveltyError, match="not found"):
        load_folder(tmp_path / "missing", 8, progress=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoveltyError, match="no files found"):
        load_folder(empty, 8, progress=False)
    junk = image_folder({"a.txt": b"text"}, name="junk")
    with pytest.raises(NoveltyError, match="all 1 files skipped.*a.txt"):
        load_folder(junk, 8, progress=False)


def test_unexpected_errors_become_reasons(monkeypatch, image_folder):
    root = image_folder({"a.png": np.zeros((4, 4, 3), np.uint8)})

    def boom(*args, **kwargs):
        raise ValueError("decoder exploded")

    monkeypatch.setattr(images, "decode", boom)
    [(ident, _path, arr, _info, reason, _sha)] = list(iter_folder(root, 4, progress=False))
    assert ident == "a.png" and arr is None and reason == "unexpected error: ValueError: decoder exploded"



def test_special_files_are_skipped_with_a_reason_before_they_are_opened(image_folder, special_files):
    image = np.arange(4 * 4 * 3, dtype=np.uint8).reshape(4, 4, 3)
    root = image_folder({"a.png": image, "sub/b.png": image[::-1]})
    planted = special_files(root, "a.png")
    with unblocked(root) as waited:  # a named pipe opened for reading would block here
        found = {entry.id: entry for entry in iter_folder(root, 4, progress=False)}
    assert not waited, "iter_folder waited on a named pipe"
    assert set(found) == {"a.png", "sub/b.png", "good-link.png"} | set(planted)
    for ident, reason in planted.items():
        assert reason in found[ident].reason and found[ident].image is None and found[ident].sha256 == ""
    for ident in ("a.png", "good-link.png"):  # a symlink to an image is that image
        assert found[ident].reason is None and found[ident].sha256 == sha256_file(root / "a.png")
        np.testing.assert_array_equal(found[ident].image, image)
    with unblocked(root) as waited, pytest.raises(NotRegularFile, match="named pipe"):
        sha256_file(root / "pipe.jpg")
    with pytest.raises(ImageError, match="symlink to a character device"):
        decode(root / "zero.png")
    assert not waited
