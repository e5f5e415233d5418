"""JPEG size and EXIF orientation read from the file's first bytes, without PIL.

The start of ``yoloxdet train`` checks the header of every image; on COCO train2017 that is 118k files, and
PIL's ``Image.open`` + ``getexif`` costs ~0.25 ms each where this parser costs a fraction of it. It is strict
on purpose: it accepts only a plain JPEG layout that PIL opens without complaint (SOI, known segments, one
8-bit frame header, a start of scan), reads the orientation only from a well-formed EXIF block, and returns
``None`` for anything else (other formats, MPO, Photoshop or XMP blocks, odd markers, huge images), so the
caller falls back to PIL and finds the same problems PIL would.
"""

from __future__ import annotations

import struct
from typing import BinaryIO, NamedTuple

from PIL import Image

_SOF = {0xC0, 0xC1, 0xC2}  # baseline, extended sequential, progressive: what PIL decodes through libjpeg
_SKIPPED = {0xC4, 0xDD} | set(range(0xE0, 0xF0)) | {0xFE}  # DHT, DRI, APP0-15, COM
_EXIF = b"Exif\x00\x00"
_XMP = b"http://ns.adobe.com/xap/1.0/\x00"
_TIFF_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
ORIENTATION_TAG = 0x0112


class JpegHeader(NamedTuple):
    width: int
    height: int
    orientation: int  # EXIF orientation, 1 when there is none


def read_jpeg_header(f: BinaryIO, head: bytes) -> JpegHeader | None:
    """The header of the JPEG whose first bytes are ``head`` (``f`` is read further when a segment reaches
    past them), or ``None`` when it is not a plain JPEG (see the module docstring)."""
    if not head.startswith(b"\xff\xd8\xff"):
        return None
    data, pos = head, 2
    size = orientation = None
    while True:
        if len(data) < pos + 4:
            data += f.read(pos + 4 - len(data) + 65536)
            if len(data) < pos + 4:
                return None
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xDA:  # start of scan: the header is complete
            break
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        end = pos + 2 + length
        if length < 2:
            return None
        if len(data) < end:
            data += f.read(end - len(data) + 65536)
            if len(data) < end:
                return None
        body = data[pos + 4 : end]
        if marker in _SOF:
            if size is not None or len(body) < 6 or body[0] != 8 or body[5] not in (1, 3, 4):
                return None
            size = (int.from_bytes(body[3:5], "big"), int.from_bytes(body[1:3], "big"))
        elif marker == 0xDB:
            if not _quantization_tables_ok(body):
                return None
        elif marker == 0xE1 and body.startswith(_EXIF):
            if orientation is not None:  # PIL joins several EXIF blocks
                return None
            orientation = _exif_orientation(body[len(_EXIF) :])
            if orientation is None:
                return None
        elif not _plain_segment(marker, body):
            return None
        pos = end
    if size is None or min(size) <= 0:
        return None
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:  # PIL warns or raises: let it
        return None
    return JpegHeader(size[0], size[1], 1 if orientation is None else orientation)


def _plain_segment(marker: int, body: bytes) -> bool:
    """A segment PIL skips or reads without a way to fail, and that cannot change size or orientation."""
    if marker not in _SKIPPED:
        return False
    if marker == 0xE0 and body.startswith(b"JFIF"):
        return len(body) >= 12
    if marker == 0xE1 and body.startswith(_XMP):  # PIL reads an orientation from XMP too
        return b"tiff:Orientation" not in body
    if marker == 0xE2:
        if body.startswith(b"MPF\x00"):  # multi-picture: PIL opens it as MPO
            return False
        return not body.startswith(b"ICC_PROFILE\x00") or len(body) >= 14
    if marker == 0xED and body.startswith(b"Photoshop 3.0\x00"):
        return _photoshop_ok(body)
    if marker == 0xEE and body.startswith(b"Adobe"):
        return len(body) >= 12
    return True


def _photoshop_ok(body: bytes) -> bool:
    """PIL walks the resource blocks of a Photoshop segment and stops quietly on a short one, except where a
    block ends right after its resource code (an IndexError)."""
    offset = 14
    while body[offset : offset + 4] == b"8BIM":
        offset += 6  # signature, resource code
        if offset > len(body):
            return True
        if offset == len(body):
            return False
        offset += 1 + body[offset]  # name
        offset += offset & 1
        if offset + 4 > len(body):
            return True
        offset += 4 + int.from_bytes(body[offset : offset + 4], "big")
        offset += offset & 1
    return True


def _quantization_tables_ok(body: bytes) -> bool:
    """PIL raises on a DQT segment that does not hold whole tables."""
    while body:
        length = 1 + 64 * (1 if body[0] < 16 else 2)
        if len(body) < length:
            return False
        body = body[length:]
    return True


def _exif_orientation(tiff: bytes) -> int | None:
    """The orientation in the first directory of an EXIF block (1 when absent), or ``None`` when the block is
    anything but well-formed (PIL would skip entries or warn; let it decide)."""
    if tiff.startswith(b"II*\x00"):
        endian = "<"
    elif tiff.startswith(b"MM\x00*"):
        endian = ">"
    else:
        return None
    try:
        (first,) = struct.unpack_from(endian + "L", tiff, 4)
        (count,) = struct.unpack_from(endian + "H", tiff, first)
        orientation = None
        for k in range(count):
            tag, kind, n, value = struct.unpack_from(endian + "HHL4s", tiff, first + 2 + 12 * k)
            if kind not in _TIFF_SIZES:
                return None
            nbytes = n * _TIFF_SIZES[kind]
            if nbytes > 4 and struct.unpack(endian + "L", value)[0] + nbytes > len(tiff):
                return None  # PIL stops reading the directory there
            if tag == ORIENTATION_TAG:
                if kind != 3 or n != 1 or orientation is not None:  # not one SHORT, or repeated
                    return None
                (orientation,) = struct.unpack_from(endian + "H", value)
    except struct.error:
        return None
    return 1 if orientation is None else orientation
