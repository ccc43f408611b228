"""Where an IVF index's inverted lists live: in memory, or memory-mapped from a file.

A FAISS IVF index is a small part (quantizer, codebooks, list sizes) and its inverted lists
(each vector's code and id), which are nearly all of its bytes. ``storage: "memory"`` (the
default, and the only one for non-IVF indexes) keeps everything in ``<m>.faiss``, read
into memory when the index is opened. ``storage: "ondisk"`` writes the lists to
``<m>.ivfdata`` and ``<m>.faiss`` holds only the small part; opening the index
memory-maps the lists read-only (:class:`faiss.OnDiskInvertedLists`), so a search server
holds in RAM only the pages of the lists its searches visit (the page cache, shared with
every process serving the same index), not all of them. Search results and per-search
parameters (nprobe) are the same: the codes and ids are the same bytes.

Choice (``on_disk`` of ``nmodal index build`` / ``add``, recorded in the manifest and
re-applied by ``add``): ``"auto"`` puts a modality's lists on disk when they hold at least
``ONDISK_AUTO_BYTES`` (codes + 8-byte ids); ``"always"`` every IVF index; ``"never"`` none.
The threshold is a fixed size, not a fraction of the building machine's RAM: the index is
often served elsewhere, and the same data should give the same index.

The manifest entry of an on-disk modality records ``storage: "ondisk"`` and
``lists_file``: the list file's name, relative to the index directory. The reader uses it
(FAISS's own file holds a name too; it is ignored): the lists are mapped from the
directory actually opened, so an index directory can be moved or copied. The list file is
written by nmodal (no FAISS "resizing" lines on stdout), list by list into the directory
being staged (:func:`nmodal.atomic.replacing_dir`: temp name, fsync, swap; manifest last).

Ownership: an index read from disk owns its lists (FAISS frees them with the index). When
lists are attached to an index in Python (:func:`_attach`), FAISS takes ownership and the
Python wrapper's is released, or both would free them at exit (a segfault).

Example:
    >>> choose_storage(None, "always")  # not an IVF index
    'memory'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nmodal.errors import InputError
from nmodal.index import layout
from nmodal.index.factory import ivf_of
from nmodal.index.layout import MEMORY, ONDISK, lists_name, storage_of

ON_DISK = ("auto", "always", "never")
#: ``on_disk="auto"``: a modality's inverted lists go to disk from this size (codes + ids)
ONDISK_AUTO_BYTES = 256 * 2**20
_ID_BYTES = 8


def check_on_disk(on_disk: str) -> str:
    if on_disk not in ON_DISK:
        raise InputError(f"on_disk must be one of {ON_DISK}, got {on_disk!r}")
    return on_disk


def list_bytes(index: Any) -> int:
    """Bytes of ``index``'s inverted lists (codes and ids; 0 for a non-IVF index)."""
    ivf = ivf_of(index) if index is not None else None
    if ivf is None:
        return 0
    return int(ivf.ntotal) * (int(ivf.code_size) + _ID_BYTES)


def choose_storage(index: Any, on_disk: str) -> str:
    """``"ondisk"`` or ``"memory"`` for ``index`` under policy ``on_disk`` (IVF only)."""
    check_on_disk(on_disk)
    ivf = ivf_of(index) if index is not None else None
    if ivf is None or int(ivf.ntotal) == 0 or on_disk == "never":
        return MEMORY
    if on_disk == "always":
        return ONDISK
    return ONDISK if list_bytes(index) >= ONDISK_AUTO_BYTES else MEMORY


# ------------------------------------------------------------------------------ writing


def write_index(directory: Path, m: str, index: Any, storage: str) -> dict[str, Any]:
    """Write modality ``m``'s FAISS index into ``directory`` (a staging directory); returns
    the manifest fields of its storage. ``index`` is consumed when on disk: its lists are
    replaced by the on-disk description."""
    import faiss

    faiss_path = directory / layout.faiss_file(m)
    if storage == MEMORY:
        faiss.write_index(index, str(faiss_path))
        return {"storage": MEMORY}
    ivf = ivf_of(index)
    if ivf is None:
        raise InputError(f"modality {m!r}: only IVF indexes can keep their lists on disk")
    name = layout.lists_file(m)
    sizes = _write_lists(directory / name, ivf.invlists, int(ivf.code_size))
    od = faiss.OnDiskInvertedLists(int(ivf.nlist), int(ivf.code_size), name)
    lib: Any = faiss  # the stubs lack swig_ptr
    od.set_all_lists_sizes(lib.swig_ptr(sizes))
    od.totsize = int((sizes * (int(ivf.code_size) + _ID_BYTES)).sum())
    _attach(ivf, od)
    faiss.write_index(index, str(faiss_path))
    return {"storage": ONDISK, "lists_file": name}


def _write_lists(path: Path, invlists: Any, code_size: int) -> np.ndarray:
    """Write ``invlists`` as an on-disk list file (each list's codes then its ids, lists
    back to back, the layout of ``OnDiskInvertedLists.set_all_lists_sizes``); returns
    the list sizes (uint64)."""
    import faiss

    lib: Any = faiss
    nlist = int(invlists.nlist)
    sizes = np.zeros(nlist, dtype=np.uint64)
    with open(path, "wb") as out:
        for j in range(nlist):
            n = int(invlists.list_size(j))
            sizes[j] = n
            if n == 0:
                continue
            codes = lib.rev_swig_ptr(invlists.get_codes(j), n * code_size)
            ids = lib.rev_swig_ptr(invlists.get_ids(j), n)
            out.write(np.ascontiguousarray(codes).data)
            out.write(np.ascontiguousarray(ids, dtype=np.int64).data)
        out.flush()
        os.fsync(out.fileno())
    return sizes


def _attach(ivf: Any, lists: Any) -> None:
    """Make ``lists`` the inverted lists of ``ivf``, owned by FAISS (freed with the index,
    the previous lists freed now); Python's wrapper gives up ownership."""
    ivf.replace_invlists(lists, True)
    lists.this.disown()


# ------------------------------------------------------------------------------ reading


def read_index(
    directory: Path, m: str, info: Mapping[str, Any], in_memory: bool = False
) -> tuple[Any, str]:
    """Modality ``m``'s FAISS index from ``directory`` per its manifest entry ``info``, and
    its storage. On-disk lists are memory-mapped read-only from ``directory``'s list file;
    ``in_memory`` copies them into memory instead (for ``index add``, which grows them).
    InputError when the file does not match the recorded storage or is unreadable."""
    import faiss

    where = directory / layout.MANIFEST
    storage = storage_of(info, where)
    path = directory / layout.faiss_file(m)

    def mismatch(found: str, recorded: str) -> InputError:
        return InputError(
            f"{path}: {found}, but {where} records modality {m!r} with storage {recorded}; "
            "rebuild the index"
        )

    if storage == MEMORY:
        on_disk = mismatch("its inverted lists are on disk", "'memory' (no list file)")
        # "could not open": FAISS looked for the list file it names
        index = _read_faiss(path, faiss.IO_FLAG_READ_ONLY, "could not open", on_disk)
        ivf = ivf_of(index)
        if ivf is not None and isinstance(
            faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists
        ):
            raise on_disk
        return index, storage
    name = lists_name(info, m, where)
    data = directory / name
    # the lists' sizes and offsets only: the data is mapped from the file named here
    index = _read_faiss(
        path,
        faiss.IO_FLAG_SKIP_IVF_DATA | faiss.IO_FLAG_READ_ONLY,
        "ArrayInvertedLists",
        mismatch("an index with its lists in memory", f"'ondisk' ({name})"),
    )
    ivf = ivf_of(index)
    lists = None if ivf is None else faiss.downcast_InvertedLists(ivf.invlists)
    if not isinstance(lists, faiss.OnDiskInvertedLists):
        raise mismatch("not an IVF index with on-disk lists", "'ondisk'")
    _check_lists(lists, data, path)
    lists.filename = str(data)
    lists.prefetch_nthread = 0  # searches read the pages they visit; no threads per search
    try:
        lists.do_mmap()
    except RuntimeError as exc:
        raise InputError(f"{data}: cannot map the inverted lists ({_reason(exc)})") from exc
    if in_memory:
        _load_lists(ivf, lists)
    return index, storage


def _read_faiss(path: Path, flags: int, marker: str, mismatch: InputError) -> Any:
    """``faiss.read_index(path, flags)``; ``mismatch`` when FAISS's error names ``marker``
    (the file's storage is not the recorded one), else an unreadable-index InputError."""
    import faiss

    try:
        return faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        if marker in str(exc):
            raise mismatch from exc
        raise InputError(f"{path}: unreadable FAISS index ({_reason(exc)})") from exc


def _check_lists(lists: Any, data: Path, path: Path) -> None:
    """Every list must lie inside the list file, which must be as long as recorded: a
    short file would be mapped past its end (a bus error on the first search)."""
    if data.is_symlink() or not data.is_file():
        raise InputError(f"{data}: the inverted lists of {path.name} are missing")
    total = int(lists.totsize)
    actual = data.stat().st_size
    if actual != total:
        raise InputError(
            f"{data}: {actual} bytes, {path.name} records {total} (truncated or another "
            "index's list file); rebuild the index"
        )
    entry = _ID_BYTES + int(lists.code_size)
    recorded = lists.lists
    for j in range(int(lists.nlist)):
        one = recorded.at(j)
        size, capacity = int(one.size), int(one.capacity)
        if size == 0 and capacity == 0:
            continue
        if size > capacity or int(one.offset) + capacity * entry > total:
            raise InputError(f"{path}: inverted list {j} lies outside {data.name}")


def _load_lists(ivf: Any, lists: Any) -> None:
    """Replace ``ivf``'s mapped lists by an in-memory copy (the mapping is released)."""
    import faiss

    copy = faiss.ArrayInvertedLists(int(lists.nlist), int(lists.code_size))
    for j in range(int(lists.nlist)):
        n = int(lists.list_size(j))
        if n:
            copy.add_entries(j, n, lists.get_ids(j), lists.get_codes(j))
    _attach(ivf, copy)


def _reason(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
