"""The training loop: projection heads + an N-modal loss on pre-extracted features.

Features are held in memory as tensors (in their stored dtype) and batches are taken by
indexing (no per-item ``Dataset``); or, from a :class:`~nmodal.features.StoreView` of a
store on disk, each batch's rows are read as it is drawn (the same batches in the same
order: identical results, memory that does not grow with the collection). Runs are seeded
and deterministic on the CPU. The last epoch is kept (``select="last"``);
``select="val_loss"`` / ``"val_recall"`` keep a copy of the best epoch on validation data
instead.

Start (``TrainConfig.init``): ``"auto"`` (the default) trains two candidates, a random
start (lr 1e-3, weight decay 1e-2) and heads started at the generalised-CCA solution of the
training posts (lr 1e-4, no weight decay; :data:`AUTO_STARTS`), and keeps the one with the
better validation retrieval (mean of R@1/5/10, the evaluation's scoring rule for the loss).
Without a validation set it holds out a (grouped, see ``train_model(groups=...)``) fifth of
the training posts to decide, then trains the chosen start again on all of them with the
same seed. With fewer than :data:`GCCA_MIN_POSTS` complete posts, or fewer than
:data:`AUTO_MIN_SCORE_POSTS` posts to score on, it takes the random start.
``"random"`` / ``"gcca"`` train that start only (lr 1e-3, no weight decay unless set).

Missing modalities (``TrainConfig.missing``): ``"mask"`` (the default) trains on every post
with at least two of the modalities and passes the presence masks to the loss, which then
uses only the pairs/triples/tuples that exist (the zero rows of absent artifacts go through
the heads but never reach the loss; the heads treat rows independently, so they cannot
influence the present ones either); ``"drop"`` trains on the posts having every modality
only. When every training post is complete (the paper's filtered data) no masks are made
and both train the same model, bit for bit.

Under ``torchrun`` (an initialised process group, see :mod:`nmodal.train.distributed`)
each process embeds a shard of every batch and the loss is computed on the gathered
global batch.

Example:
    >>> fs = make_synthetic(2000, dim=64)
    >>> result = train_model(fs.subset(range(1800)), TrainConfig(epochs=5),
    ...                      val=fs.subset(range(1800, 2000)), progress=False)
    >>> result.model.modalities
    ['text', 'image', 'video']
"""

from __future__ import annotations

import copy
import functools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from nmodal.errors import InputError
from nmodal.features.featureset import FeatureSet
from nmodal.features.reader import StoreView
from nmodal.losses import build_loss, with_modalities
from nmodal.model import HeadConfig, ModelConfig, NModalModel
from nmodal.model.heads import ProjectionHead
from nmodal.retrieval import matched_scoring, post_retrieval_recall
from nmodal.train.closed_form import init_heads_from_gcca
from nmodal.train.distributed import DistContext
from nmodal.train.input_stats import set_input_statistics
from nmodal.train.splits import requirement, split_posts, trainable_mask

LR_SCHEDULES = ("constant", "cosine")
MISSING = ("drop", "mask")
SELECT = ("val_loss", "val_recall", "last")
INITS = ("auto", "random", "gcca")
#: learning rate and weight decay of ``init="random"`` / ``"gcca"`` when left unset (None)
DEFAULT_LR, DEFAULT_WEIGHT_DECAY = 1e-3, 0.0
#: the candidates of ``init="auto"`` and the learning rate and weight decay each trains
#: with when the config leaves them unset: measured on the demo and a synthetic set (README)
AUTO_STARTS: dict[str, dict[str, float]] = {
    "random": {"lr": 1e-3, "weight_decay": 1e-2},
    "gcca": {"lr": 1e-4, "weight_decay": 0.0},
}
AUTO_VAL_FRACTION = 0.2  # training posts held out to choose the start without a validation set
#: fewer posts to score the auto candidates on: the random start, without a contest (on 6
#: posts one rank of one query separates the starts; the 60-post test demo chose by that)
AUTO_MIN_SCORE_POSTS = 20
GCCA_INIT_POSTS = 20_000  # complete training posts sampled for the GCCA initialisation
GCCA_MIN_POSTS = 10  # fewer complete posts: heads keep torch's random initialisation
VAL_RECALL_POSTS = 1000  # validation posts used for the val_recall criterion
SMALL_BATCH = 512  # batches under which one CPU thread beats passive ones (see default_threads)


@dataclass
class TrainConfig:
    """Training hyper-parameters. Defaults follow the paper (Adam, batch 128, dim 256)."""

    modalities: list[str] | None = None  # default: every modality of the feature set
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "clip"})
    head: HeadConfig = field(default_factory=HeadConfig)
    epochs: int = 50
    batch_size: int = 128
    # None: the start's own (DEFAULT_LR / DEFAULT_WEIGHT_DECAY, or AUTO_STARTS' per candidate)
    lr: float | None = None
    weight_decay: float | None = None
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    grad_clip: float | None = None
    patience: int | None = None  # epochs without validation improvement before stopping
    seed: int = 0
    device: str = "auto"  # "auto" | "cpu" | "cuda" | "cuda:1" ...
    # mixed precision of the heads: "auto" = bf16 autocast on CUDA (fp16 without bf16) and
    # on CPUs with native bf16 arithmetic (AVX512-BF16 or AMX), else off | "off" | "bf16"
    # | "fp16". The loss is always computed in float32.
    amp: str = "auto"
    # torch intra-op threads on the CPU while training (restored afterwards); None: see
    # :func:`default_threads`
    threads: int | None = None
    # "mask" (default): every post with >= 2 of the modalities, presence masks in the loss |
    # "drop": complete posts only. Identical on a store of complete posts (no masks are made)
    missing: str = "mask"
    # which epoch's weights to keep: the last (default: a fixed schedule; on the demo and
    # synthetic sets validation loss picked early epochs while retrieval still improved),
    # highest validation retrieval recall (mean of R@1/5/10 on up to 1000 validation
    # posts), or lowest validation loss
    select: str = "last"
    # head initialisation: "auto" (default: the better of a random and a GCCA start on
    # validation retrieval, see the module docstring), "random" (torch's) or "gcca" (the
    # first layers start at the regularised GCCA solution of the training posts, see
    # nmodal.train.closed_form; better on the demo, worse on a synthetic set, see the README)
    init: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.head, dict):
            self.head = HeadConfig(**self.head)
        if self.epochs < 1:
            raise InputError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise InputError(
                f"batch_size must be >= 2 for a contrastive loss, got {self.batch_size}"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.amp not in ("auto", "off", "bf16", "fp16"):
            raise InputError(f"amp must be auto, off, bf16 or fp16, got {self.amp!r}")
        if self.missing not in MISSING:
            raise InputError(f"missing must be 'drop' or 'mask', got {self.missing!r}")
        if self.init not in INITS:
            raise InputError(f"init must be one of {INITS}, got {self.init!r}")
        if self.select not in SELECT:
            raise InputError(f"select must be one of {SELECT}, got {self.select!r}")
        lr = DEFAULT_LR if self.lr is None else self.lr
        weight_decay = DEFAULT_WEIGHT_DECAY if self.weight_decay is None else self.weight_decay
        if not lr > 0 or not weight_decay >= 0 or self.warmup_steps < 0:
            raise InputError(
                f"lr must be > 0, weight_decay and warmup_steps >= 0; got lr={self.lr}, "
                f"weight_decay={self.weight_decay}, warmup_steps={self.warmup_steps}"
            )
        if self.patience is not None and self.patience < 1:
            raise InputError(f"patience must be >= 1 epoch, got {self.patience}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise InputError(f"grad_clip must be > 0, got {self.grad_clip}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"threads must be >= 1, got {self.threads}")

    def start(self, init: str) -> TrainConfig:
        """This config training the start ``init`` (``"random"`` or ``"gcca"``), with the
        learning rate and weight decay that start uses when they are unset."""
        preset = AUTO_STARTS[init] if self.init == "auto" else {
            "lr": DEFAULT_LR, "weight_decay": DEFAULT_WEIGHT_DECAY,
        }  # fmt: skip
        return replace(
            self,
            init=init,
            lr=preset["lr"] if self.lr is None else self.lr,
            weight_decay=preset["weight_decay"] if self.weight_decay is None else self.weight_decay,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["head"] = self.head.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        return cls(**dict(d))


@dataclass
class TrainResult:
    model: NModalModel
    history: list[dict[str, float]]
    best_epoch: int
    best_val_loss: float | None
    seconds: float
    samples_per_second: float
    #: ``init="auto"``: which start was kept and why (see :func:`train_model`), else None
    init_choice: dict[str, Any] | None = None


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (x86 AVX512-BF16 or AMX-BF16 on Linux):
    there bf16 matrix products run ~4x faster than float32 ones; elsewhere they are
    emulated and no faster."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``TrainConfig.amp`` on ``device`` (None: float32)."""
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    if amp == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


class _Batches:
    """The training posts' features, batched by indexing.

    From a :class:`FeatureSet` the features are held as tensors (on ``device``) in their
    stored dtype, or in ``dtype`` when that is narrower (the autocast dtype when training
    in mixed precision: autocast would round every batch to it anyway); from a
    :class:`StoreView` (data on disk) each batch's rows are read when it is taken, so
    memory holds a batch, not the collection. Either way a batch reaches the heads as
    ``dtype`` by the same conversions, so both give identical results.

    ``missing="drop"``: the posts having every modality; ``"mask"``: the posts having at
    least two, with their ``(M, N)`` presence masks (always in memory: a byte a post).
    """

    def __init__(
        self,
        fs: FeatureSet | StoreView,
        modalities: list[str],
        device: torch.device,
        missing: str = "drop",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        present = np.stack([fs.present[m] for m in modalities])
        rows = trainable_mask(fs.present, modalities, missing)
        self.num_posts = int(rows.sum())
        self.dtype = dtype
        self.modalities = modalities
        self.source: StoreView | None = None
        self.features: dict[str, torch.Tensor] = {}
        if isinstance(fs, FeatureSet):
            for m in modalities:
                x = fs.features[m] if rows.all() else fs.features[m][rows]
                t = torch.from_numpy(np.ascontiguousarray(x))
                if t.element_size() > dtype.itemsize:
                    t = t.to(torch.float32).to(dtype)
                self.features[m] = t.to(device)
        else:
            self.source = fs.select(modalities).subset(np.flatnonzero(rows))
        self.present = (
            torch.as_tensor(present[:, rows]).to(device)
            if missing == "mask" and not present[:, rows].all()
            else None
        )
        self.device = device

    def batches(
        self, batch_size: int, generator: torch.Generator | None, drop_last: bool
    ) -> list[torch.Tensor]:
        n = self.num_posts
        order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
        stop = n - n % batch_size if drop_last else n
        idx = [order[i : i + batch_size] for i in range(0, stop, batch_size)]
        return [i.to(self.device) for i in idx if len(i) >= 2]

    def _as_batch(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the batch dtype, by float32 first (exact from float16 and float32)."""
        return x if x.dtype == self.dtype else x.to(torch.float32).to(self.dtype)

    def take(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.source is None:
            return {m: self._as_batch(x.index_select(0, index)) for m, x in self.features.items()}
        rows = self.source.take(index.cpu().numpy())
        return {
            m: self._as_batch(torch.from_numpy(rows[m]).to(self.device)) for m in self.modalities
        }

    def masks(self, index: torch.Tensor) -> list[torch.Tensor] | None:
        """Presence masks of the posts ``index`` (None: every artifact present)."""
        if self.present is None:
            return None
        return list(self.present.index_select(1, index).unbind(0))


def _lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        if config.warmup_steps and step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.lr_schedule == "cosine":
            span = max(1, total_steps - config.warmup_steps)
            progress = min(1.0, (step - config.warmup_steps) / span)
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return factor


def _float32_loss(
    loss: nn.Module, embeddings: list[torch.Tensor], masks: list[torch.Tensor] | None
) -> torch.Tensor:
    """The loss in float32 even under autocast: logits of normalised embeddings times a
    logit scale up to 100 need more than bf16's 8 bits of mantissa."""
    with torch.autocast(embeddings[0].device.type, enabled=False):
        embeddings = [z.float() for z in embeddings]
        result: torch.Tensor = loss(embeddings) if masks is None else loss(embeddings, masks=masks)
    return result


def batch_loss(
    model: NModalModel,
    data: _Batches,
    index: torch.Tensor,
    forward: nn.Module | None = None,
    distributed: DistContext | None = None,
) -> torch.Tensor:
    """The loss of the global batch ``index``. Distributed: this rank embeds its shard
    (through ``forward``, the DDP wrapper) and the loss sees all shards gathered."""
    assert model.loss is not None
    masks = data.masks(index)
    if distributed is None:
        out = model(data.take(index))
        return _float32_loss(model.loss, [out[m] for m in model.modalities], masks)
    out = (forward or model)(data.take(distributed.shard(index)))
    embeddings = [distributed.gather(out[m].float(), len(index)) for m in model.modalities]
    return _float32_loss(model.loss, embeddings, masks)


@torch.no_grad()
def validation_recall(
    model: NModalModel, val: FeatureSet | StoreView, scoring: str = "sum"
) -> float:
    """Mean of R@1, R@5 and R@10 of post retrieval on (up to 1000 of) the validation posts,
    posts scored by ``scoring`` (see :mod:`nmodal.retrieval`)."""
    mods = model.modalities
    rows = np.flatnonzero(_scorable(val, mods))
    sub = val.subset(rows[:VAL_RECALL_POSTS])
    if isinstance(sub, StoreView):
        sub = sub.load()
    emb = model.embed({m: sub.features[m] for m in mods})
    recall = post_retrieval_recall(
        [emb[m] for m in mods],
        ks=(1, 5, 10),
        present=[sub.present[m] for m in mods],
        scoring=scoring,
    )
    return float(np.mean(list(recall.values())))


@torch.no_grad()
def evaluate_loss(model: NModalModel, data: _Batches, batch_size: int) -> float:
    """Mean loss over fixed-order batches in eval mode (weighted by batch size)."""
    assert model.loss is not None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for index in data.batches(batch_size, generator=None, drop_last=False):
        total += float(batch_loss(model, data, index)) * len(index)
        count += len(index)
    model.train(was_training)
    return total / max(count, 1)


def default_threads(config: TrainConfig) -> int | None:
    """Intra-op threads for training on the CPU when ``config.threads`` is None.

    With passive OpenMP waits (``OMP_WAIT_POLICY=PASSIVE``, which the ``nmodal`` command
    sets so that busy machines stay usable) every parallel op first wakes the sleeping
    threads. On 2 cores, samples/s with 1 vs 2 threads (``amp="off"``): batch 128 x 768-d
    19.9k vs 11.3k, 256 x 2560-d 12.8k vs 10.9k, but 512 x 768-d 17.8k vs 20.8k and
    1024 x 2560-d 6.7k vs 9.6k (the B x B loss grows with the batch and uses threads well).
    So: one thread for batches under ``SMALL_BATCH``; torch's default (None) for larger
    ones, or when threads spin between ops.
    """
    passive = os.environ.get("OMP_WAIT_POLICY", "").strip().upper() == "PASSIVE"
    return 1 if passive and config.batch_size < SMALL_BATCH else None


def train_model(
    train: FeatureSet | StoreView,
    config: TrainConfig | None = None,
    val: FeatureSet | StoreView | None = None,
    progress: bool = True,
    distributed: DistContext | None = None,
    groups: np.ndarray | None = None,
) -> TrainResult:
    """Train projection heads on ``train``; keep the last epoch (or the best on ``val``,
    ``config.select``).

    ``train`` and ``val`` are feature sets in memory or :class:`StoreView` s of a store on
    disk (batches read as they are drawn; same results for the same data and seed).

    ``init="auto"`` (the default) chooses between a random and a GCCA start by validation
    retrieval on ``val``, or, without ``val``, on a held-out fifth of ``train``: ``groups``
    (one id per post of ``train``, e.g. concepts or accounts) keeps whole groups on one
    side of that inner split. The decision is in ``TrainResult.init_choice`` and the model's
    ``config.extra["train"]`` (``init_chosen``, ``init_selection``).

    ``distributed``: the DDP context (default: detected from an initialised process group).
    On the CPU training uses ``config.threads`` intra-op threads (default:
    :func:`default_threads`) and restores torch's setting afterwards.
    """
    config = config or TrainConfig()
    threads = config.threads or default_threads(config)
    previous = torch.get_num_threads()
    if threads and resolve_device(config.device).type == "cpu":
        torch.set_num_threads(threads)
    try:
        if config.init == "auto":
            return _train_auto(train, config, val, progress, distributed, groups)
        return _train(train, config.start(config.init), val, progress, distributed)
    finally:
        torch.set_num_threads(previous)


def _train_auto(
    train: FeatureSet | StoreView,
    config: TrainConfig,
    val: FeatureSet | StoreView | None,
    progress: bool,
    distributed: DistContext | None,
    groups: np.ndarray | None,
) -> TrainResult:
    """``init="auto"``: train both starts, keep the better on validation retrieval.

    With ``val``: both train on ``train`` (validated on ``val`` as configured) and the
    better one is returned. Without: both train on a seeded (grouped) 80 % of ``train``
    and are scored on the other 20 %; the chosen start then trains on all of ``train``
    with the same seed (the model ``init=<chosen>`` with its settings would give). The
    random start is taken without a contest when GCCA cannot be fitted (fewer than
    ``GCCA_MIN_POSTS`` complete posts) or there are fewer than ``AUTO_MIN_SCORE_POSTS``
    posts to score on.
    """
    distributed = distributed or DistContext.from_process_group()
    modalities = _training_modalities(train, config)
    scoring = matched_scoring(str(config.loss.get("name")))
    fit_on, score_on, inner = train, val, val is None
    if inner:
        split = _inner_split(train, modalities, config, groups)
        if split is not None:
            fit_on, score_on = train.subset(split[0]), train.subset(split[1])
    can_contest = (
        score_on is not None
        and int(fit_on.complete(modalities).sum()) >= GCCA_MIN_POSTS
        and int(_scorable(score_on, modalities).sum()) >= AUTO_MIN_SCORE_POSTS
    )
    if not can_contest:
        result = _train(train, config.start("random"), val, progress, distributed)
        return _record_choice(result, config, "random", {"on": "none: too few posts to compare"})
    assert score_on is not None
    results, scores, seconds = {}, {}, 0.0
    for init in AUTO_STARTS:
        result = _train(
            fit_on, config.start(init), None if inner else val, progress, distributed,
            desc=f"train ({init} start)",
        )  # fmt: skip
        score = validation_recall(result.model, score_on, scoring)
        if distributed is not None:  # one decision on every rank
            score = distributed.mean(score, distributed.device or torch.device("cpu"))
        results[init], scores[init] = result, score
        seconds += result.seconds
    chosen = max(AUTO_STARTS, key=lambda init: (scores[init], init == "random"))
    selection: dict[str, Any] = {
        "on": "inner split of the training posts" if inner else "validation set",
        "posts": {"fit": fit_on.num_posts, "score": score_on.num_posts},
        "grouped": inner and groups is not None,
        "metric": "mean of R@1, R@5, R@10",
        "scoring": scoring,
        "scores": scores,
        "candidates": {
            init: {"lr": c.lr, "weight_decay": c.weight_decay}
            for init in AUTO_STARTS
            for c in [config.start(init)]
        },
    }
    final = results[chosen]
    if inner:  # the chosen start on all the training posts, same seed
        final = _train(train, config.start(chosen), None, progress, distributed)
        seconds += final.seconds
    final.seconds = seconds  # every run this decision took
    return _record_choice(final, config, chosen, selection)


def _record_choice(
    result: TrainResult, config: TrainConfig, chosen: str, selection: dict[str, Any]
) -> TrainResult:
    """Present: the auto start's decision in the result and the model's config."""
    selection = {"chosen": chosen, **selection}
    result.model.config.extra["train"] = {
        **config.to_dict(),
        "init_chosen": chosen,
        "init_selection": selection,
    }
    result.init_choice = selection
    return result


def _scorable(fs: FeatureSet | StoreView, modalities: Sequence[str]) -> np.ndarray:
    """Mask of the posts with at least two of ``modalities``: the ones retrieval can score."""
    return trainable_mask(fs.present, modalities, "mask")


def _inner_split(
    train: FeatureSet | StoreView,
    modalities: list[str],
    config: TrainConfig,
    groups: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The seeded 80/20 split of ``train`` that chooses the auto start (whole groups on
    one side), or None when it cannot be made (a single group, too few posts)."""
    if groups is not None and np.asarray(groups).shape != (train.num_posts,):
        raise InputError(
            f"groups has shape {np.asarray(groups).shape}, expected ({train.num_posts},)"
        )
    try:
        split = split_posts(
            train.num_posts, test_size=0, val_fraction=AUTO_VAL_FRACTION, seed=config.seed,
            groups=groups,
        )  # fmt: skip
    except InputError:
        return None
    if len(split.val) < 2 or len(split.train) < 2:
        return None
    return split.train, split.val


def _train(
    train: FeatureSet | StoreView,
    config: TrainConfig,
    val: FeatureSet | StoreView | None,
    progress: bool,
    distributed: DistContext | None,
    desc: str = "train",
) -> TrainResult:
    """Read the batches, build the model, run the epochs, return the kept epoch's model.

    The order of the seeded steps (global seed, batches generator, head initialisation,
    per-rank seed, optimiser) is what makes runs reproducible: keep it.
    """
    distributed = distributed or DistContext.from_process_group()
    modalities = _training_modalities(train, config)
    device = resolve_device(config.device)
    if distributed is not None and distributed.device is not None and config.device == "auto":
        device = distributed.device
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    amp_dtype = autocast_dtype(config.amp, device)
    data, val_data = _training_batches(train, val, modalities, device, config, amp_dtype)
    model = _initial_model(train, config, modalities, amp_dtype).to(device)
    forward = _distribute(model, config, device, distributed)
    progress = progress and (distributed is None or distributed.is_main)
    batch_size = min(config.batch_size, data.num_posts)
    steps = max(1, data.num_posts // batch_size) * config.epochs
    optimiser = _Optimiser.create(model, config, steps, device, amp_dtype)

    history: list[dict[str, float]] = []
    best = _KeptEpoch()
    seen = 0
    start = time.perf_counter()
    bar = tqdm(range(1, config.epochs + 1), desc=desc, unit="epoch", disable=not progress)
    model.train()
    for epoch in bar:
        batches = data.batches(batch_size, generator, drop_last=True)
        epoch_loss = _train_epoch(model, forward, data, batches, optimiser, config, distributed)
        seen += sum(len(index) for index in batches)
        record = _epoch_record(model, epoch, epoch_loss, len(batches), optimiser)
        if val_data is not None:
            record.update(_validation(model, val_data, val, config, batch_size, distributed))
            best.update(model, epoch, record, config.select)
        history.append(record)
        bar.set_postfix(
            {k: f"{v:.4f}" for k, v in record.items() if k.startswith(("train_", "val_"))}
        )
        if config.patience is not None and val_data is not None and best.stale >= config.patience:
            break
    seconds = time.perf_counter() - start
    return best.result(model, history, seconds, seen)


def _training_modalities(train: FeatureSet | StoreView, config: TrainConfig) -> list[str]:
    """The modalities trained (``config.modalities`` or all of ``train``), checked."""
    modalities = list(config.modalities or train.modalities)
    if len(modalities) < 2:
        raise InputError(f"training needs at least two modalities, got {modalities}")
    unknown = [m for m in modalities if m not in train.modalities]
    if unknown:
        raise InputError(f"unknown modality {unknown[0]!r}; the feature set has {train.modalities}")
    return modalities


def _training_batches(
    train: FeatureSet | StoreView,
    val: FeatureSet | StoreView | None,
    modalities: list[str],
    device: torch.device,
    config: TrainConfig,
    amp_dtype: torch.dtype | None,
) -> tuple[_Batches, _Batches | None]:
    """Read: the training posts (at least two) and the validation posts (None: under two)."""
    data = _Batches(train, modalities, device, config.missing, amp_dtype or torch.float32)
    if data.num_posts < 2:
        raise InputError(
            f"only {data.num_posts} training posts have {requirement(config.missing)} of "
            f"{modalities}; need at least 2"
        )
    val_data = _Batches(val, modalities, device, config.missing) if val is not None else None
    if val_data is not None and val_data.num_posts < 2:
        val_data = None
    return data, val_data


def _initial_model(
    train: FeatureSet | StoreView,
    config: TrainConfig,
    modalities: list[str],
    amp_dtype: torch.dtype | None,
) -> NModalModel:
    """The untrained model (on the CPU): heads at random from the global seed, or at the
    GCCA solution of (a sample of) the complete training posts with ``init="gcca"``."""
    loss_spec = with_modalities(config.loss, modalities)
    model_config = ModelConfig(
        modalities=modalities,
        input_dims={m: train.dims()[m] for m in modalities},
        head=config.head,
        loss=loss_spec,
        encoders={m: train.encoders.get(m, {}) for m in modalities},
        data_fingerprint=train.select(modalities).fingerprint(),
        # the precision the heads were trained in ("auto" depends on the machine)
        extra={
            "train": config.to_dict(),
            "precision": str(amp_dtype or torch.float32).removeprefix("torch."),
        },
    )
    model = NModalModel(model_config, loss=build_loss(loss_spec))
    set_input_statistics(model, train, modalities, config.missing, config.seed)
    if config.init == "gcca":
        complete = np.flatnonzero(train.complete(modalities))
        if len(complete) > GCCA_INIT_POSTS:  # the closed form needs a sample, not all
            rng = np.random.default_rng(config.seed)
            complete = np.sort(rng.choice(complete, GCCA_INIT_POSTS, replace=False))
        if len(complete) >= GCCA_MIN_POSTS:  # fewer: torch's random initialisation
            heads = {m: cast(ProjectionHead, model.heads[m]) for m in modalities}
            sample = train.select(modalities).take(complete)  # a sample: read from disk too
            init_heads_from_gcca(heads, sample)
    return model


def _distribute(
    model: NModalModel, config: TrainConfig, device: torch.device, distributed: DistContext | None
) -> nn.Module:
    """The module batches go through: ``model``, or its DDP wrapper (then each rank draws
    its own dropout masks)."""
    if distributed is None:
        return model
    if config.batch_size < distributed.world_size:
        raise InputError(
            f"batch_size {config.batch_size} is smaller than the {distributed.world_size} "
            "processes: every process needs a shard of each batch"
        )
    forward = distributed.wrap(model, device)
    torch.manual_seed(config.seed + 7919 * distributed.rank)  # per-rank dropout draws
    return forward


@dataclass
class _Optimiser:
    """Adam, the learning-rate schedule and the fp16 gradient scaler, stepped together."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None

    @classmethod
    def create(
        cls,
        model: NModalModel,
        config: TrainConfig,
        total_steps: int,
        device: torch.device,
        amp_dtype: torch.dtype | None,
    ) -> _Optimiser:
        assert config.lr is not None and config.weight_decay is not None  # config.start(...)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, total_steps))
        scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
        return cls(optimizer, scheduler, scaler, amp_dtype)

    def step(self, model: NModalModel, loss: torch.Tensor, grad_clip: float | None) -> None:
        """One optimisation step on ``loss`` (gradients clipped to ``grad_clip`` if set)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()


def _train_epoch(
    model: NModalModel,
    forward: nn.Module,
    data: _Batches,
    batches: list[torch.Tensor],
    optimiser: _Optimiser,
    config: TrainConfig,
    distributed: DistContext | None,
) -> torch.Tensor:
    """Compute: one pass over ``batches``; returns the sum of their losses (on the device)."""
    device, amp_dtype = data.device, optimiser.amp_dtype
    epoch_loss = torch.zeros((), device=device)
    for index in batches:
        with torch.autocast(
            device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None
        ):
            loss = batch_loss(model, data, index, forward, distributed)
        optimiser.step(model, loss, config.grad_clip)
        epoch_loss += loss.detach()
    return epoch_loss


def _epoch_record(
    model: NModalModel,
    epoch: int,
    epoch_loss: torch.Tensor,
    num_batches: int,
    optimiser: _Optimiser,
) -> dict[str, float]:
    """Present: the epoch's history entry (mean training loss, learning rate, temperature)."""
    record: dict[str, float] = {
        "epoch": epoch,
        "train_loss": float(epoch_loss) / max(num_batches, 1),
        "lr": float(optimiser.scheduler.get_last_lr()[0]),
    }
    temperature = getattr(model.loss, "temperature", None)
    if isinstance(temperature, float):
        record["temperature"] = temperature
    return record


def _validation(
    model: NModalModel,
    val_data: _Batches,
    val: FeatureSet | StoreView | None,
    config: TrainConfig,
    batch_size: int,
    distributed: DistContext | None,
) -> dict[str, float]:
    """Compute: the validation loss (averaged over ranks) and, for ``select="val_recall"``,
    the validation recall; the model is left in training mode."""
    figures = {"val_loss": evaluate_loss(model, val_data, batch_size)}
    if distributed is not None:  # identical decisions on every rank
        figures["val_loss"] = distributed.mean(figures["val_loss"], val_data.device)
    if config.select == "val_recall":
        assert val is not None
        scoring = matched_scoring(str(config.loss.get("name")))
        figures["val_recall"] = validation_recall(model, val, scoring)
        model.train()
    return figures


@dataclass
class _KeptEpoch:
    """Which epoch is kept (``TrainConfig.select``) and how long validation has not improved."""

    criterion: float = math.inf  # lower is better: the loss, or the recall's complement
    val_loss: float = math.inf
    epoch: int = 0
    stale: int = 0
    state: dict[str, torch.Tensor] | None = None

    def update(
        self, model: NModalModel, epoch: int, record: Mapping[str, float], select: str
    ) -> None:
        criterion = {"val_loss": record["val_loss"], "last": -float(epoch)}.get(
            select, 1.0 - record.get("val_recall", 0.0)
        )
        if criterion < self.criterion:
            self.criterion, self.val_loss, self.epoch, self.stale = (
                criterion, record["val_loss"], epoch, 0,
            )  # fmt: skip
            if select != "last":
                self.state = copy.deepcopy(model.state_dict())
        else:
            self.stale += 1

    def result(
        self, model: NModalModel, history: list[dict[str, float]], seconds: float, seen: int
    ) -> TrainResult:
        """Present: the kept epoch's model on the CPU in eval mode, with the history."""
        best_epoch = self.epoch
        if self.state is not None:
            model.load_state_dict(self.state)
        else:
            best_epoch = len(history)
        model.eval()
        return TrainResult(
            model=model.cpu(),
            history=history,
            best_epoch=best_epoch,
            best_val_loss=self.val_loss if math.isfinite(self.val_loss) else None,
            seconds=seconds,
            samples_per_second=seen / seconds if seconds > 0 else float("nan"),
        )
