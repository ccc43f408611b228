"""Rendering the report: self-contained HTML and Markdown with every table and figure."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from nmodal.evaluation.tables import format_cell
from nmodal.report import ReportFiles, md_table_to_html, paper_tables, render_report

pytestmark = pytest.mark.xdist_group("report")  # one rendered report shared by the tests


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def test_html_is_self_contained_and_holds_every_section(
    rendered: ReportFiles,
) -> None:
    html = rendered.html.read_text()
    doc = _parse(html)
    tags = [t for t, _ in doc.tags]
    assert "script" not in tags and "link" not in tags
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    images = [a["src"] for t, a in doc.tags if t == "img"]
    # 4 figures (loss, recall, map, 2 ROC) + 5 + 1 hit thumbnails + 1 query thumbnail
    assert len(images) == 5 + 7
    for src in images:
        assert src and src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for sid in ("run", "retrieval", "training", "map", "examples", "classifiers", "timings"):
        assert f'id="{sid}"' in html
    for title in ("Table 2", "Table 3", "Table 4", "Table 5", "by query modality"):
        assert title in html
    # escaping: user strings never become markup
    assert "<b>escaped</b>" not in html and "&lt;b&gt;escaped&lt;/b&gt;" in html
    assert "a warning &amp; an ampersand" in html
    assert "Image queries are easy &lt;here&gt;." in html
    assert "Смотрите: сова" in html


def test_headline_table_shows_each_models_recall_and_chance(
    results: tuple[dict[str, Any], Path], rendered: ReportFiles
) -> None:
    res, _ = results
    html = rendered.html.read_text()
    table = _parse(html).tables[1]  # the first table after the run summary
    assert table[0] == ["Model", "@1", "@5", "@10", "@25"]
    rows = {r[0]: r[1:] for r in table[1:]}
    for name, recall in res["retrieval"].items():
        assert rows[name] == [format_cell(recall[k]) for k in ("1", "5", "10", "25")]
    assert rows["chance"] == ["1.00%", "5.00%", "10.00%", "25.00%"]


def test_markdown_has_the_same_tables_and_links_existing_figures(
    results: tuple[dict[str, Any], Path], rendered: ReportFiles
) -> None:
    res, out = results
    files = rendered
    md = files.markdown.read_text()
    for name, recall in res["retrieval"].items():
        cells = " | ".join(format_cell(recall[k]) for k in ("1", "5", "10", "25"))
        assert f"| {name} | {cells} |" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(links) == 5 + 7
    for link in links:
        assert (out / link).is_file(), link
    assert len(files.figures) == 5
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in files.figures)
    # every figure carries a caption naming its settings
    assert md.count("2 trials") >= 3
    assert "| Random Forest |" in md and "Baseline: majority class" in md


def test_minimal_results_render_without_optional_sections(tmp_path: Path) -> None:
    res = {"retrieval": {"triCLIP": {k: {"mean": 0.5, "std": 0.0} for k in ("1", "5", "10", "25")}}}
    files = render_report(res, tmp_path)
    html = files.html.read_text()
    assert "50.00% ± 0.00" in html
    assert 'id="examples"' not in html and "<img" not in html
    assert files.figures == []
    assert "| triCLIP | 50.00% ± 0.00 |" in files.markdown.read_text()


def test_paper_tables_pick_runs_by_family_epochs_and_dim(
    results: tuple[dict[str, Any], Path],
) -> None:
    res, _ = results
    tables = {t.key: t for t in paper_tables(res["runs"])}
    assert set(tables) == {"table2", "table3", "table4", "table5", "by_query"}
    t2 = tables["table2"].markdown.splitlines()
    assert t2[0].startswith("| Model \\ Epochs | 1 @1 |") and "10 @25" in t2[0]
    assert [ln.split("|")[1].strip() for ln in t2[2:]] == ["triTRIP", "triCLIP"]  # paper order
    t4 = tables["table4"].markdown
    assert [ln.split("|")[1].strip() for ln in t4.splitlines()[2:]] == ["64D", "256D", "512D"]
    assert "1 @1" not in t4.splitlines()[0]  # only epochs with several dims
    t3 = tables["table3"].markdown
    assert "bi-triCLIP (text+image only)" in t3 and "| chance | 1.00% |" in t3
    assert "quadCLIP" in tables["table5"].markdown
    # without quadmodal or dim sweeps those tables are left out
    tri_only = [r for r in res["runs"] if r["family"] != "quadCLIP" and r["dim"] == 256]
    assert {t.key for t in paper_tables(tri_only)} == {"table2", "table3", "by_query"}


def test_md_table_to_html_keeps_every_cell() -> None:
    md = "| a | b |\n|---|---|\n| 1 | x<y |\n| 2 | z |"
    doc = _parse(md_table_to_html(md))
    assert doc.tables == [[["a", "b"], ["1", "x<y"], ["2", "z"]]]
