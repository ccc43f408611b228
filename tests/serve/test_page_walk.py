"""An analyst's walk through the search page in headless Chromium, on multilingual posts
with Telegram provenance: search in Russian and Chinese (drawn with real glyphs, not
boxes), open a post, follow its t.me link, export, load more, reload the URL, keyboard
only, dark mode.

Screenshots land in ``$NMODAL_SCREENSHOTS`` when set (to look at), else in the test's tmp dir.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from nmodal.index import build_index
from nmodal.serve import create_app
from tests.helpers.chromium import CHROMIUM, MISSING_REASON
from tests.helpers.media import write_image
from tests.index.fixtures import fake_encoder_source, make_collection
from tests.serve.conftest import collect_page_errors, serving

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING_REASON),
]

RUSSIAN = "Колонна техники на трассе у реки, съёмка с дрона"
CHINESE = "河边公路上的车队，无人机拍摄的画面"
ARABIC = "قافلة على الطريق السريع قرب النهر"
TEXTS = [RUSSIAN, CHINESE, ARABIC, "Convoy on the highway near the river 🚚🔥"]


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, pd.DataFrame]]:
    """A served index of 120 posts in four scripts, every post with a t.me link and some
    forwarded, replies or in albums (provenance columns as the post schema names them)."""
    col = make_collection(
        tmp_path_factory.mktemp("walk"), num_posts=120, seed=11, with_videos=True, with_audio=True
    )
    table = col.dataset / "posts.parquet"
    posts = pd.read_parquet(table)
    n = len(posts)
    posts["text"] = [f"{TEXTS[(i // 4) % 4]} №{i}" for i in range(n)]  # every script, every account
    posts["channel_username"] = [f"{a}_news" for a in posts["account"]]
    posts["message_id"] = [1000 + i for i in range(n)]
    posts["url"] = [f"https://t.me/{u}/{1000 + i}" for i, u in enumerate(posts["channel_username"])]
    posts["forwarded_from"] = [("Рыбарь" if i % 3 == 0 else None) for i in range(n)]
    posts["reply_to_message_id"] = [(str(990 + i) if i % 5 == 0 else None) for i in range(n)]
    posts["album_id"] = [(f"g{i // 2}" if i % 7 < 2 else None) for i in range(n)]
    posts.to_parquet(table, index=False)
    index_dir = build_index(col.model, col.store, col.dataset, col.root / "index", progress=False)
    app = create_app(index_dir, encoder_source=fake_encoder_source)
    with serving(app) as url:
        yield url, posts.set_index("post_id")


@pytest.fixture
def context(browser: Any, walk: tuple[str, pd.DataFrame]) -> Iterator[Any]:
    url = walk[0]
    ctx = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    outside: list[str] = []
    errors: list[str] = []

    ctx.on("page", lambda pg: collect_page_errors(pg, errors))
    ctx.on("request", lambda r: None if r.url.startswith((url, "blob:")) else outside.append(r.url))
    # nothing leaves this machine: t.me answers from here, so the link can be followed
    ctx.route("https://t.me/**", lambda route: route.fulfill(body="<p>t.me stand-in</p>"))
    yield ctx
    ctx.close()
    assert errors == []
    assert all(u.startswith("https://t.me/") for u in outside), outside


def _ids(page: Any) -> list[str]:
    return page.locator("#results .result").evaluate_all("els => els.map(e => e.dataset.postId)")


def _search(page: Any, text: str) -> None:
    page.fill("#query", text)
    page.press("#query", "Enter")
    page.wait_for_function(
        "t => document.querySelector('#query-info .qtext')?.textContent === t "
        "&& document.querySelector('#status').textContent.includes('posts in')",
        arg=text,
    )


# Glyph check: a character no font covers is drawn as the fallback box (.notdef). Its
# advance is measured with a code point from a private-use plane that no font has; a
# script drawn with real glyphs has other advances (CJK ideographs: a full em).
GLYPH_WIDTHS = """(selector) => {
  const node = document.querySelector(selector);
  const style = getComputedStyle(node);
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = `${style.fontSize} ${style.fontFamily}`;
  const box = ctx.measureText("\\u{10FFFD}").width;
  const chars = [...node.textContent].filter((c) => /[\\p{L}]/u.test(c));
  return {box, widths: chars.map((c) => [c, ctx.measureText(c).width]),
          family: style.fontFamily};
}"""


def _platform_fonts(page: Any, selector: str) -> dict[str, int]:
    """The fonts Chromium really drew ``selector``'s text with: family -> glyph count."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return {f["familyName"]: f["glyphCount"] for f in fonts}


def _assert_no_tofu(page: Any, selector: str, script_font: str) -> None:
    m = page.evaluate(GLYPH_WIDTHS, selector)
    assert m["widths"], f"no letters in {selector}"
    boxes = [c for c, w in m["widths"] if abs(w - m["box"]) < 0.01]
    assert boxes == [], f"drawn as boxes ({m['box']:.2f}px wide): {''.join(boxes)}"
    fonts = _platform_fonts(page, selector)
    assert any(script_font in family for family in fonts), fonts


def _post_row(posts: pd.DataFrame, post_id: str) -> pd.Series:
    return posts.loc[post_id]


def test_analyst_walk(context: Any, walk: tuple[str, pd.DataFrame], shots: Path, tmp_path: Path):
    url, posts = walk
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_selector("#accounts option", state="attached")

    # --- Russian: the query, the results and the filters
    page.click("#filters summary")
    page.select_option("#accounts", ["bravo", "delta"])
    page.fill("#since", "2024-01-20")
    _search(page, "колонна техники у реки")
    ids = _ids(page)
    assert len(ids) == 20
    assert {posts.loc[i, "account"] for i in ids} <= {"bravo", "delta"}
    assert all(str(posts.loc[i, "date"])[:10] >= "2024-01-20" for i in ids)
    ru = next(i for i in ids if posts.loc[i, "text"].startswith(RUSSIAN))
    _assert_no_tofu(page, f"#results .result[data-post-id='{ru}'] .text", "DejaVu")
    _assert_no_tofu(page, "#query-info .qtext", "DejaVu")
    page.screenshot(path=str(shots / "walk-russian.png"), full_page=False)

    # --- Chinese
    _search(page, "河边的车队")
    assert "%E6%B2%B3" in page.evaluate("() => location.hash")  # the query is in the URL
    zh = next(i for i in _ids(page) if posts.loc[i, "text"].startswith(CHINESE))
    zh_text = f"#results .result[data-post-id='{zh}'] .text"
    _assert_no_tofu(page, zh_text, "Noto Sans CJK")
    _assert_no_tofu(page, "#query-info .qtext", "Noto Sans CJK")
    ar = next((i for i in _ids(page) if posts.loc[i, "text"].startswith(ARABIC)), None)
    if ar is not None:
        _assert_no_tofu(page, f"#results .result[data-post-id='{ar}'] .text", "DejaVu")
        assert (
            page.locator(f"#results .result[data-post-id='{ar}'] .text").evaluate(
                "e => getComputedStyle(e).direction"
            )
            == "rtl"
        )
    page.locator(zh_text).scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "walk-chinese.png"), full_page=False)

    # --- reload the URL: the same results and the same filters
    before = _ids(page)
    hash_before = page.evaluate("() => location.hash")
    fresh = context.new_page()
    fresh.goto(url + "/" + hash_before)
    fresh.wait_for_function(
        "n => document.querySelectorAll('#results .result').length === n", arg=len(before)
    )
    assert _ids(fresh) == before
    assert fresh.input_value("#query") == "河边的车队"
    assert fresh.input_value("#since") == "2024-01-20"
    assert fresh.eval_on_selector("#accounts", "s => [...s.selectedOptions].map(o => o.value)") == [
        "bravo",
        "delta",
    ]
    assert fresh.locator("#filters").get_attribute("open") is not None
    fresh.close()

    # --- keyboard: j/k move, Enter opens the detail view, Esc closes it, / focuses search
    page.locator("#query").blur()
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.evaluate("() => document.activeElement.dataset.postId") == before[0]
    page.keyboard.press("j")
    second = page.evaluate("() => document.activeElement.dataset.postId")
    assert second == before[1]
    page.keyboard.press("Enter")
    page.wait_for_selector("#detail:not([hidden]) .detail-text")
    assert page.evaluate("() => location.hash").endswith("open=" + second.replace("/", "%2F"))
    post = _post_row(posts, second)
    assert page.inner_text("#detail .detail-text") == post["text"]
    assert page.inner_text("#detail-title").startswith(post["account"])
    assert str(post["date"])[:10] in page.inner_text("#detail-title")
    page.keyboard.press("Escape")
    page.wait_for_selector("#detail", state="hidden")
    assert "open=" not in page.evaluate("() => location.hash")
    assert page.evaluate("() => document.activeElement.dataset.postId") == second
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "query"

    # --- a post with provenance and media: every artifact plays, the t.me link is right
    rich = next(
        p
        for p in posts.index
        if pd.notna(posts.loc[p, "forwarded_from"])
        and pd.notna(posts.loc[p, "reply_to_message_id"])
        and posts.loc[p, "account"] in ("bravo", "delta")
    )
    page.goto(url + "/" + hash_before + "&open=" + rich.replace("/", "%2F"))
    page.wait_for_selector("#detail:not([hidden]) table.fields")
    fields = page.eval_on_selector_all(
        "#detail tr[data-field]",
        "rows => Object.fromEntries(rows.map(r => "
        "[r.dataset.field, r.querySelector('td').textContent]))",
    )
    assert fields.get("forwarded_from") == "Рыбарь", (rich, fields)
    assert fields["reply_to_message_id"] == posts.loc[rich, "reply_to_message_id"]
    assert fields["channel_username"] == posts.loc[rich, "channel_username"]
    link = page.locator("#detail a.tme")
    assert link.get_attribute("href") == posts.loc[rich, "url"]
    assert link.get_attribute("href").startswith("https://t.me/")
    assert "noopener" in link.get_attribute("rel")
    with context.expect_page() as popup:
        link.click()
    original = popup.value
    original.wait_for_load_state()
    assert original.url == posts.loc[rich, "url"]
    original.close()
    page.screenshot(path=str(shots / "walk-detail.png"), full_page=False)

    for media in ("audio", "image", "video"):
        with_media = posts.index[posts[f"{media}_path"].notna()][0]
        page.goto(url + "/#open=" + with_media.replace("/", "%2F"))
        page.wait_for_selector("#detail:not([hidden]) .detail-actions")
        if media == "image":
            page.wait_for_function(
                "() => { const i = document.querySelector('#detail .detail-image');"
                " return i && i.complete && i.naturalWidth > 0; }"
            )
        else:
            duration = page.locator(f"#detail .detail-{media}").evaluate(
                """a => new Promise((resolve, reject) => {
                    if (a.readyState >= 1) return resolve(a.duration);
                    a.addEventListener("loadedmetadata", () => resolve(a.duration), {once: true});
                    a.addEventListener("error", () => reject(new Error("media error")), {once: true});
                })"""
            )
            assert duration > 0.5
        # "more like this" per indexed artifact (this index has text, image and video)
        buttons = page.locator("#detail .like-artifact").evaluate_all(
            "bs => bs.map(b => b.dataset.artifact)"
        )
        assert (media in buttons) is (media != "audio")
    # the post's own video file is the query
    page.click("#detail .like-artifact[data-artifact='video']")
    page.wait_for_function(
        "() => document.querySelector('#status').textContent.includes('posts in')"
    )
    assert "its video only" in page.inner_text("#query-info")
    assert page.locator("#detail").is_hidden() and _ids(page)
    assert "artifact=video" in page.evaluate("() => location.hash")

    # --- more results, then export exactly what is shown
    page.goto(url + "/")
    page.wait_for_selector("#accounts option", state="attached")
    _search(page, "convoy near the river")
    first_page = _ids(page)
    assert len(first_page) == 20
    page.click("#load-more")
    page.wait_for_function("() => document.querySelectorAll('#results .result').length === 40")
    shown = _ids(page)
    assert shown[:20] == first_page and len(set(shown)) == 40
    with page.expect_download() as download:
        page.click("#export-csv")
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.suffix == ".csv"
    with saved.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["post_id"] for r in rows] == shown  # one row per result, in rank order
    assert [int(r["rank"]) for r in rows] == list(range(1, 41))
    assert rows[0]["url"] == posts.loc[shown[0], "url"]
    assert rows[0]["text"] == posts.loc[shown[0], "text"]
    assert json.loads(rows[0]["query"]) == {"kind": "text", "text": "convoy near the river"}
    assert json.loads(rows[0]["settings"])["k"] == 40
    with page.expect_download() as download:
        page.click("#export-json")
    doc = json.loads(Path(download.value.path()).read_text())
    assert doc["query"] == {"kind": "text", "text": "convoy near the river"}
    assert doc["settings"]["collate"] == "max" and doc["settings"]["include_same"] is True
    assert [h["post_id"] for h in doc["hits"]] == shown

    # --- state is cleared between queries: an upload empties the text box, a rejected file
    # leaves no stale results under its error
    page.set_input_files("#file-input", str(write_image(tmp_path / "photo.png", index=3)))
    page.wait_for_function(
        "() => document.querySelector('#query-info').textContent.includes('image, png')"
    )
    assert page.input_value("#query") == ""
    assert "file=photo.png" in page.evaluate("() => location.hash")
    bad = tmp_path / "notes.txt"
    bad.write_text("not media")
    page.set_input_files("#file-input", str(bad))
    page.wait_for_selector("#error:not([hidden])")
    assert "415" in page.inner_text("#error")
    assert page.locator("#results .result").count() == 0
    assert page.locator("#toolbar").is_hidden()
    _search(page, "колонна")
    assert page.locator("#error").is_hidden()

    # --- dark mode follows the system setting
    page.emulate_media(color_scheme="dark")
    background = page.evaluate("() => getComputedStyle(document.documentElement).backgroundColor")
    red, green, blue = (int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3])
    assert max(red, green, blue) < 60, background
    page.screenshot(path=str(shots / "walk-dark.png"), full_page=False)
    page.emulate_media(color_scheme="light")
    background = page.evaluate("() => getComputedStyle(document.documentElement).backgroundColor")
    assert background == "rgb(246, 247, 249)"


def test_detail_view_without_provenance(context: Any, walk: tuple[str, pd.DataFrame]):
    """A post whose collection records nothing beyond text says so instead of breaking."""
    url, _ = walk
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_selector("#accounts option", state="attached")
    page.evaluate(
        """() => { current.params = new URLSearchParams("q=x"); current.describe = {kind: "text"};
        current.result = {hits: [], exact: true}; }"""
    )
    rows = page.evaluate(
        "() => fieldRows({post_id: 'a/1', text: 'hi', account: null, urls: {}, artifacts: ['text']})"
    )
    assert rows == []
    assert page.evaluate("() => postLink({url: 'javascript:alert(1)'})") is None
    assert page.evaluate("() => postLink({channel_username: 'abc', message_id: 5})") == (
        "https://t.me/abc/5"
    )
    assert page.evaluate("() => csvCell('=HYPERLINK(\"x\")')") == '"\'=HYPERLINK(""x"")"'
