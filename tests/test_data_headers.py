"""The JPEG header parser of the image check agrees with PIL: on real COCO files, on every EXIF orientation
and JPEG flavour, and on damaged headers, where it must either give PIL's answer or step aside for PIL."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yoloxdet.data.checks import check_files, image_problems
from yoloxdet.data.headers import read_jpeg_header

ORIENTATION = 0x0112


def parsed(path: Path):
    with open(path, "rb") as f:
        return read_jpeg_header(f, f.read(16384))


def pil_header(path: Path) -> tuple[int, int, int]:
    with Image.open(path) as im:
        return (*im.size, im.getexif().get(ORIENTATION, 1))


def test_every_coco128_header_is_parsed_as_pil_reads_it(coco128):
    files = sorted((coco128 / "images").glob("*.jpg"))
    assert len(files) == 128
    for path in files:
        assert parsed(path) is not None, f"{path.name}: a COCO file fell back to PIL"
        assert tuple(parsed(path)) == pil_header(path), path.name


def jpeg_bytes(size_wh=(30, 20), mode="RGB", **save) -> bytes:
    out = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size_wh[1], size_wh[0], len(mode)), np.uint8)
    Image.fromarray(pixels.squeeze(-1) if mode == "L" else pixels[..., :3]).convert(mode).save(
        out, "JPEG", **save
    )
    return out.getvalue()


def exif(orientation: int, big_endian: bool = False) -> bytes:
    data = Image.Exif()
    data[ORIENTATION] = orientation
    data[0x010F] = "a camera make long enough to be stored out of line"
    raw = data.tobytes()
    if big_endian:  # the same directory written by a Motorola-order camera
        tag = ORIENTATION.to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big")
        raw = b"Exif\x00\x00MM\x00*" + (8).to_bytes(4, "big") + (1).to_bytes(2, "big")
        raw += tag + orientation.to_bytes(2, "big") + b"\x00\x00" + bytes(4)
    return raw


@pytest.mark.parametrize(
    "save",
    [
        *({"exif": exif(k)} for k in range(0, 10)),
        {"exif": exif(6, big_endian=True)},
        {"progressive": True},
        {"icc_profile": b"\x00" * 3000},
        {"comment": b"hello"},
        {"dpi": (300, 300)},
    ],
    ids=lambda save: ",".join(f"{k}={str(v)[:20]}" for k, v in save.items()),
)
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpeg_flavours_read_as_pil_reads_them(tmp_path, save, mode):
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg_bytes(mode=mode, **save))
    assert parsed(path) is not None
    assert tuple(parsed(path)) == pil_header(path)


def test_xmp_orientation_is_left_to_pil(tmp_path):
    xmp = b'<x:xmpmeta><rdf:Description tiff:Orientation="8"/></x:xmpmeta>'
    path = tmp_path / "x.jpg"
    path.write_bytes(jpeg_bytes(xmp=xmp))
    assert pil_header(path)[2] == 8
    assert parsed(path) is None  # PIL reads the orientation from XMP; the parser does not try


@pytest.mark.filterwarnings("ignore:.*EXIF:UserWarning", "ignore:Tag data:UserWarning")  # PIL, on damage
def test_damaged_headers_give_pils_problems(tmp_path, coco128):
    """Bytes of the header flipped or cut, 300 ways: the check's answer (parser or PIL fallback) is the
    answer of a PIL-only check, file by file; and the parser answers for most, not just falls back."""
    sources = [coco128 / "images" / name for name in ("000000000073.jpg", "000000000009.jpg")]
    sources.append(tmp_path / "exif.jpg")
    sources[-1].write_bytes(jpeg_bytes(exif=exif(6)))
    rng = np.random.default_rng(0)
    paths = []
    for k in range(300):
        data = bytearray(sources[k % len(sources)].read_bytes())
        header_end = data.find(b"\xff\xda") + 4
        if k % 10 == 0:
            data = data[: rng.integers(2, header_end)]  # cut inside the header
        else:
            for at in rng.integers(0, header_end, rng.integers(1, 4)):
                data[at] = int(rng.integers(0, 256))
        path = tmp_path / f"{k:03}.jpg"
        path.write_bytes(bytes(data))
        paths.append(path)
    sizes = [(640, 480)] * len(paths)
    found, _ = check_files(paths, sizes, workers=1, decode=False)
    by_file: dict[str, list[str]] = {str(p): [] for p in paths}
    for issue in found:
        if "duplicate of" not in issue.message:  # a flip that changed nothing: same bytes as another
            by_file[str(issue.path)].append(str(issue))
    for path, size in zip(paths, sizes):
        assert by_file[str(path)] == [str(i) for i in image_problems(path, size, decode=False)], path.name
    assert sum(parsed(p) is not None for p in paths) > 150


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(body) + 2).to_bytes(2, "big") + body


def test_layouts_where_pil_reads_otherwise_are_left_to_pil(tmp_path):
    """Where PIL's reading is not the plain one (a later SOF wins, the first of two orientation tags wins,
    a Photoshop block that makes PIL fail), the parser must not answer."""
    base = jpeg_bytes()
    sof = base[base.find(b"\xff\xc0") :][:19]
    tag = (0x0112).to_bytes(2, "little") + (3).to_bytes(2, "little") + (1).to_bytes(4, "little")
    two_tags = b"Exif\x00\x00II*\x00" + (8).to_bytes(4, "little") + (2).to_bytes(2, "little")
    two_tags += tag + (1).to_bytes(4, "little") + tag + (6).to_bytes(4, "little") + bytes(4)
    cases = {
        "second frame header": base[:2] + sof[:5] + b"\x00\x10" + sof[7:] + base[2:],
        "two orientation tags": base[:2] + segment(0xE1, two_tags) + base[2:],
        "Photoshop block cut after its code": base[:2]
        + segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04")
        + base[2:],
    }
    for name, data in cases.items():
        path = tmp_path / "x.jpg"
        path.write_bytes(data)
        assert parsed(path) is None, name
