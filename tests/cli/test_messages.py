"""The CLI explains itself: unknown filter values list the valid ones, risky set-ups warn."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmodal.cli import main
from nmodal.features import make_synthetic, write_featureset
from nmodal.index import PostIndex
from tests.index.fixtures import make_collection


def _build(col, out: Path, posts: bool) -> list[str]:
    argv = ["index", "build", "--model", str(col.model), "--store", str(col.store)]
    return argv + (["--posts", str(col.dataset)] if posts else []) + ["--out", str(out)]


def test_unknown_account_lists_the_known_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    col = make_collection(tmp_path / "c", num_posts=60, seed=2)
    out = tmp_path / "idx"
    assert main(_build(col, out, posts=True)) == 0
    capsys.readouterr()
    known = PostIndex.open(out).accounts_list()
    assert known == ["alpha", "bravo", "charlie", "delta"]
    argv = ["search", str(out), "--post", "post-00003", "--account", "alpha,nosuch"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("nmodal search: error: --account: no posts of 'nosuch'")
    assert "its accounts are: alpha, bravo, charlie, delta" in err
    assert "Traceback" not in err
    # a known account still searches
    assert main(["search", str(out), "--post", "post-00003", "--account", "bravo", "-k", "3"]) == 0
    # an unknown modality names the index's modalities
    assert main(["search", str(out), "--post", "post-00003", "--modality", "smell"]) == 1
    assert "this index has" in capsys.readouterr().err


def test_index_build_without_posts_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    col = make_collection(tmp_path / "c", num_posts=40, seed=3)
    assert main(_build(col, tmp_path / "bare", posts=False)) == 0
    err = capsys.readouterr().err
    assert "warning: no --posts DATASET_DIR" in err and "no text, account, date" in err
    assert main(_build(col, tmp_path / "full", posts=True)) == 0
    assert "warning" not in capsys.readouterr().err


@pytest.mark.parametrize(("posts", "test_size", "warned"), [(150, 100, True), (600, 100, False)])
def test_train_warns_when_the_test_split_dominates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], posts: int, test_size: int, warned: bool
):
    write_featureset(tmp_path / "store", make_synthetic(posts, dim=12, latent_dim=4, seed=0))
    argv = ["train", str(tmp_path / "store"), "--out", str(tmp_path / "m"), "--epochs", "1"]
    assert main([*argv, "--test-size", str(test_size), "--dim", "8", "--batch-size", "64"]) == 0
    err = capsys.readouterr().err
    assert ("warning: 100 of 150 posts (67%) are held out" in err) is warned
    if warned:
        assert "--test-size 30" in err


def test_serve_checks_its_port_before_loading_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    import socket

    missing = tmp_path / "no-index"  # loading it would fail: the port check must come first
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(missing), "--port", str(port)]) == 1
        err = capsys.readouterr().err
    assert err.startswith(f"nmodal serve: error: 127.0.0.1:{port} is already in use")
    suggested = int(err.rsplit("try --port ", 1)[1].split()[0])
    assert suggested > port
    with socket.socket() as probe:  # the suggested port really is free
        probe.bind(("127.0.0.1", suggested))
    assert "serving" not in err and str(missing) not in err
    assert main(["serve", str(missing), "--host", "no-such-host.invalid"]) == 1
    assert "--host no-such-host.invalid: not an address" in capsys.readouterr().err
    assert main(["serve", str(missing), "--port", "70000"]) == 1
    assert "1 to 65535" in capsys.readouterr().err
    # a free port: the check passes and the (missing) index is what fails
    assert main(["serve", str(missing), "--port", str(suggested)]) == 1
    err = capsys.readouterr().err
    assert str(missing) in err and "in use" not in err
