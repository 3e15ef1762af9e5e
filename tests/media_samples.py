"""Real audio and video files for the tests, encoded with FFmpeg through PyAV: what phones
and browsers send, not hand-made containers. Each is half a second and a few KB."""

import io
import math
import struct

import av


def encoded(fmt, video=None, audio=None, seconds=0.5, options=None):
    """A real, playable media file made with FFmpeg (through PyAV): a moving grey picture
    and/or a 440 Hz tone."""
    out = io.BytesIO()
    with av.open(out, "w", format=fmt, options=options or {}) as container:
        vstream = astream = None
        if video:
            vstream = container.add_stream(video, rate=10)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        if audio:
            rate = 48000 if audio in ("libopus", "opus") else 44100
            astream = container.add_stream(audio, rate=rate)
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
            for start in range(0, total, size):
                samples = b"".join(
                    struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * (start + k) / rate)))
                    for k in range(size)
                )
                frame = av.AudioFrame(format="s16", layout="mono", samples=size)
                frame.planes[0].update(samples)
                frame.sample_rate = rate
                frame.pts = start
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return out.getvalue()


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
