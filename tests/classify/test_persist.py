"""Saved classifiers come back identical, from safetensors + JSON (+ vetted skops)."""

from __future__ import annotations

import json
import operator

import numpy as np
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from nmodal.classify import (
    CLASSIFIERS,
    load_classifier,
    make_classifier,
    make_pipeline,
    read_classifier_info,
    save_classifier,
)
from nmodal.classify.sampling import FoldSMOTE
from nmodal.errors import InputError, OutputExistsError

from .toydata import FAST_PARAMS, blobs


@pytest.mark.parametrize("num_classes", [2, 3])
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_round_trip_gives_identical_probabilities(tmp_path, name, num_classes):
    X, y = blobs(25, num_classes, spread=2.0, seed=num_classes)
    clf = make_classifier(name, seed=0, **FAST_PARAMS.get(name, {})).fit(X, y)
    save_classifier(clf, tmp_path / "clf", metadata={"label": "stance"})
    loaded = load_classifier(tmp_path / "clf")
    assert type(loaded) is type(clf)
    assert np.array_equal(loaded.classes_, clf.classes_)
    assert np.array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    assert np.array_equal(loaded.predict(X), clf.predict(X))
    info = read_classifier_info(tmp_path / "clf")
    assert info["kind"] == name and info["metadata"] == {"label": "stance"}
    # nothing but JSON, safetensors and (for rf/svm) skops: no pickle files
    suffixes = {p.suffix for p in (tmp_path / "clf").iterdir()}
    assert suffixes <= {".json", ".safetensors", ".skops"}


def test_integer_labels_keep_their_type(tmp_path):
    X, y = blobs(20, 2)
    y_int = (y == "c1").astype(np.int64)
    clf = make_classifier("logreg").fit(X, y_int)
    save_classifier(clf, tmp_path / "c")
    loaded = load_classifier(tmp_path / "c")
    assert loaded.classes_.dtype.kind == "i"
    assert np.array_equal(loaded.predict(X), clf.predict(X))


def test_pipeline_saves_its_classifier_without_the_sampler(tmp_path):
    X, y = blobs(20, 2)
    pipe = make_pipeline("nb", sampler=FoldSMOTE(random_state=0)).fit(X, y)
    save_classifier(pipe, tmp_path / "p")
    loaded = load_classifier(tmp_path / "p")
    assert np.array_equal(loaded.predict_proba(X), pipe.predict_proba(X))


def test_refuses_untrusted_skops_content(tmp_path):
    X, y = blobs(20, 2)
    save_classifier(make_classifier("rf", n_estimators=3).fit(X, y), tmp_path / "rf")
    # swap in a file whose objects are not on the allow-list
    sio.dump(FunctionTransformer(operator.neg), tmp_path / "rf" / "estimator.skops")
    # the recorded hash catches the swap first; without it the type allow-list does
    with pytest.raises(InputError, match="SHA-256 does not match"):
        load_classifier(tmp_path / "rf")
    with pytest.raises(InputError, match="refusing to load unexpected types"):
        load_classifier(tmp_path / "rf", verify=False)
    # trusted types that are not a forest are refused too
    sio.dump(FunctionTransformer(np.log1p), tmp_path / "rf" / "estimator.skops")
    with pytest.raises(InputError, match="not a RandomForestClassifier"):
        load_classifier(tmp_path / "rf", verify=False)


def test_clear_errors(tmp_path):
    X, y = blobs(20, 2)
    clf = make_classifier("nb").fit(X, y)
    save_classifier(clf, tmp_path / "nb")
    with pytest.raises(OutputExistsError):
        save_classifier(clf, tmp_path / "nb")
    save_classifier(clf, tmp_path / "nb", overwrite=True)
    with pytest.raises(InputError, match="cannot save a FunctionTransformer"):
        save_classifier(FunctionTransformer(), tmp_path / "x")
    with pytest.raises(InputError, match="unfitted"):
        save_classifier(make_classifier("nb"), tmp_path / "y")
    with pytest.raises(InputError, match="not a saved classifier"):
        load_classifier(tmp_path)
    info = json.loads((tmp_path / "nb" / "classifier.json").read_text())
    info["version"] = 99
    (tmp_path / "nb" / "classifier.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="version 99"):
        load_classifier(tmp_path / "nb")


def test_version_1_folders_still_load(tmp_path):
    """Folders written before skops held every scikit-learn estimator (fitted arrays in
    safetensors) load through the estimators' public fitted attributes and ``fit``."""
    import json

    from safetensors.numpy import save_file

    X, y = blobs(20, 2)
    for kind, arrays, fitted in [
        ("logreg", None, {}),
        ("knn", None, {}),
    ]:
        clf = make_classifier(kind).fit(X, y)
        folder = tmp_path / kind
        save_classifier(clf, folder)
        info = json.loads((folder / "classifier.json").read_text())
        if kind == "logreg":
            arrays = {"coef_": clf.coef_, "intercept_": clf.intercept_}
        else:
            arrays = {"fit_X": X, "fit_y": np.searchsorted(clf.classes_, y).astype(np.int64)}
        (folder / "estimator.skops").unlink()
        save_file(
            {k: np.ascontiguousarray(v) for k, v in arrays.items()},
            str(folder / "arrays.safetensors"),
        )
        info.update(version=1, fitted=fitted)
        info.pop("files")  # version-1 folders record no hashes: loading them needs --no-verify
        (folder / "classifier.json").write_text(json.dumps(info))
        loaded = load_classifier(folder, verify=False)
        assert np.allclose(loaded.predict_proba(X), clf.predict_proba(X))
