"""The one boundary for media files, decided at ingest.

Every media path a source names is resolved once, here: joined to the folder it is relative
to, ``..`` and symbolic links resolved, and accepted only when the real file lies inside the
media root the user named (the export folder, the manifest's folder, ``--media-dir``). A
path that escapes (``../``, an absolute path elsewhere, a symlink pointing out) is recorded
as a problem of that post and never opened; so is a NUL byte or a path the system cannot
represent. The accepted path is absolute and real, and the posts table stores the root with
it (column ``media_root``), so later steps (extraction, the index, ``nmodal serve``) can
check a file against the root it was found in without trusting anything else.

Example:
    >>> root = MediaRoot("exports/chan")  # doctest: +SKIP
    >>> root.resolve("photos/1.jpg")  # doctest: +SKIP
    (PosixPath('/abs/exports/chan/photos/1.jpg'), None)
    >>> root.resolve("../../etc/passwd")  # doctest: +SKIP
    (None, 'path escapes the media folder (../../etc/passwd)')
"""

from __future__ import annotations

import os
from pathlib import Path


def is_inside(path: Path, root: Path) -> bool:
    """Whether real path ``path`` is ``root`` or below it (both already resolved)."""
    return path == root or path.is_relative_to(root)


class MediaRoot:
    """A folder media may be read from, and the folders relative paths are looked up in."""

    def __init__(self, root: str | Path, bases: tuple[str | Path, ...] = ()) -> None:
        self.root = Path(os.path.realpath(root))
        self.bases = tuple(Path(os.path.realpath(b)) for b in bases) or (self.root,)

    def __str__(self) -> str:
        return str(self.root)

    def check(self, path: Path) -> tuple[Path | None, str | None]:
        """``(real path, None)`` when ``path`` is a file inside the root, else ``(None, why)``."""
        try:
            real = Path(os.path.realpath(path))
        except (OSError, ValueError) as exc:
            return None, f"unreadable path ({exc})"
        if not is_inside(real, self.root):
            return None, "path escapes the media folder"
        try:
            if not real.is_file():
                return None, "file missing"
        except (OSError, ValueError) as exc:
            return None, f"unreadable path ({exc})"
        return real, None

    def resolve(self, value: object) -> tuple[Path | None, str | None]:
        """The real path of media ``value`` (relative to the bases, or absolute) when it is
        a file inside the root; otherwise ``(None, reason)`` naming the value."""
        if not isinstance(value, str) or not value.strip():
            return None, "no path"
        shown = value.encode("unicode_escape").decode("ascii") if not value.isprintable() else value
        if "\x00" in value:
            return None, f"invalid path, NUL byte ({shown})"
        raw = Path(value)
        why = "file missing"
        for base in self.bases:
            candidate = raw if raw.is_absolute() else base / raw
            found, problem = self.check(candidate)
            if found is not None:
                return found, None
            why = problem or why
            if raw.is_absolute():
                break
        return None, f"{why} ({shown})"
