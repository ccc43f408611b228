"""The paper's retrieval tables (2, 3, 4, 5) built from a list of protocol runs.

A *run* is a JSON-ready dict describing one :func:`nmodal.evaluation.run_protocol` call::

    {"name": "triCLIP", "family": "triCLIP", "epochs": 50, "dim": 256, "main": True,
     "recall": {"1": {"mean": .42, "std": .03}, ...},          # fractions
     "restricted": {"text+image": {"1": {...}, ...}},           # optional ("bi-tri" rows)
     "by_query_modality": {"text": {"1": {...}}, ...},          # optional
     "train_seconds": {"mean": 12.3, "std": 0.4},               # optional (Table 1)
     "trials": 5, "test_size": 100, "train_posts": 380}

Tables are returned as :class:`Table` (title, caption, Markdown); a table whose runs are
missing is left out.

Example:
    >>> tables = paper_tables(runs)  # doctest: +SKIP
    >>> print(tables[0].markdown)    # doctest: +SKIP
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nmodal.evaluation.tables import recall_grid_table, recall_table
from nmodal.retrieval import DEFAULT_KS

Run = Mapping[str, Any]


@dataclass(frozen=True)
class Table:
    key: str
    title: str
    caption: str
    markdown: str


def chance(population: int, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Recall@K of a random ranking of ``population`` posts: K / population."""
    return {str(k): min(1.0, k / population) for k in ks}


def _default_dim(runs: Sequence[Run]) -> int:
    mains = [r["dim"] for r in runs if r.get("main")]
    return int(mains[0]) if mains else 256


def _settings(runs: Sequence[Run]) -> str:
    r = runs[0]
    posts = sorted({int(x.get("train_posts", 0)) for x in runs})
    train = f"{posts[0]}" if len(posts) == 1 else f"{posts[0]}-{posts[-1]}"
    return (
        f"{r.get('trials', '?')} trials, each a fresh split and training run; "
        f"test population {r.get('test_size', '?')} held-out posts; "
        f"~{train} training posts per trial"
    )


def training_time_table(runs: Sequence[Run]) -> Table | None:
    """Table 1 of the paper: training time per loss, epochs, size and projection dim (runs
    that recorded ``train_seconds``), with each run's time relative to triCLIP's at the same
    epochs and dim."""
    timed = [r for r in runs if isinstance(r.get("train_seconds"), Mapping)]
    if not timed:
        return None
    timed = sorted(timed, key=lambda r: (r["dim"], r["epochs"], str(r["family"])))
    base = {
        (r["epochs"], r["dim"]): float(r["train_seconds"]["mean"])
        for r in timed
        if r["family"] == "triCLIP"
    }
    header = ["Model", "Modalities", "Epochs", "Dim", "Training posts", "Seconds per trial",
              "Seconds per epoch", "× triCLIP"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in timed:
        t = r["train_seconds"]
        mean = float(t["mean"])
        ref = base.get((r["epochs"], r["dim"]))
        ratio = f"{mean / ref:.2f}" if ref else "–"
        cells = [
            str(r["name"]),
            str(len(r.get("modalities", [])) or "?"),
            str(r["epochs"]),
            str(r["dim"]),
            str(r.get("train_posts", "?")),
            f"{mean:.2f} ± {float(t.get('std', 0.0)):.2f}",
            f"{mean / max(int(r['epochs']), 1):.3f}",
            ratio,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return Table(
        "table1",
        "Table 1 — Training time per loss and size",
        f"Wall-clock seconds to train one trial's heads (mean ± std over "
        f"{timed[0].get('trials', '?')} trials; the retrieval evaluation is not included), on "
        "the machine that wrote this report, so compare rows with each other rather than with "
        "the paper's GPU figures. × triCLIP: the time relative to triCLIP at the same epochs "
        "and dim. The paper's triTRIP took 200x triCLIP's time because its triplet loss looped "
        "in Python; nmodal computes all triples in batched tensor operations.",
        "\n".join(lines),
    )


def non_monotonic_notes(runs: Sequence[Run], k: str = "1") -> list[str]:
    """A sentence for each model whose recall@k falls when it trains longer (same family,
    dim and size), so a reader does not take the longest run for the best one."""
    notes = []
    groups: dict[tuple[Any, ...], list[Run]] = {}
    for r in runs:
        if k in r.get("recall", {}):
            groups.setdefault((r["family"], r["dim"], r.get("train_posts")), []).append(r)
    for (family, dim, _), rs in groups.items():
        rs = sorted(rs, key=lambda r: r["epochs"])
        for a, b in itertools.pairwise(rs):
            ra, rb = a["recall"][k], b["recall"][k]
            spread = max(float(ra.get("std", 0.0)), float(rb.get("std", 0.0)))
            if float(rb["mean"]) < float(ra["mean"]) - max(spread, 0.005):
                notes.append(
                    f"Not monotonic: {family} ({dim}-d) recalls {100 * rb['mean']:.1f}% @{k} "
                    f"after {b['epochs']} epochs but {100 * ra['mean']:.1f}% after "
                    f"{a['epochs']} — more than one std lower. Training longer made it worse "
                    "here (the heads overfit the training posts; the protocol trains a fixed "
                    "number of epochs, as the paper does, with no validation-based stopping), "
                    f"so the {a['epochs']}-epoch model is the better one."
                )
    return notes


def paper_tables(runs: Sequence[Run], ks: Sequence[int] = DEFAULT_KS) -> list[Table]:
    """Tables 1-5 of the paper (and a by-query-modality table) for the runs given."""
    if not runs:
        return []
    dim = _default_dim(runs)
    population = int(runs[0].get("test_size", 100))
    settings = _settings(runs)
    out: list[Table] = []
    table1 = training_time_table(runs)
    if table1 is not None:
        out.append(table1)
    flagged = non_monotonic_notes(runs)

    def flags(families: Sequence[str]) -> str:
        mine = [n for n in flagged if any(f"Not monotonic: {f} " in n for f in families)]
        return (" " + " ".join(mine)) if mine else ""

    ordered = sorted(runs, key=lambda r: (r["dim"], r["epochs"]))

    def grid(families: Sequence[str], by: str) -> dict[str, dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        if by == "family":  # rows in the order given, epochs ascending
            rows = {f: {} for f in families if any(r["family"] == f for r in runs)}
        for r in ordered:
            if r["family"] not in families:
                continue
            if by == "family" and r["dim"] == dim:
                rows.setdefault(r["family"], {})[str(r["epochs"])] = r["recall"]
            elif by == "dim" and r["epochs"] in dim_epochs:
                rows.setdefault(f"{r['dim']}D", {})[str(r["epochs"])] = r["recall"]
        return {k: v for k, v in rows.items() if v}

    # Table 4 compares dims at the epochs for which several dims were trained
    dims_at: dict[int, set[int]] = {}
    for r in runs:
        if r["family"] == "triCLIP":
            dims_at.setdefault(r["epochs"], set()).add(r["dim"])
    dim_epochs = {e for e, dims in dims_at.items() if len(dims) > 1}

    table2 = grid(["triTRIP", "triCLIP"], "family")
    if table2:
        out.append(
            Table(
                "table2",
                "Table 2 — Average recall @K by epochs trained",
                f"Mean recall over trials; {settings}. Queries: every artifact of every test "
                f"post (text, image, video); chance @K is K/{population}."
                + flags(["triTRIP", "triCLIP"]),
                recall_grid_table(table2, ks, group="Epochs"),
            )
        )

    mains = [r for r in runs if r.get("main")]
    tri_mains = [r for r in mains if r["family"] in ("triTRIP", "triCLIP")]
    if tri_mains:
        rows: dict[str, Any] = {}
        for r in tri_mains:
            for sub, rec in r.get("restricted", {}).items():
                rows[f"bi-{r['name']} ({sub} only)"] = rec
        for r in tri_mains:
            rows[r["name"]] = r["recall"]
        rows["chance"] = chance(population, ks)
        out.append(
            Table(
                "table3",
                f"Table 3 — Recall @K with a post population of {population}",
                f"Mean ± std over trials; {settings}; {tri_mains[0]['epochs']} epochs, "
                f"{dim}-d projections. The bi- rows evaluate the trimodal models on image-text "
                "pairs only (each query scored against the one other modality), as the "
                "paper's comparison with bimodal CLIP models does.",
                recall_table(rows, ks),
            )
        )

    table4 = grid(["triCLIP"], "dim")
    if dim_epochs:
        out.append(
            Table(
                "table4",
                "Table 4 — Effect of the projection dimension on recall @K for triCLIP",
                f"Mean recall over trials; {settings}. Rows: the output size of every "
                "projection head.",
                recall_grid_table(table4, ks, group="Epochs"),
            )
        )

    table5 = grid(["quadCLIP", "triCLIP"], "family")
    if "quadCLIP" in table5:
        out.append(
            Table(
                "table5",
                "Table 5 — Recall @K of quadCLIP (text, image, video, audio) and triCLIP",
                f"Mean recall over trials; {settings}. quadCLIP adds the clip's audio track "
                "as a fourth modality; its queries include audio artifacts." + flags(["quadCLIP"]),
                recall_grid_table(table5, ks, group="Epochs"),
            )
        )

    by_query: dict[str, Any] = {}
    for r in mains:
        for m, rec in r.get("by_query_modality", {}).items():
            by_query[f"{r['name']}: {m} queries"] = rec
    if by_query:
        out.append(
            Table(
                "by_query",
                "Recall @K by query modality",
                f"Mean ± std over trials; {settings}. A query of one modality is scored "
                "against the post's artifacts in all other modalities.",
                recall_table(by_query, ks, label="Model: query"),
            )
        )
    return out
