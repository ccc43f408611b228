"""EfficientNet-Lite0 in OpenVINO: the fastest exact CPU path of the offline image/video encoders.

OpenVINO's CPU plugin compiles the fp32 ONNX model that :mod:`nmodal.encoders.lite_onnx`
exports once into the user's cache (preprocessing inside the graph), with float32
inference forced: OpenVINO would otherwise run bf16 on CPUs with native bf16, which
changes the features. Measured on the 2-core development VM (AMD EPYC with AVX-512, one
thread, batches of 4): about 11 ms a picture against 17-18 ms in onnxruntime fp32 and 37
ms in torch, features equal to the torch path within 1e-5 (``bench/bench_lite.py``,
``tests/encoders/test_lite_openvino.py``).

One compiled model per process and thread count; each call runs one inference request
under a lock (a request is not safe to share between threads). Threads are not pinned to
cores: every extraction worker runs its own one-thread model, and pinned workers would
share a core.

Example:
    >>> from nmodal.encoders import build_encoder
    >>> enc = build_encoder("efficientnet-lite0", backend="openvino")  # doctest: +SKIP
    >>> enc.encode([np.zeros((224, 224, 3), np.uint8)]).shape, enc.details  # doctest: +SKIP
    ((1, 1280), {'backend': 'openvino'})
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from nmodal.errors import InputError


def openvino_available() -> bool:
    """Whether ``openvino`` and ``onnx`` (the optional extra ``nmodal[openvino]``) are
    installed: the model is compiled from the ONNX export."""
    return all(importlib.util.find_spec(p) is not None for p in ("openvino", "onnx"))


def compile_config(num_threads: int, precision: str = "fp32") -> dict[str, Any]:
    """The CPU plugin's settings: float32 (never bf16 or fp16 on its own) or, asked for,
    bf16; ``num_threads`` threads, one stream, no pinning."""
    return {
        "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
        "INFERENCE_NUM_THREADS": int(num_threads),
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_CPU_PINNING": False,
    }


class LiteOpenVino:
    """A compiled OpenVINO model of the exported Lite0: uint8 ``(N, H, W, 3)`` -> ``(N, 1280)``.

    ``num_threads``: the plugin's inference threads (default: torch's thread count, so a
    one-thread extraction worker runs one OpenVINO thread too). ``precision="bf16"`` runs
    the convolutions in bfloat16 on CPUs with native bf16 (AVX-512 BF16 or AMX) and refuses
    other CPUs, where the plugin would quietly run float32 instead."""

    def __init__(self, path: Path, num_threads: int | None = None, precision: str = "fp32") -> None:
        import openvino as ov

        core = ov.Core()
        threads = int(num_threads or torch.get_num_threads())
        self.path = path
        self.compiled = core.compile_model(
            core.read_model(str(path)), "CPU", compile_config(threads, precision)
        )
        self.precision = str(self.compiled.get_property("INFERENCE_PRECISION_HINT"))
        if precision == "bf16" and "bfloat16" not in self.precision:
            raise InputError(
                "efficientnet-lite0: precision bf16 needs a CPU with native bf16 (AVX-512 BF16 "
                f"or AMX); OpenVINO runs {self.precision} here: use fp32"
            )
        self._request = self.compiled.create_infer_request()
        self._lock = threading.Lock()

    def __call__(self, pictures: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(pictures)
        with self._lock:
            out = self._request.infer({0: x})
            return np.array(out[0], dtype=np.float32, copy=True)
