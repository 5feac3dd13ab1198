"""The HTML pages open in a real browser: headless Chromium renders every table and image, with no console message.

A probe script is added to a copy of the page (the report itself has no script): on load
it counts tables and decoded images (naturalWidth > 0) and writes them into the DOM, which
`--dump-dom` prints.  Chromium logs every console message as `INFO:CONSOLE`, which the test
reads from stderr.  CI installs Debian's chromium (.ci/run) and sets NNCONFORM_REQUIRE_CHROMIUM,
so there a missing browser fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from nnconform.conformance.report import html as report

from .test_report_pages import write_run

PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message || e.type)), true);
window.addEventListener('load', () => {
  const imgs = [...document.images];
  const out = document.createElement('pre');
  out.id = 'probe';
  const paint = performance.getEntriesByType('paint').find(e => e.name === 'first-contentful-paint');
  out.textContent = JSON.stringify({width: document.documentElement.scrollWidth, viewport: window.innerWidth,
    paint_ms: paint ? paint.startTime : null, tables: document.querySelectorAll('table').length,
    cells: document.querySelectorAll('td').length, images: imgs.length,
    rendered: imgs.filter(i => i.complete && i.naturalWidth > 0).length, errors: window.__errors});
  document.body.appendChild(out);
});
</script>"""


def browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("NNCONFORM_REQUIRE_CHROMIUM"):
        pytest.fail("headless Chromium is required here and not installed (Debian: apt-get install chromium)")
    pytest.skip("no Chromium on this machine (Debian: apt-get install chromium); CI installs it")


def render(page: Path, tmp_path: Path, extra: str = "", width: int = 1400) -> tuple[dict[str, Any], list[str]]:
    probed = page.parent / f"probed-{tmp_path.name}-{page.name}"        # beside the page: its figures are relative links
    # Eager in the copy: "load" then waits for every figure (the page itself loads them lazily).
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE + extra, 1).replace(' loading="lazy"', ""))
    done = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=10000", f"--window-size={width},900", f"--user-data-dir={tmp_path / 'profile'}",
                           "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"the page did not load (exit {done.returncode}): {done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    return json.loads(found.group(1).replace("&quot;", '"')), console


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pages")
    write_run(d, "numpy")
    write_run(d, "torch")
    report.write([d], d)
    return d


@pytest.mark.parametrize("name", ["numpy-cpu.html", "merged.html"])
def test_the_page_renders_its_tables_and_images_with_no_console_message(written: Path, tmp_path: Path, name: str) -> None:
    seen, console = render(written / name, tmp_path)
    source = (written / name).read_text()
    assert seen["tables"] == source.count("<table>") >= 5 and seen["cells"] == source.count("<td") > 30
    assert seen["images"] >= 1 and seen["rendered"] == seen["images"]
    assert seen["errors"] == [] and console == []


def test_the_probe_sees_a_broken_image_and_a_console_error(written: Path, tmp_path: Path) -> None:
    broken = written / "broken.html"
    broken.write_text((written / "numpy-cpu.html").read_text().replace('src="numpy-cpu.figures/', 'src="missing/', 1))
    seen, console = render(broken, tmp_path, "<script>console.error('planted');</script>")
    assert seen["rendered"] == seen["images"] - 1
    assert any("planted" in line for line in console)


def screenshot(page: Path, out: Path, width: int, tmp_path: Path) -> Path:
    subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={width},1800",
                    f"--user-data-dir={tmp_path / 'shots'}", f"--screenshot={out}", page.as_uri()],
                   capture_output=True, text=True, timeout=120)
    return out


@pytest.mark.parametrize("width", [1400, 390])          # a desktop and a phone
def test_the_page_reads_at_desktop_and_phone_width(written: Path, tmp_path: Path, width: int) -> None:
    """The page never needs sideways scrolling (wide tables scroll inside themselves), and the screenshot
    is kept: under $NNCONFORM_SCREENSHOTS when set (CI can keep it), else beside the test's files."""
    seen, console = render(written / "numpy-cpu.html", tmp_path, width=width)
    # Headless Chromium lays out no narrower than 500 px; the screenshot below is taken at the width itself.
    assert seen["viewport"] <= max(width, 500) and seen["width"] <= seen["viewport"] and console == []
    keep = Path(os.environ.get("NNCONFORM_SCREENSHOTS") or tmp_path)
    keep.mkdir(parents=True, exist_ok=True)
    shot = screenshot(written / "numpy-cpu.html", keep / f"report-{width}px.png", width, tmp_path)
    from PIL import Image
    with Image.open(shot) as image:
        assert image.size == (width, 1800) and len(image.convert("L").getcolors(maxcolors=1 << 16) or []) > 8     # drawn, not blank
