"""The benchmarks still run (quick sizes) and report what the README says they do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_loss_and_training_benchmarks_run(tmp_path):
    out = tmp_path / "bench.json"
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "losses", "train"]
    done = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "100 epochs x 50k" in done.stdout and "loop / triplet" in done.stdout
    results = json.loads(out.read_text())
    train = results["train"]
    assert set(train["runs"]) == {"off", "auto"}
    assert train["runs"]["off"]["precision"] == "float32"
    for run in train["runs"].values():
        assert run["samples_per_s"] > 0 and run["speedup_vs_per_item_dataloader"] > 0
    assert results["losses"]


@pytest.mark.slow
def test_http_benchmark_serves_the_library_results(tmp_path):
    """bench_http on a tiny index: a real server process answers the library's hits, 0 errors."""
    cmd = [sys.executable, str(ROOT / "bench" / "bench_http.py"), "--posts", "3000"]
    cmd += ["--queries", "24", "--clients", "8", "--factory", "IVF16,Flat"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["same_results"] is True and result["clients"] == 8
    for endpoint in ("search", "similar"):
        row = result[endpoint]
        assert row["library"]["p50_ms"] > 0
        for label in ("http_1", "http_8"):
            assert row[label]["errors"] == 0 and row[label]["p99_ms"] >= row[label]["p50_ms"] > 0


@pytest.mark.slow
def test_ondisk_benchmark_finds_the_same_results(tmp_path):
    """bench_ondisk on a small index: both storages answer identically, each reports memory."""
    cmd = [sys.executable, str(ROOT / "bench" / "bench_ondisk.py"), "--vectors", "20000"]
    cmd += ["--dim", "32", "--nlist", "32", "--queries", "10", "--work", str(tmp_path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["same_results"] is True
    assert result["files"]["ondisk"]["m.ivfdata"] == result["list_bytes"] == 20000 * (32 + 8)
    for storage in ("memory", "ondisk"):
        assert result[storage]["after_search_mb"]["VmHWM"] > 0


@pytest.mark.slow
def test_index_benchmark_measures_recall_after_index_add_doubles_the_collection(tmp_path):
    """bench_index --add-double at 10k posts: the default IVF index over the first half, grown
    by the library's add step to all 20k posts, keeps its recall against exact search."""
    out = tmp_path / "index.json"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_index.py"), "--sizes", "10k"]
    cmd += ["--flat-max", "1000", "--add-double", "10k", "--http-clients", "0"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [*cmd, "--json", str(out)], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "index add 10000 -> 20000 posts" in done.stdout
    result = json.loads(out.read_text())
    add = result["add_double"]
    assert (add["posts_before"], add["posts_after"]) == (10000, 20000)
    before, after = add["before"], add["after"]
    assert all(f.startswith("IVF") for f in before["factories"].values())
    assert after["count"]["text"] == 20000 > before["count"]["text"] == 10000
    assert set(after["add_step"].values()) <= {"added", "retrained"}
    assert before["recall@10"] >= 0.95 and after["recall@10"] >= 0.95
    assert result["sizes"][0]["posts"] == 10000


@pytest.mark.slow
def test_photo_decode_benchmark_compares_the_two_photo_paths(tmp_path):
    out = tmp_path / "photo.json"
    cmd = [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "photo_decode"]
    done = subprocess.run([*cmd, "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "cos worst" in done.stdout
    groups = json.loads(out.read_text())["photo_decode"]
    typical = groups["typical 1280x720 (synthetic)"]
    # 1280x720 JPEGs decode at half scale: other pictures, close features
    assert typical["photos"] == 2 and typical["identical_pictures"] == 0
    assert 0.99 < typical["cosine_worst"] < 1.0
    for name, group in groups.items():
        assert group["ms_swscale"] > 0 and group["ms_draft"] > 0, name
    if "real exports (previews)" in groups:  # 320-pixel previews: too small to reduce
        real = groups["real exports (previews)"]
        assert real["identical_pictures"] == real["photos"]


@pytest.mark.slow
def test_extract_benchmark_compares_each_run_with_the_loop_beside_it(tmp_path):
    out = tmp_path / "extract.json"
    cmd = [sys.executable, str(ROOT / "bench" / "bench_extract.py"), "--no-paper", "--posts",
           "8", "--loop-posts", "3", "--int8", "--json", str(out)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "steady" in done.stdout and "either side" in done.stdout
    result = json.loads(out.read_text())
    loop = result["offline_loop"]
    # one loop segment before, between and after the two extract runs
    assert loop["posts"] == 3 and len(loop["parts_posts_per_second"]) == 3
    for name in ("offline", "offline_int8"):
        run = result[name]
        assert run["posts"] == 8 and run["errors"] == 0
        assert run["x_loop"] == pytest.approx(
            run["posts_per_second"] / run["loop_posts_per_second"]
        )
        assert run["x_loop_steady"] >= run["x_loop"] > 0
        assert set(run["encode_seconds"]) == {"text", "image", "video", "audio"}


def test_every_benchmark_has_the_entry_bench_run_calls():
    """bench/run.py (``make bench``) calls ``run(quick=...)`` of every bench/bench_*.py."""
    import ast

    missing = []
    for path in sorted((ROOT / "bench").glob("bench_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        runs = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "run"]
        args = [a.arg for a in runs[0].args.args + runs[0].args.kwonlyargs] if runs else []
        defaults = len(runs[0].args.defaults) if runs else 0
        # quick is the only parameter without a default it may need
        if not runs or "quick" not in args or len(args) - defaults > 1:
            missing.append(path.name)
    assert missing == []
