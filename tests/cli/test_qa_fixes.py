"""What a new user met on real exports (QA pass of stop 28): each a one-line error or a
correct result, never a traceback, a silent no-op or a wrong link."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nmodal.classify.estimators import make_classifier
from nmodal.cli import main
from nmodal.cli.serve import link_host
from nmodal.errors import InputError
from nmodal.features import make_synthetic, write_featureset
from nmodal.sources import read_posts_manifest
from nmodal.train import split_posts, split_trainable


def _export(root: Path, chat_id: int, name: str) -> Path:
    root.mkdir(parents=True)
    msgs = [{"id": i, "type": "message", "date_unixtime": str(1709280000 + i),
             "text": f"message number {i} of {name}"} for i in range(1, 4)]  # fmt: skip
    (root / "result.json").write_text(
        json.dumps({"id": chat_id, "name": name, "type": "public_channel", "messages": msgs})
    )
    return root


def test_one_username_per_export(tmp_path: Path, capsys) -> None:
    a = _export(tmp_path / "a", 11, "Alpha")
    b = _export(tmp_path / "b", 22, "Bravo")
    base = ["ingest", "telegram-export", str(a), str(b), "--workers", "0", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "x"), "--username", "alpha"]) == 1
    assert "one per export" in capsys.readouterr().err
    argv = [*base, "--out", str(tmp_path / "ds"), "--username", "alpha", "--username", "-"]
    assert main(argv) == 0
    posts = pd.read_parquet(tmp_path / "ds" / "posts.parquet").set_index("post_id")
    assert posts.loc["11/2", "url"] == "https://t.me/alpha/2"
    assert "alpha" not in str(posts.loc["22/2", "url"])  # the other channel keeps its own link


def test_extract_limit_must_be_positive(tmp_path: Path, capsys) -> None:
    for bad in ("0", "-1"):
        with pytest.raises(SystemExit) as exit_info:
            main(["extract", str(tmp_path), "--out", str(tmp_path / "s"), "--limit", bad])
        assert exit_info.value.code == 2
        assert "must be at least 1" in capsys.readouterr().err


def test_train_splits_among_the_posts_it_can_use(tmp_path: Path, capsys) -> None:
    """A real export: most posts have one artifact. The split is among the posts with two,
    and the counts printed are theirs."""
    fs = make_synthetic(300, dim=12, latent_dim=4, seed=3)
    lonely = np.arange(300) >= 40  # 260 posts with text only
    for m in ("image", "video"):
        fs.present[m][lonely] = False
        fs.features[m][lonely] = 0
    store = write_featureset(tmp_path / "store", fs)
    split, usable = split_trainable(fs.present, ["text", "image", "video"], "mask", 10, 0.1, 0)
    assert usable.tolist() == list(range(40))
    assert set(split.test) | set(split.train) | set(split.val) <= set(range(40))
    assert len(split.test) == 10
    argv = ["train", str(store), "--out", str(tmp_path / "m"), "--epochs", "1", "--test-size", "10"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "40 of the store's 300 posts have at least two" in out
    assert "training on 27 posts, validating on 3, holding out 10" in out
    saved = json.loads((tmp_path / "m" / "split.json").read_text())
    ids = set(fs.post_ids[:40].tolist())
    assert set(saved["test"]) <= ids and set(saved["train"]) <= ids
    # a complete store keeps split_posts' own split
    full = make_synthetic(50, dim=8, seed=4)
    a, _ = split_trainable(full.present, full.modalities, "mask", 10, 0.1, 5)
    b = split_posts(50, 10, 0.1, 5)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "val", "test"))
    with pytest.raises(InputError, match="nothing to train on"):
        split_trainable({"text": np.ones(5, bool), "image": np.zeros(5, bool)}, ["text", "image"])


def test_classifier_parameters_are_checked_by_name_and_value() -> None:
    with pytest.raises(InputError, match=r"rf\.bogus: RandomForestClassifier has no parameter"):
        make_classifier("rf", bogus=1)
    with pytest.raises(InputError, match="n_estimators"):
        make_classifier("rf", n_estimators="abc")
    assert make_classifier("rf", n_estimators=5).n_estimators == 5


def test_serve_prints_a_link_a_client_can_open() -> None:
    import socket

    assert link_host("127.0.0.1", {"127.0.0.1"}) == "127.0.0.1"
    assert link_host("0.0.0.0", {"127.0.0.1", socket.gethostname()}) == socket.gethostname()
    assert link_host("0.0.0.0", {"127.0.0.1"}) == "127.0.0.1"
    assert link_host("::1", {"::1"}) == "[::1]"


def test_a_json_array_manifest_is_read(tmp_path: Path) -> None:
    path = tmp_path / "posts.json"
    path.write_text(
        json.dumps([{"post_id": "1", "text": "a"}, 5, {"post_id": "2", "text": "b"}], indent=2)
    )
    records = read_posts_manifest(path)
    good = [r["post_id"] for r in records if not r["post_id"].startswith("!error")]
    assert good == ["1", "2"]
    bad = [r["post_id"] for r in records if r["post_id"].startswith("!error")]
    assert bad == ["!error/posts.json:item 2"]


@pytest.fixture(scope="module")
def small_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nmodal.index import build_index
    from tests.index.fixtures import make_collection

    col = make_collection(tmp_path_factory.mktemp("qa"), num_posts=60, seed=8)
    posts = pd.read_parquet(col.dataset / "posts.parquet")
    posts["forwarded_from"] = [("Rybar" if i % 3 == 0 else None) for i in range(len(posts))]
    posts.to_parquet(col.dataset / "posts.parquet", index=False)
    return build_index(col.model, col.store, col.dataset, col.root / "index", progress=False)


def test_search_checks_origins_and_knobs(small_index: Path, capsys) -> None:
    base = ["search", str(small_index), "--post", "post-00003"]
    assert main([*base, "--forwarded-from", "Rybr"]) == 1
    err = capsys.readouterr().err
    assert "no post of this index is forwarded from 'Rybr'" in err and "Rybar" in err
    assert main([*base, "--forwarded-from", "Rybar"]) == 0
    capsys.readouterr()
    assert main([*base, "--ef-search", "64"]) == 1  # a Flat index has no efSearch
    assert "HNSW" in capsys.readouterr().err
    assert main(base) == 0
    assert "→" in capsys.readouterr().out  # --post: which artifact of the query matched


def test_a_closed_pipe_is_not_a_traceback(small_index: Path) -> None:
    cmd = f"{sys.executable} -m nmodal search {small_index} --post post-00003 -k 50 | head -1"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr


def test_evaluate_ks_and_warnings_are_one_line(small_index: Path, tmp_path: Path, capsys) -> None:
    from tests.index.fixtures import make_collection

    col = make_collection(tmp_path / "c", num_posts=30, seed=9)
    argv = ["evaluate", str(col.model), "--store", str(col.store), "--ks", "0,abc"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "argument --ks: expected comma-separated integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv[:-1], "0,5"])
    assert "K values must be whole numbers >= 1" in capsys.readouterr().err
    other = tmp_path / "other"
    other.mkdir()
    pd.DataFrame(
        {"post_id": ["zz-1", "zz-2"], "text": ["a", "b"], "status": ["kept"] * 2}
    ).to_parquet(other / "posts.parquet")
    argv = ["index", "build", "--model", str(col.model), "--store", str(col.store),
            "--posts", str(other), "--out", str(tmp_path / "idx")]  # fmt: skip
    assert main(argv) == 1
    assert "holds none of the" in capsys.readouterr().err


def test_ingest_notes_bad_dates_and_labels_that_match_nothing(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "posts.jsonl"
    rows = [{"post_id": "1", "account": "a", "text": "hello there my friends", "date": "not a date"},
            {"post_id": "2", "account": "a", "text": "second post words", "date": "2024-03-01"}]  # fmt: skip
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    labels = tmp_path / "labels.csv"
    labels.write_text("account,stance\nnosuch,pro\n")
    argv = ["ingest", "manifest", str(manifest), "--out", str(tmp_path / "ds"), "--workers", "0",
            "--no-progress", "--account-labels", str(labels)]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "name none of this collection's accounts" in out and "a" in out
    posts = pd.read_parquet(tmp_path / "ds" / "posts.parquet").set_index("post_id")
    assert "date: not a date" in posts.loc["1", "notes"]
    assert pd.isna(posts.loc["1", "date"]) and pd.notna(posts.loc["2", "date"])
    assert main(["ingest", "manifest", str(tmp_path), "--out", str(tmp_path / "x")]) == 1
    assert "a folder, not a manifest file" in capsys.readouterr().err
    assert (
        main(["ingest", "telegram-export", str(tmp_path / "nope"), "--out", str(tmp_path / "y")])
        == 1
    )
    assert "no such folder" in capsys.readouterr().err


def test_a_param_for_a_classifier_not_run_is_said(tmp_path: Path, capsys) -> None:
    argv = ["classify", "--model", str(tmp_path), "--store", str(tmp_path), "--posts",
            str(tmp_path), "--label", "stance", "--out", str(tmp_path / "c"),
            "--classifiers", "rf", "--param", "svm.C=1"]  # fmt: skip
    assert main(argv) == 1  # the model folder is not one: that is the error
    err = capsys.readouterr().err
    assert "warning: --param svm.* has no effect: svm is not among --classifiers rf" in err


def test_extract_of_a_dataset_without_kept_posts_says_so(tmp_path: Path, capsys) -> None:
    from nmodal.sources.posts import write_posts

    rows = [{"post_id": "1", "text": "x", "status": "dropped", "reason": "text < 5 words"}]
    write_posts(pd.DataFrame(rows), tmp_path / "ds")
    argv = ["extract", str(tmp_path / "ds"), "--out", str(tmp_path / "s"), "--encoders", "offline",
            "--modalities", "text", "--workers", "0", "--no-progress"]  # fmt: skip
    assert main(argv) == 1
    assert "no kept posts to extract" in capsys.readouterr().err


def test_a_bad_json_line_is_located_by_its_column() -> None:
    from nmodal.sources.records import load_json_text

    with pytest.raises(ValueError, match=r"at column 13\)$"):
        load_json_text('{"post_id": }', "x")
    with pytest.raises(ValueError, match="at line 2 column"):
        load_json_text('{"a": 1,\n "b": }', "x")


def test_a_name_with_a_comma_is_kept_whole_when_the_index_has_it() -> None:
    from nmodal.cli.search import split_names

    known = ["Kyiv, Independent", "other"]
    assert split_names(["Kyiv, Independent"], known) == ("Kyiv, Independent",)
    assert split_names(["other,Kyiv"], known) == ("other", "Kyiv")
    assert split_names(None, known) == ()
