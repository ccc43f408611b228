"""The media a server serves depend on folders the user names, not only on the index.

An index's manifest and posts table are plain files: a forged index can list ``/`` as a media
root and a post whose image is any file there. ``nmodal serve`` prints the roots it serves,
refuses broad ones (the filesystem root, the home folder, system and hidden folders) unless
named with ``--media-root``, and with ``--media-root`` serves nothing outside those folders.
Checked on a real forged index through the real ``nmodal serve`` on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from nmodal.errors import InputError
from nmodal.index import build_index
from nmodal.integrity import sha256_file
from nmodal.serve.roots import ServedRoots, broad_reason
from tests.helpers.media import write_image
from tests.index.fixtures import make_collection

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("root", "home", "reason"),
    [
        ("/", "/home/ann", "the filesystem root"),
        ("/home/ann", "/home/ann", "your home folder"),
        ("/home", "/home/ann", "holding your home folder"),
        ("/etc", "/home/ann", "a system folder (/etc)"),
        ("/usr/share/doc", "/home/ann", "a system folder (/usr)"),
        ("/var/lib/app", "/home/ann", "a system folder (/var)"),
        ("/proc/self", "/home/ann", "a system folder (/proc)"),
        ("/tmp", "/home/ann", "a shared top-level folder"),
        ("/mnt", "/home/ann", "a shared top-level folder"),
        ("/home/ann/.ssh", "/home/ann", "a hidden folder"),
        ("/home/ann/exports/.git/objects", "/home/ann", "a hidden folder"),
        ("/home/ann/exports/ChatExport_2024", "/home/ann", None),
        ("/tmp/pytest-7/export", "/home/ann", None),
        ("/mnt/disk/exports", "/home/ann", None),
        ("/root/exports", "/root", None),  # root's own home is not a system folder to root
        ("/root", "/home/ann", "a system folder (/root)"),
    ],
)
def test_broad_roots(root, home, reason):
    got = broad_reason(Path(root), Path(home))
    if reason is None:
        assert got is None
    else:
        assert got is not None and reason in got


def test_named_roots_must_be_folders_and_restrict(tmp_path: Path):
    (tmp_path / "a").mkdir()
    with pytest.raises(InputError, match=r"--media-root .*nope: not a folder"):
        ServedRoots.decide(["/"], [tmp_path / "nope"])
    roots = ServedRoots.decide(["/", str(tmp_path / "a"), "/srv/other"], [tmp_path / "a"])
    assert roots.named and roots.serving == ((tmp_path / "a").resolve(),)
    assert roots.refused == (("/srv/other", "outside every --media-root"),)
    assert roots.allows((tmp_path / "a" / "x.jpg").resolve())
    assert not roots.allows(Path("/etc/passwd"))
    default = ServedRoots.decide(["/", str(tmp_path / "a")])
    assert not default.named and default.serving == ((tmp_path / "a").resolve(),)
    assert [r for r, _ in default.refused] == ["/"]
    assert not default.allows(Path("/etc/passwd"))


def forge(index_dir: Path, post_id: str, image: Path, root: str) -> None:
    """What an attacker can do to an index folder: point a post's image at ``image`` with
    ``root`` as its media root, list ``root`` in the manifest, fix the recorded SHA-256."""
    posts_file = index_dir / "posts.parquet"
    posts = pd.read_parquet(posts_file)
    row = posts["post_id"] == post_id
    posts.loc[row, "image_path"] = str(image)
    posts.loc[row, "media_root"] = root
    posts.to_parquet(posts_file, index=False)
    manifest_file = index_dir / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["media_roots"] = sorted({*manifest["media_roots"], root})
    manifest["files"]["posts.parquet"] = sha256_file(posts_file)
    manifest_file.write_text(json.dumps(manifest))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """``nmodal serve INDEX ARGS...`` in its own process on a free port of 127.0.0.1."""

    def __init__(self, index_dir: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
        cmd = [sys.executable, "-m", "nmodal", "serve", str(index_dir), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*cmd, "--log-level", "warning", *args],
            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        )  # fmt: skip
        self.lines: list[str] = []
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nmodal serve did not start: {self.proc.stderr.read()}")
            time.sleep(0.2)

    def stop(self) -> str:
        self.proc.terminate()
        try:
            _, err = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return err


@pytest.mark.slow
def test_forged_index_cannot_serve_files_the_user_did_not_name(tmp_path: Path):
    col = make_collection(tmp_path / "c", num_posts=40, seed=3)
    index_dir = build_index(col.model, col.store, col.dataset, tmp_path / "idx", progress=False)
    posts = pd.read_parquet(index_dir / "posts.parquet")
    with_image = posts.loc[posts["image_path"].notna(), "post_id"].tolist()
    honest, forged_root, forged_hidden = with_image[:3]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "stuff" / ".ssh").mkdir(parents=True)
    secret = write_image(elsewhere / "secret.jpg", index=1)
    hidden = write_image(tmp_path / "stuff" / ".ssh" / "key.jpg", index=2)
    forge(index_dir, forged_root, secret, "/")
    forge(index_dir, forged_hidden, hidden, str(hidden.parent))

    def media(url: str, post_id: str) -> httpx.Response:
        return httpx.get(f"{url}/api/media", params={"post_id": post_id, "kind": "image"})

    server = Served(index_dir)
    try:
        assert media(server.url, honest).status_code == 200
        for post_id in (forged_root, forged_hidden):
            r = media(server.url, post_id)
            assert r.status_code == 403, r.text
            assert "outside the media roots served" in r.json()["detail"]
            assert str(tmp_path) not in r.text  # no filesystem path in the answer
            t = httpx.get(f"{server.url}/api/thumbnail", params={"post_id": post_id})
            assert t.status_code == 403
    finally:
        err = server.stop()
    assert "NOT serving media from /: the filesystem root" in err
    assert f"NOT serving media from {hidden.parent}: a hidden folder" in err
    assert f"serving media from (the index): {col.dataset.resolve()}" in err

    # named explicitly, a folder is served -- and nothing outside the named folders is
    server = Served(index_dir, "--media-root", str(elsewhere))
    try:
        r = media(server.url, forged_root)
        assert r.status_code == 200 and r.content == secret.read_bytes()
        assert media(server.url, honest).status_code == 403
        assert media(server.url, forged_hidden).status_code == 403
    finally:
        err = server.stop()
    assert f"serving media from (--media-root): {elsewhere.resolve()}" in err
    assert f"NOT serving media from {col.dataset.resolve()}: outside every --media-root" in err

    bad = subprocess.run(
        [sys.executable, "-m", "nmodal", "serve", str(index_dir), "--port", str(free_port()),
         "--media-root", str(tmp_path / "missing")],
        capture_output=True, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"},
    )  # fmt: skip
    assert bad.returncode != 0
    assert "not a folder" in bad.stderr and "Traceback" not in bad.stderr
