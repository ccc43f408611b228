"""The report explains its numbers: Table 1, per-modality recall beside the headline,
non-monotonic results flagged, captions that say what the plots draw, limitations."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

from nmodal.report import render_report
from nmodal.report.figures import CJK_FONT_FILES, plot_embedding_map
from nmodal.report.tables import non_monotonic_notes, training_time_table

KS = ("1", "5", "10", "25")


def _rec(r1: float, std: float = 0.01) -> dict[str, dict[str, float]]:
    return {k: {"mean": min(1.0, r1 + 0.1 * i), "std": std} for i, k in enumerate(KS)}


def _run(family: str, epochs: int, r1: float, seconds: float, **extra: Any) -> dict[str, Any]:
    mods = ["text", "image", "video"] + (["audio"] if family == "quadCLIP" else [])
    return {
        "name": family, "family": family, "modalities": mods, "epochs": epochs, "dim": 256,
        "main": epochs == 50, "trials": 3, "test_size": 100, "train_posts": 300,
        "recall": _rec(r1), "train_seconds": {"mean": seconds, "std": 0.1 * seconds}, **extra,
    }  # fmt: skip


RUNS = [
    _run("triCLIP", 10, 0.40, 4.0),
    _run("triCLIP", 50, 0.553, 20.0, by_query_modality={"text": _rec(0.072), "image": _rec(0.7)}),
    _run("triTRIP", 50, 0.30, 30.0),
    _run("quadCLIP", 10, 0.380, 6.0),
    _run("quadCLIP", 50, 0.262, 26.0),
]


def test_table1_lists_training_time_per_loss_and_size():
    table = training_time_table(RUNS)
    assert table is not None and table.title.startswith("Table 1")
    rows = {
        (cells[0], cells[2]): cells
        for line in table.markdown.splitlines()[2:]
        for cells in [[c.strip() for c in line.strip("|").split("|")]]
    }
    assert len(rows) == len(RUNS)
    trip = rows[("triTRIP", "50")]
    assert trip[5] == "30.00 ± 3.00" and trip[6] == f"{30 / 50:.3f}"
    assert trip[7] == f"{30 / 20:.2f}"  # relative to triCLIP at 50 epochs
    assert rows[("quadCLIP", "10")][7] == f"{6 / 4:.2f}"
    assert training_time_table([{k: v for k, v in RUNS[0].items() if k != "train_seconds"}]) is None


def test_a_drop_beyond_the_spread_is_flagged_and_noise_is_not():
    notes = non_monotonic_notes(RUNS)
    assert len(notes) == 1
    assert "quadCLIP" in notes[0] and "26.2% @1 after 50 epochs but 38.0% after 10" in notes[0]
    noisy = [_run("quadCLIP", 10, 0.380, 6.0), _run("quadCLIP", 50, 0.375, 6.0)]
    assert non_monotonic_notes(noisy) == []  # within one std


def test_rendered_report_explains_its_numbers(tmp_path: Path):
    histories = [[{"epoch": e, "train_loss": 3.0 / e} for e in range(1, 4)]]  # no validation
    runs = [dict(r) for r in RUNS]
    runs[1]["histories"] = histories
    results = {
        "retrieval": {"triCLIP": runs[1]["recall"], "quadCLIP": runs[4]["recall"]},
        "population": 100,
        "runs": runs,
        "limitations": ["The corpus is generated: emoji concepts, not real channels."],
    }
    files = render_report(results, tmp_path)
    md = files.markdown.read_text()
    html = files.html.read_text()
    # per-query-modality figures right under the headline row
    lines = md.splitlines()
    at = next(i for i, ln in enumerate(lines) if ln.startswith("| triCLIP | 55.30%"))
    assert lines[at + 1].startswith("| ↳ triCLIP: text queries | 7.20%")
    assert "triCLIP's text queries find their post first in 7.2% of cases against 55.3%" in md
    assert "### Table 1 — Training time per loss and size" in md
    assert md.count("Not monotonic: quadCLIP") >= 2  # Table 5's caption and a warning
    assert "The corpus is generated" in html and "Recall@K depends on the population" in html
    assert html.index("Limitations.") < html.index("Table 1")  # next to the headline
    # the loss-curve caption promises only what the plot draws
    caption = md[md.index("*Training curves.") :].splitlines()[0]
    assert "no validation set" in caption and "dashed" not in caption
    assert "one trial per model" in caption and "thin lines" not in caption


@pytest.mark.skipif(
    not any(Path(p).is_file() for p in CJK_FONT_FILES),
    reason="fonts-noto-cjk is not installed (scripts/setup.sh installs it)",
)
def test_cjk_account_names_are_drawn_not_boxed(tmp_path: Path):
    accounts = ["人民日报", "Рыбарь", "alpha"]
    points = [[float(i), float(i % 3)] for i in range(9)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_embedding_map(points, ["text", "image", "video"] * 3, accounts * 3, tmp_path / "m.png")
    missing = [str(w.message) for w in caught if "missing from font" in str(w.message)]
    assert missing == []
    assert (tmp_path / "m.png").read_bytes()[:4] == b"\x89PNG"
