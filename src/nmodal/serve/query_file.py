"""An uploaded query file: checked (size, type from its first bytes, the index's
modalities) and encoded from a private temporary copy."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import HTTPException, UploadFile

from nmodal.index import QueryEncoder
from nmodal.serve.uploads import SUFFIX, declared_family, sniff


@dataclass(frozen=True)
class QueryFile:
    """What an accepted upload is: its name, detected format, query modality and size."""

    name: str
    format: str
    kind: str
    bytes: int

    def to_dict(self) -> dict[str, object]:
        """The ``upload`` member of the search response."""
        return {"name": self.name, "format": self.format, "kind": self.kind, "bytes": self.bytes}


def size_of(file: UploadFile) -> int:
    """The upload's size in bytes (seeking to its end when the parser did not count it)."""
    if file.size is not None:
        return file.size
    file.file.seek(0, 2)
    size = file.file.tell()
    file.file.seek(0)
    return int(size)


def check_query_file(
    file: UploadFile, kind: str | None, max_bytes: int, modalities: list[str]
) -> QueryFile:
    """Accept ``file`` as a query of ``kind`` (default: its declared or detected family), or
    raise the HTTP error (400, 413, 415) that says why not."""
    size = size_of(file)
    if size > max_bytes:
        raise HTTPException(413, f"file larger than the limit of {max_bytes} bytes")
    if size == 0:
        raise HTTPException(400, "empty file")
    file.file.seek(0)
    head = file.file.read(64)
    file.file.seek(0)
    found = sniff(head)
    name = file.filename or "upload"
    if found is None:
        raise HTTPException(
            415,
            f"{name}: unsupported or unrecognised file type (not an image, video or audio file)",
        )
    fmt, kinds = found
    family = declared_family(file.content_type)
    if family is not None and family not in kinds:
        raise HTTPException(
            415,
            f"{name}: declared as {file.content_type} but the content is {fmt} ({'/'.join(kinds)})",
        )
    if kind is not None and kind not in kinds:
        raise HTTPException(415, f"{name}: a {fmt} file cannot be used as a {kind} query")
    chosen = kind or (family if family in kinds else kinds[0])
    if chosen not in modalities:
        raise HTTPException(400, f"this index has no {chosen} modality (it has {modalities})")
    return QueryFile(name=name, format=fmt, kind=chosen, bytes=size)


def encode_query_file(encoder: QueryEncoder, file: UploadFile, query: QueryFile) -> np.ndarray:
    """The upload's query vector: copied to a temporary file named by its format, encoded
    as a ``query.kind`` artifact, the copy deleted."""
    with tempfile.TemporaryDirectory(prefix="nmodal-upload-") as tmp:
        path = Path(tmp) / f"query{SUFFIX.get(query.format, '')}"
        with path.open("wb") as fh:
            shutil.copyfileobj(file.file, fh, 1 << 20)
        return encoder.encode(query.kind, path)
