"""IVF indexes whose inverted lists live on disk (memory-mapped): same results, relocatable,
clean exit and stdout, the manifest's storage respected, hostile manifests refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest

from nmodal.cli import main
from nmodal.errors import InputError
from nmodal.features import read_featureset, write_featureset
from nmodal.index import PostIndex, add_posts, build_index, ondisk
from nmodal.index.layout import MANIFEST, read_index_manifest
from tests.index.fixtures import MODALITIES, Collection, make_collection, reference_embeddings

FACTORY = "IVF8,SQ8"
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def col(tmp_path_factory: pytest.TempPathFactory) -> Collection:
    return make_collection(tmp_path_factory.mktemp("ondisk"), num_posts=500, seed=11)


def _build(col: Collection, out: Path, on_disk: str, store: Path | None = None) -> Path:
    return build_index(
        col.model, store or col.store, col.dataset, out, factory=FACTORY, nprobe=2,
        target=None, progress=False, on_disk=on_disk,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pair(col: Collection, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("pair")
    return _build(col, root / "mem", "never"), _build(col, root / "disk", "always")


def _queries(col: Collection, m: str = "text", n: int = 20) -> np.ndarray:
    _, emb, present = reference_embeddings(col)
    return np.ascontiguousarray(emb[m][np.flatnonzero(present[m])[:n]], dtype=np.float32)


def _raw(index: PostIndex, m: str, q: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    params = faiss.SearchParametersIVF()
    params.nprobe = nprobe
    return index.indexes[m].search(q, 10, params=params)


def _same(a: PostIndex, b: PostIndex, col: Collection) -> None:
    for m in MODALITIES:
        q = _queries(col, m)
        for nprobe in (1, 3, 8):
            da, ia = _raw(a, m, q, nprobe)
            db, ib = _raw(b, m, q, nprobe)
            np.testing.assert_array_equal(ia, ib)
            np.testing.assert_array_equal(da, db)
    for nprobe in (None, 1, 8):  # per-request nprobe, and the recorded default
        for pid in ("post-00003", "post-00250", "post-00499"):
            ra = a.more_like_this(pid, k=10, nprobe=nprobe)
            rb = b.more_like_this(pid, k=10, nprobe=nprobe)
            assert [h.post_id for h in ra.hits] == [h.post_id for h in rb.hits]
            assert [h.score for h in ra.hits] == [h.score for h in rb.hits]


def test_storage_choice():
    index = faiss.index_factory(4, "IVF2,Flat", faiss.METRIC_INNER_PRODUCT)
    x = np.random.default_rng(0).standard_normal((100, 4)).astype(np.float32)
    index.train(x)
    assert ondisk.choose_storage(index, "always") == "memory"  # empty: nothing to map
    index.add(x)
    assert ondisk.list_bytes(index) == 100 * (16 + 8)
    assert ondisk.choose_storage(index, "always") == "ondisk"
    assert ondisk.choose_storage(index, "never") == "memory"
    assert ondisk.choose_storage(index, "auto") == "memory"  # far below ONDISK_AUTO_BYTES
    assert ondisk.choose_storage(faiss.IndexFlatIP(4), "always") == "memory"
    with pytest.raises(InputError, match="on_disk must be one of"):
        ondisk.choose_storage(index, "sometimes")


def test_written_lists_read_back_identical(tmp_path: Path):
    """The same trained index written in memory and on disk: identical ids and distances."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = faiss.index_factory(16, "IVF16,SQ8", faiss.METRIC_INNER_PRODUCT)
    index.train(x)
    index.add_with_ids(x, np.arange(3000, dtype=np.int64) * 3)
    index.nprobe = 4
    want = index.search(x[:40], 10)
    fields = ondisk.write_index(tmp_path, "m", faiss.clone_index(index), "ondisk")
    assert fields == {"storage": "ondisk", "lists_file": "m.ivfdata"}
    assert (tmp_path / "m.ivfdata").stat().st_size == 3000 * (16 + 8)
    for in_memory in (False, True):
        got, storage = ondisk.read_index(tmp_path, "m", fields, in_memory=in_memory)
        assert storage == "ondisk"
        got.nprobe = 4
        np.testing.assert_array_equal(got.search(x[:40], 10)[1], want[1])
        np.testing.assert_array_equal(got.search(x[:40], 10)[0], want[0])
        lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(got).invlists)
        kind = faiss.ArrayInvertedLists if in_memory else faiss.OnDiskInvertedLists
        assert isinstance(lists, kind)


def test_ondisk_index_equals_in_memory(col: Collection, pair: tuple[Path, Path]):
    mem_dir, disk_dir = pair
    manifest = read_index_manifest(disk_dir)
    assert manifest["on_disk"] == "always"
    for m in MODALITIES:
        info = manifest["modalities"][m]
        assert info["storage"] == "ondisk" and info["lists_file"] == f"{m}.ivfdata"
        assert f"{m}.ivfdata" in manifest["files"]
        assert read_index_manifest(mem_dir)["modalities"][m]["storage"] == "memory"
        assert not (mem_dir / f"{m}.ivfdata").exists()
        # the .faiss file holds no list data: much smaller than the in-memory one
        assert (disk_dir / f"{m}.faiss").stat().st_size < (mem_dir / f"{m}.faiss").stat().st_size
    mem, disk = PostIndex.open(mem_dir), PostIndex.open(disk_dir)
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(disk.indexes["text"]).invlists)
    assert isinstance(lists, faiss.OnDiskInvertedLists)
    assert lists.filename == str(disk_dir / "text.ivfdata")
    _same(mem, disk, col)


def test_ondisk_index_is_relocatable(col: Collection, pair: tuple[Path, Path], tmp_path: Path):
    mem_dir, disk_dir = pair
    copy = shutil.copytree(disk_dir, tmp_path / "elsewhere" / "copy")
    moved = tmp_path / "moved"
    shutil.copytree(disk_dir, tmp_path / "first")
    (tmp_path / "first").rename(moved)
    for where in (copy, moved):
        index = PostIndex.open(where)
        lists = faiss.downcast_InvertedLists(
            faiss.extract_index_ivf(index.indexes["video"]).invlists
        )
        assert lists.filename == str(Path(where) / "video.ivfdata")
        _same(PostIndex.open(mem_dir), index, col)


def test_search_process_exits_cleanly_with_clean_stdout(pair: tuple[Path, Path], tmp_path: Path):
    """A process that opens an on-disk index, searches and exits: code 0 (FAISS and Python
    do not both free the lists), and stdout holds only what it printed."""
    _, disk_dir = pair
    copy = shutil.copytree(disk_dir, tmp_path / "copy")
    script = (
        "import json, sys\n"
        "from nmodal.index import PostIndex\n"
        f"index = PostIndex.open({str(copy)!r})\n"
        "r = index.more_like_this('post-00010', k=5, nprobe=4)\n"
        "json.dump([h.post_id for h in r.hits], sys.stdout)\n"
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    want = PostIndex.open(disk_dir).more_like_this("post-00010", k=5, nprobe=4)
    assert json.loads(done.stdout) == [h.post_id for h in want.hits]


def test_cli_build_and_search_keep_stdout_clean(
    col: Collection, tmp_path: Path, capfd: pytest.CaptureFixture[str]
):
    out = tmp_path / "idx"
    argv = ["index", "build", "--model", str(col.model), "--store", str(col.store),
            "--posts", str(col.dataset), "--out", str(out), "--factory", FACTORY,
            "--recall", "0", "--on-disk", "always"]  # fmt: skip
    assert main(argv) == 0
    printed = capfd.readouterr().out  # file-descriptor level: FAISS's C prints too
    assert "resizing" not in printed and "IO_FLAG" not in printed
    assert "(lists on disk: text.ivfdata)" in main_info(out, capfd)
    assert main(["search", str(out), "--post", "post-00010", "-k", "5", "--json"]) == 0
    result = json.loads(capfd.readouterr().out)  # nothing but the JSON
    assert len(result["hits"]) == 5


def main_info(out: Path, capfd: pytest.CaptureFixture[str]) -> str:
    assert main(["index", "info", str(out)]) == 0
    return capfd.readouterr().out


def test_add_to_ondisk_index(col: Collection, tmp_path: Path):
    """``index add`` grows an on-disk index (a new list file); results equal the in-memory
    index grown the same way, and the recorded policy is kept (or changed by on_disk)."""
    fs = read_featureset(col.store)
    part = write_featureset(tmp_path / "part", fs.subset(np.arange(400)))
    mem = _build(col, tmp_path / "mem", "never", store=part)
    disk = _build(col, tmp_path / "disk", "always", store=part)
    added = [
        add_posts(i, col.model, col.store, progress=False, retrain="never") for i in (mem, disk)
    ]
    assert added[0] == added[1] > 80
    manifest = read_index_manifest(disk)
    assert manifest["on_disk"] == "always"
    assert all(info["storage"] == "ondisk" for info in manifest["modalities"].values())
    grown = PostIndex.open(disk)
    _same(PostIndex.open(mem), grown, col)
    assert grown.num_posts == PostIndex.open(mem).num_posts
    # the lists now hold every vector, in the new file
    for m in MODALITIES:
        assert grown.indexes[m].ntotal == int(grown.present[m].sum())
    other = make_collection(tmp_path / "other", num_posts=20, seed=12, id_offset=10_000)
    assert add_posts(disk, col.model, other.store, other.dataset, progress=False,
                     retrain="never", on_disk="never")  # fmt: skip
    manifest = read_index_manifest(disk)
    assert manifest["on_disk"] == "never"
    for m, info in manifest["modalities"].items():
        assert info["storage"] == "memory" and "lists_file" not in info
        assert not (disk / f"{m}.ivfdata").exists()
    PostIndex.open(disk).more_like_this("post-00003", k=5)


def test_auto_switches_on_disk_above_the_threshold(
    col: Collection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    auto = _build(col, tmp_path / "small", "auto")
    assert {i["storage"] for i in read_index_manifest(auto)["modalities"].values()} == {"memory"}
    monkeypatch.setattr(ondisk, "ONDISK_AUTO_BYTES", 1000)
    auto = _build(col, tmp_path / "big", "auto")
    assert {i["storage"] for i in read_index_manifest(auto)["modalities"].values()} == {"ondisk"}


def test_always_keeps_non_ivf_indexes_in_memory_with_a_warning(col: Collection, tmp_path: Path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = build_index(col.model, col.store, col.dataset, tmp_path / "flat",
                          progress=False, on_disk="always")  # fmt: skip
    assert any("not an IVF index" in str(w.message) for w in caught)
    assert {i["storage"] for i in read_index_manifest(out)["modalities"].values()} == {"memory"}
    PostIndex.open(out)


# ------------------------------------------------------------------------ hostile manifests


def _edit(index_dir: Path, m: str, **fields: Any) -> None:
    path = index_dir / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["modalities"][m].update(fields)
    for key, value in fields.items():
        if value is None:
            del manifest["modalities"][m][key]
    path.write_text(json.dumps(manifest))


@pytest.fixture
def disk_copy(pair: tuple[Path, Path], tmp_path: Path) -> Path:
    return Path(shutil.copytree(pair[1], tmp_path / "copy"))


@pytest.mark.parametrize("name", ["../outside.ivfdata", "/etc/passwd", "", None, "a/b"])
def test_lists_file_outside_the_directory_is_refused(disk_copy: Path, name: Any):
    _edit(disk_copy, "text", lists_file=name)
    with pytest.raises(InputError, match="'lists_file' is not a plain file name"):
        PostIndex.open(disk_copy)


def test_missing_lists_file_is_refused(disk_copy: Path):
    (disk_copy / "image.ivfdata").unlink()
    with pytest.raises(InputError, match=r"image\.ivfdata: listed in manifest.json but missing"):
        PostIndex.open(disk_copy)


def test_lists_file_not_among_the_files_is_refused(pair: tuple[Path, Path], tmp_path: Path):
    mem_copy = Path(shutil.copytree(pair[0], tmp_path / "mem"))
    _edit(mem_copy, "text", storage="ondisk", lists_file="text.ivfdata")
    with pytest.raises(InputError, match=r"text\.ivfdata are not among the index's files"):
        PostIndex.open(mem_copy)


def test_ordinary_index_under_ondisk_storage_is_refused(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """The flag that skips list data cannot read an ordinary index: a clear error."""
    monkeypatch.setenv("NMODAL_NO_VERIFY", "1")
    mem_copy = Path(shutil.copytree(pair[0], tmp_path / "mem"))
    shutil.copy(pair[1] / "text.ivfdata", mem_copy / "text.ivfdata")
    manifest = json.loads((mem_copy / MANIFEST).read_text())
    manifest["files"]["text.ivfdata"] = "0" * 64
    (mem_copy / MANIFEST).write_text(json.dumps(manifest))
    _edit(mem_copy, "text", storage="ondisk", lists_file="text.ivfdata")
    with pytest.raises(InputError, match="an index with its lists in memory, but"):
        PostIndex.open(mem_copy)


def test_ondisk_index_under_memory_storage_is_refused(disk_copy: Path):
    _edit(disk_copy, "text", storage="memory", lists_file=None)
    with pytest.raises(InputError, match=r"text\.faiss: its inverted lists are on disk"):
        PostIndex.open(disk_copy)


def test_unknown_storage_is_refused(disk_copy: Path):
    _edit(disk_copy, "text", storage="tape")
    with pytest.raises(InputError, match="unknown index storage 'tape'"):
        PostIndex.open(disk_copy)


def test_truncated_lists_file_is_refused(disk_copy: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NMODAL_NO_VERIFY", "1")  # no hash check: the size check still holds
    data = disk_copy / "video.ivfdata"
    size = data.stat().st_size
    os.truncate(data, size // 2)
    with pytest.raises(InputError, match=rf"{size // 2} bytes, video.faiss records {size}"):
        PostIndex.open(disk_copy)


def test_build_killed_while_writing_the_lists_leaves_the_old_index(
    col: Collection, pair: tuple[Path, Path], tmp_path: Path
):
    """kill -9 while the list file is half-written: the old index stays, complete, and the
    staged folder is cleaned up by the next reader."""
    _, disk_dir = pair
    root = tmp_path / "root"
    root.mkdir()
    copy = Path(shutil.copytree(disk_dir, root / "idx"))
    code = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from nmodal.index import build_index, ondisk\n"
        "def killed(path, invlists, code_size):\n"
        "    Path(path).write_bytes(b'half a list file')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "ondisk._write_lists = killed\n"
        "build_index(sys.argv[1], sys.argv[2], None, sys.argv[3], factory='IVF8,Flat',\n"
        "            target=None, progress=False, overwrite=True, on_disk='always')\n"
    )
    argv = [sys.executable, "-c", code, str(col.model), str(col.store), str(copy)]
    done = subprocess.run(argv, env={**os.environ, "PYTHONPATH": SRC}, timeout=300)
    assert done.returncode == -9
    assert any(".nmodal-tmp-" in p.name for p in root.iterdir())  # the staging it left
    reopened = PostIndex.open(copy)
    assert sorted(p.name for p in root.iterdir()) == ["idx"]
    assert read_index_manifest(copy)["modalities"]["text"]["factory"] == FACTORY
    _same(PostIndex.open(disk_dir), reopened, col)
