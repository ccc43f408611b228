"""The report's figures, drawn with matplotlib (Agg) from plain result dicts.

Each function writes one PNG and returns its path; the report embeds it (HTML, base64)
or links it (Markdown). Inputs are JSON-ready dicts, so any figure can be redrawn from a
saved ``results.json``.

Example:
    >>> plot_recall_curves({"triCLIP": {"ks": [1, 2], "mean": [.4, .5], "std": [0, 0]}},
    ...                    population=100, path="fig/recall.png")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nmodal.atomic import writing_file

MODALITY_MARKERS = {"text": "o", "image": "s", "video": "^", "audio": "D"}


#: sans-serif fonts tried first, in order, per glyph
PLOT_FONTS = ("DejaVu Sans", "Noto Sans CJK JP")
#: where Debian's fonts-noto-cjk (and Fedora's, Arch's) put the regular weight
CJK_FONT_FILES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _fonts_for(labels: Sequence[Any]) -> None:
    """Per-glyph font fallback (matplotlib >= 3.6) when ``labels`` (account names, classes)
    hold CJK characters: they are drawn with the Noto CJK font scripts/setup.sh installs,
    not as boxes. A font installed after matplotlib built its font cache is registered here
    (slow: a 19 MB collection, hence only when needed); absent fonts are skipped."""
    if not any(ord(c) >= 0x2E80 for label in labels for c in str(label)):
        return
    import matplotlib
    from matplotlib import font_manager

    known = {f.name for f in font_manager.fontManager.ttflist}
    if "Noto Sans CJK JP" not in known:
        for path in CJK_FONT_FILES:
            if Path(path).is_file():
                font_manager.fontManager.addfont(path)
                break
        known = {f.name for f in font_manager.fontManager.ttflist}
    families = [f for f in PLOT_FONTS if f in known]
    if families:
        matplotlib.rcParams["font.family"] = families


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with writing_file(path) as tmp:
        fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    _pyplot().close(fig)
    return path


def plot_loss_curves(
    histories: Mapping[str, Sequence[Sequence[Mapping[str, float]]]], path: str | Path
) -> Path:
    """One panel per model: training (solid) and validation (dashed) loss per epoch, one
    thin line per trial and the mean over trials in bold.

    ``histories[model]`` is a list of trials, each a list of epoch records
    ``{"epoch", "train_loss", "val_loss"?}`` as :func:`nmodal.train.train_model` returns.
    """
    plt = _pyplot()
    names = list(histories)
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        trials = [t for t in histories[name] if t]
        for key, style, colour in (("train_loss", "-", "C0"), ("val_loss", "--", "C1")):
            curves = [[r[key] for r in t if key in r] for t in trials]
            curves = [c for c in curves if c]
            if not curves:
                continue
            for c in curves:
                ax.plot(np.arange(1, len(c) + 1), c, style, color=colour, alpha=0.25, lw=0.8)
            n = min(len(c) for c in curves)
            mean = np.mean([c[:n] for c in curves], axis=0)
            label = "train" if key == "train_loss" else "validation"
            ax.plot(np.arange(1, n + 1), mean, style, color=colour, lw=2, label=f"{label} (mean)")
        ax.set(title=name, xlabel="epoch", ylabel="loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    return _save(fig, path)


def plot_recall_curves(
    curves: Mapping[str, Mapping[str, Sequence[float]]], population: int, path: str | Path
) -> Path:
    """Recall@K against K for each model (mean over trials, +- one std shaded), with the
    chance line K / population."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (name, c) in enumerate(curves.items()):
        ks = np.asarray(c["ks"], dtype=float)
        mean = np.asarray(c["mean"], dtype=float)
        std = np.asarray(c.get("std", np.zeros_like(mean)), dtype=float)
        ax.plot(ks, mean, color=f"C{i}", lw=2, label=name)
        ax.fill_between(
            ks, np.clip(mean - std, 0, 1), np.clip(mean + std, 0, 1), color=f"C{i}", alpha=0.2
        )
    kmax = max((max(c["ks"]) for c in curves.values()), default=population)
    grid = np.arange(1, kmax + 1)
    ax.plot(
        grid, np.minimum(grid / population, 1), ":", color="grey", label="chance (K / population)"
    )
    for k in (1, 5, 10, 25):
        ax.axvline(k, color="0.85", lw=0.8, zorder=0)
    ax.set(xlabel="K", ylabel="recall@K", ylim=(0, 1.02), xlim=(1, kmax), xscale="log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="lower right")
    return _save(fig, path)


def plot_embedding_map(
    points: Sequence[Sequence[float]],
    modality: Sequence[str],
    account: Sequence[str],
    path: str | Path,
    title: str = "",
) -> Path:
    """Two panels of the same 2-D map: points coloured by modality, and by account (marker
    shape = modality in both)."""
    plt = _pyplot()
    xy = np.asarray(points, dtype=float)
    mod = np.asarray(modality)
    acc = np.asarray(account)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
    mods = list(dict.fromkeys(mod.tolist()))
    accounts = sorted(set(acc.tolist()))
    _fonts_for(accounts)
    cmap = plt.get_cmap("tab10" if len(accounts) <= 10 else "tab20")
    for i, m in enumerate(mods):
        sel = mod == m
        marker = MODALITY_MARKERS.get(m, "o")
        axes[0].scatter(
            xy[sel, 0], xy[sel, 1], s=14, marker=marker, color=f"C{i}", alpha=0.75, label=m
        )
        for j, a in enumerate(accounts):
            both = sel & (acc == a)
            axes[1].scatter(
                xy[both, 0], xy[both, 1], s=14, marker=marker, color=cmap(j), alpha=0.75,
                label=a if i == 0 else None,
            )  # fmt: skip
    axes[0].set_title("coloured by modality")
    axes[1].set_title("coloured by account (marker = modality)")
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0].legend(fontsize="small", markerscale=1.5)
    axes[1].legend(
        fontsize="x-small", markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5)
    )
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_roc(results: Mapping[str, Mapping[str, Any]], path: str | Path, title: str) -> Path:
    """ROC curves of cross-validated classifiers (drawn by :func:`nmodal.classify.plot_roc`)."""
    from nmodal.classify import plot_roc as classify_plot_roc  # lazy: scikit-learn

    return Path(classify_plot_roc(results, path, title=title))
