"""``nmodal extract`` end to end through the CLI entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmodal.cli import main
from nmodal.features import read_featureset

from . import fake_encoders  # noqa: F401  (registers the "fake" encoder set)
from .datasets import write_dataset


def test_cli_extract_then_no_op(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ds = write_dataset(tmp_path / "ds", num_videos=2)
    out = tmp_path / "store"
    argv = [
        "extract",
        str(ds),
        "--out",
        str(out),
        "--encoders",
        "fake",
        "--modalities",
        "text,video,audio",
        "--workers",
        "0",
        "--shard-size",
        "2",
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert (
        f"feature store: {out}" in printed
        and "2 artifact errors" in printed
        and "errors.jsonl" in printed
    )
    fs = read_featureset(out)
    assert fs.modalities == ["text", "video", "audio"] and fs.num_posts == 6
    assert main(argv) == 0
    assert "already complete (6 posts)" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract", str(tmp_path), "--out", str(tmp_path / "s"), "--encoders", "fake"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nmodal extract: error:") and "posts table" in err
    assert (
        main(["extract", str(tmp_path), "--out", str(tmp_path / "s"), "--model-path", "nonsense"])
        == 1
    )
    assert "MODALITY=DIR" in capsys.readouterr().err
