"""OCR of scanned PDF pages: pages of real prose drawn as images (10 pt text on a US letter
page, at 150 and 300 dpi, clean and with scanner-like noise: gaussian sigma 12 on 0-255
plus a 0.5 degree tilt), saved as image-only PDF pages and read back through
ingest.loaders.load_file, so the PDF path is what is measured.

    .venv/bin/python benchmarks/ocr_pages.py                  # 6 pages per condition (~6 min on 2 cores)
    .venv/bin/python benchmarks/ocr_pages.py --pages 2 --dpi 300 --max-side 3300
    .venv/bin/python benchmarks/ocr_pages.py --pages 3 --dpi 300 --noise noisy --turns 180 90

Text: paragraphs of the Markdown files under ../shared/eval/docs/ (else docs/guide/*.md).
Per condition: characters right = 1 - edit distance / characters (whitespace-normalised
truth vs OCR text), word recall (share of the truth's words found, as a multiset), seconds
per page (load_file's wall time / pages, the engine built beforehand), mean OCR
confidence. Printed as a table and written to benchmarks/results/ocr.json.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
EVAL_DOCS = ROOT.parent / "shared" / "eval" / "docs"
RESULTS = ROOT / "benchmarks" / "results" / "ocr.json"
FONTS = ("/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf",
         "/usr/share/fonts/truetype/liberation/LiberationSerif-Regular.ttf")


# --- the text -------------------------------------------------------------------------

def paragraphs() -> list[str]:
    """Prose paragraphs (no code, tables, lists or headings), markup removed, in a fixed order."""
    files = sorted(EVAL_DOCS.rglob("*.md")) if EVAL_DOCS.is_dir() else sorted((ROOT / "docs" / "guide").glob("*.md"))
    found = []
    for path in files:
        if path.name == "README.md" and path.parent == EVAL_DOCS:
            continue
        text = re.sub(r"(?ms)^```.*?^```", "", path.read_text(encoding="utf-8", errors="replace"))
        text = re.sub(r"(?s)\A---\n.*?\n---\n", "", text)
        for block in re.split(r"\n\s*\n", text):
            if re.match(r"\s*([#|>*+-]|\d+\.|<|\s{4})", block):
                continue
            block = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", block)       # links: their text
            block = re.sub(r"`|<[^>]+>|(?<!\w)[*_]+|[*_]+(?!\w)", "", block)     # code marks, tags, emphasis
            block = " ".join(block.split())
            if len(block) >= 200 and block.isascii():
                found.append(block)
    random.Random(7).shuffle(found)
    return found


def render_page(paras: list[str], dpi: int, font_path: str | None):
    """A letter page (1 in margins, 10 pt, 1.25 line pitch, a blank line between paragraphs)
    filled with as many whole paragraphs as fit; returns (image, truth, paragraphs used)."""
    from PIL import Image, ImageDraw, ImageFont

    size = round(10 * dpi / 72)
    font = ImageFont.truetype(font_path, size) if font_path else ImageFont.load_default(size=size)
    width, height, margin, pitch = round(8.5 * dpi), round(11 * dpi), dpi, round(size * 1.25)
    image = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(image)
    y, used, drawn = margin, 0, []
    for para in paras:
        lines, line = [], ""
        for word in para.split():
            if line and font.getlength(line + " " + word) > width - 2 * margin:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}".strip()
        lines.append(line)
        if y + len(lines) * pitch > height - margin:
            break
        for line in lines:
            draw.text((margin, y), line, fill=0, font=font)
            y += pitch
        y += pitch
        drawn.append(para)
        used += 1
    return image, " ".join(drawn), used


def scanned(image, seed: int):
    """Scanner-like: a 0.5 degree tilt, then gaussian noise (sigma 12 on 0-255)."""
    import numpy as np
    from PIL import Image

    image = image.rotate(0.5, resample=Image.Resampling.BICUBIC, fillcolor=255)
    noisy = np.asarray(image, dtype=np.float32) + np.random.default_rng(seed).normal(0, 12, (image.height, image.width))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def image_pdf(images, path: Path) -> Path:
    """Image-only pages (no text layer), each image covering a letter page."""
    from fpdf import FPDF

    pdf = FPDF(unit="in", format="letter")
    for image in images:
        pdf.add_page()
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        pdf.image(buf, x=0, y=0, w=8.5, h=11)
    pdf.output(str(path))
    return path


# --- the scores -----------------------------------------------------------------------

def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance, two rows; each row in numpy: the in-row insertion chain
    row[j] = min(row[j-1] + 1, t[j]) is j + running min of (t[k] - k)."""
    import numpy as np

    if len(a) < len(b):
        a, b = b, a
    if not b:
        return len(a)
    bs = np.frombuffer(b.encode("utf-32-le"), dtype=np.uint32)
    idx = np.arange(len(b) + 1)
    prev = idx.copy()
    for i, ch in enumerate(a, 1):
        t = np.empty_like(prev)
        t[0] = i
        t[1:] = np.minimum(prev[1:] + 1, prev[:-1] + (bs != ord(ch)))
        prev = np.minimum.accumulate(t - idx) + idx
    return int(prev[-1])


def _words(text: str) -> Counter:
    return Counter(re.findall(r"[a-z0-9]+", text.lower()))


def word_recall(truth: str, ocr: str) -> float:
    want = _words(truth)
    return sum((want & _words(ocr)).values()) / max(1, sum(want.values()))


# --- the measurement ------------------------------------------------------------------

def measure(pages: int = 6, dpis=(150, 300), noise=(False, True), turns=(0,)) -> dict:
    """Figures per condition ("300dpi-noisy", "300dpi-noisy-turned180", ...): chars_right,
    word_recall, s_per_page, mean_confidence, low_confidence_pages. `turns`: the pages
    also scanned turned by these degrees (anticlockwise), which OCR must set upright."""
    from ingest.loaders import load_file
    from ingest.loaders import ocr

    font = next((f for f in FONTS if Path(f).is_file()), None)
    texts = paragraphs()
    # The same text for every condition: the pages are cut once, at 300 dpi.
    page_paras, rest = [], texts
    for _ in range(pages):
        _, _, used = render_page(rest, 300, font)
        page_paras.append(rest[:used])
        rest = rest[used:]
    ocr._get_engine()                          # built once, outside the timings
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for dpi, noisy, turn in [(d, n, t) for d in dpis for n in noise for t in turns]:
            name = f"{dpi}dpi-{'noisy' if noisy else 'clean'}" + (f"-turned{turn}" if turn else "")
            truths, images = [], []
            for n, paras in enumerate(page_paras):
                image, truth, _ = render_page(paras, dpi, font)
                image = scanned(image, n) if noisy else image
                images.append(image.rotate(turn, expand=True) if turn else image)
                truths.append(truth)
            path = image_pdf(images, Path(tmp) / f"{name}.pdf")
            started = time.perf_counter()
            doc = load_file(path)
            seconds = time.perf_counter() - started
            got = {p.page: doc.text[p.start:(doc.pages[k + 1].start if k + 1 < len(doc.pages) else None)]
                   for k, p in enumerate(doc.pages)}
            dist = chars = recall = 0.0
            for n, truth in enumerate(truths, 1):
                text = " ".join(got.get(n, "").split())
                dist += edit_distance(truth, text)
                chars += len(truth)
                recall += word_recall(truth, text) * len(truth.split())
            low = doc.metadata.get("ocr_low_pages", "")
            results[name] = {"pages": pages, "dpi": dpi, "noisy": noisy,
                             "chars_right": round(1 - dist / chars, 4),
                             "word_recall": round(recall / sum(len(t.split()) for t in truths), 4),
                             "s_per_page": round(seconds / pages, 2),
                             "mean_confidence": float(doc.metadata.get("ocr_confidence", "nan")),
                             "low_confidence_pages": len(low.split(",")) if low else 0,
                             "truth_chars": int(chars)}
            print(f"  {name}: {results[name]}", flush=True)
    return results


def table(results: dict) -> str:
    rows = ["| condition | characters right | word recall | s / page | mean confidence | pages < 0.80 |",
            "|---|---|---|---|---|---|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['chars_right']:.2%} | {r['word_recall']:.2%} | {r['s_per_page']:.2f} | "
                    f"{r['mean_confidence']:.3f} | {r['low_confidence_pages']}/{r['pages']} |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pages", type=int, default=6, help="pages per condition (default 6)")
    parser.add_argument("--dpi", type=int, nargs="+", default=[150, 300], help="resolutions (default 150 300)")
    parser.add_argument("--noise", choices=["both", "clean", "noisy"], default="both")
    parser.add_argument("--turns", type=int, nargs="+", default=[0], choices=[0, 90, 180, 270],
                        help="pages also scanned turned this many degrees (default 0: upright only)")
    parser.add_argument("--max-side", type=int, help="OCR's downscale bound in px (default ocr.MAX_SIDE); "
                                                     "to check that bound. Not written to results")
    args = parser.parse_args()
    from ingest.loaders import ocr
    if args.max_side:
        ocr.MAX_SIDE = args.max_side
    noise = {"both": (False, True), "clean": (False,), "noisy": (True,)}[args.noise]
    results = measure(args.pages, tuple(args.dpi), noise, tuple(args.turns))
    print("\n" + table(results))
    if args.max_side:
        return 0
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if RESULTS.is_file():            # conditions not measured this time keep their last figures
        results = {**json.loads(RESULTS.read_text()).get("conditions", {}), **results}
    RESULTS.write_text(json.dumps({"date": time.strftime("%Y-%m-%d"),
                                   "machine": f"{platform.machine()}, {platform.platform()}",
                                   "max_side_px": ocr.MAX_SIDE, "conditions": results}, indent=1) + "\n")
    from report import refresh      # all benchmarks' figures on one page
    refresh()
    print(f"\nwritten to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
