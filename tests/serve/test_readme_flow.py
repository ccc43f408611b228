"""The README's flow in Chromium with the export OUTSIDE the dataset folder: ingest a
Telegram export, build an index, serve it; thumbnails load, audio plays, provenance shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nmodal.cli import main
from nmodal.features import make_synthetic, write_featureset
from nmodal.index import build_index
from nmodal.model import HeadConfig, ModelConfig, NModalModel
from nmodal.serve import create_app
from nmodal.sources import read_posts
from tests.helpers.chromium import ARGS, CHROMIUM, MISSING_REASON
from tests.helpers.media import write_audio, write_image, write_video
from tests.index.fixtures import fake_encoder_source
from tests.serve.conftest import run_server

pytestmark = [pytest.mark.browser, pytest.mark.skipif(not CHROMIUM.exists(), reason=MISSING_REASON)]

MODS = ("text", "image", "video", "audio")
DIMS = {"text": 24, "image": 32, "video": 40, "audio": 16}
T0 = 1709280000


def _export(root: Path) -> None:
    """A channel export: photos, a voice message, a video, a forward, a reply."""
    (root / "photos").mkdir(parents=True)
    (root / "voice_messages").mkdir()
    (root / "video_files").mkdir()
    msgs = []
    for i in range(1, 9):
        write_image(root / "photos" / f"photo_{i}.jpg", width=80, height=60, index=i)
        msg = {"id": i, "type": "message", "date_unixtime": str(T0 + 600 * i),
               "from": "Kyiv News", "from_id": "channel1001", "photo": f"photos/photo_{i}.jpg",
               "text": f"photo report number {i} from the front"}  # fmt: skip
        if i == 3:
            msg.update(forwarded_from="Origin Channel", forwarded_from_id="channel77")
        if i == 4:
            msg["reply_to_message_id"] = 3
        msgs.append(msg)
    write_audio(root / "voice_messages" / "voice.ogg", seconds=2.0, codec="libopus")
    msgs.append({"id": 20, "type": "message", "date_unixtime": str(T0 + 9000),
                 "file": "voice_messages/voice.ogg", "media_type": "voice_message",
                 "mime_type": "audio/ogg", "text": "voice note about the bridge"})  # fmt: skip
    write_video(root / "video_files" / "clip.mp4", num_frames=30, audio=True)
    msgs.append({"id": 21, "type": "message", "date_unixtime": str(T0 + 9600),
                 "file": "video_files/clip.mp4", "media_type": "video_file",
                 "mime_type": "video/mp4", "text": "video of the convoy"})  # fmt: skip
    chat = {"id": 1001, "name": "Kyiv News", "type": "public_channel", "messages": msgs}
    (root / "result.json").write_text(json.dumps(chat))


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("readme")
    export, dataset = tmp / "exports" / "ChatExport_2024", tmp / "data" / "ds"
    _export(export)
    argv = ["ingest", "telegram-export", str(export), "--out", str(dataset),
            "--username", "kyiv_news", "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    posts = read_posts(dataset, status="kept")
    assert len(posts) == 10 and not str(export).startswith(str(dataset))
    fs = make_synthetic(len(posts), modalities=MODS, dim=[DIMS[m] for m in MODS], seed=3)
    fs.post_ids = posts["post_id"].to_numpy(dtype=str)
    for m in ("image", "video", "audio"):
        fs.present[m] = posts[f"{m}_path"].notna().to_numpy() | (
            (m == "image") & posts["video_path"].notna().to_numpy()
        )
        fs.features[m][~fs.present[m]] = 0
    write_featureset(tmp / "store", fs)
    cfg = ModelConfig(modalities=list(MODS), input_dims=dict(DIMS),
                      head=HeadConfig(projection_dim=16),
                      encoders={m: dict(fs.encoders[m]) for m in MODS})  # fmt: skip
    NModalModel(cfg).save(tmp / "model")
    index = build_index(tmp / "model", tmp / "store", dataset, tmp / "index", progress=False)
    uv, thread, url = run_server(create_app(index, encoder_source=fake_encoder_source))
    try:
        yield url
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_readme_flow_media_and_provenance(served: str) -> None:
    from playwright.sync_api import sync_playwright

    statuses: dict[str, int] = {}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("response", lambda r: statuses.__setitem__(r.url, r.status))
            page.goto(served + "/")
            page.wait_for_selector("#accounts option", state="attached")
            page.fill("#query", "photo report from the front")
            page.press("#query", "Enter")
            page.wait_for_selector("#results .result")
            assert page.locator("#results .result").count() == 10
            page.wait_for_function(
                "() => [...document.querySelectorAll('#results img.thumb')].length >= 9 && "
                "[...document.querySelectorAll('#results img.thumb')].every(i => i.complete && i.naturalWidth > 0)"
            )
            thumbs = [u for u in statuses if "/api/thumbnail" in u]
            assert len(thumbs) >= 9 and all(statuses[u] == 200 for u in thumbs)
            duration = page.evaluate(
                """async () => {
                    const a = document.querySelector('#results audio[aria-label="audio of 1001/20"]');
                    a.preload = 'metadata'; a.load();
                    for (let i = 0; i < 100 && !(a.duration > 0); i++)
                        await new Promise(r => setTimeout(r, 100));
                    return a.duration;
                }"""
            )
            assert duration == pytest.approx(2.0, abs=0.3)
            text = page.inner_text("#results")
            assert "forwarded from Origin Channel" in text
            assert page.is_checked("#same")  # same-modality matching is the default
            # the forwarded post's detail view: its origin and its t.me link
            page.locator("#results .result", has_text="forwarded from Origin Channel").first.click()
            page.wait_for_selector("#detail a.tme")
            assert page.get_attribute("#detail a.tme", "href") == "https://t.me/kyiv_news/3"
            detail = page.inner_text("#detail")
            assert "Origin Channel" in detail and "channel77" in detail
        finally:
            browser.close()
    assert np.all([s < 400 for u, s in statuses.items() if "/api/" in u])
