"""The HTML report in headless Chromium: no console errors, no failed loads, a screenshot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nmodal.report import ReportFiles
from tests.helpers.chromium import ARGS, CHROMIUM, MISSING_REASON

pytestmark = [
    pytest.mark.browser,
    pytest.mark.xdist_group("report"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING_REASON),
]


def test_report_renders_in_chromium_without_errors(rendered: ReportFiles, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    problems: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on(
                "console",
                lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(rendered.html.resolve().as_uri(), wait_until="load")
            broken: Any = page.evaluate(
                "Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).length"
            )
            num_images = page.evaluate("document.images.length")
            height = page.evaluate("document.body.scrollHeight")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert problems == []
    # the page loads nothing but itself (images are data: URIs)
    assert [u for u in requests if not u.startswith(("file://", "data:"))] == []
    assert num_images == 12 and broken == 0
    assert height > 2000
    assert shot.stat().st_size > 50_000
