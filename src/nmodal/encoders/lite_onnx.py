"""EfficientNet-Lite0 in onnxruntime: the fast CPU path of the offline image/video encoders.

The torch module (:mod:`nmodal.encoders.efficientnet_lite`) is exported to ONNX once, with
its preprocessing (uint8 ``(N, H, W, 3)`` pictures -> ``(x - 127) / 128``, NCHW) inside
the graph, and cached in the user's cache folder (``$NMODAL_CACHE_DIR``, else
``$XDG_CACHE_HOME/nmodal``, else ``~/.cache/nmodal``) under a name keyed by the SHA-256 of
the packaged weights, the input size and the export recipe's version; the file is written
atomically (:mod:`nmodal.atomic`), so processes exporting at the same time, or one killed
while exporting, never leave a partial model.

Two precisions:

- ``fp32``: the same computation as the torch path (features equal within 1e-4; measured
  by ``tests/encoders/test_lite_onnx.py``), about twice as fast on one CPU thread.
- ``int8``: static quantisation (QDQ, 7-bit int8 weights per channel, uint8
  activations, min-max ranges) calibrated on :func:`calibration_pictures`, a fixed set of
  synthetic pictures, so the quantised model is the same on every machine; the first
  layers, where int8 loses the most, stay in float (:func:`float_nodes`). It changes the
  features (cosine to fp32 at worst 0.990 on real photos and frames): only used when asked
  for (the store then records ``precision: int8``), and ``bench/bench_lite.py`` measures
  its speed and agreement with fp32 on real photos and frames.

Example:
    >>> from nmodal.encoders import build_encoder
    >>> enc = build_encoder("efficientnet-lite0", backend="onnxruntime")  # doctest: +SKIP
    >>> enc.encode([np.zeros((224, 224, 3), np.uint8)]).shape, enc.details  # doctest: +SKIP
    ((1, 1280), {'backend': 'onnxruntime'})
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nmodal.atomic import writing_file
from nmodal.encoders import lite_openvino
from nmodal.encoders.efficientnet_lite import SameConv2d
from nmodal.errors import InputError

BACKENDS = ("auto", "torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "int8", "bf16")
CACHE_ENV = "NMODAL_CACHE_DIR"
#: bumped whenever the exported graph or the quantisation recipe changes
EXPORT_VERSION = "3"
CALIBRATION_PICTURES = 48
CALIBRATION_SEED = 20240501


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` (the optional extra ``nmodal[onnx]``) is installed."""
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_backend(backend: str | None, precision: str) -> str:
    """``auto``/None -> ``openvino`` when installed (the fastest exact path), else
    ``onnxruntime`` when installed, else ``torch``; int8 needs onnxruntime and bf16 OpenVINO
    (``auto`` picks them)."""
    backend = backend or "auto"
    if backend not in BACKENDS:
        raise InputError(f"efficientnet-lite0: backend must be one of {BACKENDS}, got {backend!r}")
    if precision not in PRECISIONS:
        raise InputError(
            f"efficientnet-lite0: precision must be one of {PRECISIONS}, got {precision!r}"
        )
    if backend == "auto":
        if precision == "bf16" or (precision == "fp32" and lite_openvino.openvino_available()):
            backend = "openvino"
        else:
            backend = "onnxruntime" if onnxruntime_available() else "torch"
    if backend == "openvino" and not lite_openvino.openvino_available():
        raise InputError(
            "efficientnet-lite0: the openvino backend needs openvino and onnx: "
            "pip install 'nmodal[openvino]'"
        )
    if backend == "onnxruntime" and not onnxruntime_available():
        raise InputError(
            "efficientnet-lite0: the onnxruntime backend needs onnxruntime: "
            "pip install 'nmodal[onnx]'"
        )
    if precision == "bf16" and backend != "openvino":
        raise InputError(
            "efficientnet-lite0: precision bf16 runs in OpenVINO only "
            f"(pip install 'nmodal[openvino]'; not with backend {backend})"
        )
    if precision == "int8" and backend != "onnxruntime":
        raise InputError(
            "efficientnet-lite0: precision int8 runs in onnxruntime only "
            f"(pip install 'nmodal[onnx]'; not with backend {backend})"
        )
    return backend


def cache_dir() -> Path:
    """Where exported models are kept (created on first use)."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nmodal"


class _StaticSameConv(nn.Module):
    """A ``SameConv2d`` with its padding fixed for one input size: the exported graph then
    holds constant pads (which onnxruntime folds into the convolution and the quantiser
    handles) instead of pads computed from the input's shape at run time."""

    def __init__(self, conv: nn.Conv2d, pads: list[int]) -> None:
        super().__init__()
        self.conv = conv
        self.pads = pads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = self.conv
        if any(self.pads):
            x = nn.functional.pad(x, self.pads)
        return nn.functional.conv2d(x, c.weight, c.bias, c.stride, 0, c.dilation, c.groups)


def _static_padding(net: nn.Module, size: tuple[int, int]) -> nn.Module:
    """A copy of ``net`` whose SAME convolutions have the pads of a ``size`` input."""
    import copy

    net = copy.deepcopy(net).float().to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    pads: dict[str, list[int]] = {}
    hooks = []
    for name, module in net.named_modules():
        if isinstance(module, SameConv2d):

            def record(mod: nn.Module, args: tuple[torch.Tensor], key: str = name) -> None:
                ih, iw = args[0].shape[-2:]
                kh, kw = mod.kernel_size  # type: ignore[misc]
                sh, sw = mod.stride  # type: ignore[misc]
                ph = max((-(-ih // sh) - 1) * sh + kh - ih, 0)
                pw = max((-(-iw // sw) - 1) * sw + kw - iw, 0)
                pads[key] = [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2]

            hooks.append(module.register_forward_pre_hook(record))
    with torch.no_grad():
        net.features(torch.zeros(1, 3, *size))  # type: ignore[operator]
    for h in hooks:
        h.remove()
    for name, p in pads.items():
        parent_name, _, attr = name.rpartition(".")
        parent = net.get_submodule(parent_name) if parent_name else net
        setattr(parent, attr, _StaticSameConv(getattr(parent, attr), p))
    return net


class _PreprocessedLite(nn.Module):
    """uint8 ``(N, H, W, 3)`` -> ``(x - 127) / 128`` in NCHW -> pooled Lite0 features.

    The arithmetic is the torch path's (``images_to_tensor``: ``x / 255``, minus
    ``127 / 255``, divided by ``128 / 255``), so fp32 features agree to rounding."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.permute(0, 3, 1, 2).float() * (1 / 255)
        mean: torch.Tensor = self.mean  # type: ignore[assignment]
        std: torch.Tensor = self.std  # type: ignore[assignment]
        h = (h - mean) / std
        out: torch.Tensor = self.net.features(h)  # type: ignore[operator]
        return out


def model_path(weights_sha256: str, size: tuple[int, int], precision: str) -> Path:
    """The cache file of the exported model for these weights, input size and precision."""
    name = (
        f"efficientnet-lite0-{weights_sha256[:16]}-{size[0]}x{size[1]}-"
        f"{precision}-v{EXPORT_VERSION}.onnx"
    )
    return cache_dir() / "onnx" / name


def export_fp32(
    net: nn.Module,
    weights_sha256: str,
    size: tuple[int, int],
    mean: Sequence[float],
    std: Sequence[float],
) -> Path:
    """The fp32 ONNX model of ``net`` (exported once, then read from the cache)."""
    path = model_path(weights_sha256, size, "fp32")
    if path.is_file():
        return path
    module = _PreprocessedLite(_static_padding(net, size), mean, std).eval()
    example = torch.zeros((2, size[0], size[1], 3), dtype=torch.uint8)
    with (
        writing_file(path, suffix=".onnx") as tmp,
        warnings.catch_warnings(),
        torch.inference_mode(False),
        torch.no_grad(),
    ):
        warnings.simplefilter("ignore")  # tracer and deprecation warnings of the exporter
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            input_names=["pictures"],
            output_names=["features"],
            dynamic_axes={"pictures": {0: "n"}, "features": {0: "n"}},
            opset_version=17,
            dynamo=False,
        )
    return path


def calibration_pictures(
    n: int = CALIBRATION_PICTURES, size: tuple[int, int] = (224, 224), seed: int = CALIBRATION_SEED
) -> list[np.ndarray]:
    """``n`` fixed synthetic uint8 pictures for int8 calibration: colour noise with the
    ``1/f`` spectrum of natural images, plus a few hard-edged shapes and flat regions."""
    rng = np.random.default_rng(seed)
    h, w = size
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0
    out = []
    for _ in range(n):
        slope = rng.uniform(0.8, 1.6)
        channels = []
        for _c in range(3):
            spec = (rng.normal(size=radius.shape) + 1j * rng.normal(size=radius.shape)) / (
                radius**slope
            )
            spec[0, 0] = 0.0
            channels.append(np.fft.irfft2(spec, s=(h, w)))
        img = np.stack(channels, axis=-1)
        mix = rng.normal(size=(3, 3)) * 0.4 + np.eye(3)  # correlated colour channels
        img = img @ mix
        img = (img - img.mean()) / (img.std() + 1e-9)
        img = img * rng.uniform(30, 70) + rng.uniform(70, 185)
        yy, xx = np.mgrid[0:h, 0:w]
        for _s in range(int(rng.integers(0, 5))):
            colour = rng.uniform(0, 255, size=3)
            cy, cx = rng.uniform(0, h), rng.uniform(0, w)
            r = rng.uniform(0.05, 0.3) * min(h, w)
            if rng.random() < 0.5:
                mask = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
            else:
                mask = (abs(yy - cy) < r) & (abs(xx - cx) < r * rng.uniform(0.3, 2.0))
            img[mask] = colour
        out.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    return out


class _Calibration:
    """onnxruntime's calibration reader over :func:`calibration_pictures`, 4 at a time."""

    def __init__(self, size: tuple[int, int]) -> None:
        pictures = calibration_pictures(size=size)
        self._batches: Iterator[np.ndarray] = iter(
            np.stack(pictures[i : i + 4]) for i in range(0, len(pictures), 4)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"pictures": batch}

    def rewind(self) -> None:  # pragma: no cover - onnxruntime calls it for some methods
        raise InputError("int8 calibration cannot rewind")


#: the stem and the first three blocks' depthwise and project convolutions stay in float
FLOAT_STEM = "/_conv_stem/Conv"
FLOAT_BLOCKS = (0, 1, 2)


def float_nodes(model: Any) -> list[str]:
    """The nodes of the prepared fp32 graph ``model`` (an ``onnx.ModelProto``) that the int8
    recipe leaves in float: the stem convolution and the depthwise and project convolutions
    of blocks 0-2, each with its ``Pad`` before and its ``Clip`` (ReLU6) after it.

    Measured on ``bench/bench_lite.py``'s pictures (cosine to fp32, worst / median; one
    thread of an AMD EPYC with AVX-512 VNNI): all in int8, 0.90 / 0.95 on the real
    photos and frames; these 7 convolutions (12 % of the multiply-adds) in float, 0.990 /
    0.993, at 1.6-1.7x the speed of onnxruntime fp32 (1.6-1.9x all in int8). No other
    layer, left in float as well one at a time, raised the worst cosine by more than
    0.001; all depthwise and project convolutions in float reached 0.996 at only 1.2x. A
    convolution left out needs its Pad and Clip left out too: otherwise the quantiser
    puts the Clip's input on the range of the raw convolution output (measured with
    8-bit weights: the stem alone left out, worst 0.80; with its Pad and Clip, 0.96)."""
    nodes = {n.name: n for n in model.graph.node}
    consumers: dict[str, list[Any]] = {}
    for n in model.graph.node:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
    convs = [FLOAT_STEM] + [
        f"/_blocks.{b}/_{kind}_conv/Conv" for b in FLOAT_BLOCKS for kind in ("depthwise", "project")
    ]
    missing = [c for c in convs if c not in nodes or nodes[c].op_type != "Conv"]
    if missing:  # a changed exporter would otherwise quantise them silently
        raise InputError(f"efficientnet-lite0 int8: convolutions not in the graph: {missing}")
    out: list[str] = []
    for c in convs:
        out.append(c)
        pad = nodes.get(c.replace("/Conv", "/Pad"))
        if pad is not None and pad.op_type == "Pad":
            out.append(pad.name)
        out.extend(n.name for n in consumers.get(nodes[c].output[0], []) if n.op_type == "Clip")
    return out


def quantize_int8(fp32: Path, weights_sha256: str, size: tuple[int, int]) -> Path:
    """The statically quantised int8 model of the fp32 model ``fp32`` (made once, cached)."""
    path = model_path(weights_sha256, size, "int8")
    if path.is_file():
        return path
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(_Calibration, CalibrationDataReader):
        pass

    from onnxruntime.quantization.shape_inference import quant_pre_process

    ort.set_default_logger_severity(3)
    with (
        writing_file(path, suffix=".onnx") as tmp,
        tempfile.TemporaryDirectory() as work,
        warnings.catch_warnings(),
        _quiet_logging(),
    ):
        warnings.simplefilter("ignore")
        # shape inference and graph optimisation first (onnxruntime's advice; measured:
        # cosine to fp32 0.93 with it, 0.48 without on the calibration family)
        prepared = str(Path(work) / "prepared.onnx")
        quant_pre_process(str(fp32), prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared,
            str(tmp),
            Reader(size),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            # 7-bit weights: AVX2 without VNNI sums u8 x s8 products in int16 pairs with
            # saturation (vpmaddubsw), which full-range weights overflow on real pictures
            # (measured: up to 0.07 % of the pairs of each 1x1 convolution, in every
            # picture; emulated on 12 pictures, it lowers their cosine by up to 0.008).
            # 7-bit pairs stay within int16 (none overflowed on the 109 pictures), so the
            # integer arithmetic is exact on every x86 CPU. Full range was hardly better
            # once the first layers are float (worst cosine 0.991 vs 0.990); uint8
            # weights avoid the saturation but ran 2.4x slower than fp32 here.
            reduce_range=True,
            nodes_to_exclude=float_nodes(onnx.load(prepared)),
        )
    return path


@contextlib.contextmanager
def _quiet_logging() -> Iterator[None]:
    """The quantiser logs a warning per tensor it leaves in float: not for the user."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class LiteOnnx:
    """An onnxruntime session of the exported Lite0: uint8 ``(N, H, W, 3)`` -> ``(N, 1280)``.

    ``num_threads``: onnxruntime's intra-op threads (default: torch's thread count, so a
    one-thread extraction worker runs one onnxruntime thread too)."""

    def __init__(self, path: Path, num_threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # threads that sleep while they wait: the cores are shared with decoding workers
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # no notes on unused initialisers
        self.path = path
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, pictures: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {"pictures": np.ascontiguousarray(pictures)})[0]
        return np.asarray(out, dtype=np.float32)


def session_for(
    net: nn.Module,
    weights_sha256: str,
    size: tuple[int, int],
    precision: str,
    mean: Sequence[float],
    std: Sequence[float],
    num_threads: int | None = None,
) -> LiteOnnx:
    """A session of the cached model for ``precision`` (exporting/quantising it first)."""
    fp32 = export_fp32(net, weights_sha256, size, mean, std)
    path = fp32 if precision == "fp32" else quantize_int8(fp32, weights_sha256, size)
    return LiteOnnx(path, num_threads)
