"""The real exports in ``../shared/data`` ingest by default with every usable post kept and
their provenance in the posts table (skipped when that folder is absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nmodal.sources import ingest, read_telegram_export, read_telethon_ndjson
from nmodal.sources.telegram_export import _album_groups, message_text

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
EXPORTS = DATA / "telegram-exports"
CASES = ["trantor_library", "pachum_channel", "upon_path_salaf", "ensia_full_account"]

pytestmark = pytest.mark.skipif(not EXPORTS.is_dir(), reason="../shared/data is absent")


def _chats(data: dict) -> list[dict]:
    if "messages" in data:
        return [data]
    return [c for key in ("chats", "left_chats") for c in data.get(key, {}).get("list", [])]


def _usable(msg: dict, root: Path) -> bool:
    """Independent check: a non-service message with text or a media file present."""
    if msg.get("type") != "message":
        return False
    if message_text(msg.get("text")).strip():
        return True
    media = [msg.get("photo")]
    if msg.get("media_type") not in ("sticker",) and not str(msg.get("mime_type", "")).startswith(
        "application/"
    ):
        media.append(msg.get("file"))
    return any(isinstance(p, str) and (root / p).is_file() for p in media)


@pytest.fixture(scope="module", params=CASES)
def ingested(request, tmp_path_factory) -> tuple[str, pd.DataFrame, dict]:
    root = EXPORTS / request.param
    out = tmp_path_factory.mktemp(request.param)
    res = ingest(read_telegram_export(root), out, workers=0, progress=False)
    return request.param, res.posts, res.summary


def test_every_usable_message_is_kept(ingested) -> None:
    name, posts, summary = ingested
    root = EXPORTS / name
    data = json.loads((root / "result.json").read_text(encoding="utf-8"))
    kept = set(posts.loc[posts["status"] == "kept", "post_id"])
    by_album: dict[str, str] = {}
    for chat in _chats(data):
        for group in _album_groups([m for m in chat["messages"] if isinstance(m, dict)]):
            lead = next((m for m in group if message_text(m.get("text")).strip()), group[0])
            for m in group:
                by_album[f"{chat['id']}/{m['id']}"] = f"{chat['id']}/{lead['id']}"
    usable = [
        by_album[f"{chat['id']}/{m['id']}"]
        for chat in _chats(data)
        for m in chat["messages"]
        if _usable(m, root)
    ]
    assert usable and set(usable) <= kept
    assert summary["kept"] == len(kept) == len(set(usable))
    assert summary["posts"] == summary["kept"] + summary["dropped"]
    service = sum(m.get("type") == "service" for c in _chats(data) for m in c["messages"])
    assert summary["dropped_by_reason"].get("service message", 0) == service


def test_provenance_in_posts_table(ingested) -> None:
    name, posts, _ = ingested
    root = EXPORTS / name
    data = json.loads((root / "result.json").read_text(encoding="utf-8"))
    msgs = {f"{c['id']}/{m['id']}": m for c in _chats(data) for m in c["messages"]}
    table = posts.set_index("post_id")
    checked = 0
    for pid, row in table.iterrows():
        m = msgs[pid]
        got = None if pd.isna(row["forwarded_from"]) else row["forwarded_from"]
        assert got == (m.get("forwarded_from") or None), pid
        if "reply_to_message_id" in m:
            assert row["reply_to_message_id"] == m["reply_to_message_id"]
        if m.get("author"):
            assert row["author"] == m["author"]
        if m.get("from_id"):
            assert row["from_id"] == m["from_id"]
        chat, msg_id = pid.split("/")
        if int(msg_id) > 0:  # migrated group messages have negative ids and no link
            assert row["url"] == f"https://t.me/c/{chat}/{msg_id}"
        else:
            assert pd.isna(row["url"])
        checked += 1
    assert checked == len(table)
    if name == "pachum_channel":
        assert table["forwarded_from"].notna().sum() >= 280
    if name == "ensia_full_account":
        assert table["reply_to_message_id"].notna().sum() > 100
    if name == "trantor_library":
        assert table["author"].notna().sum() > 100
        assert table["reactions"].notna().any()


def test_trantor_albums_and_cjk_words(ingested) -> None:
    name, posts, summary = ingested
    if name != "trantor_library":
        pytest.skip("trantor only")
    table = posts.set_index("post_id")
    albums = table[table["media_type"] == "album"]
    assert len(albums) and albums["album_id"].notna().all()
    assert summary["skipped_kinds"] == {"sticker": 1, "poll": 1}
    assert summary["media_missing"]["image"] > 0


def test_telethon_dumps(tmp_path: Path) -> None:
    root = DATA / "telethon"
    records = []
    for f in sorted(root.glob("*.json")):
        records += read_telethon_ndjson(f, media_dir=root / "media")
    res = ingest(records, tmp_path, workers=0, progress=False)
    t = res.posts.set_index("post_id")
    # Telethon's default download name (photo_<UTC date>.jpg) is found
    assert t.loc["channel1774946085/7116", "image_path"].endswith("photo_2022-05-08_16-41-19.jpg")
    assert t.loc["channel1774946085/7116", "reply_to_message_id"] == 7114
    assert t.loc["channel1774946085/7117", "views"] == 153
    album = t.loc["channel1774946085/7104"]  # 6 photos, one caption, grouped_id
    assert album["media_type"] == "album" and album["album_id"] == "13216200814180210"
    assert album["notes"].count("media file not downloaded") == 1  # one note per cause
    assert "x6" in album["notes"]
    assert res.summary["dropped_by_reason"] == {"service message": 1}
    assert res.summary["kept"] == len(t) - 1
