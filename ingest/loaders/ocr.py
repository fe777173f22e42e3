"""OCR: the one engine (RapidOCR, PP-OCRv4 ONNX models bundled in the pip package, so
nothing is downloaded), text assembled in reading order; and the loader for image files
(PNG, JPEG, TIFF; each frame of a multi-page TIFF is a page). pdf.py uses recognize() for
pages that are scans."""

from __future__ import annotations

import io
import math
import statistics
import threading
from dataclasses import dataclass

from ingest.document import ExtractedDocument, LoadError, PageStart
from ingest.loaders.base import Blocks, Loader, short, tell

LOW_CONFIDENCE = 0.80      # a page below this is "low confidence": worth a look by a person
# A 300 dpi letter page (3300 px) scaled to 2500 reads as well, 1.2-1.4x faster; at 2000,
# words start to run together: 91% of them right (benchmarks/ocr_pages.py --max-side).
MAX_SIDE = 2500            # px, longest side
MIN_SIDE = 32              # px; below this there is no line of text to read
# The recogniser drops the spaces of small text ("thetextlikethis": a 150 dpi page of
# 10 pt text lost a third of its words): text lines under SMALL_TEXT px tall are
# enlarged to about TEXT_HEIGHT, up to MAX_SIDE.
SMALL_TEXT = 32
TEXT_HEIGHT = 40
PARAGRAPH_GAP = 1.5        # a line this many line pitches below the previous one starts a paragraph


@dataclass(frozen=True)
class OcrResult:
    text: str                   # lines in reading order; paragraphs separated by a blank line
    confidence: float | None    # character-weighted mean of the boxes' scores; None: no text found
    boxes: int                  # text boxes found


_init_lock = threading.Lock()
_run_lock = threading.Lock()
_engine = None
_unavailable: str | None = None     # why the engine could not be built (not retried per page)


def _get_engine():
    global _engine, _unavailable
    if _engine is None:
        with _init_lock:
            if _engine is None and _unavailable is None:
                try:
                    from rapidocr_onnxruntime import RapidOCR   # imports cv2 (needs libGL) and onnxruntime
                    # Its per-line 180-degree classifier is off: on a clean upright 300 dpi page
                    # it turned 3 of 39 lines upside down (read as blank or garbage).
                    # max_side_len: we have downscaled already, with a better filter.
                    _engine = RapidOCR(max_side_len=MAX_SIDE, use_cls=False)
                except Exception as exc:
                    _unavailable = short(exc)
    if _engine is None:
        raise LoadError(f"OCR is not available: {_unavailable}")
    return _engine


def recognize(image) -> OcrResult:
    """Text in a PIL image (or a numpy array, RGB or grey). LoadError when OCR is not
    available or the image is too small to hold text."""
    from PIL import Image

    if not isinstance(image, Image.Image):
        try:
            image = Image.fromarray(image)
        except Exception as exc:
            raise LoadError(f"not an image: {short(exc)}") from None
    if min(image.size) < MIN_SIDE:
        raise LoadError(f"image too small for OCR ({image.width}x{image.height} px)")
    original = _rgb(image)
    longest = max(original.size)
    base = min(1.0, MAX_SIDE / longest)
    image = _scaled(original, base)
    engine = _get_engine()
    # One call at a time: onnxruntime already uses every core for one image, and
    # RapidOCR.__call__ keeps per-call settings on the shared engine.
    with _run_lock:
        try:
            found, _ = engine(image, use_rec=False)         # detection only: how tall is the text?
            if not found:
                return OcrResult("", None, 0)
            height = statistics.median(map(_height, found))
            if height < SMALL_TEXT:
                scale = min(base * TEXT_HEIGHT / height, MAX_SIDE / longest)
                if scale > 1.2 * base:
                    image = _scaled(original, scale)
            # A page scanned sideways has tall text boxes: read it turned both ways. One
            # upside down reads as garbage, with a low confidence: read it turned over too.
            turns = (90, 270) if _sideways(found) else (0,)
            best = max((_read(engine, image, turn) for turn in turns), key=_weight)
            if best[1] is None or best[1] < LOW_CONFIDENCE:
                best = max(best, _read(engine, image, (turns[0] + 180) % 360), key=_weight)
        except Exception as exc:
            raise LoadError(f"OCR failed: {short(exc)}") from None
    read, confidence = best
    return OcrResult(_reading_order([(box, text) for box, text, _ in read]), confidence, len(read))


def _read(engine, image, turn: int) -> tuple[list, float | None]:
    """(boxes read, character-weighted confidence) of the image turned `turn` degrees anticlockwise."""
    found, _ = engine(image.rotate(turn, expand=True) if turn else image)
    read = [(box, text.strip(), float(score)) for box, text, score in found or [] if text.strip()]
    chars = sum(len(text) for _, text, _ in read)
    return read, (sum(score * len(text) for _, text, score in read) / chars if chars else None)


def _weight(reading: tuple[list, float | None]) -> float:
    """How much was read well: characters times confidence."""
    read, confidence = reading
    return (confidence or 0.0) * sum(len(text) for _, text, _ in read)


def _sideways(boxes) -> bool:
    """Most detected text boxes are taller than wide: lines run up or down the page."""
    def aspect(box):
        (x0, y0), (x1, y1), (x2, y2), _ = box
        return math.hypot(x1 - x0, y1 - y0) / max(math.hypot(x2 - x1, y2 - y1), 1.0)
    return len(boxes) >= 2 and statistics.median(map(aspect, boxes)) < 0.8


def _scaled(image, scale: float):
    from PIL import Image

    if scale == 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # Enlarged with LANCZOS, small text kept running words together more often than with BICUBIC.
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def _rgb(image):
    """The image as 8-bit RGB, transparency on white (a transparent PNG is black underneath)."""
    from PIL import Image

    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):      # 16-bit / float scans: stretch to 8 bits
        import numpy as np
        a = np.asarray(image, dtype=np.float32)
        lo, hi = float(a.min()), float(a.max())
        image = Image.fromarray(((a - lo) * (255.0 / (hi - lo or 1.0))).astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, image).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _height(box) -> float:
    """A detected quad's height along its own sides (a tilted line's bounds are taller)."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = box
    return (math.hypot(x3 - x0, y3 - y0) + math.hypot(x2 - x1, y2 - y1)) / 2


def _reading_order(boxes: list[tuple]) -> str:
    """Boxes (quad, text) grouped into lines by vertical overlap; lines top to bottom,
    boxes left to right, joined by spaces; a jump over PARAGRAPH_GAP line pitches becomes
    a blank line. Centres and the quads' own heights, not their bounds: on a tilted scan
    a long line's bounds overlap the next line's."""
    lines: list[dict] = []          # {"y": centre, "h": height, "n": boxes, "items": [(x, text)]}
    for box, text in sorted(boxes, key=lambda b: sum(p[1] for p in b[0])):
        x, y, h = min(p[0] for p in box), sum(p[1] for p in box) / 4, max(_height(box), 1.0)
        for line in reversed(lines[-3:]):       # boxes come by centre: only recent lines can overlap
            if abs(y - line["y"]) < 0.5 * min(h, line["h"]):
                line["items"].append((x, text))
                line["n"] += 1
                line["y"] += (y - line["y"]) / line["n"]
                line["h"] = max(line["h"], h)
                break
        else:
            lines.append({"y": y, "h": h, "n": 1, "items": [(x, text)]})
    if not lines:
        return ""
    lines.sort(key=lambda line: line["y"])
    # The pitch inside paragraphs: the lower quartile of the steps between lines, as most
    # are inside one even when many paragraphs are a single line. With few lines, single
    # spacing of the boxes' height (detected boxes are padded to about the pitch).
    steps = sorted(b["y"] - a["y"] for a, b in zip(lines, lines[1:]))
    if len(steps) >= 3:
        pitch = steps[len(steps) // 4]
    else:
        pitch = 1.25 * statistics.median(line["h"] for line in lines)
    out = []
    for i, line in enumerate(lines):
        if i and line["y"] - lines[i - 1]["y"] > PARAGRAPH_GAP * pitch:
            out.append("")
        out.append(" ".join(text for _, text in sorted(line["items"])))
    return "\n".join(out)


def page_metadata(confidences: dict[int, float]) -> dict[str, str]:
    """ExtractedDocument.metadata for the pages read by OCR (page number -> confidence)."""
    if not confidences:
        return {}
    pages = sorted(confidences)
    meta = {"ocr_pages": ",".join(map(str, pages)),
            "ocr_confidence": "%.3f" % statistics.fmean(confidences[p] for p in pages)}
    low = [p for p in pages if confidences[p] < LOW_CONFIDENCE]
    if low:
        meta["ocr_low_pages"] = ",".join(map(str, low))
    return meta


# ---------------------------------------------------------------- image files

def load(data: bytes) -> ExtractedDocument:
    from PIL import Image, UnidentifiedImageError

    out = Blocks()
    pages: list[PageStart] = []
    confidences: dict[int, float] = {}
    try:
        with Image.open(io.BytesIO(data)) as image:
            # Frames are pages in a TIFF only (an animated PNG's frames are not).
            n_frames = getattr(image, "n_frames", 1) if image.format == "TIFF" else 1
            for i in range(n_frames):
                if n_frames > 1:
                    tell(f"OCR of page {i + 1} of {n_frames}")
                image.seek(i)
                frame = image.copy()            # decodes: a truncated file fails here
                if n_frames > 1 and min(frame.size) < MIN_SIDE:
                    continue                    # a thumbnail frame; a lone tiny image is refused
                result = recognize(_upright(frame))
                if result.text:
                    out.add(result.text)
                    pages.append(PageStart(out.length - len(result.text), i + 1))
                    confidences[i + 1] = result.confidence
    except LoadError:
        raise
    except UnidentifiedImageError:             # its message names an in-memory object
        raise LoadError("not a readable image: unknown format or damaged header") from None
    except Image.DecompressionBombError:
        raise LoadError(f"image too large (over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.3g} megapixels)") from None
    except Exception as exc:                    # OSError (truncated), SyntaxError (bad TIFF tags), ...
        raise LoadError(f"not a readable image: {short(exc)}") from None
    if not pages:
        raise LoadError("no text found in the image")
    return ExtractedDocument(out.text(), "image", pages=pages if n_frames > 1 else [],
                             metadata=page_metadata(confidences))


def _upright(frame):
    """Turned as its EXIF orientation says (a phone's photo of a page is often stored sideways)."""
    from PIL import ImageOps

    try:
        return ImageOps.exif_transpose(frame)
    except Exception:                           # a broken EXIF block is no reason to refuse the picture
        return frame


LOADER = Loader("image", (".png", ".jpg", ".jpeg", ".tif", ".tiff"), load)
