"""The offline encoder set extracts real features with the network disabled."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nmodal.features import read_featureset

from .datasets import write_dataset

SCRIPT = """
import json, os, socket, sys
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

def refuse(*args, **kwargs):
    raise OSError("network access attempted during an offline extraction")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse

from nmodal.features.extract import extract_features
if __name__ == "__main__":
    r = extract_features(sys.argv[1], sys.argv[2], encoders="offline",
                         modalities=("text", "image", "video", "audio"), workers=0, progress=False)
    print(json.dumps(r.stats.as_dict()))
"""


def _no_network_prefix() -> list[str]:
    """``unshare -n`` (a new network namespace with no interfaces) where the system allows it."""
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"]
    return []  # the script still refuses every socket connection


@pytest.mark.slow
def test_offline_set_extracts_without_network(tmp_path: Path) -> None:
    ds = write_dataset(tmp_path / "ds", num_videos=2)
    script = tmp_path / "offline.py"
    script.write_text(SCRIPT)
    out = tmp_path / "store"
    proc = subprocess.run(
        [*_no_network_prefix(), sys.executable, str(script), str(ds), str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    assert stats["posts"] == 6
    fs = read_featureset(out)
    assert fs.dims() == {"text": 384, "image": 1280, "video": 2560, "audio": 256}
    assert fs.present["video"].tolist() == [True, True, False, False, True, False]
    assert fs.encoders["text"]["name"] == "e5-small" and fs.encoders["image"]["packages"]
    for m in fs.modalities:
        rows = fs.features[m][fs.present[m]]
        assert np.isfinite(rows).all() and (np.abs(rows).sum(axis=1) > 0).all()
    np.testing.assert_allclose(
        np.linalg.norm(fs.features["text"][fs.present["text"]], axis=1), 1.0, rtol=1e-4
    )
