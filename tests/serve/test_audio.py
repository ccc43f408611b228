"""Audio in results: PNG waveform thumbnails, the audio media route, broken recordings."""

from __future__ import annotations

import io
import os
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from nmodal.errors import MediaError
from nmodal.index import build_index
from nmodal.serve import create_app
from nmodal.serve.media import WAVE_BACKGROUND, thumbnail
from tests.helpers.media import write_audio, write_corrupt, write_truncated, write_video
from tests.index.fixtures import fake_encoder_source, make_collection
from tests.serve.conftest import Server, run_server


def png(data: bytes) -> Image.Image:
    im = Image.open(io.BytesIO(data))
    assert im.format == "PNG"
    return im


def inked_rows(data: bytes) -> np.ndarray:
    """Rows of a waveform holding anything but background."""
    pixels = np.asarray(png(data).convert("RGB"))
    return np.flatnonzero((pixels != np.array(WAVE_BACKGROUND, np.uint8)).any(axis=2).any(axis=1))


def audio_posts(server: Server) -> dict[str, str]:
    posts = pd.read_parquet(server.collection.dataset / "posts.parquet")
    rows = posts[posts["audio_path"].notna()]
    return dict(zip(rows["post_id"], rows["audio_path"], strict=True))


def test_waveform_thumbnail_of_a_tone_and_of_silence(tmp_path: Path):
    tone = thumbnail(write_audio(tmp_path / "tone.m4a", seconds=1.5, freq=330.0), "audio")
    silence = thumbnail(write_audio(tmp_path / "quiet.m4a", seconds=1.5, amplitude=0.0), "audio")
    assert png(tone).size == png(silence).size == (320, 240)
    assert tone != silence
    assert inked_rows(silence).tolist() == [120]  # only the centre line
    assert len(inked_rows(tone)) > 200  # a loud tone fills the height
    # other sizes, other containers: a WAV file, the audio track of a video
    wav = thumbnail(write_audio(tmp_path / "a.wav", seconds=0.5, freq=200.0), "audio", size=160)
    assert png(wav).size == (160, 120) and len(inked_rows(wav)) > 100
    clip = write_video(tmp_path / "clip.mp4", num_frames=25, audio=True)
    assert len(inked_rows(thumbnail(clip, "audio"))) > 200
    assert thumbnail(clip, "video")[:3] == b"\xff\xd8\xff"  # its picture is still a JPEG


def test_waveform_thumbnails_are_cached_by_path_and_mtime(tmp_path: Path):
    path = write_audio(tmp_path / "a.m4a", seconds=0.5, amplitude=0.0)
    first = thumbnail(path, "audio")
    assert thumbnail(path, "audio") is first
    before = path.stat()
    write_audio(path, seconds=0.5, amplitude=0.5)  # rewritten: a new mtime, a new waveform
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # coarse clocks
    assert thumbnail(path, "audio") != first


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda d: write_corrupt(d / "g.m4a"), "not a media file"),
        (lambda d: write_corrupt(d / "e.m4a", "empty"), "empty file"),
        (lambda d: write_truncated(write_audio(d / "a.m4a"), d / "t.m4a", 0.3), "truncated"),
        (lambda d: write_video(d / "v.mp4", num_frames=10), "no audio track"),
    ],
)
def test_broken_recordings_raise_media_error(tmp_path: Path, make, reason):
    with pytest.raises(MediaError) as caught:
        thumbnail(make(tmp_path), "audio")
    assert caught.value.stage == "thumbnail"
    assert caught.value.reason.startswith("cannot make a waveform (")
    assert reason in caught.value.reason


def test_audio_posts_get_a_player_url_and_a_waveform(client: httpx.Client, server: Server):
    audio = audio_posts(server)
    assert len(audio) >= 5
    loud, silent = "post-00027", "post-00007"
    detail = client.get("/api/post", params={"post_id": loud}).json()
    assert detail["urls"] == {
        "audio": f"/api/media?post_id={loud}&kind=audio",
        "thumbnail": f"/api/thumbnail?post_id={loud}",
    }
    r = client.get(detail["urls"]["thumbnail"])
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.headers["cache-control"] == "max-age=3600"
    assert png(r.content).size == (320, 240)
    quiet = client.get("/api/thumbnail", params={"post_id": silent, "kind": "audio"})
    assert quiet.status_code == 200 and quiet.content != r.content
    # the recording itself, through the media route (range requests for seeking)
    media = client.get(detail["urls"]["audio"])
    assert media.status_code == 200 and media.headers["content-type"] == "audio/mp4"
    assert media.content == (server.collection.dataset / audio[loud]).read_bytes()
    part = client.get(detail["urls"]["audio"], headers={"range": "bytes=0-99"})
    assert part.status_code == 206 and part.content == media.content[:100]
    # posts with a picture keep it as their thumbnail; asking for a missing kind is a 404
    image_post = client.get("/api/thumbnail", params={"post_id": "post-00010"})
    assert image_post.headers["content-type"] == "image/jpeg"
    r = client.get("/api/thumbnail", params={"post_id": "post-00010", "kind": "audio"})
    assert r.status_code == 404 and "no audio file" in r.json()["detail"]
    r = client.get("/api/thumbnail", params={"post_id": "post-00011"})
    assert r.status_code == 404 and "no image, video or audio" in r.json()["detail"]
    assert client.get("/api/thumbnail", params={"post_id": loud, "kind": "x"}).status_code == 422


def test_search_results_carry_audio_urls(client: httpx.Client, server: Server):
    audio = audio_posts(server)
    body = client.get("/api/search", params={"text": "a voice message", "k": 500}).json()
    seen = 0
    for hit in body["hits"]:
        urls = hit["post"]["urls"]
        assert ("audio" in urls) == (hit["post_id"] in audio)
        if hit["post_id"] in audio:
            seen += 1
            assert urls["audio"] == f"/api/media?post_id={hit['post_id']}&kind=audio"
            assert urls["thumbnail"] == f"/api/thumbnail?post_id={hit['post_id']}"
    assert seen >= 5


def test_broken_and_outside_recordings_over_http(tmp_path: Path):
    """A broken recording is a 422 with the reason (JSON, no traceback); a path leading
    outside the collection is refused for the player and the waveform alike."""
    col = make_collection(tmp_path / "c", num_posts=60, seed=9, with_audio=True)
    media = col.dataset / "media"
    write_corrupt(media / "post-00027.m4a")
    write_truncated(media / "post-00047.m4a", media / "cut.m4a", 0.3)
    secret = tmp_path / "secret.m4a"
    write_audio(secret, seconds=0.5)
    posts = pd.read_parquet(col.dataset / "posts.parquet")
    posts.loc[posts["post_id"] == "post-00047", "audio_path"] = "media/cut.m4a"
    posts.loc[posts["post_id"] == "post-00007", "audio_path"] = "../../secret.m4a"
    posts.to_parquet(col.dataset / "posts.parquet", index=False)
    index_dir = build_index(col.model, col.store, col.dataset, tmp_path / "idx", progress=False)
    uv, thread, url = run_server(create_app(index_dir, encoder_source=fake_encoder_source))
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            for pid, reason in (("post-00027", "not a media file"), ("post-00047", "truncated")):
                r = c.get("/api/thumbnail", params={"post_id": pid})
                assert r.status_code == 422, r.text
                assert r.headers["content-type"] == "application/json"
                assert (
                    reason in r.json()["detail"] and "cannot make a waveform" in r.json()["detail"]
                )
                assert "Traceback" not in r.text
                assert (
                    c.get("/api/media", params={"post_id": pid, "kind": "audio"}).status_code == 200
                )
            for endpoint in ("/api/media", "/api/thumbnail"):
                r = c.get(endpoint, params={"post_id": "post-00007", "kind": "audio"})
                assert r.status_code == 404 and "has no audio file" in r.json()["detail"]
            assert c.get("/api/health").status_code == 200
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_scriptable_files_in_a_collection_are_downloads_never_pages(tmp_path: Path):
    """A channel can post an SVG or HTML file: served from the app's own address it could
    run scripts there, so it comes back as a sandboxed attachment; real media plays inline."""
    col = make_collection(tmp_path / "c", num_posts=40, seed=4, with_audio=True)
    media = col.dataset / "media"
    (media / "evil.svg").write_text(
        '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    )
    (media / "page.html").write_text("<script>alert(1)</script>")
    posts = pd.read_parquet(col.dataset / "posts.parquet")
    with_image = posts["image_path"].notna()
    svg_post, html_post = posts.loc[with_image, "post_id"].iloc[:2]
    posts.loc[posts["post_id"] == svg_post, "image_path"] = "media/evil.svg"
    posts.loc[posts["post_id"] == html_post, "image_path"] = "media/page.html"
    audio_post = posts.loc[posts["audio_path"].notna(), "post_id"].iloc[0]
    posts.to_parquet(col.dataset / "posts.parquet", index=False)
    index_dir = build_index(col.model, col.store, col.dataset, tmp_path / "idx", progress=False)
    uv, thread, url = run_server(create_app(index_dir, encoder_source=fake_encoder_source))
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            for pid in (svg_post, html_post):
                r = c.get("/api/media", params={"post_id": pid, "kind": "image"})
                assert r.status_code == 200
                assert r.headers["content-type"] == "application/octet-stream"
                assert r.headers["content-disposition"].startswith("attachment")
                assert r.headers["content-security-policy"] == "sandbox"
                assert r.headers["x-content-type-options"] == "nosniff"
            r = c.get("/api/media", params={"post_id": audio_post, "kind": "audio"})
            assert r.status_code == 200 and r.headers["content-type"] == "audio/mp4"
            assert "content-disposition" not in r.headers
            assert r.headers["x-content-type-options"] == "nosniff"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
