"""Attachments: what a file is (from its bytes, never its name), storing it, removing it.

`store()` writes everything under UPLOAD_FOLDER with names it makes up: first into a hidden
temporary file, then renamed into place, so a reader never sees half a file. A refused or
failed upload leaves nothing behind; the caller removes the stored files again if its own
transaction fails (`discard()`). Only a process killed mid-upload leaves a temporary file:
`store()` sweeps those away once they are an hour old.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import tempfile
import time
import unicodedata
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import filetype
from flask import current_app
from PIL import Image, ImageOps, ImageSequence

from chipper.services import ServiceError, TooLarge, Unsupported

UNSUPPORTED = (
    "Chipper takes photos (JPEG, PNG, GIF, WebP), audio (MP3, OGG, WAV, M4A, WebM), videos "
    "(MP4, WebM) and PDF files; this file is none of these."
)
DAMAGED = "This file is damaged or incomplete. Try another copy."
NAME_MAX = 255
PARTIAL = ".partial-"
# A temporary file this old belongs to no upload any more: the slowest one (10 MB over a bad
# line, then a photo's re-encoding) takes minutes. Looked for at most once a minute.
PARTIAL_MAX_AGE = 3600
SWEEP_INTERVAL = 60
_last_sweep: dict[str, float] = {}  # folder: time.monotonic() of this process's last sweep


class Damaged(ServiceError):
    """A file that claims to be a kind we take but does not hold together."""


@dataclass
class StoredFile:
    kind: str  # image, audio, video or file: the message's type
    content_type: str
    stored_name: str
    size: int
    width: int | None = None
    height: int | None = None
    thumbnail_name: str | None = None
    original_name: str = ""
    names: list[str] = field(default_factory=list)  # every file written, to discard on failure


def too_large_message() -> str:
    return f"Files can be at most {current_app.config['MAX_UPLOAD_MB']} MB; this one is larger."


def clean_name(name: str | None) -> str:
    """The sender's file name, fit to show and to offer as a download name ("" if nothing is
    left). Names with folders in them (`../`, `a/b`, `C:\\x`) are refused: browsers send bare
    names, so anything else was crafted."""
    name = unicodedata.normalize("NFC", name or "")
    if "/" in name or "\\" in name:
        raise Damaged("File names cannot contain folders (/ or \\).", field="file")
    # Control characters (line breaks in a header, NUL) have no place in a name.
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip(" .")
    if len(name) > NAME_MAX:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            name = stem[: NAME_MAX - len(ext) - 1] + "." + ext
        else:
            name = name[:NAME_MAX]
    return name


def store(stream: BinaryIO, filename: str | None) -> StoredFile:
    """Checks an upload and writes it, and a thumbnail for images. Raises a ServiceError
    (413, 415 or 400) and leaves nothing on disk when the file is refused."""
    original = clean_name(filename)  # crafted names are refused before a byte is read
    folder = upload_folder()
    raw = _spool(stream, folder)
    app = current_app._get_current_object()

    def check_and_write() -> StoredFile:
        written: list[str] = []
        try:
            sweep_partials(folder)
            with app.app_context():
                with open(raw, "rb") as f:
                    kind, content_type, extension = detect(f, os.path.getsize(raw))
                if kind == "image":
                    stored = _store_image(raw, folder, content_type, extension, written)
                else:
                    name = _new_name(extension)
                    os.replace(raw, os.path.join(folder, name))
                    written.append(name)
                    stored = StoredFile(kind, content_type, name, os.path.getsize(_path(name)))
                stored.original_name = original or f"attachment{extension}"
                stored.names = written
                return stored
        except BaseException:
            with app.app_context():
                discard(written)
            raise
        finally:
            _unlink(raw)

    return _off_the_event_loop(check_and_write)


def _off_the_event_loop(work: Callable[[], StoredFile]) -> StoredFile:
    """Runs `work` in a real thread when gevent runs the app (gunicorn's workers): decoding
    and re-encoding a large photo takes up to a second, during which every other request and
    stream of the worker would wait. Pillow releases the GIL while it works."""
    try:
        from gevent import get_hub, monkey
    except ImportError:
        return work()
    if monkey.is_module_patched("threading"):
        return get_hub().threadpool.apply(work)
    return work()


def discard(names: list[str]) -> None:
    """Removes stored files (after a failed transaction, or a deleted message)."""
    for name in names:
        _unlink(_path(name))


def sweep_partials(folder: str) -> list[str]:
    """Removes the temporary files that uploads cut off by a crash (a killed worker, a lost
    machine) left in the folder, once they are PARTIAL_MAX_AGE old, at most once every
    SWEEP_INTERVAL seconds per process. Returns the names removed. (Two uploads sweeping
    at once, here or in another process, only try to remove the same files twice.)"""
    now = time.monotonic()
    if now - _last_sweep.get(folder, float("-inf")) < SWEEP_INTERVAL:
        return []
    _last_sweep[folder] = now
    cutoff = time.time() - PARTIAL_MAX_AGE
    removed = []
    # Stored files never start with a dot, so only temporary ones are looked at; one that is
    # gone already (another process swept it) or cannot be removed is no reason to fail.
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if not entry.name.startswith(PARTIAL):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed.append(entry.name)
    return removed


def upload_folder() -> str:
    folder = current_app.config["UPLOAD_FOLDER"]
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder


def path_of(name: str) -> str:
    return _path(name)


def _path(name: str) -> str:
    return os.path.join(current_app.config["UPLOAD_FOLDER"], name)


def _new_name(extension: str) -> str:
    return secrets.token_hex(16) + extension


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _spool(stream: BinaryIO, folder: str) -> str:
    """Copies the upload into a temporary file in the upload folder, refusing it as soon as it
    passes the size limit. Returns the temporary file's path."""
    limit = current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    fd, temp = tempfile.mkstemp(dir=folder, prefix=PARTIAL)
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(64 * 1024):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(too_large_message(), field="file")
                out.write(chunk)
        if size == 0:
            raise Damaged("This file is empty.", field="file")
    except BaseException:
        _unlink(temp)
        raise
    return temp


def _write_atomically(folder: str, extension: str, write: Callable[[BinaryIO], None]) -> str:
    """Writes a new file through `write`, under a temporary name renamed into place at the end."""
    fd, temp = tempfile.mkstemp(dir=folder, prefix=PARTIAL)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
        name = _new_name(extension)
        os.replace(temp, os.path.join(folder, name))
    except BaseException:
        _unlink(temp)
        raise
    return name


# Detection. filetype names the family from the first bytes; the checks below then read the
# structure, which also tells audio from video inside the containers that hold either.

SNIFFED = {
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
    """(kind, content type, file extension) of the open file, or Unsupported / Damaged."""
    head = f.read(8192)
    guess = filetype.guess(head)
    sniffed = guess.extension if guess else None
    if sniffed not in SNIFFED and _mp3_sync(head):
        sniffed = "mp3"  # the frame checks below decide
    if sniffed not in SNIFFED:
        raise Unsupported(UNSUPPORTED, field="file")
    kind, content_type, extension = SNIFFED[sniffed]
    try:
        if kind == "mp4":
            return _mp4(f, size)
        if kind == "webm":
            return _webm(f, size)
        check = CHECKS.get(sniffed)
        if check:
            check(f, head, size)
    except (struct.error, EOFError, IndexError):
        raise Damaged(DAMAGED, field="file") from None
    return kind, content_type, extension


def _damaged(condition: bool) -> None:
    if condition:
        raise Damaged(DAMAGED, field="file")


# MPEG audio layer III: bitrates (kbit/s) by version and index, sample rates by version.
_MP3_BITRATES = {
    1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
    2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _mp3_sync(head: bytes) -> bool:
    """Whether the file starts like a layer III frame without an ID3 tag before it. filetype
    knows only three of the six ways (FF FB, F3, F2): not FF FA, MPEG-1 with a CRC after
    the header, nor FF E3 and E2, MPEG-2.5 (8 to 12 kHz)."""
    # 11111111 111VVLLP: layer (LL) III is 01; version (VV) 01 is reserved.
    return len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2 and head[1] & 0x18 != 0x08


def _mp3_frame_length(header: bytes) -> int:
    """The length of the layer III frame starting with these four bytes; raises if it is none."""
    b1, b2 = header[1], header[2]
    version, layer = (b1 >> 3) & 3, (b1 >> 1) & 3
    rate_index, bitrate_index = (b2 >> 2) & 3, b2 >> 4
    _damaged(header[0] != 0xFF or b1 & 0xE0 != 0xE0 or version == 1 or layer != 1)
    _damaged(rate_index == 3 or bitrate_index in (0, 15))
    bitrate = _MP3_BITRATES[1 if version == 3 else 2][bitrate_index] * 1000
    rate = _MP3_RATES[version][rate_index]
    per_frame = 144 if version == 3 else 72
    return per_frame * bitrate // rate + ((b2 >> 1) & 1)


def _check_mp3(f: BinaryIO, head: bytes, size: int) -> None:
    """An optional ID3v2 tag, then two layer III frames in a row (or one that ends the file)."""
    start = 0
    if head[:3] == b"ID3":
        tag = head[6:10]
        _damaged(any(b & 0x80 for b in tag))
        start = 10 + ((tag[0] << 21) | (tag[1] << 14) | (tag[2] << 7) | tag[3])
    f.seek(start)
    first = f.read(4)
    _damaged(len(first) < 4)
    following = start + _mp3_frame_length(first)
    _damaged(following > size)
    if following + 4 <= size:
        f.seek(following)
        _mp3_frame_length(f.read(4))


def _check_wav(f: BinaryIO, head: bytes, size: int) -> None:
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


def _check_ogg(f: BinaryIO, head: bytes, size: int) -> None:
    """The first packet of the first page names the codec: Opus or Vorbis is audio; anything
    else (Theora video, say) is not a kind we take."""
    _damaged(len(head) < 27 or head[4] != 0 or not head[5] & 0x02)
    segments = head[26]
    packet = head[27 + segments : 27 + segments + 8]
    if packet[:8] != b"OpusHead" and packet[:7] != b"\x01vorbis":
        raise Unsupported(UNSUPPORTED, field="file")
    _damaged(size < 27 + segments + sum(head[27 : 27 + segments]))


def _check_pdf(f: BinaryIO, head: bytes, size: int) -> None:
    f.seek(max(size - 1024, 0))
    _damaged(b"%%EOF" not in f.read())


def _check_aac(f: BinaryIO, head: bytes, size: int) -> None:
    """ADTS: each frame header gives the frame's length; the second frame must follow it."""
    length = ((head[3] & 3) << 11) | (head[4] << 3) | (head[5] >> 5)
    _damaged(length < 7 or length > size)
    if length + 2 <= size:
        f.seek(length)
        following = f.read(2)
        _damaged(following[0] != 0xFF or following[1] & 0xF6 != 0xF0)


CHECKS = {
    "mp3": _check_mp3,
    "wav": _check_wav,
    "ogg": _check_ogg,
    "aac": _check_aac,
    "pdf": _check_pdf,
}


# MP4 and M4A are the same container (ISO base media): the tracks' handlers tell video from
# sound, whatever the brand says.


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


# WebM (Matroska's subset for the web): the Tracks element says whether there is video.

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


# Images are decoded and written again: that drops EXIF (GPS, camera) and other metadata,
# applies the EXIF orientation, and proves the whole file decodes.

PILLOW_FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
METADATA = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop")


def _store_image(
    raw: str, folder: str, content_type: str, extension: str, written: list[str]
) -> StoredFile:
    fmt = PILLOW_FORMATS[content_type]
    limit = current_app.config["IMAGE_MAX_PIXELS"]
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns below twice its limit; make it refuse as well.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(raw, formats=[fmt]) as image:
                frames = getattr(image, "n_frames", 1)
                pixels = image.width * image.height * frames
                if pixels > limit:
                    raise Damaged(
                        f"Images can be at most {limit // 1_000_000} megapixels; this one has "
                        f"{image.width}×{image.height}"
                        + (f" in {frames} frames." if frames > 1 else "."),
                        field="file",
                    )
                if frames > 1:
                    # Animations: every frame decodes and is kept (GIF carries no orientation).
                    clean = [frame.copy() for frame in ImageSequence.Iterator(image)]
                else:
                    image.load()
                    clean = [ImageOps.exif_transpose(image)]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Damaged(
            f"Images can be at most {limit // 1_000_000} megapixels; this one is larger.",
            field="file",
        ) from None
    except ServiceError:
        raise
    except Exception:
        # Whatever a cut-off or hostile file makes the decoder raise (OSError for truncated
        # data, SyntaxError for broken chunks, ValueError or worse for malformed EXIF...).
        raise Damaged(DAMAGED, field="file") from None

    first = clean[0]
    for frame in clean:
        frame.info = {k: v for k, v in frame.info.items() if k not in METADATA}

    def write_image(out: BinaryIO) -> None:
        options = {"exif": b""}
        if fmt == "JPEG":
            # JPEG keeps a colour profile only when asked to; it is not personal data.
            options.update(quality=88, icc_profile=first.info.get("icc_profile"))
        if len(clean) > 1:
            options.update(save_all=True, append_images=clean[1:])
        first.save(out, format=fmt, **options)

    def write_thumbnail(out: BinaryIO) -> None:
        thumbnail = first.convert("RGBA")
        side = current_app.config["THUMBNAIL_SIZE"]
        thumbnail.thumbnail((side, side))
        thumbnail.save(out, format="WEBP", quality=80)

    name = _write_atomically(folder, extension, write_image)
    written.append(name)
    thumbnail = _write_atomically(folder, ".webp", write_thumbnail)
    written.append(thumbnail)
    return StoredFile(
        "image",
        content_type,
        name,
        os.path.getsize(_path(name)),
        width=first.width,
        height=first.height,
        thumbnail_name=thumbnail,
    )
