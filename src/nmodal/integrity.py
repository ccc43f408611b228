"""Checks a loader runs before trusting a directory it did not write: names and hashes.

Models, indexes and classifiers record the SHA-256 of their files in their JSON
description; :func:`verify_files` checks them, refusing names that are not plain file
names (``../x``, ``/etc/passwd``, ``a/b``). Verification is on by default; ``--no-verify``
on the command line (environment ``NMODAL_NO_VERIFY=1``) skips the hashing for speed, never
the name checks.

Example:
    >>> plain_name("model.safetensors"), plain_name("../outside")
    (True, False)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from nmodal.errors import InputError

NO_VERIFY_ENV = "NMODAL_NO_VERIFY"


def plain_name(name: object) -> bool:
    """Whether ``name`` is a plain file name: no directory part, no NUL, not ``.``/``..``."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and "/" not in name
        and "\\" not in name
        and "\0" not in name
    )


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return sha256_files([path])


def sha256_files(paths: Sequence[str | Path]) -> str:
    """Hex SHA-256 of the files' bytes read one after the other (4 MiB at a time)."""
    h = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
    return h.hexdigest()


def hash_files(directory: str | Path, skip: str) -> dict[str, str]:
    """``{name: sha256}`` of every regular file in ``directory`` except ``skip``."""
    directory = Path(directory)
    return {
        p.name: sha256_file(p)
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.is_symlink() and p.name != skip
    }


def verification_enabled(verify: bool | None) -> bool:
    """``verify`` if given, else on unless ``NMODAL_NO_VERIFY=1`` (set by ``--no-verify``)."""
    if verify is not None:
        return verify
    return os.environ.get(NO_VERIFY_ENV, "") not in ("1", "true", "yes")


def verify_files(
    directory: str | Path,
    files: object,
    described_by: str,
    required: tuple[str, ...] = (),
    verify: bool | None = None,
) -> None:
    """Check ``files`` (``{name: sha256}`` from ``directory/described_by``) against the disk.

    Names are always checked to be plain file names; hashes unless verification is off.
    """
    directory = Path(directory)
    desc = directory / described_by
    if files is None:
        if not verification_enabled(verify):
            return
        raise InputError(
            f"{desc}: records no file hashes (written by an older nmodal); rewrite it or "
            "pass --no-verify"
        )
    if not isinstance(files, dict) or any(r not in files for r in required):
        raise InputError(f"{desc}: 'files' must map file names to SHA-256 ({required} needed)")
    for name, digest in files.items():
        if not plain_name(name):
            raise InputError(f"{desc}: {name!r} is not a plain file name")
        file = directory / name
        if file.is_symlink() or not file.is_file():
            raise InputError(f"{file}: listed in {described_by} but missing or not a file")
        if verification_enabled(verify) and sha256_file(file) != digest:
            raise InputError(
                f"{file}: SHA-256 does not match {described_by} (corrupt or modified); "
                "pass --no-verify to skip the check"
            )
