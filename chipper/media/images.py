"""Photos are decoded and written again with Pillow: that drops EXIF (GPS, camera) and other
metadata, applies the EXIF orientation, and proves the whole file decodes. Also the WebP
thumbnail shown in the timeline. No Flask here: limits come in as arguments.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps, ImageSequence

from chipper.errors import Damaged, ServiceError
from chipper.media.sniff import DAMAGED

PILLOW_FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
METADATA = ("exif", "xmp", "XML:com.adobe.xmp", "comment", "photoshop")


@dataclass
class Picture:
    """A decoded photo, upright and without metadata, ready to be written again."""

    fmt: str  # Pillow's format name
    frames: list[Image.Image]

    @property
    def width(self) -> int:
        return self.frames[0].width

    @property
    def height(self) -> int:
        return self.frames[0].height

    def write(self, out: BinaryIO) -> None:
        first = self.frames[0]
        options = {"exif": b""}
        if self.fmt == "JPEG":
            # JPEG keeps a colour profile only when asked to; it is not personal data.
            options.update(quality=88, icc_profile=first.info.get("icc_profile"))
        if len(self.frames) > 1:
            options.update(save_all=True, append_images=self.frames[1:])
        first.save(out, format=self.fmt, **options)

    def write_square(self, out: BinaryIO, side: int) -> None:
        """The first frame's middle square, `side` px, as WebP (a person's picture)."""
        first = self.frames[0]
        keeps_alpha = first.mode in ("RGBA", "LA", "PA") or "transparency" in first.info
        square = _square(first.convert("RGBA" if keeps_alpha else "RGB"), side)
        square.save(out, format="WEBP", quality=85)

    def write_thumbnail(self, out: BinaryIO, side: int) -> None:
        # Made small first, then converted: no full-size copy of the photo.
        first = self.frames[0]
        if max(first.size) > side:
            first = ImageOps.contain(first, (side, side))
        thumbnail = first.convert("RGBA")
        thumbnail.save(out, format="WEBP", quality=80)


def _square(picture: Image.Image, side: int) -> Image.Image:
    return ImageOps.fit(picture, (side, side), Image.Resampling.LANCZOS)


def footprint(path: str, max_side: int = 0) -> int:
    """About how many bytes decoding the photo at `path` will take at its peak: 4 per pixel of
    every frame, and half again for a still photo shrunk to `max_side`. Reads only the header;
    0 when the file is not a photo Pillow reads (the decode then refuses it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path, formats=list(PILLOW_FORMATS.values())) as image:
                frames = getattr(image, "n_frames", 1)
                decoded = 4 * image.width * image.height * frames
                shrunk = frames == 1 and max_side and max(image.size) > max_side
    except Exception:
        return 0
    return decoded * 3 // 2 if shrunk else decoded


def decode(path: str, content_type: str, max_pixels: int, max_side: int = 0) -> Picture:
    """Decodes every frame of the photo at `path`, or raises Damaged (broken, or more than
    `max_pixels` in all its frames). A still photo longer than `max_side` on either side is
    kept at that size: a JPEG is decoded at a fraction of its size straight away (the
    decoder's DCT scaling), other formats are shrunk once decoded, so a big photo's full-size
    copy does not outlive the decode."""
    fmt = PILLOW_FORMATS[content_type]
    try:
        with warnings.catch_warnings():
            # Pillow's own bomb check warns below twice its limit; make it refuse as well.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path, formats=[fmt]) as image:
                frames = getattr(image, "n_frames", 1)
                pixels = image.width * image.height * frames
                if pixels > max_pixels:
                    raise Damaged(
                        f"Images can be at most {max_pixels // 1_000_000} megapixels; this one "
                        f"has {image.width}×{image.height}"
                        + (f" in {frames} frames." if frames > 1 else "."),
                        field="file",
                    )
                if frames > 1:
                    # Animations: every frame decodes and is kept (GIF carries no orientation).
                    clean = [frame.copy() for frame in ImageSequence.Iterator(image)]
                else:
                    if max_side and fmt == "JPEG":
                        image.draft(image.mode, (max_side, max_side))
                    image.load()
                    # Shrunk (a new, small image) before it is turned upright, so the
                    # full-size decode is the only full-size copy there ever is.
                    if max_side and max(image.size) > max_side:
                        kept = ImageOps.contain(
                            image, (max_side, max_side), Image.Resampling.LANCZOS
                        )
                        kept.info = dict(image.info)
                    else:
                        kept = image.copy()
                    clean = [ImageOps.exif_transpose(kept, in_place=True) or kept]
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Damaged(
            f"Images can be at most {max_pixels // 1_000_000} megapixels; this one is larger.",
            field="file",
        ) from None
    except ServiceError:
        raise
    except Exception:
        # Whatever a cut-off or hostile file makes the decoder raise (OSError for truncated
        # data, SyntaxError for broken chunks, ValueError or worse for malformed EXIF...).
        raise Damaged(DAMAGED, field="file") from None
    for frame in clean:
        frame.info = {k: v for k, v in frame.info.items() if k not in METADATA}
    return Picture(fmt, clean)
