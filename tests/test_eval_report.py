"""The eval HTML report: one self-contained file, every text escaped, and it renders in a real browser."""

from __future__ import annotations

import shutil
import struct
import subprocess
import zlib
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from llm_orchestrator.classification import report_html
from llm_orchestrator.classification.evaluation import Prediction, VariantReport, rank

HOSTILE_NAME = "B'</svg><script>alert(1)</script>"
HOSTILE_IDS = ('<img src="http://evil.example/x.png">', '"><a href="https://evil.example/">click</a>')
ODD_LABEL = "<i>bug</i>"  # a label that is not a category, with markup in it
# Elements that fetch or run something; none may appear.
FETCHING_TAGS = {
    "script",
    "link",
    "img",
    "iframe",
    "object",
    "embed",
    "image",
    "use",
    "audio",
    "video",
    "source",
    "input",
    "form",
    "base",
    "meta-refresh",
    "foreignobject",
}
URL_ATTRIBUTES = {"src", "href", "xlink:href", "srcset", "action", "poster", "data", "background"}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
WINDOW = (1200, 1600)
MIN_COLOURS = 40  # a blank page has 1; the report's charts and tables give hundreds


class Collector(HTMLParser):
    """Every start tag with its attributes, every text, every <style> body."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)


def reports() -> list[VariantReport]:
    def variant(name, rows, cost, models):
        preds = [
            Prediction(sid, label, pred, conf, stage, model, Decimal(cost), "signals-v2")
            for sid, label, pred, conf, stage, model in rows
        ]
        return VariantReport(
            name,
            {
                "provider": "openai",
                "models": models,
                "accept_at": [0.8][: len(models) - 1],
                "prompt_version": "signals-v2",
                "json_mode": False,
                "batch_size": 10,
                "keyword_stage": True,
            },
            preds,
            [2.0, 3.5, 9.0],
            4000,
            3000,
        )

    rows_a = [
        ("a1", "bug_report", "bug_report", 0.95, "keyword", None),
        ("a2", "churn_risk", "churn_risk", 0.9, "llm", "gpt-6-luna"),
        (HOSTILE_IDS[0], "feature_request", "general_feedback", 0.6, "llm", "gpt-6-sol"),
        (HOSTILE_IDS[1], ODD_LABEL, "bug_report", 0.7, "llm", "gpt-6-sol"),
        ("a5", "expansion_signal", "expansion_signal", 0.9, "cache", "gpt-6-luna"),
        ("a6", "general_feedback", "general_feedback", 0.9, "prefilter", None),
    ]
    rows_b = [(sid, label, label, 0.9, "llm", "gpt-6-sol") for sid, label, *_ in rows_a]
    return rank(
        [
            variant('A<b>&"quote"', rows_a, "0.0001", ["gpt-6-luna", "gpt-6-sol"]),
            variant(HOSTILE_NAME, rows_b, "0.002", ["gpt-6-sol"]),
        ]
    )


def render() -> str:
    return report_html.render(reports(), source="labelled <dev>.jsonl", tolerance_pp=1.0)


def test_report_is_self_contained_and_fetches_nothing():
    page = Collector()
    page.feed(render())
    tags = {tag for tag, _ in page.tags}
    assert not tags & FETCHING_TAGS
    for tag, attrs in page.tags:
        assert not set(attrs) & URL_ATTRIBUTES, (tag, attrs)
        assert "url(" not in (attrs.get("style") or ""), (tag, attrs)
    css = "".join(page.styles)
    assert css and "url(" not in css and "@import" not in css and "@font-face" not in css


def test_every_text_from_the_data_is_escaped_and_shown_as_text():
    html_text = render()
    assert "<script" not in html_text and "<img" not in html_text and "<i>" not in html_text
    page = Collector()
    page.feed(html_text)
    text = "\n".join(page.text)
    for value in (*HOSTILE_IDS, HOSTILE_NAME, 'A<b>&"quote"', ODD_LABEL, "labelled <dev>.jsonl"):
        assert value in text, value


def test_report_has_every_variant_and_every_chart():
    page = Collector()
    page.feed(render())
    text = "\n".join(page.text)
    svgs = [attrs.get("aria-label", "") for tag, attrs in page.tags if tag == "svg"]
    assert len(svgs) == 3 + 2  # scatter, stage mix, F1 bars, one heatmap per variant
    assert any("cost per 1,000 signals against accuracy" in s for s in svgs)
    assert any("share of signals decided by each stage" in s for s in svgs)
    assert any("F1 per class" in s for s in svgs)
    for name in ('A<b>&"quote"', HOSTILE_NAME):
        assert f"confusion matrix of {name}" in svgs
        assert text.count(name) >= 4  # summary, scatter, stage mix, heatmap title, …
    for stage in ("keyword", "cache", "prefilter", "llm:gpt-6-luna", "llm:gpt-6-sol"):
        assert stage in text
    assert "percentage point" in text and "keyword table" in text


# -- a real browser -----------------------------------------------------------------------------------


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _pixels(png: bytes) -> tuple[int, int, set[bytes]]:
    """Width, height and the set of distinct colours of an 8-bit RGB/RGBA PNG (zlib only)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, body = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
    assert header is not None
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0, header
    bpp = 3 if colour_type == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(idat)
    prev, colours = bytearray(stride), set()
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride) if kind else ():
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            if kind == 1:
                line[i] = (line[i] + a) & 255
            elif kind == 2:
                line[i] = (line[i] + b) & 255
            elif kind == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            else:
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        colours.update(bytes(line[i : i + 3]) for i in range(0, stride, bpp))
        prev = line
    return width, height, colours


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (scripts/ensure-chromium installs it)")
def test_report_renders_in_headless_chromium(tmp_path):
    report = tmp_path / "report.html"
    report.write_text(render(), encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [
        _chromium(),
        *CHROMIUM_FLAGS,
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={shot}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        report.resolve().as_uri(),
    ]
    done = subprocess.run(
        cmd, capture_output=True, timeout=120, cwd=tmp_path, env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"}
    )
    assert shot.exists(), done.stderr[-2000:]
    width, height, colours = _pixels(shot.read_bytes())
    assert (width, height) == WINDOW
    assert len(colours) > MIN_COLOURS, f"{len(colours)} distinct colours: blank page?"
    first_variant = report_html.VARIANT_COLOURS[0]
    assert bytes.fromhex(first_variant[1:]) in colours  # the first variant's bars and swatches were drawn
    assert bytes.fromhex(report_html.STAGE_COLOURS["keyword"][1:]) in colours  # the stage mix was drawn
