"""The manifest and Telethon-NDJSON adapters, account labels and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from nmodal.cli import main
from nmodal.errors import InputError
from nmodal.sources import (
    FilterConfig,
    count_words,
    ingest,
    read_account_labels,
    read_posts,
    read_posts_manifest,
    read_telethon_ndjson,
    summarize,
)
from tests.helpers.media import write_image, write_video

LONG = "Air defence active over the city again tonight"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("m")
    (d / "media" / "kyiv_news").mkdir(parents=True)
    write_video(d / "media" / "kyiv_news" / "101.mp4", num_frames=80, audio=True)
    write_video(d / "media" / "short.mp4", num_frames=20)
    write_image(d / "media" / "kyiv_news" / "102.jpg")
    write_video(d / "media" / "kyiv_news_103.mp4", num_frames=64)
    return d


def test_manifest_jsonl(media: Path, tmp_path: Path) -> None:
    rows = [
        {"post_id": "x/1", "account": "a", "text": LONG, "video": "media/kyiv_news/101.mp4",
         "stance": "pro-ua", "date": "2023-05-01T10:00:00Z"},
        {"post_id": "x/2", "account": "b", "text": LONG, "video_path": "media/short.mp4",
         "stance": "pro-ru"},
        {"post_id": "x/3", "account": "b", "text": "two words", "image_path": "media/kyiv_news/102.jpg"},
        {"post_id": "x/4", "account": "a", "text": LONG, "video_path": "media/gone.mp4"},
    ]  # fmt: skip
    manifest = media / "posts.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    records = read_posts_manifest(manifest)
    res = ingest(records, tmp_path, FilterConfig.preset("paper"), workers=0, progress=False)
    got = read_posts(tmp_path).set_index("post_id")
    assert got.loc["x/1", "status"] == "kept"
    assert got.loc["x/1", "stance"] == "pro-ua"
    assert pd.isna(got.loc["x/3", "stance"])
    assert got.loc["x/1", "date"] == pd.Timestamp("2023-05-01T10:00:00Z")
    assert got.loc["x/1", "video_path"] == str((media / "media/kyiv_news/101.mp4").resolve())
    assert got.loc["x/2", "reason"] == "video too short: 20 frames < 64"
    assert got.loc["x/3", "reason"] == "no video; text too short: 2 words < 5"
    assert got.loc["x/4", "reason"].startswith("video: file not found")
    counts = ("posts", "kept", "dropped", "dropped_by_reason", "duplicates_skipped")
    assert {k: res.summary[k] for k in counts} == {
        "posts": 4,
        "kept": 1,
        "dropped": 3,
        "dropped_by_reason": {
            "video too short: N frames < N": 1,
            "no video": 1,
            "text too short: N words < N": 1,
            "video: file not found": 1,
        },
        "duplicates_skipped": 0,
    }
    # the image-text view of the same manifest keeps x/3 once its text is long enough
    loose = ingest(records, tmp_path / "it", FilterConfig(require=("image",)), workers=0,
                   progress=False).posts.set_index("post_id")  # fmt: skip
    assert loose.loc["x/3", "status"] == "kept" and loose.loc["x/1", "status"] == "kept"


def test_manifest_csv_and_errors(media: Path, tmp_path: Path) -> None:
    csv = media / "posts.csv"
    csv.write_text(f"id,account,text,video,lang\np1,a,{LONG},media/kyiv_news/101.mp4,uk\n")
    rec = read_posts_manifest(csv)
    assert rec[0]["post_id"] == "p1" and rec[0]["lang"] == "uk"
    assert rec[0]["video_path"].endswith("101.mp4")
    bad = tmp_path / "bad.csv"
    bad.write_text("account,text\na,b\n")
    with pytest.raises(InputError, match="post_id"):
        read_posts_manifest(bad)
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"post_id": "1"}\n{"post_id": "1"}\n')
    res = ingest(read_posts_manifest(dup), tmp_path / "d", FilterConfig(require=()), workers=0,
                 progress=False)  # fmt: skip
    assert res.summary["duplicates_skipped"] == 1 and len(res.posts) == 1
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"post_id": "1"}\n{oops\n')
    bad, good = sorted(read_posts_manifest(broken), key=lambda r: r["post_id"])  # one line lost
    assert good["post_id"] == "1"
    assert bad["post_id"] == "!error/broken.jsonl:line 2" and "not JSON" in bad["drop"]


def test_read_manifest_is_a_deprecated_alias(media: Path) -> None:
    """The old public name still reads a posts manifest, with a DeprecationWarning."""
    from nmodal.sources import read_manifest

    csv = media / "alias.csv"
    csv.write_text(f"post_id,text,video\np1,{LONG},media/kyiv_news/101.mp4\n")
    with pytest.warns(DeprecationWarning, match="read_posts_manifest"):
        old = read_manifest(csv)
    assert old == read_posts_manifest(csv)


def telethon_message(msg_id: int, text: str, media: dict | None = None, **extra) -> dict:
    """A message as Telethon's Message.to_dict() gives it, dates as a collector writes them."""
    msg = {
        "_": "Message",
        "id": msg_id,
        "peer_id": {"_": "PeerChannel", "channel_id": 555},
        "date": "2023-02-24 06:00:00+00:00",
        "message": text,
        "out": False,
        "media": media,
        "entities": [],
        "views": 1200,
        "grouped_id": None,
    }
    msg.update(extra)
    return msg


def video_media(round_message: bool = False, animated: bool = False, name: str | None = None):
    attrs = [{"_": "DocumentAttributeVideo", "duration": 3.2, "w": 64, "h": 48,
              "round_message": round_message, "supports_streaming": True}]  # fmt: skip
    if animated:
        attrs.append({"_": "DocumentAttributeAnimated"})
    if name:
        attrs.append({"_": "DocumentAttributeFilename", "file_name": name})
    return {"_": "MessageMediaDocument", "document": {"_": "Document", "id": 1,
            "mime_type": "video/mp4", "attributes": attrs}}  # fmt: skip


PHOTO = {"_": "MessageMediaPhoto", "photo": {"_": "Photo", "id": 9}}


def test_telethon_ndjson(media: Path, tmp_path: Path) -> None:
    chat = {"username": "kyiv_news", "title": "Kyiv News"}
    lines = [
        telethon_message(101, LONG, video_media(), _chat=chat),
        telethon_message(102, "", PHOTO, _chat=chat, grouped_id=77),
        telethon_message(103, LONG, video_media(), _chat=chat, grouped_id=77),
        telethon_message(104, LONG, video_media(animated=True), _chat=chat),
        {"_": "MessageService", "id": 105, "date": "2023-02-24 07:00:00+00:00",
         "action": {"_": "MessageActionPinMessage"}, "_chat": chat},
        telethon_message(106, LONG, video_media(round_message=True), _chat=chat,
                         media_path="short.mp4"),
        telethon_message(7, LONG, None),  # no _chat: account from peer_id
    ]  # fmt: skip
    path = tmp_path / "messages.ndjson"
    path.write_text("\n".join(json.dumps(m) for m in lines) + "\n")
    records = read_telethon_ndjson(path, media_dir=media / "media")
    ids = [r["post_id"] for r in records]
    assert ids == ["kyiv_news/101", "kyiv_news/103", "kyiv_news/104", "kyiv_news/105",
                   "kyiv_news/106", "channel555/7"]  # fmt: skip
    by_id = {r["post_id"]: r for r in records}
    assert by_id["kyiv_news/101"]["video_path"].endswith("kyiv_news/101.mp4")
    album = by_id["kyiv_news/103"]
    assert album["media_type"] == "album"
    assert album["image_path"].endswith("102.jpg") and album["video_path"].endswith("_103.mp4")
    assert by_id["kyiv_news/104"]["media_type"] == "animation"
    assert by_id["kyiv_news/104"]["problems"] == ["video: media file not downloaded"]
    assert by_id["kyiv_news/106"]["media_type"] == "video_message"
    res = ingest(records, tmp_path / "ds", FilterConfig.preset("paper"), workers=0, progress=False)
    got = res.posts.set_index("post_id")
    assert got.loc["kyiv_news/101", "status"] == "kept"
    assert got.loc["kyiv_news/103", "status"] == "kept"
    assert got.loc["kyiv_news/104", "reason"] == "video: media file not downloaded"
    assert got.loc["kyiv_news/105", "reason"] == "service message (MessageActionPinMessage)"
    assert got.loc["kyiv_news/106", "reason"] == "video too short: 20 frames < 64"
    assert got.loc["channel555/7", "reason"] == "no video"
    assert got.loc["kyiv_news/101", "date"] == pd.Timestamp("2023-02-24T06:00:00Z")

    # a JSON array and an explicit account work too
    arr = tmp_path / "channel.json"
    arr.write_text(json.dumps(lines[:1]))
    (rec,) = read_telethon_ndjson(arr, media_dir=media / "media", account="kyiv_news")
    assert rec["post_id"] == "kyiv_news/101" and rec["video_path"].endswith("101.mp4")


def test_account_labels_and_cli(media: Path, tmp_path: Path, capsys) -> None:
    manifest = media / "cli.jsonl"
    manifest.write_text(
        json.dumps({"post_id": "1", "account": "a", "text": LONG,
                    "video_path": "media/kyiv_news/101.mp4"}) + "\n"
        + json.dumps({"post_id": "2", "account": "b", "text": LONG}) + "\n"
    )  # fmt: skip
    labels = tmp_path / "accounts.csv"
    labels.write_text("account,stance\na,pro-ua\nb,pro-ru\n")
    assert read_account_labels(labels)["stance"].tolist() == ["pro-ua", "pro-ru"]
    out = tmp_path / "ds"
    argv = ["ingest", "manifest", str(manifest), "--out", str(out), "--account-labels",
            str(labels), "--workers", "0", "--no-progress", "--filter", "paper"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        "kept: 1" in printed and "dropped: 1" in printed and str(out / "posts.parquet") in printed
    )
    got = read_posts(out).set_index("post_id")
    assert got["stance"].tolist() == ["pro-ua", "pro-ru"]
    assert main(argv) == 1
    assert "exists" in capsys.readouterr().err
    assert main([*argv, "--overwrite", "--require", "text", "--min-words", "3"]) == 0
    assert read_posts(out)["status"].tolist() == ["kept", "kept"]
    assert main([*argv, "--overwrite", "--require", "smell"]) == 1
    assert "unknown modality" in capsys.readouterr().err


def test_count_words() -> None:
    assert count_words("") == 0 and count_words(None) == 0
    assert count_words("🔥 🔥 !!! —") == 0
    assert count_words("Слава Україні! 3 танки") == 4
    assert count_words("one,two three") == 2


def test_summarize_counts() -> None:
    df = pd.DataFrame(
        {"status": ["kept", "dropped", "dropped"], "reason": [None, "no text; no video", "no text"]}
    )
    s = summarize(df)
    assert s["kept"] == 1 and s["dropped"] == 2
    assert s["dropped_by_reason"] == {"no text": 2, "no video": 1}
