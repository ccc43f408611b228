"""The N-modal model: one projection head per modality into a shared space.

Saved as a directory holding ``config.json`` and ``model.safetensors`` (weights of the
heads and of the loss's learnable parameters such as the temperature). Loading never
executes code.

Example:
    >>> model = NModalModel(ModelConfig(modalities=["text", "video"],
    ...                                 input_dims={"text": 384, "video": 1280}))
    >>> out = model({"text": torch.randn(2, 384), "video": torch.randn(2, 1280)})
    >>> out["video"].shape
    torch.Size([2, 256])
    >>> model.save("runs/m1")  # doctest: +SKIP
    >>> NModalModel.load("runs/m1")  # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from nmodal.atomic import check_replaceable, recover_dir, replacing_dir
from nmodal.errors import InputError, OutputExistsError
from nmodal.integrity import hash_files, plain_name, sha256_files, verify_files
from nmodal.losses import build_loss
from nmodal.model.heads import HeadConfig, ProjectionHead

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "nmodal-model"


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and to know what it was trained on."""

    modalities: list[str]
    input_dims: dict[str, int]
    head: HeadConfig = field(default_factory=HeadConfig)
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "clip"})
    encoders: dict[str, dict[str, Any]] = field(default_factory=dict)
    data_fingerprint: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.modalities) < 1 or len(set(self.modalities)) != len(self.modalities):
            raise InputError(f"modalities must be distinct and non-empty: {self.modalities}")
        missing = [m for m in self.modalities if m not in self.input_dims]
        if missing:
            raise InputError(f"input_dims lacks modality {missing[0]!r}")
        if isinstance(self.head, dict):
            self.head = HeadConfig(**self.head)

    @property
    def projection_dim(self) -> int:
        return self.head.projection_dim

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["head"] = self.head.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelConfig:
        d = dict(d)
        # a model saved before input standardisation existed has no statistics: off
        d["head"] = HeadConfig(**{"standardize": False, **d.get("head", {})})
        return cls(**d)


class NModalModel(nn.Module):
    """Maps ``{modality: (n, d_in) features}`` to ``{modality: (n, p) embeddings}``.

    ``forward`` returns un-normalised head outputs (losses decide on normalisation);
    :meth:`embed` returns L2-normalised float32 numpy arrays for retrieval and search.
    A loss module with learnable parameters can be attached as ``model.loss`` so that it
    is saved and loaded with the heads.
    """

    def __init__(self, config: ModelConfig, loss: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.heads = nn.ModuleDict(
            {m: ProjectionHead(config.input_dims[m], config.head) for m in config.modalities}
        )
        self.loss = loss

    @property
    def modalities(self) -> list[str]:
        return list(self.config.modalities)

    def forward(self, features: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for m, x in features.items():
            if m not in self.heads:
                raise InputError(f"unknown modality {m!r}; this model has {self.modalities}")
            expected = self.config.input_dims[m]
            if x.ndim != 2 or x.shape[1] != expected:
                raise InputError(
                    f"modality {m!r}: features of shape {tuple(x.shape)}, expected (n, {expected})"
                )
            out[m] = self.heads[m](x)
        return out

    @torch.no_grad()
    def embed(
        self,
        features: Mapping[str, np.ndarray | torch.Tensor],
        batch_size: int = 8192,
        normalize: bool = True,
    ) -> dict[str, np.ndarray]:
        """Embed features in eval mode, in batches; returns float32 numpy arrays."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        result: dict[str, np.ndarray] = {}
        try:
            for m, x in features.items():
                t = torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x)
                chunks = []
                for start in range(0, len(t), batch_size):
                    xb = t[start : start + batch_size].to(device=device, dtype=torch.float32)
                    z = self({m: xb})[m]
                    if normalize:
                        z = F.normalize(z, dim=-1)
                    chunks.append(z.float().cpu())
                dim = self.config.projection_dim
                result[m] = torch.cat(chunks).numpy() if chunks else np.zeros((0, dim), np.float32)
        finally:
            self.train(was_training)
        return result

    def save(
        self,
        path: str | Path,
        overwrite: bool = False,
        extras: Mapping[str, Any] | None = None,
        notes: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write the model directory ``path`` atomically: complete or absent.

        ``config.json`` + ``model.safetensors``, plus one JSON file per entry of ``extras``
        (``{"split.json": {...}}``) and of ``notes`` (``{"history.json": {...}}``), all
        swapped in together. ``config.json`` records the SHA-256 of the weights and the
        extras, checked by :meth:`load`; notes (timings, logs) are not covered, so that they
        do not change the model's fingerprint.
        """
        path = Path(path)
        recover_dir(path)
        if path.exists() and not overwrite:
            raise OutputExistsError(f"{path}: exists (pass overwrite=True / --overwrite)")
        check_replaceable(path, "model", CONFIG_FILE, FORMAT)
        docs = {**(extras or {}), **(notes or {})}
        for name in docs:
            if not plain_name(name) or name in (CONFIG_FILE, WEIGHTS_FILE):
                raise ValueError(f"model extra {name!r}: not a plain JSON file name")
        with replacing_dir(path) as tmp:
            state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
            for name, doc in docs.items():
                (tmp / name).write_text(json.dumps(doc, indent=2, default=float))
            files = {
                name: digest
                for name, digest in hash_files(tmp, skip=CONFIG_FILE).items()
                if name not in (notes or {})
            }
            cfg = {"format": FORMAT, **self.config.to_dict(), "files": files}
            (tmp / CONFIG_FILE).write_text(json.dumps(cfg, indent=2))
        return path

    @classmethod
    def load(
        cls, path: str | Path, map_location: str = "cpu", verify: bool | None = None
    ) -> NModalModel:
        """Rebuild a saved model (heads and loss) from its directory.

        ``verify`` (default: on unless ``--no-verify``) checks the SHA-256 recorded in
        ``config.json`` for every file; names that are not plain file names, wrong shapes
        or dtypes are refused with an
        :class:`InputError` naming the file.
        """
        path = recover_dir(Path(path))
        cfile = path / CONFIG_FILE
        if not cfile.is_file() or not (path / WEIGHTS_FILE).is_file():
            raise InputError(
                f"{path}: not an nmodal model (needs {CONFIG_FILE} and {WEIGHTS_FILE})"
            )
        try:
            raw = json.loads(cfile.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{cfile}: unreadable ({exc})") from exc
        if not isinstance(raw, dict) or raw.pop("format", None) != FORMAT:
            raise InputError(f"{cfile}: not an nmodal model config")
        files = raw.pop("files", None)
        verify_files(path, files, CONFIG_FILE, required=(WEIGHTS_FILE,), verify=verify)
        try:
            config = ModelConfig.from_dict(raw)
        except (TypeError, ValueError, KeyError, AttributeError) as exc:
            raise InputError(f"{cfile}: invalid model config ({exc})") from exc
        try:
            state = load_file(str(path / WEIGHTS_FILE), device=map_location)
        except Exception as exc:  # safetensors raises its own error types on bad headers
            raise InputError(f"{path / WEIGHTS_FILE}: unreadable weights ({exc})") from exc
        loss = build_loss(config.loss) if any(k.startswith("loss.") for k in state) else None
        try:
            model = cls(config, loss=loss)
            expected = model.state_dict()
            bad = [
                k
                for k, v in state.items()
                if k not in expected or v.shape != expected[k].shape or v.dtype != expected[k].dtype
            ]
            missing = sorted(set(expected) - set(state))
            if bad or missing:
                raise InputError(
                    f"{path / WEIGHTS_FILE}: weights do not match {CONFIG_FILE} "
                    f"(unexpected or wrong shape/dtype: {bad[:3]}, missing: {missing[:3]})"
                )
            model.load_state_dict(state)
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            if isinstance(exc, InputError):
                raise
            raise InputError(f"{path}: model does not match its config ({exc})") from exc
        model.eval()
        return model


def model_fingerprint(model_dir: str | Path) -> str:
    """The identity of a saved model: 16 hex digits of SHA-256 over its ``config.json`` and
    ``model.safetensors``. Indexes and classifiers record it and refuse any other model.

    Example:
        >>> model_fingerprint("models/triclip")  # doctest: +SKIP
        '3f1c0a9e5b27d4c8'
    """
    model_dir = Path(model_dir)
    files = [model_dir / CONFIG_FILE, model_dir / WEIGHTS_FILE]
    for file in files:
        if not file.is_file():
            raise InputError(f"{model_dir}: not an nmodal model (no {file.name})")
    return sha256_files(files)[:16]


def fingerprint_matches(model_dir: str | Path, recorded: str) -> bool:
    """Whether ``recorded`` names the model in ``model_dir``: its :func:`model_fingerprint`,
    or the weights-only digest that classifiers recorded before version 0.2."""
    if recorded == model_fingerprint(model_dir):
        return True
    return recorded == sha256_files([Path(model_dir) / WEIGHTS_FILE])[:16]
