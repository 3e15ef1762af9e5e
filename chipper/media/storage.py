"""Where stored files live: the `Storage` interface and `LocalFolder`, its implementation on
the upload folder (UPLOAD_FOLDER). Names are made up here, never taken from the sender.

A file is first written under a hidden temporary name and renamed into place at the end, so a
reader never sees half a file. Only a process killed mid-upload leaves a temporary file behind:
`sweep_partials()` removes those once they are an hour old. An S3-compatible store would
implement the same methods (spooling still goes to a local temporary file, to be sniffed).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import BinaryIO

from chipper.errors import Damaged, NoRoom, NotStored, TooLarge

log = logging.getLogger(__name__)

PARTIAL = ".partial-"
# A temporary file this old belongs to no upload any more: the slowest one (10 MB over a bad
# line, then a photo's re-encoding) takes minutes. Looked for at most once a minute.
PARTIAL_MAX_AGE = 3600


class Storage(ABC):
    """Stored files by name. Every write is atomic: a name exists only once its file is whole."""

    @abstractmethod
    def spool(self, stream: BinaryIO, limit: int, too_large: str) -> str:
        """Copies an upload into a local temporary file, refusing it (TooLarge with the
        message `too_large`) as soon as it passes `limit` bytes. Returns the file's path."""

    @abstractmethod
    def keep(self, temporary: str, extension: str) -> str:
        """Stores a finished temporary file from `spool()` under a new name; returns it."""

    @abstractmethod
    def save(self, extension: str, write: Callable[[BinaryIO], None]) -> str:
        """Stores a new file written through `write`; returns its name."""

    @abstractmethod
    def path(self, name: str) -> str:
        """A local path to read the stored file from (for send_file)."""

    @abstractmethod
    def size(self, name: str) -> int: ...

    @abstractmethod
    def delete(self, name: str) -> None:
        """Removes a stored file; one that is gone already is no error."""

    @abstractmethod
    def remove_temporary(self, temporary: str) -> None: ...

    @abstractmethod
    def sweep_partials(self) -> list[str]:
        """Removes what uploads cut off by a crash left behind; returns the names removed."""


class LocalFolder(Storage):
    """Files in one folder of this machine (created, private to this user, when first written)."""

    def __init__(self, folder: str):
        self.folder = folder

    def ensure(self) -> str:
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        return self.folder

    def spool(self, stream: BinaryIO, limit: int, too_large: str) -> str:
        fd, temp = self._partial()
        size = 0
        try:
            with _writing(self.folder), os.fdopen(fd, "wb") as out:
                while chunk := stream.read(64 * 1024):
                    size += len(chunk)
                    if size > limit:
                        raise TooLarge(too_large, field="file")
                    out.write(chunk)
            if size == 0:
                raise Damaged("This file is empty.", field="file")
        except BaseException:
            _unlink(temp)
            raise
        return temp

    def keep(self, temporary: str, extension: str) -> str:
        name = _new_name(extension)
        with _writing(self.folder):
            os.replace(temporary, self.path(name))
        return name

    def save(self, extension: str, write: Callable[[BinaryIO], None]) -> str:
        fd, temp = self._partial()
        try:
            with _writing(self.folder), os.fdopen(fd, "wb") as out:
                write(out)
            name = self.keep(temp, extension)
        except BaseException:
            _unlink(temp)
            raise
        return name

    def _partial(self) -> tuple[int, str]:
        with _writing(self.folder):
            return tempfile.mkstemp(dir=self.ensure(), prefix=PARTIAL)

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def size(self, name: str) -> int:
        return os.path.getsize(self.path(name))

    def delete(self, name: str) -> None:
        _unlink(self.path(name))

    def remove_temporary(self, temporary: str) -> None:
        _unlink(temporary)

    def sweep_partials(self) -> list[str]:
        """Removes the temporary files once they are PARTIAL_MAX_AGE old (a scheduled job,
        every UPLOAD_SWEEP_INTERVAL; two processes sweeping at once only try to remove the
        same files twice)."""
        folder = self.folder
        cutoff = time.time() - PARTIAL_MAX_AGE
        removed = []
        # Stored files never start with a dot, so only temporary ones are looked at; one that
        # is gone already (another process swept it) or cannot be removed is no reason to fail.
        with contextlib.suppress(OSError), os.scandir(folder) as entries:
            for entry in entries:
                if not entry.name.startswith(PARTIAL):
                    continue
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)
                        removed.append(entry.name)
        return removed


FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


def refusal(error: OSError, where: str) -> NotStored:
    """The system's refusal to write (a full disk, a folder that is not one, a read-only
    mount) as an error the sender can read; whoever runs the server is told in the log."""
    log.error("Cannot store an upload in %s: %s", where, error)
    if error.errno in FULL:
        return NoRoom(
            "There is no room left on the server for this file. Try again later, "
            "or tell whoever runs Chipper.",
            field="file",
        )
    return NotStored(
        "The server cannot store files right now. Try again later, or tell whoever runs Chipper.",
        field="file",
    )


@contextlib.contextmanager
def _writing(folder: str):
    try:
        yield
    except OSError as error:
        if error.errno is None:
            raise  # not the file system's: Pillow's encoder errors are OSErrors too
        raise refusal(error, folder) from error


def _new_name(extension: str) -> str:
    return secrets.token_hex(16) + extension


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
