"""``nmodal demo``: corpus -> ingest -> extract -> protocol runs -> classifiers -> report.

Every step writes its output under ``DIR`` and is skipped when that output exists, so an
interrupted demo resumes (``--resume``) where it stopped::

    DIR/demo.json             the settings (a resumed run must use the same ones)
    DIR/corpus/               clips + manifest.jsonl            (nmodal.demo.corpus)
    DIR/dataset/posts.parquet the ingested posts               (nmodal ingest manifest)
    DIR/features/             the offline encoders' features   (nmodal extract)
    DIR/runs/<run>.json       one protocol run (N trials)      (nmodal protocol)
    DIR/models/<model>/       trial 1's model, for the examples, map and classifiers
    DIR/showcase.json         2-D map and example retrievals
    DIR/classify/<task>.json  stance / provenance cross-validation
    DIR/classifiers/<task>/<clf>/  each classifier fitted on all posts (nmodal predict)
    DIR/index/                the quadCLIP model's search index  (nmodal serve DIR/index)
    DIR/results.json, DIR/report.html, DIR/report.md, DIR/figures/, DIR/thumbs/

The protocol is the paper's: N trials, each a fresh split and a fresh training run for a
fixed number of epochs (no validation-loss epoch picking, as in the paper); a
test population of 100 posts that share **no emoji concept** with the training posts
(split grouped by concept), every artifact of every test post queried against the other
modalities. triCLIP (text, image, video; CLIP loss), triTRIP (the published triplet
settings: soft margin, cyclic negatives, x0.001, summed) and quadCLIP (+ audio).

Example:
    >>> out = run_demo("demo-out", DemoConfig(posts=60, trials=1, epochs=2))  # doctest: +SKIP
    >>> out.results["retrieval"]["triCLIP"]["1"]                               # doctest: +SKIP
    {'mean': 0.31, 'std': 0.0, 'n': 1}
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nmodal.atomic import replacing_dir, write_text
from nmodal.demo.corpus import INFO, SIZE, generate_corpus
from nmodal.errors import InputError, OutputExistsError

DEFAULT_POSTS = 400
TEST_SIZE = 100
RECALL_KS = tuple(range(1, TEST_SIZE + 1))
HEADLINE_KS = ("1", "5", "10", "25")
TRI = ("text", "image", "video")
QUAD = ("text", "image", "video", "audio")
# the authors' published triplet settings (DESIGN.md): soft margin, Euclidean distance,
# the next post in the batch as the negative, summed and scaled by 0.001
TRIPLET_LOSS: dict[str, Any] = {
    "name": "triplet",
    "margin": None,
    "distance": "euclidean",
    "negatives": "cyclic",
    "alpha": 0.001,
    "reduction": "sum",
}
CLIP_LOSS: dict[str, Any] = {"name": "clip"}
FAMILIES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "triCLIP": (TRI, CLIP_LOSS),
    "triTRIP": (TRI, TRIPLET_LOSS),
    "quadCLIP": (QUAD, CLIP_LOSS),
}
# closed-form baselines fitted on the same training posts and scored by the same rule
# (nmodal.evaluation.baselines): shown beside the trained models, like a majority baseline
BASELINES: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "GCCA (closed form)": (TRI, {"name": "gcca"}),
    "ridge (closed form)": (TRI, {"name": "ridge"}),
}
BASELINE_KEYS = {"GCCA (closed form)": "gcca", "ridge (closed form)": "ridge"}
SWEEP_EPOCHS = (1, 10)
SWEEP_DIMS = (64, 128, 512, 768)
CLASSIFIERS = ("nb", "rf", "svm", "knn", "mlp")  # the paper's five
CLASSIFIER_PARAMS: dict[str, dict[str, Any]] = {"rf": {"n_estimators": 100, "n_jobs": 2}}
STATE_FILE = "demo.json"


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and switches of a demo run (defaults fit 10 minutes on a 2-core CPU)."""

    posts: int = DEFAULT_POSTS
    trials: int = 5
    epochs: int = 50
    test_size: int | None = None  # default: 100, or half the posts for tiny runs
    seed: int = 0
    workers: int = 2
    sweeps: bool = True  # the extra runs of Tables 2, 4 and 5 (epochs 1/10, projection dims)
    real_assets: bool = True
    progress: bool = True

    @property
    def population(self) -> int:
        """The test population of every trial."""
        return self.test_size if self.test_size is not None else min(TEST_SIZE, self.posts // 2)

    def check(self) -> None:
        if self.posts < 20:
            raise InputError(f"--posts must be at least 20, got {self.posts}")
        if not 2 <= self.population <= self.posts - 10:
            raise InputError(
                f"--test-size {self.population} must be between 2 and --posts - 10 "
                f"({self.posts - 10})"
            )
        if self.trials < 1 or self.epochs < 1:
            raise InputError("--trials and --epochs must be >= 1")

    def identity(self) -> dict[str, Any]:
        """The settings that decide the outputs (a resumed run must match them)."""
        d = asdict(self)
        for k in ("workers", "progress"):
            d.pop(k)
        d["test_size"] = self.population
        return d


@dataclass(frozen=True)
class RunSpec:
    family: str
    epochs: int
    dim: int
    main: bool

    @property
    def key(self) -> str:
        if self.family in BASELINE_KEYS:
            return f"baseline-{BASELINE_KEYS[self.family]}"
        return f"{self.family}-e{self.epochs}-d{self.dim}"

    @property
    def modalities(self) -> tuple[str, ...]:
        return {**FAMILIES, **BASELINES}[self.family][0]

    @property
    def loss(self) -> dict[str, Any]:
        return dict({**FAMILIES, **BASELINES}[self.family][1])


@dataclass
class DemoOutput:
    out_dir: Path
    results: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def plan_runs(cfg: DemoConfig) -> list[RunSpec]:
    """The protocol runs of a demo: the three models at ``cfg.epochs`` and 256-d, the
    closed-form baselines, plus (``sweeps``) each model at 1 and 10 epochs (Tables 2, 5) and
    triCLIP at other dims (Table 4)."""
    runs = [RunSpec(f, cfg.epochs, 256, True) for f in FAMILIES]
    runs += [RunSpec(b, 0, 256, True) for b in BASELINES]  # closed form: no epochs
    if cfg.sweeps:
        runs += [
            RunSpec(f, e, 256, False) for e in SWEEP_EPOCHS if e != cfg.epochs for f in FAMILIES
        ]
        runs += [RunSpec("triCLIP", cfg.epochs, d, False) for d in SWEEP_DIMS]
    return runs


def _write_json(path: Path, data: Any) -> None:
    write_text(path, json.dumps(data, indent=1, ensure_ascii=False, default=_json_default))


def _json_default(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x)}")


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _complete(path: Path) -> bool:
    """True when the JSON file ``path`` exists and says ``"complete": true``."""
    return path.is_file() and bool(_read_json(path).get("complete"))


class _Steps:
    """Runs named steps, skipping those that are done; keeps their timings.

    A step is done when ``output`` exists, or when ``done(output)`` says so (steps that
    write their output early and finish it later, and resume from where they stopped).
    """

    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.timings: dict[str, float | str] = {}

    def run(
        self,
        name: str,
        output: Path,
        fn: Callable[..., Any],
        *args: Any,
        done: Callable[[Path], bool] = Path.exists,
    ) -> None:
        if done(output):
            self.log(f"[demo] {name}: done already ({output})")
            self.timings[name] = "skipped (done)"
            return
        self.log(f"[demo] {name} ...")
        start = time.perf_counter()
        fn(*args)
        seconds = time.perf_counter() - start
        self.timings[name] = seconds
        self.log(f"[demo] {name}: {seconds:.1f} s -> {output}")


def _check_state(out: Path, cfg: DemoConfig, resume: bool) -> None:
    state = out / STATE_FILE
    if state.is_file():
        if not resume:
            raise OutputExistsError(
                f"{out}: holds a demo already; pass --resume to continue it, or choose another --out"
            )
        old = _read_json(state).get("settings", {})
        if old != cfg.identity():
            diff = {k: (old.get(k), v) for k, v in cfg.identity().items() if old.get(k) != v}
            raise InputError(
                f"{out}: the demo there used other settings (old, new): {diff}; "
                "use the same options or another --out"
            )
    elif out.exists() and any(out.iterdir()):
        raise OutputExistsError(f"{out}: exists and is not a demo folder; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(state, {"format": "nmodal-demo", "settings": cfg.identity()})


# ------------------------------------------------------------------------------ steps


def _ingest(corpus_manifest: Path, dataset: Path, progress: bool) -> None:
    from nmodal.sources import FilterConfig, ingest, read_posts_manifest  # lazy: --help start-up

    with replacing_dir(dataset) as tmp:
        result = ingest(
            read_posts_manifest(corpus_manifest),
            tmp,
            FilterConfig.preset("paper"),
            progress=progress,
        )
        if result.summary["kept"] < 2:
            raise InputError(f"{corpus_manifest}: the filter kept {result.summary['kept']} posts")


def _concept_groups(posts: Any, post_ids: np.ndarray) -> np.ndarray:
    table = posts.set_index("post_id")
    return table.loc[post_ids, "concept_id"].astype(int).to_numpy()


def _summ(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std()), "n": len(a)}


def slim_run(spec: RunSpec, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a :func:`run_protocol` result the report and ``results.json`` keep."""
    trials = raw["trials"]
    recall = raw["recall"]
    ks = sorted(int(k) for k in recall)
    by_query: dict[str, Any] = {}
    for m in trials[0]["report"]["by_query_modality"]:
        by_query[m] = {
            k: _summ([t["report"]["by_query_modality"][m][k] for t in trials]) for k in HEADLINE_KS
        }
    return {
        "name": spec.family,
        "family": spec.family,
        "key": spec.key,
        "main": spec.main,
        "modalities": list(spec.modalities),
        "loss": spec.loss,
        "epochs": spec.epochs,
        "dim": spec.dim,
        "batch_size": raw["config"]["batch_size"],
        "trials": raw["num_trials"],
        "test_size": raw["test_size"],
        "train_posts": round(float(np.mean([t["sizes"]["train"] for t in trials]))),
        "sizes": [t["sizes"] for t in trials],
        "recall": {k: recall[k] for k in HEADLINE_KS if k in recall},
        "curve": {
            "ks": ks,
            "mean": [recall[str(k)]["mean"] for k in ks],
            "std": [recall[str(k)]["std"] for k in ks],
        },
        "by_query_modality": by_query,
        "restricted": {
            name: {k: rec[k] for k in HEADLINE_KS if k in rec}
            for name, rec in raw.get("restricted", {}).items()
        },
        "mean_rank": _summ([t["report"]["mean_rank"] for t in trials]),
        "best_epoch": [t["best_epoch"] for t in trials],
        # init="auto": the start each trial kept (None: closed form)
        "starts": [(t.get("init_choice") or {}).get("chosen") for t in trials],
        "histories": [t["history"] for t in trials if t["history"]],  # none: closed form
        "train_seconds": raw["train_seconds"],
    }


def _train_config(spec: RunSpec, seed: int, progress: bool = False) -> Any:
    from nmodal.model import HeadConfig  # lazy: --help start-up
    from nmodal.train import TrainConfig  # lazy: --help start-up

    return TrainConfig(
        modalities=list(spec.modalities),
        loss=spec.loss,
        head=HeadConfig(projection_dim=spec.dim),
        epochs=max(spec.epochs, 1),  # baselines (0 epochs) ignore it
        batch_size=128,
        seed=seed,
        device="cpu",
    )


def _protocol_run(spec: RunSpec, fs: Any, groups: np.ndarray, cfg: DemoConfig, path: Path) -> None:
    from nmodal.evaluation import ProtocolConfig, run_protocol  # lazy: --help start-up

    protocol = ProtocolConfig(
        _train_config(spec, cfg.seed),
        trials=cfg.trials,
        test_size=cfg.population,
        val_fraction=0.0,  # the paper's fixed epochs: no validation-loss epoch picking
        eval_modalities=[("text", "image")] if spec.family.startswith("tri") else (),
        ks=RECALL_KS[: cfg.population],
        seed=cfg.seed,
        scoring="sum",  # the paper's rule for every family (clip, triplet and the baselines)
        progress=False,
    )
    raw = run_protocol(fs.select(list(spec.modalities)), protocol, groups=groups)
    _write_json(path, slim_run(spec, raw))


def _showcase_model(
    spec: RunSpec, fs: Any, groups: np.ndarray, cfg: DemoConfig, path: Path
) -> None:
    """Trial 1's training run again (same split and seed, hence the same model), saved."""
    from nmodal.train import split_posts, train_model  # lazy: --help start-up

    sub = fs.select(list(spec.modalities))
    split = split_posts(
        sub.num_posts, test_size=cfg.population, val_fraction=0.0, seed=cfg.seed, groups=groups
    )
    result = train_model(
        sub.subset(split.train),
        _train_config(spec, cfg.seed),
        progress=False,
        groups=groups[split.train],  # the auto start's inner split, by concept as the trials
    )
    result.model.config.extra["demo"] = {
        "test_post_ids": sub.post_ids[split.test].tolist(),
        "train_post_ids": sub.post_ids[split.train].tolist(),
        "val_post_ids": sub.post_ids[split.val].tolist(),
        "note": "trial 1 of the demo protocol; the test posts were never trained on",
    }
    result.model.save(path, overwrite=True)


def _scores(emb: Mapping[str, np.ndarray], query_mod: str, query_row: int) -> np.ndarray:
    """Every post's score for one query: sum of cosines to its other-modality artifacts."""
    others = sum(emb[m] for m in emb if m != query_mod)
    return np.asarray(others @ emb[query_mod][query_row])


def _thumbnail(video: Path, dest: Path) -> str:
    from PIL import Image  # lazy: --help start-up

    from nmodal.media import sample_video  # lazy: --help start-up

    if not dest.exists():
        image = sample_video(video, 16, seed=0).image
        dest.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).resize((96, 96), Image.Resampling.BICUBIC).save(dest)
    return str(dest.relative_to(dest.parent.parent))


def _showcase(out: Path, fs: Any, posts: Any, cfg: DemoConfig, path: Path) -> None:
    from sklearn.manifold import TSNE  # lazy: --help start-up

    from nmodal.model import NModalModel  # lazy: --help start-up

    table = posts.set_index("post_id")
    rng = np.random.default_rng(cfg.seed)
    examples: list[dict[str, Any]] = []
    emap: dict[str, Any] = {}
    for family, queries in (("triCLIP", ("text", "image", "video")), ("quadCLIP", ("audio",))):
        model = NModalModel.load(out / "models" / family)
        test_ids = np.asarray(model.config.extra["demo"]["test_post_ids"])
        sub = fs.subset(_positions(fs.post_ids, test_ids))
        emb = model.embed({m: sub.features[m] for m in model.modalities})
        if family == "triCLIP":
            points = np.concatenate([emb[m] for m in model.modalities])
            perplexity = min(30.0, (len(points) - 1) / 3)
            xy = TSNE(2, perplexity=perplexity, init="pca", random_state=cfg.seed).fit_transform(
                points
            )
            emap = {
                "points": np.round(xy, 3).tolist(),
                "modality": [m for m in model.modalities for _ in range(len(test_ids))],
                "account": [
                    str(table.at[p, "account"]) for _ in model.modalities for p in test_ids
                ],
                "caption": (
                    f"t-SNE (perplexity {perplexity:.0f}, PCA init) of the {model.config.projection_dim}-d "
                    f"triCLIP embeddings of the {len(test_ids)} test posts of trial 1 "
                    f"({len(points)} artifacts: text, image, video). The model never saw these posts "
                    "nor their emoji concepts. Left: artifacts of one post should sit together "
                    "across modalities; right: the same points coloured by the post's account."
                ),
            }
        for q in queries:
            i = int(rng.integers(len(test_ids)))
            scores = _scores(emb, q, i)
            order = np.argsort(-scores, kind="stable")[:5]
            qid = str(test_ids[i])
            query: dict[str, Any] = {"post_id": qid, "modality": q}
            if q == "text":
                query["text"] = str(table.at[qid, "text"])
            elif q in ("image", "video"):
                query["thumbnail"] = _thumbnail(
                    Path(table.at[qid, "video_path"]), out / "thumbs" / f"{qid}.png"
                )
            else:
                query["text"] = f"(spoken track of the clip: “{table.at[qid, 'text']}”)"
            rank_of_own = int((scores > scores[i]).sum()) + 1
            examples.append(
                {
                    "model": family,
                    "query": query,
                    "hits": [
                        {
                            "rank": r + 1,
                            "post_id": str(test_ids[j]),
                            "score": float(scores[j]),
                            "correct": bool(j == i),
                            "text": str(table.at[str(test_ids[j]), "text"]),
                            "thumbnail": _thumbnail(
                                Path(table.at[str(test_ids[j]), "video_path"]),
                                out / "thumbs" / f"{test_ids[j]}.png",
                            ),
                        }
                        for r, j in enumerate(order.tolist())
                    ],
                    "caption": (
                        f"{family}, trial 1 model; query: the {q} of post {qid} "
                        f"(concept {table.at[qid, 'concept']}, account {table.at[qid, 'account']}); "
                        f"its own post ranks #{rank_of_own} of {len(test_ids)}."
                    ),
                }
            )
    _write_json(path, {"embedding_map": emap, "examples": examples})


def _positions(ids: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    index = {p: i for i, p in enumerate(ids.tolist())}
    return np.asarray([index[p] for p in wanted.tolist()])


def _classify(task: str, out: Path, fs: Any, posts: Any, cfg: DemoConfig, path: Path) -> None:
    """Cross-validate and fit the paper's five classifiers with the steps of
    ``nmodal classify`` (:func:`nmodal.classify.run.evaluate_classifier`, saved with its
    metadata), on rows whose folds are grouped by emoji concept instead of by post."""
    from nmodal.classify import (  # lazy: --help start-up
        DISPLAY_NAMES,
        embedding_rows,
        label_rows,
        save_classifier,
    )
    from nmodal.classify.run import (  # lazy: --help start-up
        ClassifyConfig,
        ClassifyRows,
        classifier_metadata,
        evaluate_classifier,
    )
    from nmodal.model import NModalModel, model_fingerprint  # lazy: --help start-up

    model_dir = out / "models" / "triCLIP"
    model = NModalModel.load(model_dir)
    label = "stance" if task == "stance" else "account"
    config = ClassifyConfig(
        model_dir, out / "features", out / "dataset", label, out / "classifiers" / task,
        classifiers=CLASSIFIERS, smote=task == "provenance", folds=5, seed=cfg.seed,
        classifier_params=CLASSIFIER_PARAMS, progress=False,
    )  # fmt: skip
    rows = embedding_rows(model, fs.select(list(model.modalities)))
    by_post = label_rows(rows, posts, label=label, by="post")
    data = replace(by_post, groups=_concept_groups(posts, by_post.post_ids))
    read = ClassifyRows(data, list(model.modalities), None, model_fingerprint(model_dir))
    results = {}
    for clf in CLASSIFIERS:
        res, final = evaluate_classifier(clf, config, data)
        results[DISPLAY_NAMES.get(clf, clf)] = res
        # saved as `nmodal classify` saves its own, so `nmodal predict --classifier
        # DIR/classifiers/<task>/<clf>` can be tried on it
        meta = classifier_metadata(clf, config, read, res)
        save_classifier(final, out / "classifiers" / task / clf, metadata=meta, overwrite=True)
    smote = config.smote
    title = (
        "Stance (living vs made accounts)"
        if task == "stance"
        else f"Account provenance ({len(set(data.y))} accounts)"
    )
    caption = (
        f"Rows: the triCLIP (trial 1 model) embeddings of every artifact (text, image, video) of all "
        f"{fs.num_posts} posts, {len(data.y)} rows; 5-fold cross-validation grouped by emoji concept, so "
        "test folds hold concepts (and posts) unseen in training folds; Random Forest with 100 "
        "trees, other classifiers with nmodal's defaults"
        + ("; SMOTE on the training folds only (accounts are imbalanced)." if smote else ".")
    )
    _write_json(path, {"title": title, "caption": caption, "results": results})


# ------------------------------------------------------------------------------ main


def run_demo(
    out_dir: str | Path,
    cfg: DemoConfig | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> DemoOutput:
    """Run (or resume) the whole demo into ``out_dir``; returns the results dict.

    Read (corpus, dataset, features), compute (protocol runs, models, examples,
    classifiers, index), present (``results.json``, the report, the log), each step
    skipped when its output exists."""
    cfg = cfg or DemoConfig()
    cfg.check()
    out = Path(out_dir)
    _check_state(out, cfg, resume)
    started = time.perf_counter()
    steps = _Steps(log)
    corpus_meta = _prepare_data(out, cfg, steps)
    fs, posts, groups = _load_features(out, log)
    specs = plan_runs(cfg)
    _run_experiments(out, cfg, steps, specs, fs, posts, groups)
    results = _collect_results(out, cfg, specs, corpus_meta, fs, steps.timings)
    results["timings"]["total (this invocation)"] = time.perf_counter() - started
    return _present(out, results, started, log)


def _prepare_data(out: Path, cfg: DemoConfig, steps: _Steps) -> dict[str, Any]:
    """Read: the generated corpus, its ingested posts and their features (each step done
    once; the corpus and the extraction resume where they stopped); returns the corpus's
    description."""
    from nmodal.features.extract import extract_features  # lazy: --help start-up

    corpus = out / "corpus"
    steps.run(
        "corpus", corpus / INFO, generate_corpus,
        corpus, cfg.posts, cfg.seed, cfg.workers, cfg.real_assets, cfg.progress,
        done=_complete,  # an interrupted generation resumes clip by clip
    )  # fmt: skip
    dataset, features = out / "dataset", out / "features"
    steps.run(
        "ingest", dataset / "posts.parquet", _ingest, corpus / "manifest.jsonl", dataset,
        cfg.progress,
    )  # fmt: skip

    def extract() -> None:
        # the clips are SIZE x SIZE: encode frames at that size rather than upscaled to 224
        native = {"size": SIZE}
        extract_features(
            dataset,
            features,
            encoders="offline",
            modalities=QUAD,
            settings={"image": native, "video": native},
            progress=cfg.progress,
        )

    # an interrupted extraction resumes from the shards it finished
    steps.run("extract", features / "manifest.json", extract, done=_complete)
    meta: dict[str, Any] = _read_json(corpus / INFO)
    return meta


def _load_features(out: Path, log: Callable[[str], None]) -> tuple[Any, Any, np.ndarray]:
    """Read: the kept posts, the features of the posts having all four modalities, and
    each of those posts' concept (the protocol's split groups)."""
    from nmodal.features import read_featureset  # lazy: --help start-up
    from nmodal.sources import read_posts  # lazy: --help start-up

    features = out / "features"
    posts = read_posts(out / "dataset", absolute=True, status="kept")
    fs = read_featureset(features)
    keep = fs.complete(QUAD)
    if not keep.all():
        log(f"[demo] {int((~keep).sum())} posts lack a modality (see {features}); left out")
        fs = fs.subset(np.flatnonzero(keep))
    return fs, posts, _concept_groups(posts, fs.post_ids)


def _run_experiments(
    out: Path,
    cfg: DemoConfig,
    steps: _Steps,
    specs: Sequence[RunSpec],
    fs: Any,
    posts: Any,
    groups: np.ndarray,
) -> None:
    """Compute: the protocol runs, the trial-1 models, the map and examples, the
    classifiers and the quadCLIP model's search index, each into its file under ``out``."""
    for spec in specs:
        path = out / "runs" / f"{spec.key}.json"
        steps.run(f"protocol {spec.key}", path, _protocol_run, spec, fs, groups, cfg, path)
    for family in ("triCLIP", "quadCLIP"):
        path = out / "models" / family
        spec = RunSpec(family, cfg.epochs, 256, True)
        steps.run(f"model {family}", path, _showcase_model, spec, fs, groups, cfg, path)
    path = out / "showcase.json"
    steps.run("map and examples", path, _showcase, out, fs, posts, cfg, path)
    for task in ("stance", "provenance"):
        path = out / "classify" / f"{task}.json"
        steps.run(f"classify {task}", path, _classify, task, out, fs, posts, cfg, path)

    def index() -> None:
        from nmodal.index import build_index  # lazy: --help start-up

        # quadCLIP: text, image, video and audio queries all find posts
        build_index(
            out / "models" / "quadCLIP",
            out / "features",
            out / "dataset",
            out / "index",
            progress=cfg.progress,
        )

    steps.run("search index", out / "index", index)


def _collect_results(
    out: Path,
    cfg: DemoConfig,
    specs: Sequence[RunSpec],
    corpus_meta: Mapping[str, Any],
    fs: Any,
    timings: Mapping[str, Any],
) -> dict[str, Any]:
    """Read the steps' outputs back and assemble ``results.json``'s content."""
    runs = [_read_json(out / "runs" / f"{s.key}.json") for s in specs]
    showcase = _read_json(out / "showcase.json")
    classifiers = {t: _read_json(out / "classify" / f"{t}.json") for t in ("stance", "provenance")}
    return _assemble(cfg, corpus_meta, fs, runs, showcase, classifiers, timings)


def _present(
    out: Path, results: dict[str, Any], started: float, log: Callable[[str], None]
) -> DemoOutput:
    """Present: write ``results.json`` and the report, log where everything is and the
    headline figures."""
    from nmodal.report import render_report  # lazy: --help start-up

    _write_json(out / "results.json", results)
    files = render_report(results, out)
    features, corpus = out / "features", out / "corpus"
    log(f"[demo] done in {time.perf_counter() - started:.0f} s")
    for name, p in (("report", files.html), ("markdown", files.markdown), ("results", out / "results.json"),
                    ("models", out / "models"), ("classifiers", out / "classifiers"),
                    ("index", out / "index"), ("features", features), ("corpus", corpus)):  # fmt: skip
        log(f"[demo] {name:11s} {p}")
    log(f"[demo] search the posts: nmodal serve {out / 'index'}")
    log(
        f"[demo] label posts: nmodal predict --classifier {out / 'classifiers' / 'stance' / 'rf'} "
        f"--model {out / 'models' / 'triCLIP'} --store {features}"
    )
    for family in FAMILIES:
        r = results["retrieval"][family]
        log(
            f"[demo] {family:9s} "
            + "  ".join(f"R@{k} {100 * r[k]['mean']:5.1f}%" for k in HEADLINE_KS)
        )
    return DemoOutput(
        out,
        results,
        {"html": files.html, "markdown": files.markdown, "results": out / "results.json"},
    )


def _notes(mains: Mapping[str, Mapping[str, Any]], cfg: DemoConfig) -> list[str]:
    """How to read the numbers of this corpus, per query modality and method."""
    notes = [
        "How to read the retrieval numbers: as in the paper, a post's image is a frame of its "
        "own video, so image and video queries find their post easily; text queries (and "
        "audio, for quadCLIP) must recognise an emoji concept never seen in training, named "
        "in one of 14 languages, and the background colour. The table by query modality "
        "separates the two.",
        "Why text queries are hard here: the test posts' concepts never occur in training, "
        "so a head can only map what the frozen text encoder already shares with the image "
        "encoder (an emoji's name against its picture); about 300 training posts cover a few "
        "dozen concepts, and a text query is scored by the sum of its cosines with a post's "
        "image and video, which look alike for every post of one background colour.",
        "The closed-form rows (GCCA: one regularised generalised-CCA space, ridge: every "
        "modality regressed onto the text features; dimension and regulariser chosen on a "
        "fifth of the training posts) use the same training posts, test posts and scoring "
        "rule as the trained models: a trained model should reach at least GCCA. The trained "
        "heads standardise their inputs by the training posts' statistics, keep the last "
        "epoch and start as nmodal's default `--init auto` chooses: each trial trains a "
        "random start (lr 1e-3, weight decay 1e-2) and a start at the GCCA solution (lr "
        "1e-4) on four fifths of its training posts, keeps the one with the better "
        "retrieval on the remaining fifth (whole concepts on each side, as in the test "
        "split) and trains it again on all the training posts.",
    ]
    starts = [s for s in mains.get("triCLIP", {}).get("starts", []) if s]
    if starts:
        counts = ", ".join(f"{s} {starts.count(s)}" for s in sorted(set(starts)))
        notes.append(f"triCLIP, start kept by the trials ({len(starts)}): {counts}.")
    for name in ("triCLIP", *BASELINES):
        by_query = mains.get(name, {}).get("by_query_modality", {})
        if not by_query:
            continue
        parts = [
            f"{m} {100 * rec['1']['mean']:.1f} ± {100 * rec['1']['std']:.1f}%"
            for m, rec in by_query.items()
        ]
        notes.append(
            f"{name}, R@1 by query modality: {'; '.join(parts)} "
            f"(chance {100 / cfg.population:.1f}%)."
        )
    return notes


def _assemble(
    cfg: DemoConfig,
    corpus_meta: Mapping[str, Any],
    fs: Any,
    runs: Sequence[Mapping[str, Any]],
    showcase: Mapping[str, Any],
    classifiers: Mapping[str, Any],
    timings: Mapping[str, Any],
) -> dict[str, Any]:
    mains = {r["family"]: r for r in runs if r["main"]}
    encoders = {
        m: f"{fs.encoders.get(m, {}).get('name', '?')} ({fs.features[m].shape[1]}-d)"
        for m in fs.modalities
    }
    return {
        "title": "nmodal demo: N-modal CLIP on a multilingual emoji corpus",
        "subtitle": (
            f"{fs.num_posts} generated posts (text in 14 languages, H.264 clip, spoken AAC track), "
            f"{corpus_meta.get('num_concepts', '?')} emoji concepts in {len(corpus_meta.get('accounts', []))} "
            f"accounts; triCLIP, triTRIP and quadCLIP trained with the paper's protocol "
            f"({cfg.trials} trials, test population {cfg.population}, test concepts unseen in training)."
        ),
        "settings": cfg.identity(),
        "summary": {
            "posts (after the paper's filter)": fs.num_posts,
            "emoji concepts": corpus_meta.get("num_concepts"),
            "accounts": ", ".join(corpus_meta.get("accounts", [])),
            "assets": corpus_meta.get("assets"),
            "encoders (offline set)": encoders,
            "trials": cfg.trials,
            "epochs": cfg.epochs,
            "test population": cfg.population,
            "batch size": 128,
            "projection dim": 256,
            "seed": cfg.seed,
        },
        "notes": _notes(mains, cfg),
        "limitations": [
            "The corpus is generated (emoji concepts on coloured backgrounds, synthetic "
            "speech), not real channels: the numbers show that the pipeline works and how the "
            "models compare, not how well they find real posts.",
            "A post's image is a frame of its own video, so image and video queries are easy; "
            "the per-query-modality rows under each model show the hard ones.",
            "Features come from the offline encoders (e5-small text, EfficientNet-Lite0 images "
            "and frames, log-mel audio), not the paper's DistilBERT, ViT-MAE, VideoMAE and "
            "wav2vec2, so absolute figures are not the paper's.",
        ],
        "warnings": list(corpus_meta.get("warnings", [])),
        "population": cfg.population,
        "retrieval": {f: mains[f]["recall"] for f in (*FAMILIES, *BASELINES) if f in mains},
        "runs": list(runs),
        "embedding_map": showcase.get("embedding_map", {}),
        "examples": showcase.get("examples", []),
        "classifiers": dict(classifiers),
        "timings": dict(timings),
    }
