"""Precision-recall (WIDER FACE) and ROC (FDDB) figures, matplotlib Agg backend, PNG.

Like the toolkit's ``wider_plot.m`` and the Poly-NL supplementary's Figure 1:
one panel per setting, every method drawn on it, methods ordered by AP and
labelled ``name (AP)`` in the legend.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

__all__ = ["plot_pr_curves", "plot_fddb_roc"]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _sibling(out_png: Path, suffix: str) -> Path:
    return out_png.with_name(f"{out_png.stem}_{suffix}{out_png.suffix or '.png'}")


def _pr_axes(ax, results_by_name: Mapping[str, dict], setting: str) -> None:
    entries = []
    for name, res in results_by_name.items():
        curve = res["pr_curves"][setting]
        rec = np.asarray(curve["recall"], dtype=float)
        prec = np.asarray(curve["precision"], dtype=float)
        ok = np.isfinite(rec) & np.isfinite(prec)
        entries.append((float(res[setting]), name, rec[ok], prec[ok]))
    entries.sort(key=lambda e: -e[0])  # wider_plot.m sorts methods by AP
    colors = _pyplot().cm.tab10(np.linspace(0, 1, 10))
    for k, (ap, name, rec, prec) in enumerate(entries):
        ax.plot(rec, prec, lw=2, color=colors[k % 10], label=f"{name} ({ap:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(f"WIDER FACE val: {setting.capitalize()}")
    ax.grid(True, alpha=0.4)
    ax.legend(loc="lower left", fontsize=8)


def plot_pr_curves(
    results_by_name: Mapping[str, dict],
    out_png: str | Path,
    settings: Sequence[str] = ("easy", "medium", "hard"),
    per_setting_files: bool = True,
) -> list[Path]:
    """Draw the PR curves of one or several results (``{name: evaluate(...) result}``).

    Writes ``out_png`` with one panel per setting side by side and, with
    ``per_setting_files``, one figure per setting as ``<stem>_<setting>.png``
    beside it.  Returns the written paths.
    """
    plt = _pyplot()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    settings = [s for s in settings if all(s in r.get("pr_curves", {}) for r in results_by_name.values())]
    written = []
    fig, axes = plt.subplots(1, len(settings), figsize=(5 * len(settings), 4.6), squeeze=False)
    for ax, s in zip(axes[0], settings):
        _pr_axes(ax, results_by_name, s)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    written.append(out_png)
    if per_setting_files:
        for s in settings:
            fig, ax = plt.subplots(figsize=(6, 5))
            _pr_axes(ax, results_by_name, s)
            fig.tight_layout()
            path = _sibling(out_png, s)
            fig.savefig(path, dpi=120)
            plt.close(fig)
            written.append(path)
    return written


def plot_fddb_roc(results_by_name: Mapping[str, "object"], out_png: str | Path, max_fp: int = 1000) -> list[Path]:
    """FDDB figure: discrete ROC, continuous ROC (TPR vs FP up to ``max_fp``) and the PR curve at IoU 0.5.

    ``results_by_name`` maps names to :class:`widerface_eval.fddb.FDDBResult`.
    Writes ``out_png`` (three panels) plus ``<stem>_discrete.png``,
    ``<stem>_continuous.png`` and ``<stem>_pr50.png``.
    """
    plt = _pyplot()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    colors = plt.cm.tab10(np.linspace(0, 1, 10))

    def draw(ax, kind):
        items = sorted(
            results_by_name.items(),
            key=lambda kv: -(kv[1].ap50 if kind == "pr50" else kv[1].tpr_at(max_fp, kind)),
        )
        for k, (name, r) in enumerate(items):
            if kind == "pr50":
                ax.plot(r.pr_recall, r.pr_precision, lw=2, color=colors[k % 10], label=f"{name} (AP50 {r.ap50:.3f})")
            else:
                tpr = r.tpr_discrete if kind == "discrete" else r.tpr_continuous
                fp = np.concatenate([[0], r.fp])
                tpr = np.concatenate([[0], tpr])
                ax.plot(fp, tpr, lw=2, color=colors[k % 10], label=f"{name} ({r.tpr_at(max_fp, kind):.3f} @{max_fp} FP)")
        if kind == "pr50":
            ax.set_xlim(0, 1)
            ax.set_xlabel("Recall")
            ax.set_ylabel("Precision")
            ax.set_title("FDDB: PR at IoU 0.5 (ellipse boxes)")
            ax.legend(loc="lower left", fontsize=8)
        else:
            ax.set_xlim(0, max_fp)
            ax.set_xlabel("False positives")
            ax.set_ylabel("True positive rate")
            ax.set_title(f"FDDB: {kind} ROC")
            ax.legend(loc="lower right", fontsize=8)
        ax.set_ylim(0, 1.01)
        ax.grid(True, alpha=0.4)

    kinds = ("discrete", "continuous", "pr50")
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    for ax, kind in zip(axes, kinds):
        draw(ax, kind)
    fig.tight_layout()
    fig.savefig(out_png, dpi=120)
    plt.close(fig)
    written = [out_png]
    for kind in kinds:
        fig, ax = plt.subplots(figsize=(6, 5))
        draw(ax, kind)
        fig.tight_layout()
        path = _sibling(out_png, kind)
        fig.savefig(path, dpi=120)
        plt.close(fig)
        written.append(path)
    return written
