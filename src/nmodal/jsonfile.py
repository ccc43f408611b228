"""Reading the versioned JSON files that describe nmodal's on-disk formats.

A feature store, a post index and a saved classifier are each a directory described by a
JSON file holding ``"format"`` (what the directory is) and ``"version"`` (of its layout).
:func:`read_format_json` reads one, checks both and raises :class:`InputError` naming the
file and the reason: missing, unreadable, another format, or an unsupported version.

Example:
    >>> read_format_json("runs/index", "manifest.json", format="nmodal-post-index",
    ...                  versions=(1,), what="an nmodal post index")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

from nmodal.errors import InputError


def read_format_json(
    directory: str | Path,
    name: str,
    *,
    format: str,
    versions: Collection[int],
    what: str,
    missing_hint: str = "",
    version_hint: str = "",
) -> dict[str, Any]:
    """The parsed ``directory/name``, checked to be ``format`` in one of ``versions``.

    ``what`` names the directory in messages ("a feature store"); the hints are appended
    to the missing-file and unsupported-version messages (e.g. how to make a new one).
    """
    directory = Path(directory)
    path = directory / name
    if not path.is_file():
        raise InputError(f"{directory}: not {what} (no {name}){missing_hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: unreadable {name} ({exc})") from exc
    if not isinstance(data, dict) or data.get("format") != format:
        raise InputError(f"{path}: not the {name} of {what}")
    if data.get("version") not in versions:
        readable = ", ".join(str(v) for v in sorted(versions))
        raise InputError(
            f"{path}: format version {data.get('version')} of {what}, this nmodal reads "
            f"version {readable}{version_hint}"
        )
    return data
