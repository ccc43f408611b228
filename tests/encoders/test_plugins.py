"""Your own encoders from the shell: ``nmodal --plugin FILE`` (or ``$NMODAL_PLUGINS``)
imports the module that registers them, in every process, before the command runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nmodal.encoders import base
from nmodal.errors import InputError

PLUGIN = textwrap.dedent(
    '''
    """Two tiny deterministic encoders and a set, as a user's module would register them."""
    import numpy as np

    from nmodal.encoders import Encoder, register_encoder, register_encoder_set


    @register_encoder("{prefix}-text-bytes")
    class TextBytes(Encoder):
        modality = "text"
        version = "1"

        def __init__(self, **runtime):
            super().__init__(settings={{}}, **runtime)

        @property
        def dim(self):
            return 8

        def encode(self, batch):
            out = np.zeros((len(batch), 8), np.float32)
            for i, text in enumerate(batch):
                for b in text.encode("utf-8"):
                    out[i, b % 8] += 1.0
            return out


    @register_encoder("{prefix}-image-mean")
    class ImageMean(Encoder):
        modality = "image"
        version = "1"
        input_size = (16, 16)

        def __init__(self, **runtime):
            super().__init__(settings={{}}, **runtime)

        @property
        def dim(self):
            return 6

        def encode(self, batch):
            return np.stack([np.concatenate([x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)])
                             for x in batch]).astype(np.float32).reshape(len(batch), 6)


    register_encoder_set("{prefix}", {{"text": ("{prefix}-text-bytes", {{}}),
                                       "image": ("{prefix}-image-mean", {{}})}})
    '''
)


def _plugin(folder: Path, name: str, prefix: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(PLUGIN.format(prefix=prefix))
    return path


def test_a_plugin_file_registers_its_encoders_once(tmp_path, monkeypatch):
    path = _plugin(tmp_path / "plugins", "nm_plugin_once", "once")
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert base.load_plugins([str(path)]) == ["nm_plugin_once"]
    assert base.encoder_sets()["once"] == {"text": "once-text-bytes", "image": "once-image-mean"}
    first = sys.modules["nm_plugin_once"]
    assert base.load_plugins([str(path)]) == ["nm_plugin_once"]  # not imported again
    assert sys.modules["nm_plugin_once"] is first
    enc = base.build_encoder("once-text-bytes")
    np.testing.assert_array_equal(enc.encode(["ab"])[0, [1, 2]], [1.0, 1.0])


def test_plugins_come_from_the_environment_when_an_encoder_is_unknown(tmp_path, monkeypatch):
    path = _plugin(tmp_path / "plugins", "nm_plugin_env", "envset")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv(base.PLUGINS_ENV, f" {path} ,")
    encs = base.encoder_set("envset")  # not registered until the environment's plugin loads
    assert set(encs) == {"text", "image"} and encs["image"].dim == 6


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("/nonexistent/plugin.py", "no such Python file"),
        ("nm_no_such_module_anywhere", "failed to import: ModuleNotFoundError"),
    ],
)
def test_a_missing_plugin_is_a_clear_error(spec, reason):
    with pytest.raises(InputError, match=reason) as info:
        base.load_plugins([spec])
    assert spec in str(info.value)


def test_a_plugin_that_raises_is_named_in_the_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    path = tmp_path / "nm_plugin_broken.py"
    path.write_text("raise RuntimeError('my plugin is broken')\n")
    with pytest.raises(
        InputError, match=r"nm_plugin_broken\.py.*RuntimeError: my plugin is broken"
    ):
        base.load_plugins([str(path)])


def test_unknown_encoder_says_how_to_import_your_own():
    with pytest.raises(InputError, match="--plugin"):
        base.encoder_class("nm-never-registered")


def _nmodal(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "nmodal", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


@pytest.mark.slow
def test_the_whole_flow_runs_on_a_plugin_encoder_set_from_the_shell(tmp_path):
    """ingest -> extract (2 worker processes) -> train -> index -> search with --plugin;
    a later command without it says which encoder is unknown and how to import it."""
    plugin = _plugin(tmp_path / "my code", "nm_plugin_flow", "mine")
    media = tmp_path / "posts" / "media"
    media.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(24):
        colour = rng.integers(0, 256, 3)
        pixels = np.clip(colour + rng.integers(-20, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(media / f"p{i}.png")
        rows.append({"post_id": f"p{i}", "account": "acc", "text": f"post {i} " * (1 + i % 5),
                     "image_path": f"media/p{i}.png"})  # fmt: skip
    manifest = tmp_path / "posts" / "posts.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    env = {k: v for k, v in os.environ.items() if k != base.PLUGINS_ENV}
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    ds, store, model, index = (tmp_path / n for n in ("ds", "store", "model", "index"))
    steps = [
        ["ingest", "manifest", str(manifest), "--out", str(ds), "--workers", "0", "--no-progress"],
        ["extract", str(ds), "--out", str(store), "--encoders", "mine",
         "--modalities", "text,image", "--workers", "2", "--no-progress"],
        ["train", str(store), "--out", str(model), "--epochs", "2", "--test-size", "4"],
        ["index", "build", "--model", str(model), "--store", str(store), "--posts", str(ds),
         "--out", str(index)],
    ]  # fmt: skip
    for argv in steps:
        done = _nmodal("--plugin", str(plugin), *argv, env=env)
        assert done.returncode == 0, (argv, done.stderr[-2000:])
    manifest_json = json.loads((store / "manifest.json").read_text())
    assert "mine-text-bytes" in json.dumps(manifest_json)
    done = _nmodal("--plugin", str(plugin), "search", str(index), "--text", "post 3 post 3",
                   "--json", env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["hits"]
    without = _nmodal("search", str(index), "--text", "post 3", env=env)
    assert without.returncode == 1
    assert "mine-text-bytes" in without.stderr and "--plugin" in without.stderr
    assert "Traceback" not in without.stderr
