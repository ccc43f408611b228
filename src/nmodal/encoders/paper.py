"""The ``paper`` encoder set: the paper's four frozen transformers (Hugging Face ``transformers``).

=====  ==============  ===================================  ====================================
set    encoder         default weights                      preprocessing, pooling (default)
=====  ==============  ===================================  ====================================
text   ``distilbert``  distilbert-base-multilingual-cased   its tokenizer, <= 512 tokens; ``cls``
image  ``vit-mae``     facebook/vit-mae-base                224x224, ImageNet mean/std; ``cls``;
                                                            ``mask_ratio=0`` and no shuffling
video  ``videomae``    MCG-NJU/videomae-base                16 frames, 224x224, ImageNet
                                                            mean/std; no mask; ``mean``
audio  ``wav2vec2``    facebook/wav2vec2-base               16 kHz, zero-mean unit-variance per
                                                            clip (as its feature extractor); ``mean``
=====  ==============  ===================================  ====================================

Pooling (``pooling=``): ``cls`` takes the first token of the last hidden layer (the
models' own summary token), ``mean`` averages all tokens (padding excluded). VideoMAE and
wav2vec2 have no summary token, so they only pool by ``mean``.

Masking: ViT-MAE and VideoMAE were pre-trained by masking patches. The published code of
the paper left ViT-MAE's random masking on (75% of the patches dropped, a different 75%
on every call), so its image features changed from run to run. Here ViT-MAE is loaded
with ``mask_ratio=0`` *and* given a fixed identity "noise" so its patches are not even
shuffled: the same picture always gives bit-identical features. VideoMAE is called without
``bool_masked_pos``, i.e. without a mask.

Weights: ``model_path`` is a hub name (downloaded once into the Hugging Face cache, or read
from it with ``HF_HUB_OFFLINE=1``) or a local directory made with ``save_pretrained``. When
the directory has a ``preprocessor_config.json`` its ``image_mean``/``image_std`` and
``do_normalize`` are used (read as JSON, no code runs). ``dtype`` is ``float32``,
``bfloat16`` or ``float16``; ``device`` is ``auto`` (a CUDA GPU when there is one), ``cpu``
or ``cuda:N``; the batch size halves on out-of-memory.

Example:
    >>> enc = build_encoder("vit-mae", model_path="/models/vit-mae-base", dtype="bfloat16")  # doctest: +SKIP
    >>> enc.encode([picture]).shape  # doctest: +SKIP
    (1, 768)
"""

from __future__ import annotations

import importlib.metadata
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmodal.encoders.base import Encoder, register_encoder
from nmodal.encoders.torch_utils import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    AdaptiveBatcher,
    canonical_dtype,
    check_pictures,
    images_to_tensor,
    resize_uint8,
    resolve_device,
    resolve_dtype,
    set_num_threads,
)
from nmodal.errors import InputError

_MODELS: dict[tuple[Any, ...], Any] = {}
_LOCK = threading.Lock()


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as exc:
        raise InputError(
            "the paper encoders need transformers: pip install 'nmodal[paper]'"
        ) from exc
    return transformers


def _load(
    kind: str, model_path: str, device: torch.device, dtype: torch.dtype, **overrides: Any
) -> Any:
    """``transformers.<kind>.from_pretrained(model_path)``, eval mode, cached per process."""
    key = (kind, model_path, str(device), str(dtype), tuple(sorted(overrides.items())))
    with _LOCK:
        if key not in _MODELS:
            transformers = _transformers()
            cls = getattr(transformers, kind)
            transformers.utils.logging.disable_progress_bar()  # nmodal shows its own progress
            try:
                model = cls.from_pretrained(model_path, **overrides)
            except (OSError, ValueError) as exc:
                raise InputError(
                    f"cannot load {kind} weights from {model_path!r}: {exc}. Without network, "
                    "pass model_path=<a local directory made with save_pretrained> or use "
                    "the offline encoder set"
                ) from exc
            _MODELS[key] = model.eval().requires_grad_(False).to(device=device, dtype=dtype)
        return _MODELS[key]


def _preprocessor_config(model_path: str) -> dict[str, Any]:
    path = Path(model_path) / "preprocessor_config.json"
    if path.is_file():
        try:
            cfg: dict[str, Any] = json.loads(path.read_text())
            return cfg
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: unreadable preprocessor config ({exc})") from exc
    return {}


def _check_pooling(pooling: str, allowed: Sequence[str], name: str) -> None:
    if pooling not in allowed:
        raise InputError(f"{name}: pooling must be one of {list(allowed)}, got {pooling!r}")


class _HFEncoder(Encoder):
    """Shared set-up: settings, device/dtype, adaptive batches, package versions."""

    model_kind = ""
    default_model = ""
    default_batch = 16
    model: Any  # the transformers model, set by each subclass

    def __init__(
        self,
        model_path: str | None,
        pooling: str,
        dtype: str,
        extra: dict[str, Any],
        details: dict[str, Any],
        **runtime: Any,
    ) -> None:
        model_path = str(model_path or self.default_model)
        super().__init__(
            settings={
                "model_path": model_path,
                "pooling": pooling,
                "dtype": canonical_dtype(dtype),
                **extra,
            },
            **runtime,
        )
        self.details.update(details)
        set_num_threads(self.runtime.get("num_threads"))
        self.device = resolve_device(self.runtime.get("device"))
        self.torch_dtype = resolve_dtype(dtype)
        self.batcher = AdaptiveBatcher(self.runtime.get("batch_size", self.default_batch))

    def packages(self) -> dict[str, str]:
        return {
            "transformers": importlib.metadata.version("transformers"),
            "torch": torch.__version__,
        }

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def _pool(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.settings["pooling"] == "cls":
            return hidden[:, 0]
        if mask is None:
            return hidden.mean(dim=1)
        w = mask.to(hidden.dtype).unsqueeze(-1)
        return (hidden * w).sum(dim=1) / w.sum(dim=1).clamp_min(1)

    def _finish(self, pooled: torch.Tensor) -> np.ndarray:
        return pooled.float().cpu().numpy().astype(np.float32)


@register_encoder("distilbert")
class DistilBertText(_HFEncoder):
    """distilbert-base-multilingual-cased (768-d), its own WordPiece tokenizer."""

    modality = "text"
    version = "1"
    model_kind = "AutoModel"
    default_model = "distilbert-base-multilingual-cased"
    default_batch = 32

    def __init__(
        self,
        model_path: str | None = None,
        pooling: str = "cls",
        dtype: str = "float32",
        max_length: int = 512,
        **runtime: Any,
    ) -> None:
        _check_pooling(pooling, ("cls", "mean"), "distilbert")
        super().__init__(model_path, pooling, dtype, {"max_length": int(max_length)}, {}, **runtime)
        path = self.settings["model_path"]
        self.model = _load(self.model_kind, path, self.device, self.torch_dtype)
        with _LOCK:
            try:
                self.tokenizer = _transformers().AutoTokenizer.from_pretrained(path)
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot load the tokenizer from {path!r}: {exc}") from exc

    def _run(self, texts: list[str]) -> np.ndarray:
        tok = self.tokenizer(
            texts,
            padding=True,
            truncation=True,
            max_length=self.settings["max_length"],
            return_tensors="pt",
        )
        ids = tok["input_ids"].to(self.device)
        mask = tok["attention_mask"].to(self.device)
        with torch.inference_mode():
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return self._finish(self._pool(hidden, mask))

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        for i, t in enumerate(batch):
            if not isinstance(t, str):
                raise InputError(f"text input {i}: expected str, got {type(t).__name__}")
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        return self.batcher.map(self._run, list(batch))


@register_encoder("vit-mae")
class ViTMAEImage(_HFEncoder):
    """facebook/vit-mae-base encoder (768-d) with masking off."""

    modality = "image"
    version = "1"
    model_kind = "ViTMAEModel"
    default_model = "facebook/vit-mae-base"
    default_batch = 16

    def __init__(
        self,
        model_path: str | None = None,
        pooling: str = "cls",
        dtype: str = "float32",
        **runtime: Any,
    ) -> None:
        _check_pooling(pooling, ("cls", "mean"), "vit-mae")
        path = str(model_path or self.default_model)
        pre = _preprocessor_config(path)
        details = {
            "mean": list(pre.get("image_mean", IMAGENET_MEAN)),
            "std": list(pre.get("image_std", IMAGENET_STD)),
            "mask_ratio": 0.0,
        }
        super().__init__(path, pooling, dtype, {}, details, **runtime)
        self.model = _load(self.model_kind, path, self.device, self.torch_dtype, mask_ratio=0.0)
        size = self.model.config.image_size
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.input_size = self.size

    def hidden_states(self, pictures: list[np.ndarray]) -> torch.Tensor:
        """Last hidden layer ``(N, 1 + patches, hidden)``, every patch kept, in patch order."""
        x = images_to_tensor(pictures, self.size, self.details["mean"], self.details["std"])
        x = x.to(self.device, self.torch_dtype)
        n_patches = self.model.embeddings.patch_embeddings.num_patches
        # ascending noise = identity permutation: no random shuffling of the patches
        noise = torch.arange(n_patches, device=self.device, dtype=torch.float32).expand(len(x), -1)
        with torch.inference_mode():
            hidden: torch.Tensor = self.model(pixel_values=x, noise=noise).last_hidden_state
        return hidden

    def _run(self, pictures: list[np.ndarray]) -> np.ndarray:
        return self._finish(self._pool(self.hidden_states(pictures)))

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        check_pictures(batch, 3, "image")
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        return self.batcher.map(self._run, list(batch))


def resample_frames(clip: np.ndarray, num_frames: int) -> np.ndarray:
    """``num_frames`` frames taken uniformly from ``clip`` (repeating frames of short clips)."""
    if len(clip) == num_frames:
        return clip
    idx = np.linspace(0, len(clip) - 1, num_frames).round().astype(int)
    return clip[idx]


def center_crop_resize(clip: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Shortest edge to ``size``, then the centre ``size`` crop (VideoMAE's own processor)."""
    h, w = clip.shape[-3:-1]
    scale = max(size[0] / h, size[1] / w)
    nh, nw = max(size[0], round(h * scale)), max(size[1], round(w * scale))
    out = resize_uint8(clip, (nh, nw))
    top, left = (nh - size[0]) // 2, (nw - size[1]) // 2
    return out[..., top : top + size[0], left : left + size[1], :]


@register_encoder("videomae")
class VideoMAEVideo(_HFEncoder):
    """MCG-NJU/videomae-base encoder (768-d), 16 frames, no mask, mean pooling.

    ``resize="squash"`` (default, as the paper: every frame to 224x224) or ``"crop"``
    (shortest edge to 224 then centre crop, as VideoMAE's processor). Clips with another
    frame count are resampled uniformly to the model's ``num_frames``.
    """

    modality = "video"
    version = "1"
    model_kind = "VideoMAEModel"
    default_model = "MCG-NJU/videomae-base"
    default_batch = 4

    def __init__(
        self,
        model_path: str | None = None,
        pooling: str = "mean",
        dtype: str = "float32",
        resize: str = "squash",
        **runtime: Any,
    ) -> None:
        _check_pooling(pooling, ("mean",), "videomae")
        if resize not in ("squash", "crop"):
            raise InputError(f"videomae: resize must be 'squash' or 'crop', got {resize!r}")
        path = str(model_path or self.default_model)
        pre = _preprocessor_config(path)
        details = {
            "mean": list(pre.get("image_mean", IMAGENET_MEAN)),
            "std": list(pre.get("image_std", IMAGENET_STD)),
        }
        super().__init__(path, pooling, dtype, {"resize": resize}, details, **runtime)
        self.model = _load(self.model_kind, path, self.device, self.torch_dtype)
        size = self.model.config.image_size
        self.size = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        self.input_size = self.size if resize == "squash" else None
        self.num_frames = int(self.model.config.num_frames)
        self.details["num_frames"] = self.num_frames

    def _run(self, clips: list[np.ndarray]) -> np.ndarray:
        clips = [resample_frames(c, self.num_frames) for c in clips]
        if self.settings["resize"] == "crop":
            clips = [center_crop_resize(c, self.size) for c in clips]
        frames = [f for c in clips for f in c]
        x = images_to_tensor(frames, self.size, self.details["mean"], self.details["std"])
        x = x.view(len(clips), self.num_frames, *x.shape[1:]).to(self.device, self.torch_dtype)
        with torch.inference_mode():
            hidden = self.model(pixel_values=x).last_hidden_state
        return self._finish(self._pool(hidden))

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        check_pictures(batch, 4, "video")
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        return self.batcher.map(self._run, list(batch))


def conv_output_lengths(lengths: torch.Tensor, config: Any) -> torch.Tensor:
    """Frames wav2vec2's convolutional feature encoder makes of ``lengths`` samples, from the
    public config (``conv_kernel``, ``conv_stride``): each layer maps ``n`` to
    ``(n - kernel) // stride + 1``, as in the wav2vec2 paper's feature encoder.

    Example:
        >>> cfg = type("C", (), {"conv_kernel": [10, 3, 3, 3, 3, 2, 2], "conv_stride": [5, 2, 2, 2, 2, 2, 2]})
        >>> conv_output_lengths(torch.tensor([16000, 400]), cfg).tolist()
        [49, 1]
    """
    out = lengths.long()
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        out = torch.div(out - kernel, stride, rounding_mode="floor") + 1
    return out


@register_encoder("wav2vec2")
class Wav2Vec2Audio(_HFEncoder):
    """facebook/wav2vec2-base (768-d) on 16 kHz audio, mean-pooled over time.

    wav2vec2-base normalises its first convolution over time (group norm), so padding a
    clip to batch it with longer ones would change its features: such models encode one
    clip at a time. Models with layer norm (``feat_extract_norm="layer"``) take padded
    batches with an attention mask.
    """

    modality = "audio"
    version = "1"
    model_kind = "Wav2Vec2Model"
    default_model = "facebook/wav2vec2-base"
    default_batch = 8

    def __init__(
        self,
        model_path: str | None = None,
        pooling: str = "mean",
        dtype: str = "float32",
        **runtime: Any,
    ) -> None:
        _check_pooling(pooling, ("mean",), "wav2vec2")
        path = str(model_path or self.default_model)
        pre = _preprocessor_config(path)
        details = {"do_normalize": bool(pre.get("do_normalize", True)), "sample_rate": 16000}
        super().__init__(path, pooling, dtype, {}, details, **runtime)
        self.model = _load(self.model_kind, path, self.device, self.torch_dtype)
        self.batched = getattr(self.model.config, "feat_extract_norm", "group") == "layer"

    def _run(self, clips: list[np.ndarray]) -> np.ndarray:
        lengths = torch.tensor([len(c) for c in clips])
        x = torch.zeros(len(clips), int(lengths.max()))
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        x[mask] = torch.from_numpy(np.concatenate(clips).astype(np.float32))
        if self.details[
            "do_normalize"
        ]:  # per clip, over its own samples (the feature extractor's way)
            n = lengths.clamp_min(1).to(torch.float32)[:, None]
            mean = x.sum(dim=1, keepdim=True) / n
            var = ((x - mean).square() * mask).sum(dim=1, keepdim=True) / n
            x = torch.where(mask, (x - mean) / torch.sqrt(var + 1e-7), 0.0)
        x = x.to(self.device, self.torch_dtype)
        with torch.inference_mode():
            if self.batched:
                hidden = self.model(x, attention_mask=mask.to(self.device).long()).last_hidden_state
                frames = conv_output_lengths(lengths, self.model.config).to(self.device)
                fmask = torch.arange(hidden.shape[1], device=self.device)[None, :] < frames[:, None]
                return self._finish(self._pool(hidden, fmask))
            hidden = self.model(x).last_hidden_state
        return self._finish(self._pool(hidden))

    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        for i, a in enumerate(batch):
            if not isinstance(a, np.ndarray) or a.ndim != 1:
                raise InputError(
                    f"audio input {i}: expected a 1-D float array, got {getattr(a, 'shape', type(a))}"
                )
        if not batch:
            return np.zeros((0, self.dim), np.float32)
        min_len = 400  # the convolutional front end needs at least one 25 ms window
        clips = [a if len(a) >= min_len else np.pad(a, (0, min_len - len(a))) for a in batch]
        if self.batched:
            return self.batcher.map(self._run, clips)
        return np.concatenate([self._run([c]) for c in clips])
