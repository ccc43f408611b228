"""A realistic Telegram Desktop export ingests with the right posts kept and a reason for
every post dropped."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from nmodal.errors import InputError, OutputExistsError
from nmodal.sources import (
    FilterConfig,
    ingest,
    read_posts,
    read_telegram_export,
)
from nmodal.sources.telegram_export import message_text

from .export_fixture import LONG, write_account_export, write_single_chat_export

PAPER = FilterConfig.preset("paper")


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str | None]]:
    return write_single_chat_export(tmp_path_factory.mktemp("tg") / "ChatExport_2022-03-01")


@pytest.fixture(scope="module")
def ingested(export, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("ds")
    ingest(
        read_telegram_export(export[0]),
        out,
        FilterConfig.preset("paper"),
        workers=0,
        progress=False,
    )
    return read_posts(out)


def test_every_post_has_the_expected_status_and_reason(ingested, export) -> None:
    _, expected = export
    got = ingested.set_index("post_id")
    assert sorted(got.index) == sorted(expected)
    for post_id, reason in expected.items():
        row = got.loc[post_id]
        if reason is None:
            assert row["status"] == "kept", (post_id, row["reason"])
            assert pd.isna(row["reason"])
        else:
            assert row["status"] == "dropped", post_id
            assert str(row["reason"]).startswith(reason), (post_id, row["reason"])
    assert got["reason"][got["status"] == "dropped"].notna().all()


def test_kept_posts_columns(ingested, export) -> None:
    root = export[0].resolve()
    got = ingested.set_index("post_id")
    sound = got.loc["1001/2"]
    assert sound["account"] == "Kyiv Frontline" and sound["source"] == "telegram-export"
    assert sound["message_id"] == 2
    assert sound["date"] == pd.Timestamp(1646128800 + 120, unit="s", tz="UTC")
    assert sound["text"] == LONG
    assert sound["video_path"] == str(root / "video_files" / "clip_sound.mp4")
    assert sound["audio_path"] == sound["video_path"]  # the soundtrack is the audio
    assert pd.isna(sound["image_path"])  # the image is a frame of the video
    assert (sound["num_frames"], sound["width"], sound["height"]) == (80, 64, 48)
    assert bool(sound["has_audio"]) and sound["media_type"] == "video_file"
    assert sound["duration"] == pytest.approx(3.2, abs=0.05)

    mute = got.loc["1001/3"]
    assert mute["text"] == "Drone footage over Bakhmut shows artillery positions"
    assert not bool(mute["has_audio"]) and pd.isna(mute["audio_path"])
    assert got.loc["1001/4", "media_type"] == "animation"
    assert got.loc["1001/5", "media_type"] == "video_message"


def test_album_merged_into_one_post(ingested, export) -> None:
    root = export[0].resolve()
    got = ingested.set_index("post_id")
    assert "1001/12" not in got.index and "1001/13" not in got.index
    album = got.loc["1001/14"]
    assert album["media_type"] == "album"
    assert album["text"] == "Three angles of the same strike tonight"
    assert album["video_path"] == str(root / "video_files" / "album.mp4")
    assert album["image_path"] == str(root / "photos" / "photo_2.jpg")
    assert album["num_frames"] == 90
    assert "album of messages 12,13,14" in album["notes"]


def test_paths_stored_relative_to_dataset(export, tmp_path: Path) -> None:
    out = tmp_path / "ds"
    ingest(read_telegram_export(export[0]), out, PAPER, workers=0, progress=False)
    raw = pd.read_parquet(out / "posts.parquet")
    paths = raw["video_path"].dropna()
    assert len(paths) and not any(Path(p).is_absolute() for p in paths)
    for p in paths:
        assert (out / p).resolve().is_file()
    rel = read_posts(out, absolute=False)
    assert rel["video_path"].dropna().tolist() == paths.tolist()
    kept = read_posts(out, status="kept")
    assert set(kept["post_id"]) == {"1001/2", "1001/3", "1001/4", "1001/14"}


def test_filter_is_configurable(export, tmp_path: Path) -> None:
    records = read_telegram_export(export[0])
    loose = ingest(
        records,
        tmp_path / "a",
        FilterConfig.preset("paper", min_frames=16, min_words=2),
        workers=0,
        progress=False,
    ).posts.set_index("post_id")
    assert loose.loc["1001/7", "status"] == "kept"  # 30 frames >= 16
    assert loose.loc["1001/17", "status"] == "kept"  # 3 words >= 2
    anything = ingest(
        records, tmp_path / "b", FilterConfig(require=()), workers=0, progress=False
    ).posts.set_index("post_id")
    assert anything.loc["1001/11", "status"] == "kept"
    assert anything.loc["1001/6", "status"] == "kept"
    assert anything.loc["1001/6", "notes"].startswith("video: not a media file")
    assert pd.isna(anything.loc["1001/6", "video_path"])  # a broken file is never used
    assert anything.loc["1001/1", "status"] == "dropped"  # service messages are not posts
    voice = ingest(
        records,
        tmp_path / "c",
        FilterConfig.preset("paper", require=("audio",)),
        workers=0,
        progress=False,
    ).posts.set_index("post_id")
    assert voice.loc["1001/15", "status"] == "kept"
    assert voice.loc["1001/15", "audio_path"].endswith("voice.ogg")
    assert voice.loc["1001/3", "reason"] == "no audio"


def test_account_export(tmp_path: Path) -> None:
    root, expected = write_account_export(tmp_path / "full")
    res = ingest(read_telegram_export(root), tmp_path / "ds", PAPER, workers=0, progress=False)
    got = res.posts.set_index("post_id")
    assert sorted(got.index) == sorted(expected)
    assert got.loc["2002/2", "account"] == "Donbas Daily"
    assert got.loc["3003/7", "account"] == "chat3003"
    for post_id, reason in expected.items():
        assert (got.loc[post_id, "status"] == "kept") == (reason is None)


def test_process_pool_matches_in_process(export, ingested, tmp_path: Path) -> None:
    res = ingest(read_telegram_export(export[0]), tmp_path / "p", PAPER, workers=2, progress=False)
    pooled = read_posts(tmp_path / "p").set_index("post_id").sort_index()
    serial = ingested.set_index("post_id").sort_index()
    cols = ["status", "reason", "num_frames", "video_path", "audio_path", "notes"]
    pd.testing.assert_frame_equal(pooled[cols], serial[cols])
    assert res.summary["kept"] == 4


def test_existing_output_needs_overwrite(export, tmp_path: Path) -> None:
    records = read_telegram_export(export[0])
    ingest(records, tmp_path, workers=0, progress=False)
    with pytest.raises(OutputExistsError, match=r"posts\.parquet"):
        ingest(records, tmp_path, workers=0, progress=False)
    ingest(records, tmp_path, overwrite=True, workers=0, progress=False)


def test_message_text_forms() -> None:
    assert message_text(None) == ""
    assert message_text("plain") == "plain"
    assert message_text(["a ", {"type": "bold", "text": "b"}, {"type": "x"}, " c"]) == "a b c"
    assert message_text(42) == "42"


def test_not_an_export(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"no result\.json"):
        read_telegram_export(tmp_path)
    (tmp_path / "result.json").write_text("{not json")
    with pytest.raises(InputError, match="not a Telegram JSON export"):
        read_telegram_export(tmp_path)
    (tmp_path / "result.json").write_text('{"about": "x"}')
    with pytest.raises(InputError, match="no messages"):
        read_telegram_export(tmp_path)
