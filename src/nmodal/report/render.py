"""Render a results dict as a self-contained HTML report and a Markdown report.

The HTML file carries everything inline (CSS, figures and thumbnails as base64 PNG, no
script, no external URL), so it can be mailed or opened offline. The Markdown file has the
same tables and links the figures written under ``figures/``.

The results dict (every key optional except where a section needs it)::

    title, subtitle        str
    summary                {label: value}             shown as the "Run" table
    notes                  [str]                      paragraphs under it (how to read it)
    warnings               [str]
    retrieval              {model: {"1": {"mean", "std"}, "5": .., "10": .., "25": ..}}
    population             int (test population; chance = K / population)
    runs                   [run]   see nmodal.report.tables; a run may add
                             "histories": [[{"epoch", "train_loss", "val_loss"}, ...], ...]
                             "curve": {"ks": [...], "mean": [...], "std": [...]}
    embedding_map          {"points": [[x, y]], "modality": [..], "account": [..],
                            "caption": str}
    examples               [{"model", "caption"?, "query": {"post_id", "modality",
                              "text"?, "thumbnail"?}, "hits": [{"rank", "post_id", "score",
                              "correct", "text"?, "thumbnail"?}]}]
    classifiers            {task: {"title", "caption", "results": {classifier: cv result}}}
    limitations            [str]   what the numbers do not say (shown beside the headline)
    timings                {step: seconds}

Thumbnails are PNG paths, absolute or relative to ``out_dir``.

Example:
    >>> files = render_report({"retrieval": {"triCLIP": {"1": {"mean": .4, "std": .02}}}},
    ...                       "out")  # doctest: +SKIP
    >>> files.html                    # doctest: +SKIP
    PosixPath('out/report.html')
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nmodal.atomic import write_text
from nmodal.evaluation.tables import recall_table
from nmodal.report import figures
from nmodal.report.tables import Table, chance, non_monotonic_notes, paper_tables
from nmodal.retrieval import DEFAULT_KS

FIGURES_DIR = "figures"

CSS = """
:root { --fg: #1d232b; --muted: #5b6570; --line: #d9dee3; --accent: #2f6fb3; --ok: #2e8b57;
        --bad: #b8433a; --bg: #ffffff; --panel: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", "DejaVu Sans",
       "Noto Sans CJK SC", "Noto Sans CJK JP", "PingFang SC", "Microsoft YaHei", sans-serif,
       "Noto Color Emoji", "Apple Color Emoji", "Segoe UI Emoji";
       color: var(--fg); background: var(--bg); }
main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 64px; }
h1 { font-size: 1.7em; margin: 0 0 4px; }
h2 { font-size: 1.3em; margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 1.05em; margin: 22px 0 6px; }
p.sub, .caption, figcaption { color: var(--muted); }
nav { background: var(--panel); border: 1px solid var(--line); border-radius: 6px;
      padding: 8px 14px; margin: 16px 0; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; white-space: nowrap; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 0.9em; }
th, td { border: 1px solid var(--line); padding: 4px 9px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: var(--panel); }
tbody tr:nth-child(even) { background: #fbfcfd; }
.scroll { overflow-x: auto; }
.limits { border-left: 4px solid var(--line); padding: 2px 12px; margin: 8px 0 18px; color: var(--muted); font-size: 0.92em; }
.limits ul { margin: 4px 0; padding-left: 18px; }
.warn { background: #fff6e5; border: 1px solid #f0c36d; border-radius: 6px; padding: 8px 12px; }
figure { margin: 14px 0 22px; }
figure img { max-width: 100%; border: 1px solid var(--line); border-radius: 4px; }
.examples { display: grid; gap: 14px; }
.example { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.query { display: flex; gap: 10px; align-items: center; margin-bottom: 8px; }
.hits { display: flex; gap: 10px; flex-wrap: wrap; }
.hit { width: 112px; font-size: 0.78em; text-align: center; }
.hit img, .query img { width: 96px; height: 96px; border-radius: 4px; border: 3px solid var(--line);
                       image-rendering: auto; }
.hit.correct img { border-color: var(--ok); }
.hit .t { color: var(--muted); overflow: hidden; display: -webkit-box; -webkit-line-clamp: 3;
          -webkit-box-orient: vertical; }
.tag { display: inline-block; padding: 0 6px; border-radius: 3px; background: var(--panel);
       border: 1px solid var(--line); font-size: 0.8em; }
.tag.ok { color: var(--ok); border-color: var(--ok); }
footer { margin-top: 40px; color: var(--muted); font-size: 0.85em; }
"""


@dataclass
class ReportFiles:
    html: Path
    markdown: Path
    figures: list[Path] = field(default_factory=list)


@dataclass
class _Figure:
    key: str
    title: str
    caption: str
    path: Path


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def md_table_to_html(markdown: str) -> str:
    """A Markdown pipe table (as :mod:`nmodal.evaluation.tables` writes) as an HTML table."""
    lines = [ln.strip() for ln in markdown.strip().splitlines() if ln.strip()]
    if len(lines) < 2:
        return ""

    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip("|").split("|")]

    head = "".join(f"<th>{_esc(c)}</th>" for c in cells(lines[0]))
    body = "".join(
        "<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in cells(ln)) + "</tr>" for ln in lines[2:]
    )
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _png_data_uri(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _resolve(path: str | None, out_dir: Path) -> Path | None:
    if not path:
        return None
    p = Path(path)
    return p if p.is_absolute() else out_dir / p


def _rel(path: Path, out_dir: Path) -> str:
    try:
        return os.path.relpath(path, out_dir)
    except ValueError:
        return str(path)


#: a query modality whose recall@1 is below this share of the model's overall recall@1 is
#: named beside the headline
WEAK_SHARE = 0.5


def _headline(results: Mapping[str, Any]) -> Table | None:
    """Each model's recall over all queries, and right below it the same model's recall
    per query modality (an average over modalities can hide one that barely works)."""
    retrieval = results.get("retrieval")
    if not retrieval:
        return None
    population = int(results.get("population", 100))
    runs = [r for r in results.get("runs", []) if r.get("main")]
    by_name = {r["name"]: r for r in runs}
    rows: dict[str, Any] = {}
    weak = []
    for name, recall in retrieval.items():
        rows[name] = recall
        per_query = by_name.get(name, {}).get("by_query_modality", {})
        for m, rec in per_query.items():
            rows[f"↳ {name}: {m} queries"] = rec
            overall, alone = recall.get("1", {}).get("mean"), rec.get("1", {}).get("mean")
            if overall and alone is not None and alone < WEAK_SHARE * overall:
                weak.append(
                    f"{name}'s {m} queries find their post first in {100 * alone:.1f}% of cases "
                    f"against {100 * overall:.1f}% over all queries"
                )
    rows["chance"] = chance(population, DEFAULT_KS)
    detail = ""
    if runs:
        r = runs[0]
        detail = (
            f" {r.get('trials', '?')} trials, each a fresh split and training run "
            f"({r.get('epochs', '?')} epochs, {r.get('dim', '?')}-d projections, "
            f"~{r.get('train_posts', '?')} training posts)."
        )
    return Table(
        "retrieval",
        "Post retrieval on held-out posts",
        f"Mean ± std of recall@K over trials on a population of {population} test posts "
        f"that share no concept with the training posts; every artifact of every test post is "
        f"a query, scored against the other modalities of each post.{detail}"
        + (
            " ↳ rows: the same model, queries of one modality only."
            if any(k.startswith("↳") for k in rows)
            else ""
        )
        + (f" Read the headline with care: {'; '.join(weak)}." if weak else ""),
        recall_table(rows, DEFAULT_KS),
    )


def _limitations(results: Mapping[str, Any]) -> list[str]:
    """Model-card limitations of the retrieval numbers: the caller's, then what follows from
    the run itself (population, trials)."""
    out = [str(x) for x in results.get("limitations", [])]
    population = int(results.get("population", 100))
    out.append(
        f"Recall@K depends on the population: these figures rank {population} test posts "
        f"(chance @1 = {100 / population:.1f}%); a real collection of thousands of posts "
        "gives lower recall for the same model, so compare only numbers from equal populations."
    )
    runs = [r for r in results.get("runs", []) if r.get("main")]
    if runs:
        trials = runs[0].get("trials", "?")
        out.append(
            f"± is the spread over {trials} trials (fresh split and training each); it does not "
            "cover other corpora, encoders or languages."
        )
    return out


def _make_figures(results: Mapping[str, Any], fig_dir: Path) -> list[_Figure]:
    out: list[_Figure] = []
    runs = [r for r in results.get("runs", []) if r.get("main")]
    settings = ""
    if runs:
        r = runs[0]
        settings = (
            f"{r.get('trials', '?')} trials, {r.get('epochs', '?')} epochs, batch "
            f"{r.get('batch_size', 128)}, {r.get('dim', '?')}-d projections, ~"
            f"{r.get('train_posts', '?')} training posts per trial"
        )
    histories = {r["name"]: r["histories"] for r in runs if r.get("histories")}
    if histories:
        # the caption says what the plot draws: validation lines and per-trial lines only
        # when the runs have them
        has_val = any("val_loss" in rec for h in histories.values() for t in h for rec in t)
        most_trials = max(len([t for t in h if t]) for h in histories.values())
        lines = (
            "thin lines are the single trials, bold lines their mean"
            if most_trials > 1
            else "one trial per model"
        )
        out.append(
            _Figure(
                "loss",
                "Training curves",
                (
                    "Training loss (solid) and validation loss (dashed) per epoch; "
                    if has_val
                    else "Training loss per epoch (no validation set in this protocol, so no "
                    "validation curve); "
                )
                + f"{lines}. {settings}. "
                + (
                    "The validation posts come from the training side of each split (never the "
                    "test population); each trial keeps the epoch with the lowest validation loss."
                    if has_val
                    else "Each trial trains for a fixed number of epochs and keeps the last one, "
                    "as in the paper."
                ),
                figures.plot_loss_curves(histories, fig_dir / "loss_curves.png"),
            )
        )
    curves = {r["name"]: r["curve"] for r in runs if r.get("curve")}
    if curves:
        population = int(results.get("population", 100))
        out.append(
            _Figure(
                "recall_curves",
                "Recall@K curves",
                f"Recall@K for K = 1 ... {population} (log scale), mean over trials with ± one "
                f"std shaded; dotted: chance K/{population}. {settings}.",
                figures.plot_recall_curves(curves, population, fig_dir / "recall_curves.png"),
            )
        )
    emap = results.get("embedding_map")
    if emap and emap.get("points"):
        out.append(
            _Figure(
                "map",
                "Map of the shared space",
                str(emap.get("caption", "2-D projection of the shared embedding space.")),
                figures.plot_embedding_map(
                    emap["points"], emap["modality"], emap["account"], fig_dir / "embedding_map.png"
                ),
            )
        )
    for task, block in results.get("classifiers", {}).items():
        res = block.get("results") or {}
        if res and all("roc_curve" in v for v in res.values()):
            out.append(
                _Figure(
                    f"roc_{task}",
                    f"ROC — {block.get('title', task)}",
                    "ROC curves from the pooled out-of-fold predictions of each classifier "
                    "(multiclass: macro (solid) and micro (dashed) one-vs-rest averages); "
                    "legend: AUC mean ± std over folds. " + str(block.get("caption", "")),
                    figures.plot_roc(
                        res, fig_dir / f"roc_{task}.png", title=str(block.get("title", task))
                    ),
                )
            )
    return out


def _classifier_tables(results: Mapping[str, Any]) -> list[Table]:
    from nmodal.classify import results_table  # lazy: scikit-learn only for classifier tables

    out = []
    for task, block in results.get("classifiers", {}).items():
        res = block.get("results") or {}
        if not res:
            continue
        out.append(
            Table(
                f"classify_{task}",
                f"Classifier table — {block.get('title', task)}",
                "Mean ± std over cross-validation folds (accuracy-like metrics in %, ROC AUC "
                "as a fraction), with majority-class and stratified-random baselines. "
                + str(block.get("caption", "")),
                results_table(res),
            )
        )
    return out


def _thumb_html(path: Path | None, alt: str) -> str:
    uri = _png_data_uri(path) if path else None
    if uri is None:
        return f'<span class="tag">{_esc(alt)}</span>'
    return f'<img src="{uri}" alt="{_esc(alt)}">'


def _examples_html(examples: Sequence[Mapping[str, Any]], out_dir: Path) -> str:
    parts = []
    for ex in examples:
        q = ex["query"]
        qthumb = _resolve(q.get("thumbnail"), out_dir)
        qdesc = f"{q['modality']} of post {q['post_id']}"
        qbody = _thumb_html(qthumb, qdesc) if qthumb else ""
        text = f"<div>“{_esc(q['text'])}”</div>" if q.get("text") else ""
        hits = []
        for h in ex["hits"]:
            thumb = _resolve(h.get("thumbnail"), out_dir)
            tag = '<span class="tag ok">query\'s post</span>' if h.get("correct") else ""
            hits.append(
                f'<div class="hit{" correct" if h.get("correct") else ""}">'
                f"{_thumb_html(thumb, h['post_id'])}"
                f"<div>#{h['rank']} · {float(h['score']):.2f} {tag}</div>"
                f'<div class="t">{_esc(h.get("text", ""))}</div></div>'
            )
        caption = ex.get("caption") or ""
        parts.append(
            f'<div class="example"><div class="query"><b>Query</b> '
            f'<span class="tag">{_esc(qdesc)}</span>{qbody}{text}</div>'
            f'<div class="hits">{"".join(hits)}</div>'
            f'<div class="caption">{_esc(caption)}</div></div>'
        )
    return '<div class="examples">' + "".join(parts) + "</div>"


def _examples_markdown(examples: Sequence[Mapping[str, Any]], out_dir: Path) -> str:
    lines = []
    for ex in examples:
        q = ex["query"]
        head = f"**Query:** {q['modality']} of post `{q['post_id']}`"
        if q.get("text"):
            head += f" — “{q['text']}”"
        qthumb = _resolve(q.get("thumbnail"), out_dir)
        if qthumb:
            head += f" ![query]({_rel(qthumb, out_dir)})"
        lines += [head, "", "| rank | post | score | thumbnail | text |", "|---|---|---|---|---|"]
        for h in ex["hits"]:
            thumb = _resolve(h.get("thumbnail"), out_dir)
            img = f"![{h['post_id']}]({_rel(thumb, out_dir)})" if thumb else ""
            mark = " ✔" if h.get("correct") else ""
            text = str(h.get("text", "")).replace("|", "\\|")
            lines.append(
                f"| {h['rank']} | `{h['post_id']}`{mark} | {float(h['score']):.2f} | {img} | {text} |"
            )
        if ex.get("caption"):
            lines += ["", f"*{ex['caption']}*"]
        lines.append("")
    return "\n".join(lines)


def _kv_rows(d: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for k, v in d.items():
        if isinstance(v, float):
            v = f"{v:.3g}"
        elif isinstance(v, Mapping):
            v = ", ".join(f"{a}: {b}" for a, b in v.items())
        elif isinstance(v, list | tuple):
            v = ", ".join(map(str, v))
        out.append((str(k), str(v)))
    return out


def _kv_markdown(d: Mapping[str, Any]) -> str:
    rows = _kv_rows(d)
    return "\n".join(["| | |", "|---|---|", *[f"| {k} | {v.replace('|', '/')} |" for k, v in rows]])


def _kv_html(d: Mapping[str, Any]) -> str:
    body = "".join(f"<tr><td>{_esc(k)}</td><td>{_esc(v)}</td></tr>" for k, v in _kv_rows(d))
    return f'<div class="scroll"><table><tbody>{body}</tbody></table></div>'


def render_report(
    results: Mapping[str, Any], out_dir: str | Path, name: str = "report"
) -> ReportFiles:
    """Write ``out_dir/<name>.html``, ``out_dir/<name>.md`` and ``out_dir/figures/*.png``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig_dir = out_dir / FIGURES_DIR
    title = str(results.get("title", "nmodal report"))
    subtitle = str(results.get("subtitle", ""))
    created = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    tables: list[Table] = []
    headline = _headline(results)
    if headline:
        tables.append(headline)
    tables += paper_tables(results.get("runs", []))
    class_tables = _classifier_tables(results)
    figs = _make_figures(results, fig_dir)
    fig_by_key = {f.key: f for f in figs}
    examples = results.get("examples") or []

    # (section id, title, html, markdown)
    sections: list[tuple[str, str, str, str]] = []
    if results.get("summary") or results.get("warnings") or results.get("notes"):
        h = _kv_html(results.get("summary", {}))
        m = _kv_markdown(results.get("summary", {})) if results.get("summary") else ""
        for note in results.get("notes", []):
            h += f"<p>{_esc(note)}</p>"
            m += f"\n\n{note}"
        for w in results.get("warnings", []):
            h += f'<p class="warn">⚠ {_esc(w)}</p>'
            m += f"\n\n> **Warning:** {w}"
        sections.append(("run", "Run", h, m))

    def table_block(t: Table) -> tuple[str, str]:
        h = f"<h3>{_esc(t.title)}</h3>{md_table_to_html(t.markdown)}<p class='caption'>{_esc(t.caption)}</p>"
        m = f"### {t.title}\n\n{t.markdown}\n\n*{t.caption}*"
        return h, m

    def fig_block(f: _Figure) -> tuple[str, str]:
        uri = _png_data_uri(f.path) or ""
        h = (
            f'<figure><img src="{uri}" alt="{_esc(f.title)}">'
            f"<figcaption><b>{_esc(f.title)}.</b> {_esc(f.caption)}</figcaption></figure>"
        )
        m = f"![{f.title}]({_rel(f.path, out_dir)})\n\n*{f.title}. {f.caption}*"
        return h, m

    def section(sid: str, stitle: str, blocks: list[tuple[str, str]]) -> None:
        if blocks:
            sections.append(
                (sid, stitle, "".join(b[0] for b in blocks), "\n\n".join(b[1] for b in blocks))
            )

    def limits_block() -> tuple[str, str]:
        items = _limitations(results)
        h = "<div class='limits'><b>Limitations.</b><ul>" + "".join(
            f"<li>{_esc(x)}</li>" for x in items
        )
        return h + "</ul></div>", "**Limitations.**\n\n" + "\n".join(f"- {x}" for x in items)

    def flags_block() -> list[tuple[str, str]]:
        notes = non_monotonic_notes(results.get("runs", []))
        return [(f'<p class="warn">⚠ {_esc(n)}</p>', f"> **Warning:** {n}") for n in notes]

    blocks = [table_block(t) for t in tables]
    if headline:
        blocks.insert(1, limits_block())
    section("retrieval", "Retrieval", blocks + flags_block())
    section(
        "training",
        "Training and recall curves",
        [fig_block(fig_by_key[k]) for k in ("loss", "recall_curves") if k in fig_by_key],
    )
    section(
        "map", "The shared space", [fig_block(fig_by_key["map"])] if "map" in fig_by_key else []
    )
    if examples:
        sections.append(
            (
                "examples",
                "Example retrievals",
                "<p class='caption'>Each query artifact against the test population: the "
                "five best-scoring posts (thumbnail: the post's image, i.e. the video frame the "
                "video encoder does not see), rank and score (sum of cosine similarities to "
                "the post's other-modality artifacts); a green frame marks the query's own post."
                "</p>" + _examples_html(examples, out_dir),
                _examples_markdown(examples, out_dir),
            )
        )
    roc_blocks = [fig_block(f) for f in figs if f.key.startswith("roc_")]
    section(
        "classifiers",
        "Stance and provenance classifiers",
        [table_block(t) for t in class_tables] + roc_blocks,
    )
    if results.get("timings"):
        timings = {
            k: f"{v:.1f} s" if isinstance(v, int | float) else v
            for k, v in results["timings"].items()
        }
        sections.append(("timings", "Timings", _kv_html(timings), _kv_markdown(timings)))

    nav = "".join(f'<a href="#{sid}">{_esc(t)}</a>' for sid, t, _, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{_esc(t)}</h2>{h}</section>' for sid, t, h, _ in sections
    )
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_esc(title)}</title><style>{CSS}</style></head><body><main>"
        f"<h1>{_esc(title)}</h1><p class='sub'>{_esc(subtitle)}</p>"
        f"<nav>{nav}</nav>{body}"
        f"<footer>Generated by nmodal on {_esc(created)}. Recalls are fractions shown as "
        "percentages; ± is the standard deviation over trials (tables) or folds "
        "(classifiers).</footer></main></body></html>\n"
    )
    md = [f"# {title}", ""]
    if subtitle:
        md += [subtitle, ""]
    for _, stitle, _, m in sections:
        md += [f"## {stitle}", "", m, ""]
    md.append(f"_Generated by nmodal on {created}._\n")

    html_path = out_dir / f"{name}.html"
    md_path = out_dir / f"{name}.md"
    write_text(html_path, page)
    write_text(md_path, "\n".join(md))
    return ReportFiles(html_path, md_path, [f.path for f in figs])
