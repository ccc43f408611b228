"""A realistic Telegram Desktop export written to disk, with the expected outcome per post."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from tests.helpers.media import (
    write_audio,
    write_corrupt,
    write_image,
    write_round_video,
    write_truncated,
    write_video,
)

NOT_INCLUDED = "(File not included. Change data exporting settings to download.)"
TOO_BIG = "(File exceeds maximum size. Change data exporting settings to download.)"
T0 = 1646128800  # 2022-03-01 10:00:00 UTC
LONG = "Convoy of trucks seen moving north this morning"


def _msg(i: int, **fields: Any) -> dict[str, Any]:
    msg: dict[str, Any] = {
        "id": i,
        "type": "message",
        "date": "2022-03-01T12:00:00",  # local time; the unixtime is authoritative
        "date_unixtime": str(T0 + 60 * i),
        "from": "Kyiv Frontline",
        "from_id": "channel1001",
    }
    msg.update(fields)
    return msg


def write_single_chat_export(root: Path) -> tuple[Path, dict[str, str | None]]:
    """Export folder of one channel; returns it and ``{post_id: expected reason or None}``."""
    root.mkdir(parents=True, exist_ok=True)
    vids = root / "video_files"
    vids.mkdir()
    (root / "photos").mkdir()
    (root / "round_video_messages").mkdir()
    (root / "voice_messages").mkdir()
    write_video(vids / "clip_sound.mp4", num_frames=80, audio=True)
    write_video(vids / "clip_mute.mp4", num_frames=72)
    write_video(vids / "anim.gif.mp4", num_frames=70)
    write_round_video(root / "round_video_messages" / "round.mp4", num_frames=66)
    write_corrupt(vids / "broken.mp4")
    write_video(vids / "short.mp4", num_frames=30, audio=True)
    write_video(vids / "album.mp4", num_frames=90)
    write_truncated(vids / "clip_sound.mp4", vids / "cut.mp4", keep=0.4)
    write_image(root / "photos" / "photo_1.jpg")
    write_image(root / "photos" / "photo_2.jpg", index=9)
    write_audio(root / "voice_messages" / "voice.ogg", seconds=1.0)
    video = {"media_type": "video_file", "mime_type": "video/mp4", "duration_seconds": 3}
    messages = [
        {"id": 1, "type": "service", "date": "2022-03-01T11:00:00", "actor": "Kyiv Frontline",
         "action": "create_channel", "title": "Kyiv Frontline", "text": ""},
        _msg(2, file="video_files/clip_sound.mp4", thumbnail="video_files/clip_sound.mp4_thumb.jpg",
             text=LONG, **video),
        _msg(3, file="video_files/clip_mute.mp4",
             text=["Drone footage over ", {"type": "bold", "text": "Bakhmut"},
                   " shows ", {"type": "link", "text": "artillery"}, " positions"],
             text_entities=[{"type": "plain", "text": "Drone footage over "}], **video),
        _msg(4, file="video_files/anim.gif.mp4", media_type="animation", mime_type="video/mp4",
             text="When the sirens finally stop again 🙏"),
        _msg(5, file="round_video_messages/round.mp4", media_type="video_message",
             mime_type="video/mp4", text=""),
        _msg(6, file="video_files/broken.mp4", text=LONG, **video),
        _msg(7, file="video_files/short.mp4", text=LONG, **video),
        _msg(8, file=NOT_INCLUDED, text=LONG, **video),
        _msg(9, file=TOO_BIG, text=LONG, **video),
        _msg(10, photo="photos/photo_1.jpg", width=64, height=48, text=LONG),
        _msg(11, text=[{"type": "hashtag", "text": "#news"}, " only text here but no video at all"]),
        # an album: two media messages without text and the captioned one, same second
        _msg(12, photo="photos/photo_2.jpg", date_unixtime=str(T0 + 9999)),
        _msg(13, file="video_files/album.mp4", date_unixtime=str(T0 + 9999), **video),
        _msg(14, photo="photos/photo_1.jpg", date_unixtime=str(T0 + 9999),
             text="Three angles of the same strike tonight"),
        _msg(15, file="voice_messages/voice.ogg", media_type="voice_message",
             mime_type="audio/ogg", text="short note"),
        {"id": 16, "type": "unsupported"},
        _msg(17, file="video_files/clip_sound.mp4", text="Look at this", **video),
        _msg(18, file="video_files/cut.mp4", text=LONG, **video),
        _msg(19, file="video_files/deleted.mp4", text=LONG, **video),
        {"id": 20, "type": "message", "text": "🔥🔥🔥"},
        _msg(21, file="video_files/clip_sound.mp4", text=LONG, media_type="sticker"),
    ]  # fmt: skip
    data = {"name": "Kyiv Frontline", "type": "public_channel", "id": 1001, "messages": messages}
    (root / "result.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), "utf-8")
    expected: dict[str, str | None] = {
        "1001/1": "service message (create_channel)",
        "1001/2": None,
        "1001/3": None,
        "1001/4": None,
        "1001/5": "no text",
        "1001/6": "video: not a media file",
        "1001/7": "video too short: 30 frames < 64",
        "1001/8": "video: not included in export",
        "1001/9": "video: exceeds the export's maximum file size",
        "1001/10": "no video",
        "1001/11": "no video",
        "1001/14": None,
        "1001/15": "no video; text too short: 2 words < 5",
        "1001/16": "unsupported message",
        "1001/17": "text too short: 3 words < 5",
        "1001/18": "video: truncated",
        "1001/19": "video: file missing from export",
        "1001/20": "no video; no text",
        "1001/21": "no video",
    }
    return root, expected


def write_account_export(root: Path) -> tuple[Path, dict[str, str | None]]:
    """A full-account export (``chats.list[]``) with two channels and personal data."""
    root.mkdir(parents=True, exist_ok=True)
    a = root / "chats" / "chat_001" / "video_files"
    a.mkdir(parents=True)
    b = root / "chats" / "chat_002" / "video_files"
    b.mkdir(parents=True)
    write_video(a / "v.mp4", num_frames=64, audio=True)
    shutil.copy(a / "v.mp4", b / "v.mp4")
    video = {"media_type": "video_file", "mime_type": "video/mp4"}
    chat_a = {
        "name": "Donbas Daily",
        "type": "public_channel",
        "id": 2002,
        "messages": [
            {"id": 1, "type": "service", "action": "create_channel"},
            _msg(2, file="chats/chat_001/video_files/v.mp4", text=LONG, **video),
        ],
    }
    chat_b = {
        "type": "public_channel",
        "id": 3003,  # no name
        "messages": [_msg(7, file="chats/chat_002/video_files/v.mp4", text=LONG, **video)],
    }
    data = {
        "about": "Here is the data you requested.",
        "personal_information": {"user_id": 1, "first_name": "A"},
        "contacts": {"about": "", "list": []},
        "chats": {"about": "", "list": [chat_a]},
        "left_chats": {"about": "", "list": [chat_b]},
    }
    (root / "result.json").write_text(json.dumps(data), "utf-8")
    expected = {
        "2002/1": "service message (create_channel)",
        "2002/2": None,
        "3003/7": None,
    }
    return root, expected
