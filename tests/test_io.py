"""Robust image reading: files (gray, RGBA, 16-bit, EXIF-rotated, broken), numpy arrays, PIL images; source
expansion; atomic writes. Fixtures are generated with PIL in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from yoloxdet.io import (
    ImageReadError,
    array_to_bgr,
    expand_sources,
    is_video,
    read_image,
    write_bytes_atomic,
    write_json_atomic,
)


def _rgb_pattern(height: int = 24, width: int = 32) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_png_file_is_read_as_bgr(tmp_path):
    rgb = _rgb_pattern()
    Image.fromarray(rgb).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.dtype == np.uint8 and image.flags.c_contiguous
    np.testing.assert_array_equal(image, rgb[:, :, ::-1])


def test_grayscale_file_becomes_three_equal_channels(tmp_path):
    gray = _rgb_pattern()[:, :, 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    image = read_image(str(tmp_path / "g.png"))
    assert image.shape == (*gray.shape, 3)
    for channel in range(3):
        np.testing.assert_array_equal(image[:, :, channel], gray)


def test_rgba_file_drops_alpha(tmp_path):
    rgba = np.dstack([_rgb_pattern(), np.full((24, 32), 7, np.uint8)])
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    np.testing.assert_array_equal(image, rgba[:, :, 2::-1])


def test_16bit_file_is_scaled_to_8bit(tmp_path):
    values = np.array([[0, 255, 256, 40000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image[0, :, 0], [0, 0, 1, 156, 255])


def _exif_rotated_jpeg(path, orientation: int = 6) -> np.ndarray:
    """A 20x40 (h x w) stored image with a white block in the top-left corner, tagged with an EXIF
    orientation."""
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:5, :10] = 255
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.save(path, exif=exif, quality=100)
    return stored


def test_exif_orientation_is_applied_for_files_and_pil_images(tmp_path):
    _exif_rotated_jpeg(tmp_path / "rot.jpg")
    # orientation 6: the viewer rotates 90 degrees clockwise, so the stored top-left block appears top-right
    for source in (tmp_path / "rot.jpg", Image.open(tmp_path / "rot.jpg")):
        image = read_image(source)
        assert image.shape == (40, 20, 3)
        assert image[:10, -5:].mean() > 240 and image[:10, :5].mean() < 15


def test_pil_inputs_are_rgb_and_converted(tmp_path):
    rgb = _rgb_pattern()
    np.testing.assert_array_equal(read_image(Image.fromarray(rgb)), rgb[:, :, ::-1])
    gray = Image.fromarray(rgb[:, :, 0], mode="L")
    np.testing.assert_array_equal(read_image(gray)[:, :, 1], rgb[:, :, 0])
    rgba = Image.fromarray(np.dstack([rgb, np.zeros((24, 32), np.uint8)]), mode="RGBA")
    np.testing.assert_array_equal(read_image(rgba), rgb[:, :, ::-1])
    deep = Image.fromarray(np.full((4, 4), 512, np.uint16))
    assert read_image(deep)[0, 0, 0] == 2


@pytest.mark.parametrize(
    ("array", "expected_pixel"),
    [
        (np.full((3, 4), 9, np.uint8), [9, 9, 9]),
        (np.full((3, 4, 1), 9, np.uint8), [9, 9, 9]),
        (np.dstack([np.full((3, 4), v, np.uint8) for v in (1, 2, 3, 4)]), [1, 2, 3]),
        (np.full((3, 4, 3), 1024, np.uint16), [4, 4, 4]),
        (np.full((3, 4, 3), 12.6, np.float32), [13, 13, 13]),
    ],
)
def test_arrays_are_normalised_to_bgr_uint8(array, expected_pixel):
    image = read_image(array)
    assert image.shape == (3, 4, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[1, 2], expected_pixel)


@pytest.mark.parametrize("shape", [(3, 4, 2), (2, 3, 4, 3), (0, 4, 3)])
def test_bad_array_shapes_raise(shape):
    with pytest.raises(ImageReadError, match="array"):
        array_to_bgr(np.zeros(shape, np.uint8))


def test_unreadable_files_raise_one_line_errors_naming_the_file(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff this is not really a jpeg")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for path in (broken, text, tmp_path / "missing.png"):
        with pytest.raises(ImageReadError) as info:
            read_image(path)
        message = str(info.value)
        assert str(path) in message and "\n" not in message
    with pytest.raises(ImageReadError, match="unsupported image input"):
        read_image(42)  # type: ignore[arg-type]


def test_expand_sources_handles_files_folders_and_globs(tmp_path):
    for name in ("b.jpg", "a.png", "c.mp4", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.jpg").write_bytes(b"x")
    assert [p.name for p in expand_sources(tmp_path)] == ["a.png", "b.jpg", "c.mp4"]
    assert [p.name for p in expand_sources(str(tmp_path / "**" / "*.jpg"))] == ["b.jpg", "d.jpg"]
    assert [p.name for p in expand_sources([tmp_path / "notes.txt", tmp_path / "a.png"])] == [
        "notes.txt",
        "a.png",
    ]
    assert is_video(tmp_path / "c.mp4") and not is_video(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match="nope"):
        expand_sources(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="matches no files"):
        expand_sources(str(tmp_path / "*.gif"))


def test_atomic_writes_replace_the_file_and_leave_no_temporaries(tmp_path):
    target = tmp_path / "out" / "data.json"
    write_json_atomic(target, {"a": 1})
    write_bytes_atomic(target, b'{"a": 2}')
    assert target.read_text() == '{"a": 2}'
    assert [p.name for p in target.parent.iterdir()] == ["data.json"]


def test_atomic_writes_get_the_permissions_of_an_ordinary_file(tmp_path):
    """mkstemp makes its files private (0600); a saved result must be as readable as one written by open()."""
    plain, atomic = tmp_path / "plain.txt", tmp_path / "atomic.txt"
    plain.write_text("x")
    write_bytes_atomic(atomic, b"x")
    assert (atomic.stat().st_mode & 0o777) == (plain.stat().st_mode & 0o777)
