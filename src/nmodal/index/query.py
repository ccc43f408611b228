"""Turning a raw query (text, or an image/video/audio file) into a vector of the shared space.

The query goes through the same frozen encoder the index's features were extracted with
(rebuilt from the provenance recorded in the index manifest) and then the model's
projection head. The encoder source is injectable: ``encoder_source(modality, provenance)``
returns any object with ``encode(batch) -> (n, dim)``; the default is the encoder registry
(:func:`nmodal.encoders.from_provenance`).

Example:
    >>> qe = QueryEncoder.for_index(index)  # doctest: +SKIP
    >>> qe.encode("text", "tanks crossing the bridge").shape  # doctest: +SKIP
    (1, 256)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from nmodal.encoders import from_provenance
from nmodal.errors import InputError, MediaError
from nmodal.features.decode import decode_raw, recorded_decode_settings, spec_for
from nmodal.index import layout
from nmodal.model import NModalModel

QUERY_KINDS = ("text", "image", "video", "audio")


class SupportsEncode(Protocol):
    def encode(self, batch: Any) -> np.ndarray: ...


EncoderSource = Callable[[str, Mapping[str, Any]], SupportsEncode]


class EncoderUnavailableError(InputError):
    """The frozen encoder needed to encode a query cannot be built here."""


def registry_encoder_source(modality: str, provenance: Mapping[str, Any]) -> SupportsEncode:
    """Rebuild the encoder recorded in ``provenance`` with :func:`nmodal.encoders.from_provenance`."""
    if not provenance or not provenance.get("name"):
        raise EncoderUnavailableError(
            f"the index records no encoder for modality {modality!r}; cannot encode such queries"
        )
    try:
        return from_provenance(provenance)
    except InputError as exc:  # e.g. an encoder name this installation does not know
        raise EncoderUnavailableError(f"cannot build the {modality} encoder: {exc}") from exc
    except ImportError as exc:
        raise EncoderUnavailableError(
            f"encoder {provenance.get('name')!r} for {modality} is not installed here ({exc})"
        ) from exc


def load_query_input(
    kind: str, payload: str | Path, encoder: Any = None, decode: Mapping[str, Any] | None = None
) -> Any:
    """The raw artifact for the encoder: text as is; a media file decoded exactly as feature
    extraction decodes a post's file (:func:`nmodal.features.decode.decode_post`: same frame
    sampling, size limits, audio length, and the encoder's input size). ``decode`` holds the
    decode settings the store recorded (frames, seed, audio length, size limit).

    Broken or unsupported files raise :class:`nmodal.errors.MediaError`.
    """
    if kind not in QUERY_KINDS:
        raise InputError(f"unknown query kind {kind!r}; choose one of {QUERY_KINDS}")
    if kind == "text":
        text = str(payload).strip()
        if not text:
            raise InputError("empty text query")
        return text
    path = Path(payload)
    if not path.is_file():
        raise InputError(f"{path}: {'a folder, not a file' if path.is_dir() else 'no such file'}")

    spec = spec_for({kind: encoder}, decode)
    decoded = decode_raw({kind: str(path)}, spec, post_id="query")
    if kind not in decoded.items:
        error = (
            decoded.errors[0] if decoded.errors else {"reason": "nothing to decode", "stage": kind}
        )
        raise MediaError(str(path), str(error["reason"]), str(error.get("stage", kind)))
    return decoded.items[kind]


def encode_query(
    kind: str, payload: str | Path, encoders: Mapping[str, SupportsEncode], model: Any
) -> np.ndarray:
    """Encode one query artifact of modality ``kind`` into an L2-normalised ``(1, p)`` vector."""
    if kind not in model.modalities:
        raise InputError(
            f"this index's model has no {kind} modality (it has {', '.join(model.modalities)})"
        )

    decode = recorded_decode_settings(model.config.encoders.get(kind, {}))
    raw = load_query_input(kind, payload, encoders[kind], decode=decode)
    features = np.asarray(encoders[kind].encode([raw]), dtype=np.float32)
    if features.ndim != 2 or features.shape[0] != 1:
        raise InputError(f"{kind} encoder returned shape {features.shape}, expected (1, d)")
    out: np.ndarray = model.embed({kind: features})[kind]
    return out


class QueryEncoder:
    """Encodes queries for one index: loads the model (fingerprint-checked) and encoders lazily."""

    def __init__(
        self,
        model_dir: str | Path,
        provenance: Mapping[str, Mapping[str, Any]],
        encoder_source: EncoderSource | None = None,
        fingerprint: str | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.provenance = {m: dict(p) for m, p in provenance.items()}
        self.encoder_source: EncoderSource = encoder_source or registry_encoder_source
        self.fingerprint = fingerprint
        self._model: Any = None
        self._encoders: dict[str, SupportsEncode] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_index(
        cls,
        manifest: Mapping[str, Any],
        model_dir: str | Path | None = None,
        encoder_source: EncoderSource | None = None,
    ) -> QueryEncoder:
        """The query encoder of an index manifest; ``model_dir`` overrides the recorded path."""
        path = model_dir if model_dir is not None else manifest["model"]["path"]
        provenance = {m: info.get("encoder") or {} for m, info in manifest["modalities"].items()}
        return cls(path, provenance, encoder_source, manifest["model"]["fingerprint"])

    def model(self) -> Any:
        with self._lock:
            if self._model is None:
                if self.fingerprint is not None:
                    actual = layout.model_fingerprint(self.model_dir)
                    if actual != self.fingerprint:
                        raise InputError(
                            f"{self.model_dir}: model fingerprint {actual} differs from the index's "
                            f"{self.fingerprint}; use the model the index was built with"
                        )

                self._model = NModalModel.load(self.model_dir)
            return self._model

    def encoder(self, modality: str) -> SupportsEncode:
        with self._lock:
            if modality not in self._encoders:
                self._encoders[modality] = self.encoder_source(
                    modality, self.provenance.get(modality, {})
                )
            return self._encoders[modality]

    def encode(self, kind: str, payload: str | Path) -> np.ndarray:
        """``(1, p)`` L2-normalised query vector for a text or a media file path."""
        model = self.model()
        if kind not in model.modalities or kind not in self.provenance:
            raise InputError(
                f"this index has no {kind} modality (it has {', '.join(sorted(self.provenance))})"
            )
        return encode_query(kind, payload, {kind: self.encoder(kind)}, model)
