"""The web page driven in headless Chromium (Debian's /usr/bin/chromium through Playwright)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.helpers.chromium import CHROMIUM, MISSING_REASON
from tests.helpers.media import write_image
from tests.serve.conftest import Server, collect_page_errors

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING_REASON),
]


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    outside: list[str] = []
    errors: list[str] = []
    # the page must load nothing from anywhere but the server itself (no CDN)
    pg.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
    collect_page_errors(pg, errors)
    yield pg
    context.close()
    assert outside == []
    assert errors == []


def test_search_click_through_and_screenshot(page: Any, server: Server, tmp_path: Path):
    page.goto(server.url + "/")
    page.wait_for_selector("#accounts option", state="attached")  # /api/info loaded
    assert page.title() == "nmodal search"
    page.fill("#query", "drone footage near the river")
    page.press("#query", "Enter")
    page.wait_for_selector("#results .result")
    results = page.locator("#results .result")
    assert results.count() == 20
    first = results.nth(0)
    assert re.match(r"#1", first.locator(".rank").inner_text())
    assert first.locator(".score").inner_text().startswith("score ")
    assert first.locator(".account").inner_text() in ("alpha", "bravo", "charlie", "delta")
    assert re.match(r"\d{4}-\d{2}-\d{2}", first.locator(".date").inner_text())
    assert first.locator(".badge").count() >= 1  # which artifacts matched
    assert "text → " in first.locator(".badge").nth(0).inner_text()
    assert "posts in" in page.inner_text("#status")
    # thumbnails are real images served by the API
    page.wait_for_function(
        "() => [...document.querySelectorAll('#results img.thumb')].some(i => i.complete && i.naturalWidth > 0)"
        " || !document.querySelector('#results img.thumb')"
    )
    page.screenshot(path=str(tmp_path / "text-query.png"), full_page=True)

    clicked = first.get_attribute("data-post-id")
    first.click()  # opens the post's detail view; "more like this" is a button there
    page.wait_for_function(f"() => location.hash.endsWith('open={clicked}')")
    page.wait_for_selector("#detail .like-all")
    page.click("#detail .like-all")
    page.wait_for_function(f"() => location.hash.startsWith('#like={clicked}')")
    assert page.locator("#detail").is_hidden()
    page.wait_for_function(
        "id => document.querySelector('#query-info strong')?.textContent === id "
        "&& document.querySelector('#query-info .qtext') !== null",
        arg=clicked,
    )
    page.wait_for_selector("#results .result")
    ids = page.locator("#results .result").evaluate_all("els => els.map(e => e.dataset.postId)")
    assert len(ids) == 20 and clicked not in ids
    page.screenshot(path=str(tmp_path / "more-like-this.png"), full_page=True)
    assert (tmp_path / "text-query.png").stat().st_size > 10_000
    assert (tmp_path / "more-like-this.png").stat().st_size > 10_000

    page.go_back()  # the detail view again
    page.wait_for_selector("#detail:not([hidden])")
    page.go_back()  # back to the text query
    page.wait_for_function("() => location.hash.startsWith('#q=')")
    page.wait_for_selector("#results .result")


def test_filters_and_file_drop(page: Any, server: Server, tmp_path: Path):
    page.goto(server.url + "/")
    page.wait_for_selector("#accounts option", state="attached")
    page.click("#filters summary")
    page.select_option("#accounts", ["bravo"])
    page.fill("#k", "5")
    page.set_input_files("#file-input", str(write_image(tmp_path / "query.png", index=9)))
    page.wait_for_function("() => document.querySelectorAll('#results .result').length > 0")
    accounts = page.locator("#results .account").all_inner_texts()
    assert 0 < len(accounts) <= 5 and set(accounts) == {"bravo"}
    assert "File query (image, png)" in page.inner_text("#query-info")
    page.screenshot(path=str(tmp_path / "file-query.png"), full_page=True)


def test_errors_are_shown(page: Any, server: Server, tmp_path: Path):
    page.goto(server.url + "/")
    page.wait_for_selector("#accounts option", state="attached")
    bad = tmp_path / "notes.txt"
    bad.write_text("not media at all")
    page.set_input_files("#file-input", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert "415" in page.inner_text("#error")
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * (300 * 1024))
    page.set_input_files("#file-input", str(big))
    page.wait_for_function("() => document.querySelector('#error').textContent.includes('limit')")


def test_post_text_is_not_html(page: Any, server: Server):
    """Post text goes in with textContent: markup in a post cannot run in the analyst's browser."""
    page.goto(server.url + "/")
    page.wait_for_selector("#accounts option", state="attached")
    page.evaluate(
        """() => renderResults({hits: [{rank: 1, post_id: "x", score: 1.0, matches: [],
            post: {text: "<img src=x onerror=window.pwned=1>", account: "<b>a</b>", artifacts: []}}]})"""
    )
    assert page.inner_text("#results .text") == "<img src=x onerror=window.pwned=1>"
    assert page.locator("#results .text img").count() == 0
    assert page.evaluate("() => window.pwned === undefined")


def test_audio_posts_have_a_player_and_a_waveform(page: Any, server: Server, tmp_path: Path):
    posts = pd.read_parquet(server.collection.dataset / "posts.parquet")
    audio = set(posts.loc[posts["audio_path"].notna(), "post_id"])
    page.goto(server.url + "/")
    page.wait_for_selector("#accounts option", state="attached")
    page.click("#filters summary")
    page.fill("#k", "500")
    page.fill("#query", "a voice message from the front")
    page.press("#query", "Enter")
    page.wait_for_selector("#results .result")
    with_player = page.locator("#results .result:has(audio)").evaluate_all(
        "els => els.map(e => e.dataset.postId)"
    )
    shown = page.locator("#results .result").evaluate_all("els => els.map(e => e.dataset.postId)")
    assert len(with_player) >= 5 and set(with_player) == audio & set(shown)
    item = page.locator(f"#results .result[data-post-id='{with_player[0]}']")
    player = item.locator("audio.player")
    assert player.get_attribute("preload") == "none"
    assert player.get_attribute("controls") is not None
    assert player.get_attribute("src") == f"/api/media?post_id={with_player[0]}&kind=audio"
    # audio-only posts show a waveform as their thumbnail
    item.scroll_into_view_if_needed()
    wave = item.locator("img.thumb.wave")
    assert wave.get_attribute("alt") == f"waveform of {with_player[0]}"
    page.wait_for_function(
        "img => img.complete && img.naturalWidth === 320", arg=wave.element_handle()
    )
    # using the player does not open "more like this"
    hash_before = page.evaluate("() => location.hash")
    player.click()
    player.press("Enter")
    assert page.evaluate("() => location.hash") == hash_before
    # the browser really reads the recording through the media route (1 s long)
    duration = player.evaluate(
        """a => new Promise((resolve, reject) => {
            a.addEventListener("loadedmetadata", () => resolve(a.duration), {once: true});
            a.addEventListener("error", () => reject(new Error("media error " + a.error.code)), {once: true});
            a.preload = "metadata";
            a.load();
        })"""
    )
    assert 0.9 < duration < 1.3
    item.screenshot(path=str(tmp_path / "audio-result.png"))


def test_lists_probed_control_on_an_approximate_index(browser: Any, server: Server, approx: Any):
    # the exact index: no such control
    context = browser.new_context()
    pg = context.new_page()
    pg.goto(server.url + "/")
    pg.wait_for_selector("#accounts option", state="attached")
    assert pg.locator("#nprobe-label").is_hidden()
    context.close()

    context = browser.new_context()
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    searches: list[str] = []
    pg.on("request", lambda r: searches.append(r.url) if "/api/search?" in r.url else None)
    pg.goto(approx.url + "/")
    pg.wait_for_selector("#accounts option", state="attached")
    pg.click("#filters summary")
    box = pg.locator("#nprobe")
    assert box.is_visible() and box.get_attribute("max") == "16"
    assert box.get_attribute("placeholder") == "1 (of 16)"  # the index's default
    status = pg.locator("#status")  # "... (approximate)" unless the search was exact
    pg.fill("#query", "convoy on the highway")
    pg.press("#query", "Enter")
    pg.wait_for_selector("#results .result")
    pg.wait_for_function("() => document.querySelector('#status').textContent.includes('posts in')")
    assert "nprobe=" not in searches[-1] and "approximate" in status.inner_text()
    box.fill("16")  # every list of an IVF-Flat index: exact
    pg.fill("#query", "convoy on the highway at night")
    pg.press("#query", "Enter")
    pg.wait_for_function("() => location.hash.includes('night')")
    pg.wait_for_function(
        "() => !document.querySelector('#query-info').textContent.includes('approximate')"
    )
    assert "nprobe=16" in searches[-1]
    context.close()
    assert errors == []
