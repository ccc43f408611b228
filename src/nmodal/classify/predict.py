"""Label posts with a saved classifier: from a feature store, or from raw text/media files.

The classifier records which model it was trained on (a fingerprint of the weights), which
modalities it reads and whether it fuses them; predictions use the same embedding.

Example:
    >>> predict_store("runs/stance/classifiers/rf", "runs/m1", "data/store", ["p1", "p2"])
    ... # doctest: +SKIP
      post_id modality label  p(pro-russian)  p(pro-ukrainian)
    0      p1     text    pro-ukrainian   0.12   0.88
    >>> predict_raw("runs/stance/classifiers/rf", "runs/m1", text="...")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nmodal.classify.persist import load_classifier, read_classifier_info
from nmodal.classify.rows import EmbeddingRows, embedding_rows
from nmodal.encoders import from_provenance
from nmodal.errors import InputError, MediaError
from nmodal.features import StoreReader
from nmodal.features.decode import decode_raw, recorded_decode_settings, spec_for
from nmodal.model import NModalModel, fingerprint_matches, model_fingerprint


def _load(classifier_dir: str | Path, model_dir: str | Path) -> tuple[Any, dict[str, Any], Any]:
    info = read_classifier_info(classifier_dir)
    meta = info.get("metadata", {})
    expected = meta.get("model_fingerprint")
    if expected is not None and not fingerprint_matches(model_dir, expected):
        raise InputError(
            f"{classifier_dir}: trained on embeddings of model {expected}, but {model_dir} "
            f"is model {model_fingerprint(model_dir)}; use the model it was trained with"
        )
    return load_classifier(classifier_dir), meta, NModalModel.load(model_dir)


def label_table(clf: Any, rows: EmbeddingRows) -> pd.DataFrame:
    """One line per row: post id, modality, predicted label and a probability per class."""
    proba = clf.predict_proba(rows.X) if len(rows) else np.zeros((0, len(clf.classes_)))
    classes = np.asarray(clf.classes_)
    table = pd.DataFrame(
        {
            "post_id": rows.post_ids,
            "modality": rows.modality,
            "label": classes[proba.argmax(axis=1)] if len(rows) else np.array([], dtype=str),
        }
    )
    for j, c in enumerate(classes):
        table[f"p({c})"] = proba[:, j]
    return table


def predict_store(
    classifier_dir: str | Path,
    model_dir: str | Path,
    store_dir: str | Path,
    post_ids: Sequence[str] | None = None,
    verify: bool | None = None,
) -> pd.DataFrame:
    """Label the store's posts (all, or ``post_ids``) as the classifier was trained: one
    line per artifact, or one per post for a fused classifier. Only those posts are read,
    their features a chunk at a time; ``verify``: check the shards' sha256."""

    clf, meta, model = _load(classifier_dir, model_dir)
    reader = StoreReader(store_dir, verify=verify)
    rows_of = None
    if post_ids is not None:
        wanted = np.asarray(list(post_ids), dtype=str)
        missing = wanted[~np.isin(wanted, reader.post_ids)]
        if missing.size:
            raise InputError(
                f"{store_dir}: {missing.size} post(s) not in the store, e.g. {missing[0]}"
            )
        order = {p: i for i, p in enumerate(reader.post_ids.tolist())}
        rows_of = np.array([order[p] for p in wanted.tolist()], dtype=np.int64)
    # a lazy view: only the labelled posts' shards are read, their features a chunk at a time
    fs = reader.view(None, rows_of)
    mods = meta.get("modalities") or [m for m in model.modalities if m in fs.modalities]
    rows = embedding_rows(model, fs, mods, meta.get("fusion"))
    return label_table(clf, rows)


def encode_raw(
    model: Any, artifacts: dict[str, Any], modalities: Sequence[str], post_id: str = "input"
) -> dict[str, np.ndarray]:
    """Encoder features of one post's raw artifacts (``text``: a string; ``image``,
    ``video``, ``audio``: file paths), decoded exactly as extraction decodes a post
    (:func:`nmodal.features.decode.decode_post` with the decode settings the store recorded,
    extraction's defaults for older stores; a video also yields the held-out image frame and
    its audio track) and encoded by the encoders recorded in the model's config, for
    ``modalities`` only."""

    encoders = {}
    for m in modalities:
        prov = model.config.encoders.get(m) or {}
        if not prov.get("name"):
            raise InputError(f"the model does not record which {m} encoder made its features")
        encoders[m] = from_provenance(prov)
    recorded: dict[str, Any] = {}
    for m in modalities:
        recorded.update(recorded_decode_settings(model.config.encoders.get(m, {})))
    decoded = decode_raw(artifacts, spec_for(encoders, recorded), post_id)
    for err in decoded.errors:
        if artifacts.get(err["modality"]) is not None or not decoded.items:
            raise MediaError(str(err["path"]), str(err["reason"]), str(err["stage"]))
    if not decoded.items:
        raise InputError(f"nothing to classify: no {'/'.join(modalities)} artifact in the input")
    return {
        m: np.asarray(encoders[m].encode([item]), dtype=np.float32)
        for m, item in decoded.items.items()
    }


def predict_raw(
    classifier_dir: str | Path,
    model_dir: str | Path,
    post_id: str = "input",
    **artifacts: str | Path | None,
) -> pd.DataFrame:
    """Label one new post given as raw artifacts (``text="..."``, ``image=path``,
    ``video=path``, ``audio=path``): one line per artifact the classifier reads (a video
    also gives the image and audio artifacts, as in extraction), or one fused line."""
    given = {m: v for m, v in artifacts.items() if v is not None}
    if not given:
        raise InputError("give at least one artifact (text, image, video or audio)")
    clf, meta, model = _load(classifier_dir, model_dir)
    allowed = [m for m in (meta.get("modalities") or model.modalities) if m in model.modalities]
    unusable = [m for m in given if m not in allowed and m != "video"]
    if unusable or ("video" in given and not {"video", "image", "audio"} & set(allowed)):
        raise InputError(
            f"this classifier reads {', '.join(allowed)}, not {(unusable or ['video'])[0]}"
        )
    embedded = model.embed(encode_raw(model, given, allowed, post_id))
    mods = [m for m in allowed if m in embedded]
    if meta.get("fusion") == "mean":
        X = np.mean([embedded[m][0] for m in mods], axis=0, keepdims=True)
        rows = EmbeddingRows(X=X, post_ids=np.array([post_id]), modality=np.array(["fused"]))
    else:
        X = np.concatenate([embedded[m] for m in mods])
        rows = EmbeddingRows(X=X, post_ids=np.full(len(mods), post_id), modality=np.array(mods))
    return label_table(clf, rows)
