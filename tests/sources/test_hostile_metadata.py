"""Malformed metadata costs only its record; media outside the named root are never read."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from nmodal.sources import (
    count_words,
    ingest,
    read_posts,
    read_posts_manifest,
    read_telegram_export,
    read_telethon_ndjson,
)
from tests.helpers.media import write_image

LONG = "Column of armoured vehicles moving towards the city at dawn"


def _msg(i: int, **kw) -> dict:
    return {"id": i, "type": "message", "date": "2024-01-01T00:00:00",
            "date_unixtime": str(1704067200 + kw.pop("dt", 60 * i)), "text": kw.pop("text", ""), **kw}  # fmt: skip


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "secret"
    secret.mkdir()
    write_image(secret / "passwd.jpg")
    return secret / "passwd.jpg"


def test_export_paths_outside_the_export_are_refused(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "export"
    (root / "photos").mkdir(parents=True)
    write_image(root / "photos" / "ok.jpg")
    os.symlink(outside, root / "photos" / "link.jpg")
    os.symlink(root / "photos" / "ok.jpg", root / "photos" / "inner.jpg")
    messages = [
        _msg(1, photo="photos/ok.jpg"),
        _msg(2, photo="../secret/passwd.jpg", text=LONG),
        _msg(3, photo=str(outside)),
        _msg(4, photo="photos/link.jpg"),
        _msg(5, photo="photos/inner.jpg"),  # a symlink that stays inside is fine
        _msg(6, photo="photos/ok\x00.jpg"),
    ]
    (root / "result.json").write_text(json.dumps({"id": 5, "name": "c", "type": "public_channel",
                                                  "messages": messages}))  # fmt: skip
    res = ingest(read_telegram_export(root), tmp_path / "ds", workers=0, progress=False)
    t = res.posts.set_index("post_id")
    assert t.loc["5/1", "image_path"] == str((root / "photos" / "ok.jpg").resolve())
    assert t.loc["5/5", "image_path"] == str((root / "photos" / "ok.jpg").resolve())
    for pid in ("5/2", "5/3", "5/4", "5/6"):
        assert pd.isna(t.loc[pid, "image_path"]), pid
        assert "escapes the media folder" in t.loc[pid, "notes"] or "NUL" in t.loc[pid, "notes"]
    assert t.loc["5/2", "status"] == "kept"  # its text is still a post
    assert t.loc["5/3", "status"] == "dropped"
    assert (t["media_root"] == str(root.resolve())).all()
    assert not any(str(outside.parent) in str(p) for p in t["image_path"].dropna())


def test_manifest_and_ndjson_paths_outside_are_refused(tmp_path: Path, outside: Path) -> None:
    folder = tmp_path / "coll"
    folder.mkdir()
    write_image(folder / "a.jpg")
    rows = [{"post_id": "1", "image_path": "a.jpg"}, {"post_id": "2", "image_path": str(outside)},
            {"post_id": "3", "image_path": "../secret/passwd.jpg", "text": LONG}]  # fmt: skip
    (folder / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    recs = {r["post_id"]: r for r in read_posts_manifest(folder / "m.jsonl")}
    assert recs["1"]["image_path"].endswith("a.jpg")
    assert recs["2"]["image_path"] is None and "escapes" in recs["2"]["problems"][0]
    assert recs["3"]["image_path"] is None
    msgs = [{"_": "Message", "id": 9, "message": LONG, "media": {"_": "MessageMediaPhoto"},
             "peer_id": {"_": "PeerChannel", "channel_id": 4}, "media_path": "../secret/passwd.jpg"}]  # fmt: skip
    (folder / "t.ndjson").write_text(json.dumps(msgs[0]) + "\n")
    (rec,) = read_telethon_ndjson(folder / "t.ndjson", media_dir=folder)
    assert "image_path" not in rec and "escapes" in rec["problems"][0]


def test_malformed_ndjson_costs_one_record_each(tmp_path: Path) -> None:
    good = {"_": "Message", "id": 1, "message": LONG, "date": "2024-01-01T00:00:00+00:00",
            "peer_id": {"_": "PeerChannel", "channel_id": 4}}  # fmt: skip
    lines = [
        b"\xef\xbb\xbf" + json.dumps(good).encode(),  # a BOM on the first line
        b"[" * 100_000 + b"]" * 100_000,  # nesting deep enough for a RecursionError
        json.dumps({**good, "id": 2, "message": "lone \ud800 surrogate"}).encode(),
        json.dumps({**good, "id": 10**40}).encode(),
        json.dumps({**good, "id": 3, "grouped_id": [1, 2]}).encode(),
        json.dumps(
            {**good, "id": 4, "media_path": "a\x00b.jpg", "media": {"_": "MessageMediaPhoto"}}
        ).encode(),
        '{"id": 5, "message": "caf\xe9"}'.encode("latin-1"),  # not UTF-8
        b"{not json",
        json.dumps(
            {
                **good,
                "id": 6,
                "fwd_from": {
                    "_": "MessageFwdHeader",
                    "from_name": "Origin",
                    "from_id": {"_": "PeerChannel", "channel_id": 77},
                    "channel_post": 12,
                    "date": "2023-12-31T10:00:00+00:00",
                },
                "views": 5,
                "post_author": "Ann",
            }
        ).encode(),
    ]
    path = tmp_path / "m.ndjson"
    path.write_bytes(b"\n".join(lines) + b"\n")
    res = ingest(read_telethon_ndjson(path), tmp_path / "ds", workers=0, progress=False)
    t = read_posts(tmp_path / "ds").set_index("post_id")
    assert {"channel4/1", "channel4/2", "channel4/3", "channel4/4", "channel4/6"} <= set(t.index)
    bad = t[t.index.str.startswith("!error/")]
    assert [i.split(",")[0] for i in sorted(bad.index)] == [
        f"!error/m.ndjson:line {n}" for n in (2, 4, 7, 8)
    ]
    assert all(r.startswith("bad record: ") and "m.ndjson:line" in r for r in bad["reason"])
    assert "nested too deeply" in bad.loc["!error/m.ndjson:line 2", "reason"]
    assert "not UTF-8" in bad.loc["!error/m.ndjson:line 7", "reason"]
    assert "\ufffd" in t.loc["channel4/2", "text"]
    assert "grouped_id is not an id" in t.loc["channel4/3", "notes"]
    assert "NUL" in t.loc["channel4/4", "notes"]
    fwd = t.loc["channel4/6"]
    assert (fwd["forwarded_from"], fwd["forwarded_from_id"], fwd["forwarded_message_id"]) == (
        "Origin", "channel77", 12)  # fmt: skip
    assert fwd["forwarded_date"] == pd.Timestamp("2023-12-31T10:00:00Z")
    assert (fwd["views"], fwd["author"], fwd["url"]) == (5, "Ann", "https://t.me/c/4/6")
    assert res.summary["bad_records"] == 4


def test_manifest_bom_and_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(
        b"\xef\xbb\xbf"
        + json.dumps(
            {"post_id": "a", "text": LONG, "forwarded_from": "X", "reply_to_message_id": 10**40}
        ).encode()
        + b"\n[1]\n"
        + json.dumps({"text": "no id"}).encode()
        + b"\n"
    )
    res = ingest(read_posts_manifest(path), tmp_path / "ds", workers=0, progress=False)
    t = res.posts.set_index("post_id")
    assert t.loc["a", "status"] == "kept" and t.loc["a", "forwarded_from"] == "X"
    assert pd.isna(t.loc["a", "reply_to_message_id"])  # 10^40 fits no id column
    assert res.summary["bad_records"] == 2


def test_album_straddling_a_second_and_cjk_words(tmp_path: Path) -> None:
    root = tmp_path / "export"
    (root / "photos").mkdir(parents=True)
    msgs = [_msg(10 + i, photo=f"photos/p{i}.jpg", dt=1000 + (i >= 5), from_id="channel5",
                 text="八张照片的相册说明文字" if i == 0 else "") for i in range(8)]  # fmt: skip
    msgs.append(_msg(30, text="下一条消息", dt=1001, from_id="channel5"))
    msgs.append(_msg(31, photo="photos/p0.jpg", dt=1001, from_id="channel5", media_type="sticker",
                     file="s.webp", mime_type="image/webp"))  # fmt: skip
    for i in range(8):
        write_image(root / "photos" / f"p{i}.jpg")
    (root / "result.json").write_text(json.dumps({"id": 5, "name": "c", "messages": msgs}))
    posts = ingest(read_telegram_export(root), tmp_path / "ds", workers=0, progress=False).posts
    t = posts.set_index("post_id")
    assert "5/10" in t.index and not any(f"5/{i}" in t.index for i in range(11, 18))
    assert t.loc["5/10", "media_type"] == "album" and t.loc["5/10", "album_id"] == "5/10-17"
    assert "5/30" in t.index and count_words(t.loc["5/30", "text"]) == 5
    assert count_words("八张照片的相册说明文字") == 11
    assert t.loc["5/31", "skipped_media"] == "sticker"
