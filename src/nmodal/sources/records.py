"""Raw post records: cleaning hostile values, and a bad record as a record of its own.

Every adapter reads metadata that may be malformed: ids of 10^40, lone UTF-16 surrogates,
NUL bytes, a list where a number belongs, nesting deep enough to exhaust the parser's
recursion. None of these may cost more than the one record: :func:`bad_record` turns the
problem into a dropped row (``post_id`` ``"!error/<file>:<where>"``, reason ``"bad record:
..."``) that names the file and the line or message id, and the helpers here turn odd
values into ``None`` or clean strings instead of raising later (in pandas or Parquet).

Example:
    >>> safe_int("12"), safe_int(10**40), safe_int([1])
    (12, None, None)
    >>> clean_str("a\\ud800b")
    'a\\ufffdb'
"""

from __future__ import annotations

import json
import numbers
import re
from pathlib import Path
from typing import Any

INT64_MAX = 2**63 - 1
#: prefix of the post id of a record that could not be read
ERROR_PREFIX = "!error/"


def clean_str(value: str) -> str:
    """``value`` with lone surrogates replaced by U+FFFD and NUL bytes removed."""
    if not value.isascii():
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", "")


def clean_value(value: Any) -> Any:
    """Strings cleaned (:func:`clean_str`), everything else as it is."""
    return clean_str(value) if isinstance(value, str) else value


def safe_int(value: Any) -> int | None:
    """An integer that fits in int64 (from an int or a string of digits), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.lstrip("-").isdigit() or len(text) > 20:
            return None
        value = int(text)
    if isinstance(value, numbers.Integral) and -INT64_MAX <= int(value) <= INT64_MAX:
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        if number.is_integer() and abs(number) <= 2**53:
            return int(number)
    return None


def safe_key(value: Any) -> str | None:
    """An identifier (album id, peer id) as a string: ints and short strings; None for
    lists, maps, floats and anything else that cannot identify."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, str) and value.strip() and len(value) <= 256:
        return clean_str(value.strip())
    return None


def safe_text(value: Any) -> str | None:
    """A short string field (a name, a signature): strings and numbers, cleaned."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        text = clean_str(value).strip()
        return text or None
    return None


def bad_record(path: str | Path, where: str | int, reason: str, source: str) -> dict[str, Any]:
    """A dropped row for a record that could not be read (``where``: line or message id)."""
    name = Path(path).name
    return {
        "post_id": f"{ERROR_PREFIX}{clean_str(name)}:{where}",
        "source": source,
        "text": "",
        "problems": [f"{clean_str(str(path))}:{where}"],
        "drop": f"bad record: {clean_str(reason)} ({clean_str(name)}:{where})",
    }


def load_json_text(text: str, where: str) -> Any:
    """``json.loads`` whose every failure (syntax, nesting depth) is a ValueError naming
    ``where``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # one JSON Lines record is one line: its column says where; a document, line and column
        at = (
            f"line {exc.lineno} column {exc.colno}"
            if "\n" in text.strip()
            else f"column {exc.colno}"
        )
        raise ValueError(f"not JSON ({exc.msg} at {at})") from None
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


#: what stands in for a value nested deeper than :data:`MAX_DEPTH` in a whole JSON document
TOO_DEEP = "\x00nmodal: JSON nested too deeply"
#: deepest nesting kept when a document has to be cut (real exports nest a few levels)
MAX_DEPTH = 64
_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


def _cut_deep(data: bytes, limit: int = MAX_DEPTH) -> bytes:
    """``data`` with every array/object opened at depth ``limit`` replaced by the JSON string
    :data:`TOO_DEEP` (strings are skipped whole, so brackets inside them do not count)."""
    out: list[bytes] = []
    depth, keep_from, cut_at = 0, 0, -1
    for m in _TOKENS.finditer(data):
        tok = m.group()
        if tok[:1] == b'"':
            continue
        if tok in (b"[", b"{"):
            depth += 1
            if depth == limit and cut_at < 0:
                out.append(data[keep_from : m.start()])
                cut_at = m.start()
        else:
            if depth == limit and cut_at >= 0:
                out.append(json.dumps(TOO_DEEP).encode())
                keep_from, cut_at = m.end(), -1
            depth -= 1
    if cut_at >= 0:  # unbalanced to the end: the syntax error surfaces when parsed
        out.append(json.dumps(TOO_DEEP).encode())
    else:
        out.append(data[keep_from:])
    return b"".join(out)


def load_json_document(raw: bytes, where: str) -> tuple[Any, bool]:
    """A whole JSON document (an export's ``result.json``, a JSON array of messages) whose
    problems inside one record cost only that record: ``(data, cut)``.

    A leading byte-order mark is skipped; bytes that are not UTF-8 become U+FFFD (as lone
    surrogates do, :func:`clean_str`), so one bad string does not reject the file; values
    nested deeper than :data:`MAX_DEPTH` are replaced by :data:`TOO_DEEP` (``cut`` is then
    True: the caller turns each record holding it into a bad record, :func:`holds_too_deep`).
    A document that is still not JSON is a ValueError naming ``where``."""
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    text = raw.decode("utf-8", "replace")
    try:
        return json.loads(text), False
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        pass
    return load_json_text(_cut_deep(text.encode("utf-8")).decode("utf-8"), where), True


def holds_too_deep(value: Any) -> bool:
    """Whether :data:`TOO_DEEP` stands somewhere in ``value`` (a record of a cut document)."""
    if isinstance(value, str):
        return value == TOO_DEEP
    if isinstance(value, dict):
        return any(holds_too_deep(v) for v in value.values())
    if isinstance(value, list):
        return any(holds_too_deep(v) for v in value)
    return False


def dedup_notes(problems: list[str]) -> list[str]:
    """One note per cause, in first-seen order: notes that differ only in their
    parenthesised detail (the file name) are counted together, with up to 3 details.

    >>> dedup_notes(["image: file missing (a.jpg)", "image: file missing (b.jpg)", "sticker not encoded"])
    ['image: file missing (x2: a.jpg, b.jpg)', 'sticker not encoded']
    """
    causes: dict[str, list[str]] = {}
    for item in problems:
        cause, detail = item, ""
        if item.endswith(")") and " (" in item:
            cause, _, detail = item[:-1].rpartition(" (")
        causes.setdefault(cause, []).append(detail)
    out = []
    for cause, details in causes.items():
        named = [d for d in dict.fromkeys(details) if d]
        if len(details) == 1:
            out.append(f"{cause} ({named[0]})" if named else cause)
            continue
        shown = ", ".join(named[:3]) + (", ..." if len(named) > 3 else "")
        out.append(f"{cause} (x{len(details)}" + (f": {shown})" if shown else ")"))
    return out
