"""read_format_json: every way a format file can be wrong gets its own clear error."""

from __future__ import annotations

import json

import pytest

from nmodal.errors import InputError
from nmodal.jsonfile import read_format_json


def read(directory):
    return read_format_json(
        directory,
        "info.json",
        format="nmodal-thing",
        versions=(1, 2),
        what="a thing",
        missing_hint="; make one",
        version_hint="; remake it",
    )


def test_a_good_file_is_returned(tmp_path):
    (tmp_path / "info.json").write_text(json.dumps({"format": "nmodal-thing", "version": 2}))
    assert read(tmp_path) == {"format": "nmodal-thing", "version": 2}


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"not a thing \(no info\.json\); make one"),
        ("{broken", r"info\.json: unreadable info\.json \("),
        (b"\xff\xfe{", r"unreadable info\.json"),
        ("[1, 2]", r"info\.json: not the info\.json of a thing"),
        (json.dumps({"format": "other", "version": 1}), "not the info.json of a thing"),
        (
            json.dumps({"format": "nmodal-thing", "version": 3}),
            r"format version 3 of a thing, this nmodal reads version 1, 2; remake it",
        ),
    ],
)
def test_bad_files_name_the_file_and_the_reason(tmp_path, content, message):
    if isinstance(content, bytes):
        (tmp_path / "info.json").write_bytes(content)
    elif content is not None:
        (tmp_path / "info.json").write_text(content)
    with pytest.raises(InputError, match=message) as info:
        read(tmp_path)
    assert str(tmp_path) in str(info.value)
