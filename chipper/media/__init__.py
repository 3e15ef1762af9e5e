"""Attachments' files: the verbs the services use. `store()` checks an upload (its kind read
from its bytes by `sniff`, photos re-encoded by `images`) and writes it through `storage`;
`discard()` removes stored files again; `path_of()` is where a stored file is read from.

A refused or failed upload leaves nothing behind; the caller removes the stored files again if
its own transaction fails (`discard()`). Imports run one way: services -> media -> errors.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO, TypeVar

from flask import current_app

from chipper.errors import Damaged, Unsupported
from chipper.media import images, sniff
from chipper.media.budget import Budget
from chipper.media.storage import LocalFolder, Storage

__all__ = [
    "Damaged",
    "StoredFile",
    "Storage",
    "clean_name",
    "discard",
    "path_of",
    "store",
    "store_avatar",
    "current_storage",
    "sweep_partials",
    "too_large_message",
    "upload_folder",
]

T = TypeVar("T")
NAME_MAX = 255
AVATAR_SIDE = 256
NOT_A_PHOTO = "Choose a photo (JPEG, PNG, GIF or WebP) for your picture."


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


def current_storage() -> Storage:
    """The app's store of files: its UPLOAD_FOLDER."""
    return LocalFolder(current_app.config["UPLOAD_FOLDER"])


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
    (413, 415 or 400) and leaves nothing stored when the file is refused. Sweeps the
    temporary files crashed uploads left (at most once a minute)."""
    original = clean_name(filename)  # crafted names are refused before a byte is read
    files = current_storage()
    raw = _spool(files, stream)
    config = current_app.config

    def check_and_write() -> StoredFile:
        written: list[str] = []
        try:
            with open(raw, "rb") as f:
                kind, content_type, extension = sniff.detect(f, os.path.getsize(raw))
            if kind == "image":
                picture = images.decode(
                    raw, content_type, config["IMAGE_MAX_PIXELS"], config["IMAGE_MAX_SIDE"]
                )
                name = files.save(extension, picture.write)
                written.append(name)
                side = config["THUMBNAIL_SIZE"]
                thumbnail = files.save(".webp", lambda out: picture.write_thumbnail(out, side))
                written.append(thumbnail)
                stored = StoredFile(
                    "image",
                    content_type,
                    name,
                    files.size(name),
                    width=picture.width,
                    height=picture.height,
                    thumbnail_name=thumbnail,
                )
            else:
                name = files.keep(raw, extension)
                written.append(name)
                stored = StoredFile(kind, content_type, name, files.size(name))
            stored.original_name = original or f"attachment{extension}"
            stored.names = written
            return stored
        except BaseException:
            for name in written:
                files.delete(name)
            raise
        finally:
            files.remove_temporary(raw)

    return _in_turn(raw, config["IMAGE_MAX_SIDE"], check_and_write)


def store_avatar(stream: BinaryIO, filename: str | None) -> str:
    """Checks an uploaded picture as attachments are checked (its kind read from its bytes,
    decoded whole, within the decode budget) and writes it as a square WebP, AVATAR_SIDE px,
    without metadata. Returns the stored name; a refused file raises a ServiceError and
    leaves nothing stored."""
    clean_name(filename)
    files = current_storage()
    raw = _spool(files, stream)
    config = current_app.config

    def check_and_write() -> str:
        try:
            try:
                with open(raw, "rb") as f:
                    kind, content_type, _ = sniff.detect(f, os.path.getsize(raw))
            except Unsupported:
                kind = None
            if kind != "image":
                raise Unsupported(NOT_A_PHOTO, field="avatar")
            # Decoded at most 4 times the square's side (a JPEG straight at that size).
            picture = images.decode(raw, content_type, config["IMAGE_MAX_PIXELS"], 4 * AVATAR_SIDE)
            return files.save(".webp", lambda out: picture.write_square(out, AVATAR_SIDE))
        finally:
            files.remove_temporary(raw)

    return _in_turn(raw, 4 * AVATAR_SIDE, check_and_write)


def _spool(files: Storage, stream: BinaryIO) -> str:
    """The upload in a temporary file, refused past MAX_UPLOAD_MB."""
    limit = current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024
    return files.spool(stream, limit, too_large_message())


def _in_turn(raw: str, max_side: int, work: Callable[[], T]) -> T:
    """Runs `work` (check, decode, write) off the event loop once the decode budget has room.
    Photos decode at once only while together they need less than IMAGE_DECODE_MEMORY_MB (a
    50-megapixel photo takes 300 MB while it decodes); the others wait their turn. The
    header read for the estimate is a few bytes, fine on the event loop."""
    with _decode_budget(current_app).taken(images.footprint(raw, max_side)):
        return _off_the_event_loop(work)


def _decode_budget(app) -> Budget:
    # Made on first use, in the worker, so it waits with gevent's primitives under gevent
    # workers (waiting greenlets yield) and with a thread's otherwise.
    key = "chipper.media.decoding"
    if key not in app.extensions:
        app.extensions.setdefault(key, Budget(app.config["IMAGE_DECODE_MEMORY_MB"] * 1024 * 1024))
    return app.extensions[key]


def _off_the_event_loop(work: Callable[[], T]) -> T:
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
    files = current_storage()
    for name in names:
        files.delete(name)


def sweep_partials() -> list[str]:
    """Removes the temporary files that uploads cut off by a crash left, once an hour old."""
    return current_storage().sweep_partials()


def path_of(name: str) -> str:
    return current_storage().path(name)


def upload_folder() -> str:
    """The local upload folder, created if need be (shares keep held files in a subfolder)."""
    folder = current_app.config["UPLOAD_FOLDER"]
    os.makedirs(folder, mode=0o700, exist_ok=True)
    return folder
