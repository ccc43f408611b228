"""The Telethon collector against a fake client: filter, incremental min_id, flood waits."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from telethon.errors import FloodWaitError

from nmodal.sources import FilterConfig, ingest, read_telethon_ndjson
from nmodal.sources.collector import collect, load_state
from tests.helpers.media import write_video

from .test_manifest_ndjson import LONG, PHOTO, video_media


class FakeMessage:
    def __init__(self, msg_id: int, text: str, media: dict | None) -> None:
        self.id = msg_id
        self.message = text
        self.media = media

    def to_dict(self) -> dict:
        return {
            "_": "Message",
            "id": self.id,
            "peer_id": {"_": "PeerChannel", "channel_id": 42},
            "date": datetime(2023, 3, 1, 12, self.id % 60, tzinfo=timezone.utc),
            "message": self.message,
            "media": self.media,
            "file_reference": b"\x00\x01",
        }


class FakeClient:
    """iter_messages / download_media with Telethon's semantics; can raise a flood wait."""

    def __init__(self, messages: list[FakeMessage], video: Path, flood_after: int | None = None):
        self.messages = messages
        self.video = video
        self.flood_after = flood_after
        self.calls: list[dict] = []
        self.downloads: list[int] = []

    async def iter_messages(self, entity, min_id=0, reverse=False, limit=None):
        self.calls.append({"entity": entity, "min_id": min_id, "reverse": reverse, "limit": limit})
        todo = sorted((m for m in self.messages if m.id > min_id), key=lambda m: m.id)
        for n, msg in enumerate(todo[:limit] if limit is not None else todo):
            if self.flood_after is not None and n == self.flood_after:
                self.flood_after = None
                raise FloodWaitError(request=None, capture=7)
            yield msg

    async def download_media(self, message, file: str) -> str:
        self.downloads.append(message.id)
        target = Path(file + ".mp4")
        shutil.copy(self.video, target)
        return str(target)


@pytest.fixture()
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "src.mp4", num_frames=80, audio=True)


def test_collect_filter_flood_wait_and_ingest(video: Path, tmp_path: Path) -> None:
    messages = [
        FakeMessage(1, LONG, video_media()),
        FakeMessage(2, "too short", video_media()),  # cannot pass: media not downloaded
        FakeMessage(3, LONG, PHOTO),  # no video: not downloaded
        FakeMessage(4, LONG, None),
        FakeMessage(5, LONG, video_media(round_message=True)),
    ]
    client = FakeClient(messages, video, flood_after=2)
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    out = tmp_path / "raw"
    stats = asyncio.run(
        collect(client, ["donbas"], out, FilterConfig.preset("paper"), sleep=fake_sleep)
    )
    assert slept == [8] and stats.flood_waits == [7]
    assert [c["min_id"] for c in client.calls] == [0, 2]  # resumed after the last saved one
    assert all(c["reverse"] for c in client.calls)
    assert client.downloads == [1, 5]
    assert stats.messages == 5 and stats.downloaded == 2 and stats.skipped_media == 2
    assert load_state(out) == {"donbas": 5}
    lines = [json.loads(x) for x in (out / "messages.ndjson").read_text().splitlines()]
    assert [m["id"] for m in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["media_path"] == "media/donbas/1.mp4"
    assert lines[0]["date"] == "2023-03-01T12:01:00+00:00"

    res = ingest(read_telethon_ndjson(out / "messages.ndjson", media_dir=out / "media"),
                 out, FilterConfig.preset("paper"), workers=0, progress=False)  # fmt: skip
    got = res.posts.set_index("post_id")
    assert got["status"].to_dict() == {
        "donbas/1": "kept", "donbas/2": "dropped", "donbas/3": "dropped",
        "donbas/4": "dropped", "donbas/5": "kept",
    }  # fmt: skip
    assert (
        got.loc["donbas/2", "reason"]
        == "video: media file not downloaded; text too short: 2 words < 5"
    )


def test_incremental_rerun_fetches_only_new(video: Path, tmp_path: Path) -> None:
    client = FakeClient([FakeMessage(i, LONG, video_media()) for i in (1, 2, 3)], video)
    out = tmp_path / "raw"
    asyncio.run(collect(client, ["a"], out, limit=2))
    assert load_state(out) == {"a": 2}
    client.messages.append(FakeMessage(4, LONG, None))
    stats = asyncio.run(collect(client, ["a"], out))
    assert client.calls[-1]["min_id"] == 2
    assert stats.messages == 2
    ids = [json.loads(x)["id"] for x in (out / "messages.ndjson").read_text().splitlines()]
    assert ids == [1, 2, 3, 4]
    assert asyncio.run(collect(client, ["a"], out)).messages == 0


def test_other_errors_and_endless_flood_waits_propagate(video: Path, tmp_path: Path) -> None:
    class Broken(FakeClient):
        async def iter_messages(self, entity, min_id=0, reverse=False, limit=None):
            raise FloodWaitError(request=None, capture=1)
            yield  # pragma: no cover

    async def no_sleep(seconds: float) -> None:
        return None

    with pytest.raises(FloodWaitError):
        asyncio.run(collect(Broken([], video), ["a"], tmp_path, sleep=no_sleep))

    class Failing(FakeClient):
        async def iter_messages(self, entity, min_id=0, reverse=False, limit=None):
            raise ConnectionError("offline")
            yield  # pragma: no cover

    with pytest.raises(ConnectionError):
        asyncio.run(collect(Failing([], video), ["a"], tmp_path))


def test_cli_needs_credentials(tmp_path: Path, monkeypatch, capsys) -> None:
    from nmodal.cli import main

    monkeypatch.delenv("TELEGRAM_API_ID", raising=False)
    monkeypatch.delenv("TELEGRAM_API_HASH", raising=False)
    assert main(["collect", "some_channel", "--out", str(tmp_path)]) == 1
    assert "--api-id" in capsys.readouterr().err
