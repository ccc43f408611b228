"""Seeded mutants of real-format metadata through the real ``nmodal ingest`` entry point.

Seeds: a Telegram Desktop ``result.json`` of a channel and a full-account ``chats.list``
export (real messages from ``../shared/data``, when present), a Telethon NDJSON dump (real
``to_dict`` messages) and posts manifests (JSONL and CSV). Each mutant changes one to three
values of random records — type swaps, huge numbers, nesting deep enough to exhaust a
recursive parser, invalid UTF-8, lone surrogates, NUL bytes, missing and extra keys, media
paths with ``../``, absolute paths, a symlink leaving the folder — or, now and then, the
whole file (truncated, another top-level type). Each runs ``nmodal ingest`` in this process
(``nmodal.cli.main``, the handler and its error reporting) and must:

- return 0, or 1 with a one-line error naming the input; never raise (a traceback);
- store no media path outside the folder named (the planted secret is never referenced);
- turn every unreadable record into a dropped ``!error/<file>:<where>`` row whose reason
  starts with ``bad record:``;
- keep every post of the untouched records that a run without the touched record keeps.

60 mutants per seed (300 in all; ``NMODAL_FUZZ_MUTANTS`` for more); about a minute per seed
on a loaded machine, so marked slow.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nmodal.cli import main
from nmodal.sources import read_posts
from tests.helpers.media import write_image

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MUTANTS = int(os.environ.get("NMODAL_FUZZ_MUTANTS", "60"))
DEEP = "@@DEEP@@"
BAD_UTF8 = "@@BADUTF8@@"
#: keys whose change may legitimately change other records' posts (ids, albums, order)
IDENTITY = {"id", "post_id", "grouped_id", "media_group_id", "date", "date_unixtime",
            "peer_id", "type", "from_id", "account"}  # fmt: skip
PATH_KEYS = ("photo", "file", "thumbnail", "image_path", "video_path", "audio_path",
             "media_path", "file_path", "image", "video")  # fmt: skip


@dataclass
class Seed:
    """One input: ``records`` written by ``write`` into ``root``; ``argv`` ingests it."""

    name: str
    root: Path
    records: list[dict[str, Any]]
    write: Callable[[list[Any], Path], bytes]
    target: Path
    argv: list[str]


def _secret(tmp: Path) -> Path:
    (tmp / "secret").mkdir(exist_ok=True)
    return write_image(tmp / "secret" / "passwd.jpg", index=1)


def _path_payloads(root: Path, secret: Path) -> list[str]:
    link = root / "link_out.jpg"
    if not link.is_symlink():
        os.symlink(secret, link)
    rel = os.path.relpath(secret, root)
    return [rel, str(secret), "photos/../" + rel, "link_out.jpg", "photos/a\x00.jpg",
            "/etc/passwd", "~/passwd.jpg", "..\\secret\\passwd.jpg", "", ".", "photos",
            "photos/" + "x" * 5000 + ".jpg", "file:///etc/passwd"]  # fmt: skip


def _values(rng: np.random.Generator, key: str, paths: list[str]) -> Any:
    pool: list[Any] = [None, True, False, 0, -1, 1.5, "", "x", [], {}, [1, 2], {"a": [1]},
                       10**40, -(10**40), 2**63, 1e308, "9" * 50, DEEP, BAD_UTF8,
                       "lone \ud800 surrogate", "nul\x00byte", "x" * 100_000,
                       [{"type": "bold", "text": 5}], {"_": "PeerChannel"}]  # fmt: skip
    if key in PATH_KEYS or rng.random() < 0.15:
        pool = pool + paths * 3
    return pool[int(rng.integers(len(pool)))]


def _mutate(seed: Seed, rng: np.random.Generator, paths: list[str]) -> tuple[bytes, set[int], str]:
    """One mutant: its bytes, the indexes of the records touched (empty: the whole file)
    and a description."""
    records = json.loads(json.dumps(seed.records))
    touched: set[int] = set()
    what: list[str] = []
    if rng.random() < 0.06:
        data = seed.write(records, seed.root)
        kind = int(rng.integers(4))
        if kind == 0:
            data = data[: int(rng.integers(1, max(2, len(data))))]
            what.append("truncated")
        elif kind == 1:
            data = b"[1, 2, 3]" if rng.random() < 0.5 else b"42"
            what.append("top-level type")
        elif kind == 2:
            data = b""
            what.append("empty")
        else:
            data = b"\xef\xbb\xbf" + data
            what.append("BOM")
        return data, {-1}, ", ".join(what)
    for _ in range(int(rng.integers(1, 4))):
        i = int(rng.integers(len(records)))
        rec = records[i]
        if not isinstance(rec, dict):
            continue
        keys = list(rec) + list(PATH_KEYS[:6]) + ["grouped_id", "forwarded_from", "reply_to"]
        key = keys[int(rng.integers(len(keys)))]
        op = rng.random()
        if op < 0.15 and key in rec:
            del rec[key]
            what.append(f"record {i}: no {key}")
        elif op < 0.2:
            rec[f"extra_{int(rng.integers(100))}"] = _values(rng, key, paths)
            what.append(f"record {i}: extra key")
        elif op < 0.25:
            records[i] = _values(rng, key, paths)  # the record itself is not an object
            what.append(f"record {i}: replaced by {records[i]!r:.40}")
        else:
            rec[key] = _values(rng, key, paths)
            what.append(f"record {i}: {key}={rec[key]!r:.60}")
        touched.add(i if key not in IDENTITY else -1)
    data = seed.write(records, seed.root)
    data = data.replace(json.dumps(DEEP).encode(), b"[" * 100_000 + b"]" * 100_000)
    data = data.replace(DEEP.encode(), b"[[[[")  # in CSV: a value, not structure
    data = data.replace(BAD_UTF8.encode(), b"caf\xe9 \xff\xfe")
    return data, touched, "; ".join(what)


def _run(seed: Seed, data: bytes, out: Path) -> tuple[int, str]:
    seed.target.write_bytes(data)
    if out.exists():
        shutil.rmtree(out)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(["ingest", *seed.argv, "--out", str(out), "--workers", "0", "--no-progress",
                   "--require", "none"])  # fmt: skip
    return rc, err.getvalue()


def _check(
    seed: Seed, rc: int, err: str, out: Path, secret: Path, what: str
) -> pd.DataFrame | None:
    assert "Traceback" not in err, what
    if rc != 0:
        assert rc == 1 and err.count("\n") == 1, (what, err)
        assert seed.target.name in err or str(seed.root) in err, (what, err)
        return None
    posts = read_posts(out, absolute=True)
    root = seed.root.resolve()
    for col in ("image_path", "video_path", "audio_path"):
        if col not in posts.columns:
            continue
        for p in posts[col].dropna():
            resolved = Path(p).resolve()
            assert resolved.is_relative_to(root) and resolved != secret.resolve(), (what, p)
    bad = posts[posts["post_id"].str.startswith("!error/")]
    assert (bad["status"] == "dropped").all(), what
    assert all(str(r).startswith("bad record: ") and seed.target.name in str(r)
               for r in bad["reason"]), (what, bad["reason"].tolist())  # fmt: skip
    return posts


def _kept(posts: pd.DataFrame) -> set[str]:
    return set(posts.loc[posts["status"] == "kept", "post_id"])


def _fuzz(seed: Seed, tmp: Path, secret: Path, rng_seed: int) -> dict[str, int]:
    out = tmp / f"ds-{seed.name}"
    base_data = seed.write(seed.records, seed.root)
    rc, err = _run(seed, base_data, out)
    assert rc == 0, err
    base = read_posts(out)
    assert (base["status"] == "kept").sum() >= 2, "the seed must keep posts"
    without: dict[int, set[str]] = {}
    for i in range(len(seed.records)):
        rest = seed.records[:i] + seed.records[i + 1 :]
        rc, err = _run(seed, seed.write(rest, seed.root), out)
        assert rc == 0, err
        without[i] = _kept(read_posts(out))
    paths = _path_payloads(seed.root, secret)
    rng = np.random.default_rng(rng_seed)
    counts = {"ok": 0, "refused": 0, "bad_records": 0}
    for _ in range(MUTANTS):
        data, touched, what = _mutate(seed, rng, paths)
        try:
            rc, err = _run(seed, data, out)
        except Exception as exc:  # a traceback: report which mutant
            raise AssertionError(f"{seed.name}: {what}: {type(exc).__name__}: {exc}") from exc
        posts = _check(seed, rc, err, out, secret, f"{seed.name}: {what}")
        if posts is None:
            counts["refused"] += 1
            assert touched == {-1}, f"{seed.name}: {what}: a record's value refused the file: {err}"
            continue
        counts["ok"] += 1
        counts["bad_records"] += int(posts["post_id"].str.startswith("!error/").sum())
        if -1 not in touched:
            # kept without the touched records and kept with them intact (an album's post
            # is named after its first message, so removing a member can rename it)
            expect = set.intersection(_kept(base), *(without[i] for i in touched))
            missing = expect - _kept(posts)
            assert not missing, f"{seed.name}: {what}: good posts lost: {sorted(missing)[:5]}"
    return counts


# ------------------------------------------------------------------ seeds


def _json_export(channel: dict[str, Any]) -> Callable[[list[Any], Path], bytes]:
    def write(records: list[Any], root: Path) -> bytes:
        return json.dumps({**channel, "messages": records}).encode()

    return write


def _real(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the real data live beside the checkout)")
    return path


def _export_seed(tmp: Path) -> Seed:
    src = _real("telegram-exports/trantor_library")
    data = json.loads((src / "result.json").read_text("utf-8"))
    root = tmp / "export"
    picked = [m for m in data["messages"] if m.get("type") == "message"][:14]
    for m in picked:
        for key in PATH_KEYS:
            rel = m.get(key)
            if isinstance(rel, str) and (src / rel).is_file():
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src / rel, root / rel)
    (root / "photos").mkdir(parents=True, exist_ok=True)
    channel = {k: v for k, v in data.items() if k != "messages"}
    return Seed("export", root, picked, _json_export(channel), root / "result.json",
                ["telegram-export", str(root)])  # fmt: skip


def _chats_seed(tmp: Path) -> Seed:
    src = _real("telegram-exports/ensia_full_account")
    data = json.loads((src / "result.json").read_text("utf-8"))
    chat = data["chats"]["list"][0]
    root = tmp / "account"
    (root / "photos").mkdir(parents=True)
    picked = [m for m in chat["messages"] if m.get("type") == "message" and m.get("text")][:12]
    head = {k: v for k, v in data.items() if k != "chats"}
    meta = {k: v for k, v in chat.items() if k != "messages"}

    def write(records: list[Any], root: Path) -> bytes:
        chats = {**data["chats"], "list": [{**meta, "messages": records}]}
        return json.dumps({**head, "chats": chats}).encode()

    return Seed("chats", root, picked, write, root / "result.json",
                ["telegram-export", str(root)])  # fmt: skip


def _ndjson_write(records: list[Any], root: Path) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def _telethon_seed(tmp: Path) -> Seed:
    src = _real("telethon")
    messages = json.loads((src / "ditirodt_Ukraine_channel_messages.json").read_text("utf-8"))
    root = tmp / "telethon"
    shutil.copytree(src / "media", root / "media")
    (root / "photos").mkdir()
    picked = [m for m in messages if m.get("message")][:12]
    return Seed("telethon", root, picked, _ndjson_write, root / "dump.ndjson",
                ["ndjson", str(root / "dump.ndjson"), "--media-dir", str(root / "media")])  # fmt: skip


def _manifest_records(root: Path) -> list[dict[str, Any]]:
    (root / "photos").mkdir(parents=True)
    out = []
    for i in range(8):
        rec: dict[str, Any] = {"post_id": f"m{i}", "account": "acct", "date": f"2024-01-0{i + 1}",
                               "text": f"manifest post {i} with enough words in it", "stance": "a"}  # fmt: skip
        if i % 2 == 0:
            rec["image_path"] = f"photos/p{i}.png"
            write_image(root / "photos" / f"p{i}.png", index=i)
        out.append(rec)
    return out


def _csv_write(records: list[Any], root: Path) -> bytes:
    rows = [r if isinstance(r, dict) else {"post_id": json.dumps(r)[:50]} for r in records]
    cols = sorted({k for r in rows for k in r})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    for r in rows:
        w.writerow(["" if r.get(c) is None else
                    (json.dumps(r[c]) if isinstance(r[c], list | dict) else str(r[c])) for c in cols])  # fmt: skip
    return buf.getvalue().encode("utf-8", "surrogatepass")


def _manifest_seed(tmp: Path, kind: str) -> Seed:
    root = tmp / f"manifest-{kind}"
    records = _manifest_records(root)
    target = root / f"posts.{kind}"
    write = _ndjson_write if kind == "jsonl" else _csv_write
    return Seed(f"manifest-{kind}", root, records, write, target, ["manifest", str(target)])


SEEDS: dict[str, Callable[[Path], Seed]] = {
    "export": _export_seed,
    "chats": _chats_seed,
    "telethon": _telethon_seed,
    "manifest-jsonl": lambda tmp: _manifest_seed(tmp, "jsonl"),
    "manifest-csv": lambda tmp: _manifest_seed(tmp, "csv"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SEEDS))
def test_mutated_metadata_through_nmodal_ingest(name: str, tmp_path: Path) -> None:
    secret = _secret(tmp_path)
    seed = SEEDS[name](tmp_path)
    counts = _fuzz(seed, tmp_path, secret, rng_seed=1400 + len(name))
    assert counts["ok"] + counts["refused"] == MUTANTS
    assert counts["ok"] > MUTANTS // 2, counts
