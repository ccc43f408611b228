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


def test_cli_builds_one_extract_config_and_the_same_store_as_the_library(
    tmp_path: Path,
) -> None:
    import dataclasses

    from nmodal.cli import build_parser
    from nmodal.cli.extract import extract_config_from_args
    from nmodal.errors import InputError
    from nmodal.features.extract import ExtractConfig, extract_features

    ds = write_dataset(tmp_path / "ds", num_videos=2)
    argv = ["extract", str(ds), "--out", str(tmp_path / "cli"), "--encoders", "fake",
            "--modalities", "text,video", "--workers", "0", "--shard-size", "2",
            "--num-frames", "8", "--resize", "torch", "--no-progress"]  # fmt: skip
    cfg = extract_config_from_args(build_parser().parse_args(argv))
    want = ExtractConfig(encoders="fake", modalities=["text", "video"], workers=0,
                         shard_size=2, num_frames=8, resize="torch", progress=False)  # fmt: skip
    assert dataclasses.asdict(cfg) == dataclasses.asdict(want)
    assert main(argv) == 0
    extract_features(ds, tmp_path / "lib", want)
    for name in ("manifest.json", "shard-00000.safetensors", "shard-00001.safetensors"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "lib" / name).read_bytes()

    lite = ["--lite-backend", "torch", "--lite-precision", "int8"]
    args = build_parser().parse_args([*argv[:5], "offline", *argv[6:], *lite])
    assert extract_config_from_args(args).settings == {
        "video": {"backend": "torch", "precision": "int8"}
    }
    with pytest.raises(InputError, match="offline encoder set"):
        extract_config_from_args(build_parser().parse_args([*argv, *lite]))
    with pytest.raises(TypeError, match="unexpected option"):
        extract_features(ds, tmp_path / "x", want, frames=3)


def test_encoder_dtype_sets_the_paper_encoders_dtype_per_modality() -> None:
    from nmodal.cli import build_parser
    from nmodal.cli.extract import encoder_dtypes, extract_config_from_args
    from nmodal.errors import InputError

    mods = ["text", "video", "audio"]
    assert encoder_dtypes(None, "offline", mods) == {}
    assert encoder_dtypes("bf16", "paper", mods) == {m: {"dtype": "bfloat16"} for m in mods}
    assert encoder_dtypes(" video = bfloat16 , audio=fp32", "paper", mods) == {
        "video": {"dtype": "bfloat16"},
        "audio": {"dtype": "float32"},
    }
    for text, match in [
        ("int4", "--encoder-dtype: unknown dtype 'int4'"),
        ("video=", "MODALITY=DTYPE"),
        ("video=bf16,bf16", "MODALITY=DTYPE"),
        (",", "got nothing"),
        ("image=bf16", "not one of --modalities text,video,audio"),
        ("video=bf16,video=fp32", "given twice"),
    ]:
        with pytest.raises(InputError, match=match):
            encoder_dtypes(text, "paper", mods)
    with pytest.raises(InputError, match="--lite-precision"):
        encoder_dtypes("bfloat16", "offline", mods)

    argv = ["extract", "ds", "--out", "s", "--encoders", "paper", "--modalities", "text,video",
            "--model-path", "video=/m/videomae", "--encoder-dtype", "video=bfloat16"]  # fmt: skip
    assert extract_config_from_args(build_parser().parse_args(argv)).settings == {
        "video": {"model_path": "/m/videomae", "dtype": "bfloat16"}
    }
