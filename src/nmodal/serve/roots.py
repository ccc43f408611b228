"""Which folders a server may serve media from: the index's roots, checked, or the user's.

An index's manifest lists the media roots its posts' files lie in (``media_roots``, recorded
by ``nmodal index build``). The manifest is a file like any other: a forged or careless one
can list ``/`` or a home folder, and with a matching post row the server would then serve
any file there. So the roots served are decided here, once, when the server starts:

- without ``--media-root`` (``named=None``): every root the index lists, except *broad*
  ones -- the filesystem root, the user's home folder or any folder holding it (``/home``),
  system folders and anything inside them outside the home folder (``/etc``, ``/usr``,
  ``/var``, ``/proc``, ...), and
  the top of shared scratch or mount folders (``/tmp``, ``/mnt``, ``/media``, ...), and
  hidden folders (a name starting with ``.``: ``~/.ssh``, ``.git``) -- which are refused
  with the reason; hidden files and folders below a served root are not served either;
- with ``--media-root DIR`` (repeatable): only files inside those folders, whatever the index
  lists (a named folder may be broad: the user asked for it).

A file is served only when it also lies inside its post's recorded root (checked by
:func:`nmodal.serve.media.served_file`); :meth:`ServedRoots.allows` is the second check.
``nmodal serve`` prints :meth:`ServedRoots.describe` before it starts.

Example:
    >>> roots = ServedRoots.decide(["/", "/data/tg/export"], None)  # doctest: +SKIP
    >>> roots.refused  # doctest: +SKIP
    (('/', 'the filesystem root'),)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nmodal.errors import InputError

#: system folders: neither they nor anything inside them is served unless named
SYSTEM_FOLDERS = (
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/root",
    "/run", "/sbin", "/snap", "/sys", "/usr", "/var", "/System", "/Library", "/private/etc",
    "/Applications", "/cores",
)  # fmt: skip
#: shared scratch and mount folders: served below, never as a whole unless named
TOP_FOLDERS = ("/tmp", "/mnt", "/media", "/Volumes", "/opt", "/srv", "/home", "/Users")


def broad_reason(root: Path, home: Path | None = None) -> str | None:
    """Why ``root`` (a resolved path) is too broad to serve unless named; None if it is not."""
    home = (home or Path.home()).resolve()
    if root == Path(root.anchor):
        return "the filesystem root"
    if any(part.startswith(".") for part in root.parts[1:]):
        return "a hidden folder"
    if home == root:
        return "your home folder"
    if home.is_relative_to(root):
        return f"a folder holding your home folder ({home})"
    if root.is_relative_to(home):
        return None  # inside the home folder (even when that is /root)
    for folder in SYSTEM_FOLDERS:
        base = Path(folder)
        if root == base or root.is_relative_to(base):
            return f"a system folder ({folder})"
    if str(root) in TOP_FOLDERS:
        return "a shared top-level folder"
    return None


def _resolved(value: str | Path) -> Path:
    return Path(os.path.realpath(value))


@dataclass(frozen=True)
class ServedRoots:
    """The folders this server serves media from (see the module docs)."""

    #: resolved folders a served file must lie inside
    serving: tuple[Path, ...]
    #: the index's roots that are not served, each with the reason
    refused: tuple[tuple[str, str], ...]
    #: whether ``serving`` are the user's ``--media-root`` folders
    named: bool

    @classmethod
    def decide(
        cls,
        index_roots: Sequence[str | Path],
        named: Sequence[str | Path] | None = None,
        home: Path | None = None,
    ) -> ServedRoots:
        """The served roots for an index listing ``index_roots`` (see the module docs).

        ``named`` (``--media-root``): each must be an existing folder, else an InputError.
        """
        listed = list(dict.fromkeys(str(r) for r in index_roots))
        if named:
            serving: list[Path] = []
            for value in named:
                path = _resolved(value)
                if not path.is_dir():
                    raise InputError(f"--media-root {value}: not a folder")
                serving.append(path)
            refused = [
                (root, "outside every --media-root")
                for root in listed
                if not any(_overlaps(_resolved(root), s) for s in serving)
            ]
            return cls(tuple(dict.fromkeys(serving)), tuple(refused), True)
        serving, refused = [], []
        for root in listed:
            path = _resolved(root)
            reason = broad_reason(path, home)
            if reason is None:
                serving.append(path)
            else:
                refused.append((root, f"{reason}; name it with --media-root to serve it"))
        return cls(tuple(dict.fromkeys(serving)), tuple(refused), False)

    def allows(self, path: Path) -> bool:
        """Whether the resolved file ``path`` lies inside a served folder (without
        ``--media-root``: and not in a hidden folder below it, nor a hidden file)."""
        for root in self.serving:
            if path.is_relative_to(root):
                below = path.relative_to(root).parts
                return self.named or not any(part.startswith(".") for part in below)
        return False

    def describe(self) -> list[str]:
        """Lines for the server's start-up message: what is served, what is refused, why."""
        source = "--media-root" if self.named else "the index"
        lines = [f"serving media from ({source}): {root}" for root in self.serving]
        if not self.serving:
            lines.append(f"serving no media: no usable media root from {source}")
        lines += [f"NOT serving media from {root}: {why}" for root, why in self.refused]
        return lines


def _overlaps(a: Path, b: Path) -> bool:
    return a.is_relative_to(b) or b.is_relative_to(a)
