"""Per-post decode limits of extraction: a time and a memory budget, enforced from outside.

A hostile media file may hang a decoder (a loop inside libav holding the GIL) or make it
allocate without bound; neither can be stopped from inside the worker that runs it. So the
limits are enforced by the process that owns the pool:

- every decoding worker runs its posts through :class:`GuardedDecode`, which writes its
  status file (``run-<pid>.json``, one fixed-size record rewritten in place: the post, the
  start time, the worker's resident memory at the start) before a post and marks it idle
  after;
- a :class:`DecodeWatchdog` thread in the owning process reads those files every
  ``poll_s`` and, when a post has been decoding for longer than ``timeout_s`` or the
  worker's resident memory has grown by more than ``memory_mb`` since the post started,
  writes a *verdict* for the post (``verdict-<hash>.txt``: the reason) and kills the worker
  with SIGKILL;
- the pool then breaks and extraction's recovery (:mod:`nmodal.features.extract`) decodes
  the affected posts again in fresh processes; :class:`GuardedDecode` finds the verdict
  and returns the post with its media recorded as errors (the file and the reason) without
  decoding it again. So a hostile file costs one timeout (or one memory budget) and its own
  post; the other posts are decoded as usual.

Why resident memory polled from outside and not ``RLIMIT_AS`` inside: the limit is on what
one post adds, while the workers' own size varies with the encoders they hold (a
decode-and-encode worker with the offline encoders, one torch thread: 784 MB virtual,
334 MB resident, measured), and a failed allocation inside a native decoder is not
guaranteed to surface as a clean error; a kill from outside always works, and the same
mechanism serves the timeout. The cost: the check runs every ``poll_s`` (50 ms), so a
decoder that touches memory at several GB/s can overshoot the budget by what it touches in
one interval (untouched allocations cost nothing resident).

Only Linux has ``/proc``: elsewhere the memory budget is not enforced (the timeout is).
Decoding in the calling process (``workers=0``) is not guarded.

Example:
    >>> with DecodeWatchdog(DecodeLimits(timeout_s=60)) as watch:  # doctest: +SKIP
    ...     guarded = watch.guard(decode_post)  # submit guarded(job, spec) to the workers
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmodal.features.decode import Decoded, DecodeSpec, PostJob, _present

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass(frozen=True)
class DecodeLimits:
    """The budget of one post's decoding: ``timeout_s`` seconds, ``memory_mb`` megabytes of
    resident-memory growth (``None``: no limit), checked every ``poll_s`` seconds."""

    timeout_s: float | None = 120.0
    memory_mb: float | None = 1536.0
    poll_s: float = 0.05


DEFAULT_LIMITS = DecodeLimits()


def resident_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` in bytes (None when unknown or gone)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        return None


def failed_post(job: PostJob, spec: DecodeSpec, reason: str) -> Decoded:
    """``job`` with its text kept and each media modality it has recorded as a decode
    error: ``reason`` and the file that modality comes from."""
    out = Decoded(job.post_id)
    if "text" in spec.modalities and _present(job.text):
        out.items["text"] = str(job.text)
    video = str(job.video_path) if _present(job.video_path) else None
    sources = {
        "video": video,
        "image": str(job.image_path) if _present(job.image_path) else video,
        "audio": str(job.audio_path) if _present(job.audio_path) else video,
    }
    for m in spec.modalities:
        if m != "text" and sources.get(m) is not None:
            out.errors.append(
                {"post_id": job.post_id, "modality": m, "stage": "decode", "reason": reason,
                 "path": sources[m]}
            )  # fmt: skip
    return out


def _verdict_name(post_id: str) -> str:
    return "verdict-" + hashlib.sha256(post_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class GuardedDecode:
    """``decode(job, spec)`` run under a :class:`DecodeWatchdog` (picklable: it is sent to
    the workers with every job)."""

    def __init__(self, decode: Callable[[PostJob, DecodeSpec], Decoded], folder: str) -> None:
        self.decode = decode
        self.folder = folder

    def verdict(self, post_id: str) -> str | None:
        """Why the watchdog stopped the decoding of ``post_id`` (None if it did not)."""
        try:
            return (Path(self.folder) / (_verdict_name(post_id) + ".txt")).read_text("utf-8")
        except OSError:
            return None

    def __call__(self, job: PostJob, spec: DecodeSpec) -> Decoded:
        if os.path.exists(os.path.join(self.folder, _verdict_name(job.post_id) + ".txt")):
            reason = self.verdict(job.post_id)
            if reason is not None:
                return failed_post(job, spec, reason)
        fd = _status_fd(self.folder)
        pid = os.getpid()
        record = {"post_id": job.post_id[:100], "key": _verdict_name(job.post_id),
                  "start": time.monotonic(), "rss": resident_bytes(pid)}  # fmt: skip
        _write_status(fd, json.dumps(record).encode())
        try:
            return self.decode(job, spec)
        finally:
            _write_status(fd, b"{}")


#: this worker's open status file per watchdog folder (one pwrite per post start and end:
#: cheaper than a new file per post where system calls are slow)
_STATUS_FDS: dict[str, int] = {}
_STATUS_SIZE = 1024


def _status_fd(folder: str) -> int:
    fd = _STATUS_FDS.get(folder)
    if fd is None:
        path = os.path.join(folder, f"run-{os.getpid()}.json")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        _STATUS_FDS[folder] = fd
    return fd


def _write_status(fd: int, data: bytes) -> None:
    os.pwrite(fd, data[:_STATUS_SIZE].ljust(_STATUS_SIZE), 0)


_FOLDER_PREFIX = "nmodal-decode-"


def sweep_stale_folders(root: str | None = None) -> list[Path]:
    """Remove the watchdog folders (``nmodal-decode-<pid>-*`` under ``root``, the temporary
    directory by default) that this user's processes left when killed (kill -9 skips
    :meth:`DecodeWatchdog.close`): those whose owner process is gone. Folders of a live
    process, of another user, or without a pid in their name are left alone. Returns the
    folders removed. Only on systems with ``/proc`` (elsewhere nothing is removed)."""
    if not os.path.isdir("/proc"):
        return []
    removed = []
    uid = os.getuid()
    for folder in Path(root or tempfile.gettempdir()).glob(f"{_FOLDER_PREFIX}*-*"):
        pid_text = folder.name.removeprefix(_FOLDER_PREFIX).split("-", 1)[0]
        try:
            info = folder.lstat()  # a symlink is not a folder here
        except OSError:
            continue
        if not pid_text.isdigit() or info.st_uid != uid or not stat.S_ISDIR(info.st_mode):
            continue
        if os.path.exists(f"/proc/{int(pid_text)}"):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


class DecodeWatchdog:
    """Enforces :class:`DecodeLimits` on the workers that decode through :meth:`guard`.

    A context manager: a temporary folder for the status and verdict files
    (``nmodal-decode-<pid>-*``) and a daemon thread that checks them; both are gone after
    the ``with`` block, and the folders of killed owners are swept when the next watchdog
    starts (:func:`sweep_stale_folders`). ``stopped`` lists the
    ``(post_id, reason)`` of every worker it killed.
    """

    def __init__(self, limits: DecodeLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        sweep_stale_folders()
        self.folder = tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-")
        self.stopped: list[tuple[str, str]] = []
        self._done = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="nmodal-decode-watchdog", daemon=True
        )
        self._thread.start()

    def guard(self, decode: Callable[[PostJob, DecodeSpec], Decoded]) -> GuardedDecode:
        """``decode`` wrapped so that this watchdog sees (and can stop) each post."""
        return GuardedDecode(decode, self.folder)

    def __enter__(self) -> DecodeWatchdog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Stop checking and remove the folder."""
        self._done.set()
        self._thread.join()
        shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self) -> None:
        while not self._done.wait(self.limits.poll_s):
            self.check()

    def _reason(self, record: dict[str, Any], pid: int, now: float) -> str | None:
        lim = self.limits
        if lim.timeout_s is not None and now - float(record["start"]) > lim.timeout_s:
            return (
                f"decoding took longer than {lim.timeout_s:g} s (the per-post limit, "
                "--decode-timeout); the decoder was stopped"
            )
        if lim.memory_mb is not None and record.get("rss") is not None:
            rss = resident_bytes(pid)
            if rss is not None and rss - int(record["rss"]) > lim.memory_mb * 2**20:
                return (
                    f"decoding needed more than {lim.memory_mb:g} MB of memory (the per-post "
                    "limit, --decode-memory-mb); the decoder was stopped"
                )
        return None

    def check(self) -> None:
        """One round: stop every worker over its post's budget."""
        now = time.monotonic()
        for status in Path(self.folder).glob("run-*.json"):
            try:
                pid = int(status.stem.removeprefix("run-"))
                text = status.read_text("utf-8")
                record = json.loads(text)
            except (OSError, ValueError):
                continue  # being written (read again next round)
            if not isinstance(record, dict) or "start" not in record:
                continue  # idle
            if not os.path.exists(f"/proc/{pid}") and os.path.isdir("/proc"):
                status.unlink(missing_ok=True)  # a worker that is gone (pool shut down)
                continue
            reason = self._reason(record, pid, now)
            if reason is None:
                continue
            try:
                if status.read_text("utf-8") != text:
                    continue  # that post finished just now; the next one is not to blame
            except OSError:
                continue
            verdict = Path(self.folder) / (str(record["key"]) + ".txt")
            tmp = verdict.with_name(f".{verdict.name}.tmp")
            tmp.write_text(reason, "utf-8")
            os.replace(tmp, verdict)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            status.unlink(missing_ok=True)
            self.stopped.append((str(record["post_id"]), reason))
