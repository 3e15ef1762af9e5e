"""chipper.media on its own, without a Flask app: the sniffer on every sample of
test_attachments (built containers and real FFmpeg files), the cases read by hand and why,
Pillow's re-encoding, and the local folder's atomic writes and sweep."""

import io
import os
import time

import pytest
from mutagen.mp4 import MP4
from mutagen.wave import WAVE

from chipper.errors import Damaged, TooLarge, Unsupported
from chipper.media import images, sniff
from chipper.media.sniff import DAMAGED, UNSUPPORTED
from chipper.media.storage import PARTIAL, LocalFolder
from tests import media_samples
from tests.test_attachments import (
    ACCEPTED,
    PDF,
    REFUSED,
    exif_with_gps_and_orientation,
    image,
    iso_media,
    mp3,
    png_bomb,
    wav,
)


def detect(data: bytes) -> tuple[str, str, str]:
    return sniff.detect(io.BytesIO(data), len(data))


EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "audio/mpeg": ".mp3",
    "audio/ogg": ".ogg",
    "audio/wav": ".wav",
    "audio/aac": ".aac",
    "audio/mp4": ".m4a",
    "audio/webm": ".weba",
    "video/mp4": ".mp4",
    "video/webm": ".webm",
    "application/pdf": ".pdf",
}


@pytest.mark.parametrize(("data", "name", "kind", "content_type"), ACCEPTED.values(), ids=ACCEPTED)
def test_accepted_samples_are_named_from_their_bytes(data, name, kind, content_type):
    assert detect(data) == (kind, content_type, EXTENSIONS[content_type])


# What the sniffer itself refuses (the images' truncation shows only when they are decoded).
SNIFF_REFUSED = {
    key: REFUSED[key]
    for key in REFUSED
    if key
    not in (
        "truncated jpeg",
        "truncated png",
        "empty",
        "decompression bomb",
        "folders in the name",
        "over 10 MB",
        "request over the limit",
    )
}


@pytest.mark.parametrize(
    ("data", "name", "status", "message"), SNIFF_REFUSED.values(), ids=SNIFF_REFUSED
)
def test_refused_samples(data, name, status, message):
    error = Unsupported if status == 415 else Damaged
    with pytest.raises(error) as refused:
        detect(data)
    assert refused.value.message == (UNSUPPORTED if status == 415 else DAMAGED)
    assert refused.value.field == "file"


@pytest.mark.parametrize(
    ("head", "mp3"),
    [
        (b"\xff\xfb", True),  # MPEG-1, no CRC
        (b"\xff\xfa", True),  # MPEG-1 with a CRC: filetype does not know it
        (b"\xff\xf3", True),  # MPEG-2
        (b"\xff\xe3", True),  # MPEG-2.5: filetype does not know it
        (b"\xff\xfd", False),  # layer II
        (b"\xff\xeb", False),  # version 01 is reserved
        (b"\xff\xf1", False),  # ADTS AAC (layer 00)
        (b"\xff", False),
    ],
)
def test_mp3_frame_starts(head, mp3):
    assert sniff.mp3_sync(head + bytes(8)) is mp3


def test_mp3_of_layer_ii_is_refused():
    """mutagen reads layer II too; only layer III is taken."""
    layer2 = b"ID3\x04\x00\x00\x00\x00\x00\x00" + media_samples.encoded("mp2", None, "mp2")
    with pytest.raises(Damaged):
        detect(layer2)


def test_a_single_mp3_frame_is_too_short():
    """mutagen wants a run of frames: one frame (26 ms) is refused. (The hand-written reader
    took one frame that ended the file.)"""
    assert detect(mp3(frames=2))[1] == "audio/mpeg"
    with pytest.raises(Damaged):
        detect(mp3(frames=1))


def test_cut_real_files_are_damaged():
    for data in (media_samples.adts_aac()[:100], media_samples.mp4()[:-100]):
        with pytest.raises(Damaged):
            detect(data)


def test_a_streamed_wav_without_a_data_length_is_taken():
    """Recorders that stream WAV write the data chunk last, its length unknown (all ones)."""
    data = wav()
    streamed = data[:40] + b"\xff\xff\xff\xff" + data[44:]
    assert detect(streamed)[1] == "audio/wav"


def test_an_mp4_without_tracks_is_damaged():
    with pytest.raises(Damaged):
        detect(iso_media(b"isom"))


def test_webm_cut_in_its_tracks_is_damaged():
    data = media_samples.webm_video()
    with pytest.raises(Damaged):
        detect(data[:200])


def test_pdf_without_eof_is_damaged():
    assert detect(PDF)[0] == "file"
    with pytest.raises(Damaged):
        detect(PDF.replace(b"%%EOF", b""))


# Why these stay by hand: mutagen reads them, but not as strictly as the checks above. If one
# of these starts failing, mutagen changed and the hand-written check may be replaceable.


def test_why_wav_is_read_by_hand():
    """mutagen.wave reads a WAV cut before its data chunk as 0 seconds long."""
    assert WAVE(io.BytesIO(wav()[:40])).info.length == 0
    with pytest.raises(Damaged):
        detect(wav()[:40])


def test_why_mp4_is_read_by_hand():
    """mutagen.mp4 reads an MP4 cut off in its media data, and refuses the built samples,
    which have no mdhd box."""
    cut = iso_media(b"isom", b"vide")[:-20]
    assert MP4(io.BytesIO(cut)).info.length == 0
    with pytest.raises(Exception, match="mdhd"):
        MP4(io.BytesIO(iso_media(b"M4A ", b"soun")))


# Images: Pillow, without the app


def test_images_are_decoded_upright_without_metadata(tmp_path):
    data = image("JPEG", size=(40, 30), exif=exif_with_gps_and_orientation())
    path = _written(tmp_path, data)
    picture = images.decode(path, "image/jpeg", 50_000_000)
    assert (picture.width, picture.height) == (30, 40)
    assert "exif" not in picture.frames[0].info
    out = io.BytesIO()
    picture.write(out)
    assert b"SpyCam" not in out.getvalue()
    thumbnail = io.BytesIO()
    picture.write_thumbnail(thumbnail, 20)
    assert thumbnail.getvalue()[8:12] == b"WEBP"


@pytest.mark.parametrize(
    ("data", "content_type", "message"),
    [
        (image("JPEG", size=(200, 200))[:600], "image/jpeg", DAMAGED),
        (image("PNG", size=(200, 200))[:-30], "image/png", DAMAGED),
        (png_bomb(), "image/png", "Images can be at most 50 megapixels"),
        (image("PNG", size=(100, 100)), "image/png", "at most 0 megapixels; this one has 100×100."),
    ],
    ids=["truncated jpeg", "truncated png", "bomb", "over the limit"],
)
def test_broken_or_huge_images_are_damaged(tmp_path, data, content_type, message):
    limit = 9_999 if "100×100" in message else 50_000_000
    with pytest.raises(Damaged, match=message):
        images.decode(_written(tmp_path, data), content_type, limit)


def _written(folder, data: bytes) -> str:
    path = folder / "upload"
    path.write_bytes(data)
    return str(path)


# The local folder


def test_local_folder_writes_atomically(tmp_path):
    files = LocalFolder(str(tmp_path / "uploads"))
    name = files.save(".pdf", lambda out: out.write(PDF))
    assert os.listdir(files.folder) == [name]
    assert files.size(name) == len(PDF)
    files.delete(name)
    files.delete(name)  # gone already: no error
    assert os.listdir(files.folder) == []


def test_a_failed_write_leaves_nothing(tmp_path):
    files = LocalFolder(str(tmp_path))

    def broken(out):
        out.write(b"half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        files.save(".pdf", broken)
    assert os.listdir(tmp_path) == []


def test_spooling_refuses_too_large_and_empty(tmp_path):
    files = LocalFolder(str(tmp_path))
    with pytest.raises(TooLarge, match="too big"):
        files.spool(io.BytesIO(bytes(100)), 99, "too big")
    with pytest.raises(Damaged, match="empty"):
        files.spool(io.BytesIO(b""), 99, "too big")
    assert os.listdir(tmp_path) == []
    temp = files.spool(io.BytesIO(PDF), 1000, "too big")
    assert os.path.basename(temp).startswith(PARTIAL)
    name = files.keep(temp, ".pdf")
    assert os.listdir(tmp_path) == [name]


def test_sweep_removes_only_old_partial_files(tmp_path):
    files = LocalFolder(str(tmp_path))
    old = time.time() - 2 * 3600
    for name in (f"{PARTIAL}old", f"{PARTIAL}new", "0123abcd.pdf"):
        (tmp_path / name).write_bytes(b"x")
        if not name.endswith("new"):
            os.utime(tmp_path / name, (old, old))
    assert files.sweep_partials() == [f"{PARTIAL}old"]
    assert files.sweep_partials() == []
    assert sorted(os.listdir(tmp_path)) == sorted([f"{PARTIAL}new", "0123abcd.pdf"])
