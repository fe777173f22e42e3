"""OCR: image files, scanned pages of PDFs, and what happens when OCR cannot run.
The images are drawn here; the engine (bundled ONNX models) is built once per process."""

import io
import re
import sys
import threading

import pytest
from PIL import Image, ImageDraw, ImageFont

from ingest.document import LoadError
from ingest.loaders import format_for, load_file, ocr

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
SCAN = ["Backups run every night at two o'clock.", "Restore them with the operator password.",
        "", "Invoices are archived for seven years."]
SECOND = ["Travel expenses need a receipt.", "Managers approve them within a week."]


def _font(size):
    try:
        return ImageFont.truetype(FONT, size)
    except OSError:
        return ImageFont.load_default(size=size)


def _draw(lines, size=(1000, 400), font_px=34):
    """Black text on white, one entry per line ("" leaves a blank line)."""
    image = Image.new("RGB", size, "white")
    draw, font, y = ImageDraw.Draw(image), _font(font_px), 30
    for line in lines:
        draw.text((40, y), line, fill="black", font=font)
        y += round(font_px * 1.4)
    return image


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _words(text):
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def _found(expected_lines, text, share=0.8):
    want = _words(" ".join(expected_lines))
    return len(want & _words(text)) >= share * len(want)


def _pdf(path, pages):
    """pages: a str (a real text layer) or a PIL image (a scan: an image, no text)."""
    from fpdf import FPDF

    pdf = FPDF(unit="pt", format=(612, 792))
    pdf.set_font("helvetica", size=12)
    for page in pages:
        pdf.add_page()
        if isinstance(page, str):
            pdf.multi_cell(0, 16, page)
        else:
            pdf.image(io.BytesIO(_png(page)), x=36, y=36, w=540)
    pdf.output(str(path))
    return path


@pytest.fixture(scope="module")
def scan():
    return _draw(SCAN)


# -- the engine ------------------------------------------------------------------

def test_recognize_reads_lines_in_order_with_a_paragraph_break(scan):
    result = ocr.recognize(scan)
    assert _found(SCAN, result.text)
    lines = result.text.split("\n")
    assert len(lines) == 4 and lines[2] == ""            # the blank line is a paragraph break
    assert "backups" in lines[0].lower() and "invoices" in lines[3].lower()
    assert result.boxes >= 3 and result.confidence > ocr.LOW_CONFIDENCE


def test_small_text_is_enlarged_so_words_keep_their_spaces():
    lines = ["The monitoring server scrapes each target every fifteen seconds",
             "and keeps the samples on local disk for two weeks by default"]
    result = ocr.recognize(_draw(lines, size=(700, 300), font_px=14))
    assert _found(lines, result.text)


@pytest.mark.parametrize("turn", [Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_270])
def test_a_page_scanned_upside_down_or_sideways_is_read_upright(scan, turn):
    result = ocr.recognize(scan.transpose(turn))
    assert _found(SCAN, result.text)
    assert "backups" in result.text.split("\n")[0].lower()     # in reading order, not reversed
    assert result.confidence > ocr.LOW_CONFIDENCE


def test_blank_and_tiny_images():
    assert ocr.recognize(Image.new("L", (600, 300), 255)) == ocr.OcrResult("", None, 0)
    with pytest.raises(LoadError, match=r"^image too small for OCR \(20x20 px\)$"):
        ocr.recognize(Image.new("RGB", (20, 20), "white"))


def test_the_engine_serves_several_threads(scan):
    image = scan.crop((0, 0, 800, 400))
    results = [None, None]

    def run(i):
        results[i] = ocr.recognize(image).text
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[0] == results[1] and _found(SCAN, results[0])


def test_reading_order_groups_boxes_into_lines_left_to_right():
    def box(x, y, w=100, h=30):
        return [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    boxes = [(box(300, 102), "three"), (box(20, 100), "one"), (box(150, 98), "two"),
             (box(20, 140), "four"), (box(20, 260), "five")]        # far below: a new paragraph
    assert ocr._reading_order(boxes) == "one two three\nfour\n\nfive"


def test_page_metadata_lists_pages_confidence_and_low_ones():
    assert ocr.page_metadata({}) == {}
    assert ocr.page_metadata({2: 0.9, 5: 0.7}) == {"ocr_pages": "2,5", "ocr_confidence": "0.800",
                                                   "ocr_low_pages": "5"}
    assert "ocr_low_pages" not in ocr.page_metadata({1: 0.95})


def test_ocr_not_available_is_one_line(monkeypatch):
    monkeypatch.setattr(ocr, "_engine", None)
    monkeypatch.setattr(ocr, "_unavailable", None)
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)     # as when cv2 cannot load libGL
    with pytest.raises(LoadError, match=r"^OCR is not available: .+") as err:
        ocr.recognize(Image.new("RGB", (200, 100), "white"))
    assert "\n" not in str(err.value)


# -- image files -----------------------------------------------------------------

def test_png_is_read_by_ocr(tmp_path, scan):
    assert format_for(tmp_path / "Scan.PNG") == "image" and format_for(tmp_path / "x.tiff") == "image"
    p = tmp_path / "scan.png"
    p.write_bytes(_png(scan))
    doc = load_file(p)
    assert doc.format == "image" and _found(SCAN, doc.text)
    assert doc.pages == [] and doc.metadata["ocr_pages"] == "1"
    assert float(doc.metadata["ocr_confidence"]) > ocr.LOW_CONFIDENCE and "ocr_low_pages" not in doc.metadata


def test_multi_page_tiff_gives_a_page_per_frame(tmp_path, scan):
    p = tmp_path / "fax.tif"
    scan.save(p, format="TIFF", save_all=True, append_images=[_draw(SECOND)])
    doc = load_file(p)
    assert [page.page for page in doc.pages] == [1, 2] and doc.metadata["ocr_pages"] == "1,2"
    first, second = doc.text[:doc.pages[1].start], doc.text[doc.pages[1].start:]
    assert _found(SCAN, first) and _found(SECOND, second)


def test_photo_stored_sideways_is_turned_by_its_exif_orientation(tmp_path, scan):
    p = tmp_path / "phone.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6                                        # "rotate 90 degrees clockwise to display"
    scan.transpose(Image.Transpose.ROTATE_90).save(p, format="JPEG", quality=90, exif=exif)
    assert _found(SCAN, load_file(p).text)


@pytest.mark.parametrize("data, reason", [
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, r"^not a readable image: .+"),
    (b"GIF89a this is no picture", r"^not a readable image: unknown format or damaged header$"),
])
def test_corrupt_image_is_a_one_line_error(tmp_path, data, reason):
    p = tmp_path / "broken.png"
    p.write_bytes(data)
    with pytest.raises(LoadError, match=reason) as err:
        load_file(p)
    assert "\n" not in str(err.value)


def test_truncated_png(tmp_path, scan):
    p = tmp_path / "cut.png"
    p.write_bytes(_png(scan)[:2000])
    with pytest.raises(LoadError, match=r"^not a readable image: "):
        load_file(p)


def test_blank_image_has_no_text(tmp_path):
    p = tmp_path / "white.jpg"
    Image.new("RGB", (800, 600), "white").save(p, format="JPEG")
    with pytest.raises(LoadError, match=r"^no text found in the image$"):
        load_file(p)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch, scan):
    p = tmp_path / "huge.png"
    p.write_bytes(_png(scan))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)                # 400k pixels > 2 x 1000
    with pytest.raises(LoadError, match=r"^image too large"):
        load_file(p)


# -- scanned PDFs ----------------------------------------------------------------

def test_image_only_pdf_is_read_by_ocr_end_to_end(tmp_path, scan):
    doc = load_file(_pdf(tmp_path / "scan.pdf", [scan]))
    assert doc.format == "pdf" and _found(SCAN, doc.text)
    assert [page.page for page in doc.pages] == [1]
    assert doc.metadata["ocr_pages"] == "1" and float(doc.metadata["ocr_confidence"]) > ocr.LOW_CONFIDENCE


def test_mixed_pdf_keeps_the_scanned_page_number(tmp_path, scan):
    typed = "The holiday policy gives everyone twenty five days of leave a year."
    doc = load_file(_pdf(tmp_path / "mixed.pdf", [typed, scan]))
    assert [page.page for page in doc.pages] == [1, 2]
    assert doc.text.startswith(typed) and _found(SCAN, doc.text[doc.pages[1].start:])
    assert doc.metadata["ocr_pages"] == "2" and "ocr_failed" not in doc.metadata


def test_ingest_progress_names_each_page_read_by_ocr(tmp_path, scan, settings, fake_embedder):
    from ingest.pipeline import Ingestor

    folder = tmp_path / "scans"
    folder.mkdir()
    typed = "The holiday policy gives everyone twenty five days of leave a year."
    pdf = _pdf(folder / "mixed.pdf", [typed, scan, scan.crop((0, 0, 800, 400))])
    events = []
    report = Ingestor(settings, fake_embedder).ingest([folder], progress=events.append)
    assert report.count("added") == 1
    notes = [(e.path, e.action) for e in events if e.action.startswith("OCR")]
    assert notes == [(str(pdf), "OCR of page 2 of 3"), (str(pdf), "OCR of page 3 of 3")]
    assert events[-1].action == "added" and events[-1].done == 1


def test_ocr_failure_costs_only_that_page(tmp_path, monkeypatch, scan):
    monkeypatch.setattr(ocr, "_engine", None)
    monkeypatch.setattr(ocr, "_unavailable", "libGL.so.1: cannot open shared object file")
    typed = "The holiday policy gives everyone twenty five days of leave a year."
    doc = load_file(_pdf(tmp_path / "mixed.pdf", [typed, scan]))
    assert doc.text == typed and [page.page for page in doc.pages] == [1]
    assert doc.metadata == {"ocr_failed": "2"}
    with pytest.raises(LoadError, match=r"^OCR is not available: libGL\.so\.1: cannot open shared object file$"):
        load_file(_pdf(tmp_path / "scan.pdf", [scan]))


def test_pdf_without_text_or_images_keeps_its_reason(tmp_path):
    with pytest.raises(LoadError, match=r"^no extractable text \(scanned PDF\?\)$"):
        load_file(_pdf(tmp_path / "empty.pdf", [""]))


def test_pdf_whose_images_hold_no_text(tmp_path):
    with pytest.raises(LoadError, match=r"^no extractable text \(and OCR found none in its images\)$"):
        load_file(_pdf(tmp_path / "white.pdf", [Image.new("RGB", (600, 400), (250, 250, 250))]))
