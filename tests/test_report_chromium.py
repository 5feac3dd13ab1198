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
  out.textContent = JSON.stringify({tables: document.querySelectorAll('table').length,
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


def render(page: Path, tmp_path: Path, extra: str = "") -> tuple[dict[str, Any], list[str]]:
    probed = tmp_path / f"probed-{page.name}"
    probed.write_text(page.read_text().replace("<head>", "<head>" + PROBE + extra, 1))
    done = subprocess.run([browser(), "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
                           "--virtual-time-budget=10000", f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                           probed.as_uri()], capture_output=True, text=True, timeout=120)
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
    broken = tmp_path / "broken.html"
    broken.write_text((written / "numpy-cpu.html").read_text().replace("data:image/png;base64,iVBOR",
                                                                      "data:image/png;base64,AAAA", 1))
    seen, console = render(broken, tmp_path, "<script>console.error('planted');</script>")
    assert seen["rendered"] == seen["images"] - 1
    assert any("planted" in line for line in console)
