"""The feature store on disk (provisional single-shard layout; see the features issue).

Layout of a store directory::

    manifest.json            format, version, modalities {name: {dim, dtype, encoder}}, shards
    shard-00000.safetensors  per modality "<m>" (n, d) and "<m>.present" (n,) uint8
    shard-00000.ids.json     the shard's post ids in row order

Everything is safetensors and JSON: reading a store never executes code.

Example:
    >>> write_featureset(tmp / "store", make_synthetic(10, dim=8))
    >>> read_featureset(tmp / "store").num_posts
    10
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file, save_file

from nmodal.errors import InputError, OutputExistsError
from nmodal.features.featureset import FeatureSet

FORMAT = "nmodal-feature-store"
VERSION = 1
MANIFEST = "manifest.json"


def write_featureset(path: str | Path, fs: FeatureSet, overwrite: bool = False) -> Path:
    """Write ``fs`` as a one-shard store at ``path``, atomically (temp dir + rename)."""
    path = Path(path)
    if path.exists():
        if not overwrite:
            raise OutputExistsError(f"{path}: exists (pass overwrite=True / --overwrite)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        tensors: dict[str, np.ndarray] = {}
        for m, x in fs.features.items():
            tensors[m] = np.ascontiguousarray(x)
            tensors[f"{m}.present"] = fs.present[m].astype(np.uint8)
        save_file(tensors, str(tmp / "shard-00000.safetensors"))
        (tmp / "shard-00000.ids.json").write_text(json.dumps(fs.post_ids.tolist()))
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "version": VERSION,
            "num_posts": fs.num_posts,
            "modalities": {
                m: {
                    "dim": int(x.shape[1]),
                    "dtype": str(x.dtype),
                    "encoder": fs.encoders.get(m, {}),
                }
                for m, x in fs.features.items()
            },
            "shards": [{"name": "shard-00000", "num_posts": fs.num_posts}],
            "complete": True,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def read_manifest(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise InputError(f"{path}: not a feature store (no {MANIFEST})")
    try:
        manifest: dict[str, Any] = json.loads(mpath.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{mpath}: unreadable manifest ({exc})") from exc
    if manifest.get("format") != FORMAT:
        raise InputError(f"{mpath}: not an nmodal feature store manifest")
    return manifest


def read_featureset(path: str | Path, dtype: type | None = np.float32) -> FeatureSet:
    """Load a whole store into memory, modalities in manifest order."""
    path = Path(path)
    manifest = read_manifest(path)
    ids: list[str] = []
    parts: dict[str, list[np.ndarray]] = {m: [] for m in manifest["modalities"]}
    present: dict[str, list[np.ndarray]] = {m: [] for m in manifest["modalities"]}
    for shard in manifest["shards"]:
        name = shard["name"]
        tensors = load_file(str(path / f"{name}.safetensors"))
        ids.extend(json.loads((path / f"{name}.ids.json").read_text()))
        for m in parts:
            x = tensors[m]
            parts[m].append(x.astype(dtype) if dtype is not None else x)
            present[m].append(tensors[f"{m}.present"].astype(bool))
    return FeatureSet(
        post_ids=np.array(ids),
        features={m: np.concatenate(v) for m, v in parts.items()},
        present={m: np.concatenate(v) for m, v in present.items()},
        encoders={m: info.get("encoder", {}) for m, info in manifest["modalities"].items()},
    )
