"""Real audio and video files for the tests, encoded with FFmpeg through PyAV: what phones
and browsers send, not hand-made containers. Each is half a second and a few KB."""

import array
import functools
import io
import math
import struct
import sys

import av


def encoded(fmt, video=None, audio=None, seconds=0.5, options=None, rate=None, codec_options=None):
    """A real, playable media file made with FFmpeg (through PyAV): a moving grey picture
    and/or a 440 Hz tone. `options` go to the container, `codec_options` to the sound's
    encoder."""
    out = io.BytesIO()
    with av.open(out, "w", format=fmt, options=options or {}) as container:
        vstream = astream = None
        if video:
            vstream = container.add_stream(video, rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        if audio:
            rate = rate or (48000 if audio in ("libopus", "opus") else 44100)
            astream = container.add_stream(audio, rate=rate, options=codec_options or {})
            astream.layout = "mono"
        if vstream:
            for i in range(int(10 * seconds)):
                frame = av.VideoFrame(64, 48, "yuv420p")
                for n, plane in enumerate(frame.planes):
                    level = (16 + 20 * i) % 240 if n == 0 else 128  # brightness changes
                    plane.update(bytes([level]) * plane.buffer_size)
                frame.pts = i
                for packet in vstream.encode(frame):
                    container.mux(packet)
            for packet in vstream.encode():
                container.mux(packet)
        if astream:
            rate = astream.rate
            size = astream.codec_context.frame_size or 1024
            total = int(rate * seconds)
            tone = _tone(rate, total + size)
            for start in range(0, total, size):
                frame = av.AudioFrame(format="s16", layout="mono", samples=size)
                frame.planes[0].update(tone[2 * start : 2 * (start + size)])
                frame.sample_rate = rate
                frame.pts = start
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return out.getvalue()


@functools.cache
def _tone(rate: int, count: int) -> bytes:
    """`count` samples of a 440 Hz tone, 16-bit little-endian (made once per rate: the test
    modules build their samples when they are collected, on every worker)."""
    step = 2 * math.pi * 440 / rate
    samples = array.array("h", [int(8000 * math.sin(step * k)) for k in range(count)])
    if sys.byteorder == "big":
        samples.byteswap()
    return samples.tobytes()


def mp4() -> bytes:
    """H.264 video with AAC sound, as a phone records."""
    return encoded("mp4", "libx264", "aac")


def m4a() -> bytes:
    """AAC sound in an MPEG-4 container (a voice memo)."""
    return encoded("ipod", None, "aac")


def webm_video() -> bytes:
    return encoded("webm", "libvpx", "libopus")


def webm_audio() -> bytes:
    """Opus in WebM: what Chromium's MediaRecorder makes of a voice note."""
    return encoded("webm", None, "libopus")


def ogg_opus() -> bytes:
    return encoded("ogg", None, "libopus")


def mp3() -> bytes:
    return encoded("mp3", None, "libmp3lame")


def adts_aac() -> bytes:
    """Raw AAC in ADTS frames (.aac), as some recorders and radio streams save it."""
    return encoded("adts", None, "aac")


# Without an ID3 tag an MP3 starts with its first frame's header; FFmpeg writes neither the
# tag nor the Xing frame when told not to.
NO_TAG = {"id3v2_version": "0", "write_xing": "0"}


def mp3_without_tag(rate: int = 44100) -> bytes:
    """Layer III frames and nothing else. At 8 to 12 kHz LAME writes MPEG-2.5 (FF E3...)."""
    return encoded("mp3", None, "libmp3lame", options=NO_TAG, rate=rate)


def _crc16(data: bytes) -> int:
    """The CRC of MPEG audio frames: CRC-16 (polynomial 0x8005), starting from 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = (crc << 1) ^ 0x8005 if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def _decode_checking_crcs(data: bytes) -> bytes:
    """The PCM FFmpeg decodes, refusing any frame whose CRC does not match."""
    with av.open(io.BytesIO(data), format="mp3") as container:
        stream = container.streams.audio[0]
        stream.codec_context.options = {"err_detect": "crccheck+explode"}
        return b"".join(bytes(frame.planes[0]) for frame in container.decode(stream))


# MPEG-1 layer III bitrates (kbit/s) by the header's index.
MPEG1_BITRATES = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320]


def mp3_with_crc() -> bytes:
    """MPEG-1 layer III frames protected by a CRC (they start FF FA), as LAME writes with
    `-p`, which FFmpeg's encoder cannot: LAME's frames are re-framed here. Without the bit
    reservoir each frame's sound data lies within the frame, so it moves unchanged into a
    frame of the next bitrate up, after the header and its CRC; the rest is ancillary data
    (zeros). FFmpeg, checking every CRC, decodes exactly the same sound from both."""
    rate = 48000  # 144 * bitrate / rate is a whole number of bytes: no padding to follow
    plain = encoded(
        "mp3", None, "libmp3lame", options=NO_TAG, rate=rate, codec_options={"reservoir": "0"}
    )
    out, pos = b"", 0
    while pos < len(plain):
        header = plain[pos : pos + 4]
        assert header[:2] == b"\xff\xfb" and not header[2] & 0x02  # no CRC, no padding
        index = header[2] >> 4
        frame = plain[pos : pos + 144 * MPEG1_BITRATES[index] * 1000 // rate]
        assert frame[4] == 0 and not frame[5] & 0x80  # main_data_begin 0: no reservoir
        protected = b"\xff\xfa" + bytes([(index + 1) << 4 | header[2] & 0x0F, header[3]])
        side_info = frame[4:21]  # 17 bytes, for mono
        body = protected + struct.pack(">H", _crc16(protected[2:] + side_info)) + frame[4:]
        out += body + bytes(144 * MPEG1_BITRATES[index + 1] * 1000 // rate - len(body))
        pos += len(frame)
    assert _decode_checking_crcs(out) == _decode_checking_crcs(plain)
    return out
