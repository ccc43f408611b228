"""Errors nmodal raises for bad input: each names the file or value and the reason.

The CLI prints these as one line (no traceback); library users can catch ``NModalError``.
"""

from __future__ import annotations


class NModalError(Exception):
    """Base class of every error nmodal raises on purpose."""


class InputError(NModalError, ValueError):
    """Bad input data: wrong shapes, NaNs, unknown modality names, unreadable files."""


class OutputExistsError(NModalError, FileExistsError):
    """An output path exists and overwriting was not asked for."""


class MediaError(NModalError):
    """A media file could not be decoded; carries the path and the reason."""

    def __init__(self, path: str, reason: str, stage: str = "decode") -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.stage = stage
