"""Crash-safe writes of files and directories: complete or absent, never half-written.

The one place nmodal writes an output "to a temporary place, then swaps it in". Every
leftover of a run killed mid-write carries the writer's process id in its name, so the next
run (writer or reader) can tell a dead writer's leftovers from a live one's and clean them
up or finish them.

Files: :func:`write_bytes` / :func:`write_text` / :func:`writing_file` write a temporary
sibling ``.<name>.nmodal-tmp-<pid>-<rand>``, fsync it, rename it over ``<name>`` (atomic on
POSIX) and fsync the parent directory.

Directories: :func:`replacing_dir` yields a staging sibling to fill; on success every file
in it is fsynced and it is swapped in:

1. staging ``.<name>.nmodal-tmp-<pid>-<rand>`` is filled and fsynced;
2. if ``<name>`` does not exist: rename staging -> ``<name>``; done;
3. otherwise rename staging -> ``.<name>.nmodal-ready-<pid>`` (the new version is complete);
4. rename ``<name>`` -> ``.<name>.nmodal-old-<pid>`` (the commit point);
5. rename ready -> ``<name>``; 6. delete old.

:func:`recover_dir` (called by every loader before it reads, and by every writer before it
writes) turns any crash state back into a complete directory: a dead writer's staging is
deleted; a ready version is rolled back while ``<name>`` still exists (before step 4) and
rolled forward once it does not (after step 4); an old version is deleted once ``<name>``
exists again. At every point either the old or the new version is readable.

Example:
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with replacing_dir(d / "model") as tmp:
    ...     _ = (tmp / "config.json").write_text("{}")
    >>> sorted(p.name for p in d.iterdir())
    ['model']
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from nmodal.errors import OutputExistsError

_TMP = "nmodal-tmp"
_READY = "nmodal-ready"
_OLD = "nmodal-old"
_LEFTOVER = re.compile(
    r"^\.(?P<name>.+)\.(?P<kind>nmodal-tmp|nmodal-ready|nmodal-old)-(?P<pid>\d+)"
)


class AtomicWriteError(OSError):
    """A directory swap that could not complete (the previous version is kept)."""


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _leftovers(path: Path) -> list[tuple[str, int, Path]]:
    """``(kind, pid, path)`` of this target's leftovers in its parent directory."""
    found = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    for entry in entries:
        m = _LEFTOVER.match(entry.name)
        if m and m["name"] == path.name:
            found.append((m["kind"], int(m["pid"]), entry))
    return found


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


#: the mode of every file nmodal writes: what ``open()`` would give under the process's
#: umask (safetensors and temporary files are created 0600, unreadable by a server account)
FILE_MODE = 0o666 & ~_umask()


def _publish(path: str | Path) -> None:
    with contextlib.suppress(OSError):
        os.chmod(path, FILE_MODE)


def _fsync_tree(root: Path) -> None:
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                continue
            _publish(p)
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _sibling(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def clean_stale(path: str | Path) -> None:
    """Delete temporary files of ``path`` left by writers that are no longer running."""
    path = Path(path)
    for kind, pid, entry in _leftovers(path):
        if kind == _TMP and not _pid_alive(pid):
            _remove(entry)


@contextlib.contextmanager
def writing_file(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary sibling path to write; on success it replaces ``path`` atomically.

    ``suffix`` ends the temporary name (for writers that pick a format from it, ``.mp4``).
    On an exception the temporary file is deleted and ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    tmp = _sibling(path, _TMP)
    tmp = tmp.with_name(tmp.name + suffix)
    try:
        yield tmp
        _publish(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (complete or not at all)."""
    with writing_file(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (complete or not at all)."""
    write_bytes(path, text.encode("utf-8"))


def check_replaceable(
    path: str | Path, kind: str, marker: str, format_name: str | None = None
) -> None:
    """Refuse to delete ``path`` to write a new ``kind`` over it unless it is one already.

    ``--overwrite`` replaces an output with a new version of the same kind; it never deletes
    anything else (a dataset given as a store's ``--out``, a command's own input, someone's
    documents). ``path`` may be missing, an empty directory, or a directory holding
    ``marker`` (a JSON file) whose ``"format"`` is ``format_name`` (any JSON when None);
    otherwise :class:`OutputExistsError` says what is there.
    """
    path = Path(path)
    if not path.exists():
        return
    if not path.is_dir() or path.is_symlink():
        raise OutputExistsError(f"{path}: exists and is not a directory; not replacing it")
    if not any(path.iterdir()):
        return
    found = path / marker
    try:
        doc = json.loads(found.read_text(encoding="utf-8")) if found.is_file() else None
    except (OSError, ValueError):
        doc = None
    if doc is not None and (
        format_name is None or (isinstance(doc, dict) and doc.get("format") == format_name)
    ):
        return
    raise OutputExistsError(
        f"{path}: holds something other than an nmodal {kind} (no {marker}"
        f"{' of format ' + format_name if format_name else ''}); --overwrite replaces only a "
        f"previous {kind}: choose another folder, or empty it yourself"
    )


def check_separate(out: str | Path, *inputs: str | Path | None) -> None:
    """Refuse an output folder ``out`` that is one of the ``inputs`` or holds one: writing
    it (with overwrite, replacing it) would delete what it is made from."""
    target = Path(out).resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).resolve()
        if source == target or target in source.parents:
            what = "is" if source == target else "holds"
            raise OutputExistsError(
                f"{out}: the output folder {what} the input {given}; writing it would delete "
                "the input: choose another output folder"
            )


def recover_dir(path: str | Path) -> Path:
    """Bring directory ``path`` back to one complete version after a killed swap; returns it.

    Safe to call at any time, by readers and writers: it only touches leftovers of writers
    that are no longer running, except that a complete new version is always rolled forward
    when ``path`` itself is missing.
    """
    path = Path(path)
    leftovers = _leftovers(path)
    if not leftovers:
        return path
    for kind, pid, entry in sorted(leftovers, key=lambda t: t[0] != _READY):
        alive = _pid_alive(pid)
        if kind == _TMP:
            if not alive:
                _remove(entry)
        elif kind == _READY:
            if not path.exists():
                with contextlib.suppress(FileNotFoundError):
                    os.replace(entry, path)  # after the commit point: finish the swap
            elif not alive:
                _remove(entry)  # before the commit point: the old version stays
    for kind, pid, entry in _leftovers(path):
        if kind == _OLD:
            if path.exists():
                if not _pid_alive(pid):
                    _remove(entry)
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.replace(entry, path)
    _fsync_dir(path.parent)
    return path


@contextlib.contextmanager
def replacing_dir(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory; on success it becomes ``path`` (crash-safe swap).

    The previous ``path`` (if any) stays readable until the new one is complete and fsynced.
    On an exception the staging directory is deleted and ``path`` is unchanged. Callers
    decide beforehand whether replacing an existing ``path`` is allowed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_dir(path)
    tmp = _sibling(path, _TMP)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        _swap_in(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _swap_in(tmp: Path, path: Path) -> None:
    if not path.exists():
        try:
            os.rename(tmp, path)
        except OSError:
            if not path.exists():
                raise
        else:
            _fsync_dir(path.parent)
            return
    ready = path.with_name(f".{path.name}.{_READY}-{os.getpid()}")
    old = path.with_name(f".{path.name}.{_OLD}-{os.getpid()}")
    for stale in (ready, old):
        _remove(stale)
    os.rename(tmp, ready)
    _fsync_dir(path.parent)
    try:
        os.rename(path, old)
    except FileNotFoundError:
        pass
    except BaseException:
        _remove(ready)
        raise
    try:
        os.rename(ready, path)
    except FileNotFoundError:
        if not path.exists():  # a concurrent recover_dir finished our swap, or lost it
            recover_dir(path)
            raise AtomicWriteError(f"{path}: the new version vanished during the swap") from None
    _fsync_dir(path.parent)
    _remove(old)
