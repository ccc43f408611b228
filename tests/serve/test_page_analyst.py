"""What an analyst meets on a real export, in headless Chromium: media that are missing or
undecodable say so in place, the ingest's notes show in the post view, a post id or t.me
link in the search box opens that post, forward filters, a video's own sound track plays
once, the post view keeps the keyboard focus, text can be selected without opening a
post, errors read as sentences, a text-only index offers no file drop, and the phone
layout leaves room for the text.

Screenshots land in ``$NMODAL_SCREENSHOTS`` when set (to look at), else in the test's tmp dir.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nmodal.index import build_index
from nmodal.serve import create_app
from tests.helpers.chromium import CHROMIUM, MISSING_REASON
from tests.index.fixtures import fake_encoder_source, make_collection
from tests.serve.conftest import collect_page_errors, serving

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING_REASON),
]

NOTE = "image: file missing from export (photos/photo_9.jpg)"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, pd.DataFrame]]:
    col = make_collection(
        tmp_path_factory.mktemp("analyst"), num_posts=80, seed=21, with_videos=True
    )
    table = col.dataset / "posts.parquet"
    posts = pd.read_parquet(table)
    n = len(posts)
    posts["post_id"] = posts["post_id"].astype(str)
    posts["channel_username"] = "kyiv_news"
    posts["channel_id"] = "1001"
    posts["message_id"] = [500 + i for i in range(n)]
    posts["url"] = [f"https://t.me/kyiv_news/{500 + i}" for i in range(n)]
    posts["forwarded_from"] = [("Рыбарь" if i % 4 == 0 else None) for i in range(n)]
    posts["notes"] = pd.Series([None] * n, dtype="string")
    posts["skipped_media"] = pd.Series([None] * n, dtype="string")
    posts["text"] = [
        ("Длинный текст поста " * 40 if i % 2 else "короткий пост") + f" №{i}" for i in range(n)
    ]
    posts.loc[posts.index[3], ["notes", "skipped_media"]] = [NOTE, "sticker"]
    # a video's sound track is its audio artifact (as ingest records a clip with sound)
    videos = posts["video_path"].notna()
    posts.loc[videos, "audio_path"] = posts.loc[videos, "video_path"]
    posts.to_parquet(table, index=False)
    # one photo no longer decodes (a broken download), one is gone
    with_image = posts.index[posts["image_path"].notna()]
    (col.dataset / posts.loc[with_image[0], "image_path"]).write_bytes(b"not a picture at all")
    index_dir = build_index(col.model, col.store, col.dataset, col.root / "index", progress=False)
    (col.dataset / posts.loc[with_image[1], "image_path"]).unlink()
    with serving(create_app(index_dir, encoder_source=fake_encoder_source)) as url:
        yield url, posts.set_index("post_id")


@pytest.fixture
def page(browser: Any, site: tuple[str, pd.DataFrame]) -> Iterator[Any]:
    url = site[0]
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    pg = ctx.new_page()
    errors: list[str] = []
    collect_page_errors(pg, errors)
    pg.goto(url + "/")
    pg.wait_for_selector("#accounts option", state="attached")
    yield pg
    ctx.close()
    assert errors == []


def _ids(page: Any) -> list[str]:
    return page.locator("#results .result").evaluate_all("els => els.map(e => e.dataset.postId)")


def _wait_results(page: Any) -> None:
    """Until the results of the query in the address are shown."""
    page.wait_for_function(
        "() => current.result !== null && current.key === queryKey(hashParams())"
        " && /\\d+ posts in \\d+ ms/.test(document.querySelector('#status').textContent)"
    )


def test_broken_and_missing_media_say_so_in_place(page: Any, site, shots: Path):
    url, posts = site
    with_image = [p for p in posts.index if pd.notna(posts.loc[p, "image_path"])]
    broken, gone = with_image[0], with_image[1]
    for pid, word in ((broken, "not an image"), (gone, "is missing")):
        page.goto(url + "/#q=" + "пост&k=80")
        _wait_results(page)
        card = page.locator(f"#results .result[data-post-id='{pid}']")
        card.scroll_into_view_if_needed()  # thumbnails load lazily, when in view
        box = card.locator(".thumb.broken")
        box.wait_for()
        assert box.inner_text() == "image unavailable"
        assert word in box.get_attribute("title"), box.get_attribute("title")
        assert "/tmp" not in box.get_attribute("title")
    page.goto(url + "/#open=" + gone.replace("/", "%2F"))
    page.wait_for_selector("#detail .media-broken")
    assert "missing" in page.inner_text("#detail .media-broken")
    page.screenshot(path=str(shots / "analyst-missing-media.png"))


def test_the_post_view_shows_the_ingest_notes(page: Any, site):
    url, posts = site
    pid = posts.index[3]
    page.goto(url + "/#open=" + pid.replace("/", "%2F"))
    page.wait_for_selector("#detail .media-notes")
    notes = page.inner_text("#detail .media-notes")
    assert NOTE in notes and "sticker" in notes
    assert page.locator("#detail tr[data-field='notes']").count() == 0  # not twice


def test_a_post_id_or_link_in_the_search_box_opens_that_post(page: Any, site):
    _, posts = site
    for ref, pid in (
        ("https://t.me/kyiv_news/510", posts.index[10]),
        (posts.index[12], posts.index[12]),
    ):
        page.fill("#query", ref)
        page.press("#query", "Enter")
        page.wait_for_function(
            "id => location.hash.includes('open=' + encodeURIComponent(id))", arg=pid
        )
        page.wait_for_selector("#detail:not([hidden]) .detail-actions")
        assert page.inner_text("#query-info").startswith("Posts like")
        assert pid not in _ids(page)  # more like it, the post itself left out
        page.keyboard.press("Escape")
        page.wait_for_selector("#detail", state="hidden")
    page.fill("#query", "https://t.me/kyiv_news/99999")  # no such post: a text search
    page.press("#query", "Enter")
    page.wait_for_function("() => location.hash.startsWith('#q=')")


def test_forward_filters(page: Any, site):
    _, posts = site
    page.click("#filters summary")
    page.select_option("#forwards", "only")
    page.fill("#query", "пост")
    page.press("#query", "Enter")
    _wait_results(page)
    ids = _ids(page)
    assert ids and all(posts.loc[p, "forwarded_from"] == "Рыбарь" for p in ids)
    assert "forwards=only" in page.evaluate("() => location.hash")
    page.select_option("#forwards", "none")
    page.press("#query", "Enter")
    page.wait_for_function("() => location.hash.includes('forwards=none')")
    _wait_results(page)
    assert all(pd.isna(posts.loc[p, "forwarded_from"]) for p in _ids(page))
    page.select_option("#forwards", "any")
    page.fill("#forwarded-from", "Рыбарь")
    page.press("#query", "Enter")
    page.wait_for_function("() => location.hash.includes('from=')")
    _wait_results(page)
    assert all(posts.loc[p, "forwarded_from"] == "Рыбарь" for p in _ids(page))
    page.reload()  # restored from the address, and visible
    page.wait_for_selector("#filters[open]")
    assert page.input_value("#forwarded-from") == "Рыбарь"


def test_a_video_plays_its_own_sound_once(page: Any, site):
    url, posts = site
    pid = next(p for p in posts.index if pd.notna(posts.loc[p, "video_path"]))
    page.goto(url + "/#open=" + pid.replace("/", "%2F"))
    page.wait_for_selector("#detail .detail-video")
    assert page.locator("#detail .detail-audio").count() == 0
    page.goto(url + "/#q=" + "пост&k=80")
    _wait_results(page)
    card = page.locator(f"#results .result[data-post-id='{pid}']")
    assert card.locator("audio.player").count() == 0
    assert card.locator(".media-links a").evaluate_all("as => as.map(a => a.textContent)") == [
        "open video"
    ]


def test_the_post_view_keeps_the_focus_and_text_can_be_selected(page: Any, site):

    page.fill("#query", "пост")
    page.press("#query", "Enter")
    _wait_results(page)
    first = page.locator("#results .result").nth(0)
    # selecting the text of a result (to copy it) does not open the post
    first.locator(".text").evaluate(
        """t => { const r = document.createRange(); r.selectNodeContents(t);
        const s = getSelection(); s.removeAllRanges(); s.addRange(r); }"""
    )
    first.locator(".text").click()  # the click that ends a drag-selection
    page.wait_for_timeout(200)
    assert "open=" not in page.evaluate("() => location.hash")
    page.evaluate("() => getSelection().removeAllRanges()")
    first.click()
    page.wait_for_selector("#detail:not([hidden]) .detail-actions")
    for _ in range(12):
        page.keyboard.press("Tab")
        assert page.evaluate(
            "() => document.getElementById('detail').contains(document.activeElement)"
        )
    page.keyboard.press("Shift+Tab")
    assert page.evaluate("() => document.getElementById('detail').contains(document.activeElement)")


def test_errors_read_as_sentences(page: Any, site):
    url, _ = site
    page.goto(url + "/#q=" + "x" * 10_001)
    page.wait_for_selector("#error:not([hidden])")
    text = page.inner_text("#error")
    assert text.startswith("Error 422: text:") and "xxxxxxxxxx" not in text, text
    assert "posts indexed" in page.inner_text("#status")  # the status line comes back
    assert page.get_attribute("#query", "maxlength") == "10000"
    page.goto(url + "/#q=x&since=2024-02-01&until=2024-01-01")
    page.wait_for_selector("#error:not([hidden])")
    assert "--since" not in page.inner_text("#error")
    page.goto(url + "/")
    page.fill("#query", "   ")
    page.press("#query", "Enter")
    assert "post id" in page.inner_text("#status")


def test_a_text_only_index_offers_no_file_drop(browser: Any, site):
    url, _ = site
    ctx = browser.new_context()
    pg = ctx.new_page()

    def text_only(route: Any) -> None:
        body = json.loads(route.fetch().text())
        body["query_kinds"] = ["text"]
        route.fulfill(json=body)

    pg.route("**/api/info", text_only)
    pg.goto(url + "/")
    pg.wait_for_selector("#accounts option", state="attached")
    assert pg.locator("#dropzone").is_hidden()
    ctx.close()


def test_the_phone_layout_leaves_room_for_the_text(browser: Any, site, shots: Path):
    url, _ = site
    ctx = browser.new_context(
        viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True
    )
    pg = ctx.new_page()
    pg.goto(url + "/#q=" + "пост")
    pg.wait_for_function(
        "() => /\\d+ posts in \\d+ ms/.test(document.querySelector('#status').textContent)"
    )
    assert pg.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    text_width = pg.locator("#results .result .text").first.evaluate("t => t.clientWidth")
    assert text_width >= 230, text_width
    assert pg.locator(".keys").is_hidden()
    # a long text ends after whole lines: the clamp is a whole number of lines
    long_text = pg.locator("#results .result .text").evaluate_all(
        "ts => ts.map(t => [t.clientHeight, parseFloat(getComputedStyle(t).lineHeight)])"
    )
    for height, line in long_text:
        assert abs(height / line - round(height / line)) < 0.05, (height, line)
    pg.screenshot(path=str(shots / "analyst-phone.png"))
    pg.locator("#results .result").first.click()
    pg.wait_for_selector("#detail:not([hidden]) .detail-actions")
    close = pg.locator("#detail-close").bounding_box()
    assert close["height"] < 50  # "Close ✕" on one line
    pg.screenshot(path=str(shots / "analyst-phone-detail.png"))
    ctx.close()
