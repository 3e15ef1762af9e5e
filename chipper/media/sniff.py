"""What a file is, from its bytes (never its name): `detect()` gives its kind, content type and
extension, or raises Unsupported (a kind Chipper does not take) or Damaged (cut short, broken).

`filetype` names the family from the first bytes. `mutagen` then reads the audio formats it
knows well (MP3, ADTS AAC, Ogg Opus and Vorbis). What neither library does well is read here
by hand, each with the reason: WAV chunks, the MP4 and WebM track kinds that tell audio from
video, a PDF's end. No Flask here: a file object in, a verdict out.

A new format: a row in FAMILIES (from filetype's extension), then a check in CHECKS.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

import filetype
from mutagen import MutagenError
from mutagen.aac import AAC
from mutagen.mp3 import MP3
from mutagen.ogg import OggPage
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis

from chipper.errors import Damaged, Unsupported

UNSUPPORTED = (
    "Chipper takes photos (JPEG, PNG, GIF, WebP), audio (MP3, OGG, WAV, M4A, WebM), videos "
    "(MP4, WebM) and PDF files; this file is none of these."
)
DAMAGED = "This file is damaged or incomplete. Try another copy."

# filetype's extension: (kind, content type, extension); "mp4" and "webm" are decided by the
# tracks inside.
FAMILIES = {
    "jpg": ("image", "image/jpeg", ".jpg"),
    "png": ("image", "image/png", ".png"),
    "gif": ("image", "image/gif", ".gif"),
    "webp": ("image", "image/webp", ".webp"),
    "mp3": ("audio", "audio/mpeg", ".mp3"),
    "wav": ("audio", "audio/wav", ".wav"),
    "aac": ("audio", "audio/aac", ".aac"),
    "ogg": ("audio", "audio/ogg", ".ogg"),
    "m4a": ("mp4", "", ""),
    "mp4": ("mp4", "", ""),
    "webm": ("webm", "", ""),
    "pdf": ("file", "application/pdf", ".pdf"),
}


def detect(f: BinaryIO, size: int) -> tuple[str, str, str]:
    """(kind, content type, file extension) of the open file of `size` bytes, or raises
    Unsupported / Damaged. Images are only named here: decoding them proves the rest."""
    head = f.read(8192)
    guess = filetype.guess(head)
    sniffed = guess.extension if guess else None
    if sniffed not in FAMILIES and mp3_sync(head):
        sniffed = "mp3"  # the frame checks decide
    if sniffed not in FAMILIES:
        raise Unsupported(UNSUPPORTED, field="file")
    kind, content_type, extension = FAMILIES[sniffed]
    try:
        if kind == "mp4":
            return _mp4(f, size)
        if kind == "webm":
            return _webm(f, size)
        check = CHECKS.get(sniffed)
        if check:
            f.seek(0)
            check(f, head, size)
    except (MutagenError, struct.error, EOFError, IndexError):
        raise Damaged(DAMAGED, field="file") from None
    return kind, content_type, extension


def _damaged(condition: bool) -> None:
    if condition:
        raise Damaged(DAMAGED, field="file")


def mp3_sync(head: bytes) -> bool:
    """Whether the file starts like a layer III frame without an ID3 tag before it. filetype
    knows only three of the six ways (FF FB, F3, F2): not FF FA, MPEG-1 with a CRC after
    the header, nor FF E3 and E2, MPEG-2.5 (8 to 12 kHz). mutagen reads all six."""
    # 11111111 111VVLLP: layer (LL) III is 01; version (VV) 01 is reserved.
    return len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2 and head[1] & 0x18 != 0x08


def _check_mp3(f: BinaryIO, head: bytes, size: int) -> None:
    """mutagen skips the ID3 tag and syncs to consecutive frames; a cut-off file has none.
    It reads layers I and II as well, which browsers do not all play: only III is taken."""
    _damaged(MP3(f).info.layer != 3)


def _check_aac(f: BinaryIO, head: bytes, size: int) -> None:
    """ADTS: mutagen follows the frames' lengths and wants a stream of them."""
    AAC(f)


def _check_ogg(f: BinaryIO, head: bytes, size: int) -> None:
    """The first packet of the first page names the codec: Opus or Vorbis is audio; anything
    else (Theora video, say) is not a kind we take. mutagen reads the pages (a first page cut
    short raises) and then the codec's headers."""
    first = OggPage(f)
    _damaged(first.version != 0 or not first.first or not first.packets)
    packet = first.packets[0]
    if packet.startswith(b"OpusHead"):
        reader = OggOpus
    elif packet.startswith(b"\x01vorbis"):
        reader = OggVorbis
    else:
        raise Unsupported(UNSUPPORTED, field="file")
    f.seek(0)
    reader(f)


def _check_wav(f: BinaryIO, head: bytes, size: int) -> None:
    """By hand: mutagen.wave reads a WAV cut before its data chunk (or one with no data chunk
    at all) without complaint, as 0 seconds long. Here both chunks must be there."""
    chunks = {name for name, _, _ in _riff_chunks(f, size)}
    _damaged(not {b"fmt ", b"data"} <= chunks)


def _riff_chunks(f: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        name, length = struct.unpack("<4sI", f.read(8))
        yield name, pos + 8, length
        if name == b"data":
            # Recorders that stream WAV write the data chunk last, sometimes with no length.
            return
        pos += 8 + length + (length & 1)


def _check_pdf(f: BinaryIO, head: bytes, size: int) -> None:
    """By hand: a complete PDF ends with %%EOF (a PDF library would be a large dependency for
    one line)."""
    f.seek(max(size - 1024, 0))
    _damaged(b"%%EOF" not in f.read())


CHECKS = {
    "mp3": _check_mp3,
    "aac": _check_aac,
    "ogg": _check_ogg,
    "wav": _check_wav,
    "pdf": _check_pdf,
}


# MP4 and M4A are the same container (ISO base media): the tracks' handlers tell video from
# sound, whatever the brand says. By hand: mutagen.mp4 accepts a file cut off in its media
# data (as 0 seconds long) and refuses a moov without an mdhd box (the tests' built samples);
# its box tree is internal and does not check that a box stays inside its parent.


def _boxes(f: BinaryIO, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, content start, end) of each box between start and end; a box that runs past its
    parent means the file was cut short."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        length, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if length == 1:
            (length,) = struct.unpack(">Q", f.read(8))
            header = 16
        elif length == 0:
            length = end - pos
        _damaged(length < header or pos + length > end)
        yield kind, pos + header, pos + length
        pos += length
    _damaged(pos != end)


def _children(f: BinaryIO, parent: tuple[bytes, int, int], kind: bytes):
    return [box for box in _boxes(f, parent[1], parent[2]) if box[0] == kind]


def _mp4(f: BinaryIO, size: int) -> tuple[str, str, str]:
    top = list(_boxes(f, 0, size))
    moov = [box for box in top if box[0] == b"moov"]
    _damaged(top[0][0] != b"ftyp" or len(moov) != 1)
    handlers = set()
    for trak in _children(f, moov[0], b"trak"):
        for mdia in _children(f, trak, b"mdia"):
            for hdlr in _children(f, mdia, b"hdlr"):
                f.seek(hdlr[1] + 8)  # version and flags, pre_defined, then the handler type
                handlers.add(f.read(4))
    if b"vide" in handlers:
        return "video", "video/mp4", ".mp4"
    if b"soun" in handlers:
        return "audio", "audio/mp4", ".m4a"
    raise Damaged(DAMAGED, field="file")


# WebM (Matroska's subset for the web): the Tracks element says whether there is video. By
# hand: mutagen has no Matroska reader, and filetype only names the family.

_EBML, _DOCTYPE, _SEGMENT = 0x1A45DFA3, 0x4282, 0x18538067
_TRACKS, _TRACK_ENTRY, _TRACK_TYPE, _CLUSTER = 0x1654AE6B, 0xAE, 0x83, 0x1F43B675


def _vint(f: BinaryIO, keep_marker: bool) -> tuple[int, bool]:
    """An EBML variable-length integer: (value, all value bits set, i.e. "unknown size")."""
    first = f.read(1)
    if not first or first[0] == 0:
        raise EOFError
    length = 9 - first[0].bit_length()
    rest = f.read(length - 1)
    if len(rest) != length - 1:
        raise EOFError
    value = first[0] if keep_marker else first[0] & (0xFF >> length)
    for byte in rest:
        value = value << 8 | byte
    return value, not keep_marker and value == (1 << (7 * length)) - 1


def _elements(f: BinaryIO, start: int, end: int | None, size: int):
    """(id, content start, content end or None when unknown) of each element in a parent."""
    pos = start
    while pos < (end if end is not None else size):
        f.seek(pos)
        element_id, _ = _vint(f, keep_marker=True)
        length, unknown = _vint(f, keep_marker=False)
        content = f.tell()
        if unknown:
            yield element_id, content, None
            return
        _damaged(content + length > (end if end is not None else size))
        yield element_id, content, content + length
        pos = content + length


def _webm(f: BinaryIO, size: int) -> tuple[str, str, str]:
    (header_id, header_start, header_end), *_ = _elements(f, 0, None, size)
    _damaged(header_id != _EBML)
    doctype = None
    for element_id, start, end in _elements(f, header_start, header_end, size):
        if element_id == _DOCTYPE:
            f.seek(start)
            doctype = f.read(end - start).rstrip(b"\0")
    if doctype != b"webm":
        # Other Matroska files (.mkv) hold codecs browsers cannot play.
        raise Unsupported(UNSUPPORTED, field="file")
    segment = next((e for e in _elements(f, header_end, None, size) if e[0] == _SEGMENT), None)
    _damaged(segment is None)
    track_types = set()
    for element_id, start, end in _elements(f, segment[1], segment[2], size):
        if element_id == _CLUSTER or end is None:
            break  # the media itself: the tracks come before it
        if element_id != _TRACKS:
            continue
        for entry in _elements(f, start, end, size):
            if entry[0] != _TRACK_ENTRY:
                continue
            for field_id, field_start, field_end in _elements(f, entry[1], entry[2], size):
                if field_id == _TRACK_TYPE:
                    f.seek(field_start)
                    track_types.add(int.from_bytes(f.read(field_end - field_start), "big"))
    if 1 in track_types:
        return "video", "video/webm", ".webm"
    if 2 in track_types:
        return "audio", "audio/webm", ".weba"
    raise Damaged(DAMAGED, field="file")
