"""Plotly figure builders, one small function per picture.

Optuna's own plots are used where they already say the right thing (history, parallel coordinates,
importances, slices); the per-trial validation curves are drawn here because a pruned trial must be seen to
stop. Distributions are binned with NumPy first, so a report over 100k users stays a few hundred kB.
A builder that cannot draw returns ``(None, reason)``; the page shows the reason instead of an empty plot.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import plotly.graph_objects as go
from optuna.trial import TrialState
from optuna.visualization import (
    plot_optimization_history,
    plot_parallel_coordinate,
    plot_param_importances,
    plot_slice,
)

from core.evaluate import Interval
from search.record import SegmentCounts

Figure = Any  # plotly.graph_objects.Figure (plotly ships no type hints)
Drawn = tuple[Figure | None, str]

COLORS = ("#2563eb", "#9ca3af", "#f59e0b", "#10b981", "#8b5cf6", "#ef4444")
PRUNED = "#dc2626"
LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "font": {"family": "-apple-system, Segoe UI, Roboto, Helvetica, Arial, sans-serif", "size": 13},
}


def _style(fig: Figure, title: str, height: int = 420) -> Figure:
    fig.update_layout(**LAYOUT, title={"text": title, "x": 0.0, "xanchor": "left"}, height=height)
    return fig


def _complete(study: Any) -> list[Any]:

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def optimization_history(study: Any, metric: str) -> Drawn:
    """Each completed trial's validation metric, with the best-so-far line."""

    if not _complete(study):
        return None, "no completed trial yet"
    fig = plot_optimization_history(study, target_name=f"validation {metric}")
    return _style(fig, f"Optimization history: validation {metric}, best so far"), ""


def intermediate_curves(study: Any, metric: str) -> Drawn:
    """Validation metric per training step for every trial; pruned trials in red, ending in a cross where
    they were stopped, the best trial drawn thick."""

    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    if not trials:
        return None, "no trial reported intermediate values"
    complete = _complete(study)
    best = max(complete, key=lambda t: t.value).number if complete else None
    fig = go.Figure()
    shown: set[str] = set()
    for t in trials:
        steps = sorted(t.intermediate_values)
        values = [t.intermediate_values[s] for s in steps]
        pruned = t.state == TrialState.PRUNED
        group = "best" if t.number == best else "pruned" if pruned else t.state.name.lower()
        color = COLORS[0] if group == "best" else PRUNED if pruned else COLORS[1]
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=values,
                mode="lines+markers" if len(steps) < 3 else "lines",
                line={
                    "color": color,
                    "width": 3.5 if group == "best" else 1.4,
                    "dash": "dot" if pruned else None,
                },
                name={"best": f"best (trial {best})", "pruned": "pruned", "complete": "completed"}.get(
                    group, group
                ),
                legendgroup=group,
                showlegend=group not in shown,
                hovertemplate=f"trial {t.number} ({t.state.name.lower()})<br>step %{{x}}<br>"
                f"{metric} %{{y:.4f}}<extra></extra>",
            )
        )
        shown.add(group)
        if pruned:
            fig.add_trace(
                go.Scatter(
                    x=[steps[-1]],
                    y=[values[-1]],
                    mode="markers",
                    marker={"symbol": "x", "size": 11, "color": PRUNED},
                    legendgroup="pruned",
                    showlegend=False,
                    hovertemplate=f"trial {t.number} pruned at step {steps[-1]}<extra></extra>",
                )
            )
    fig.update_xaxes(title="training step (ALS iteration / BPR epoch)")
    fig.update_yaxes(title=f"validation {metric}")
    return _style(fig, f"Validation {metric} during training, per trial (× = pruned there)", 460), ""


def parallel_coordinates(study: Any, metric: str) -> Drawn:

    if len(_complete(study)) < 2:
        return None, "needs at least 2 completed trials"
    fig = plot_parallel_coordinate(study, target_name=f"validation {metric}")
    return _style(fig, "Parallel coordinates: each line is a completed trial", 460), ""


def param_importances(study: Any, metric: str) -> Drawn:
    """fANOVA importances; undefined with fewer than 2 completed trials or when no parameter varied."""

    if len(_complete(study)) < 2:
        return None, "importances need at least 2 completed trials"
    try:
        fig = plot_param_importances(study, target_name=f"validation {metric}")
    except (RuntimeError, ValueError) as err:  # e.g. every completed trial has the same parameters
        return None, f"importances cannot be computed: {err}"
    return _style(fig, "Hyperparameter importances (fANOVA over completed trials)", 380), ""


def slices(study: Any, metric: str) -> Drawn:

    if not _complete(study):
        return None, "no completed trial yet"
    fig = plot_slice(study, target_name=f"validation {metric}")
    return _style(fig, f"Slice plots: validation {metric} against each hyperparameter", 400), ""


def metric_bars(groups: Mapping[str, Mapping[str, Interval]], title: str) -> Figure:
    """Grouped bars with asymmetric CI whiskers: ``{label: {metric: interval}}``."""

    fig = go.Figure()
    for n, (label, metrics) in enumerate(groups.items()):
        names = list(metrics)
        values = [metrics[m].value for m in names]
        fig.add_trace(
            go.Bar(
                name=label,
                x=names,
                y=values,
                marker_color=COLORS[n % len(COLORS)],
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [metrics[m].high - metrics[m].value for m in names],
                    "arrayminus": [metrics[m].value - metrics[m].low for m in names],
                    "color": "#374151",
                },
                text=[f"{v:.3f}" for v in values],
                textposition="outside",
                hovertemplate=f"{label}<br>%{{x}} %{{y:.4f}}<extra></extra>",
            )
        )
    fig.update_layout(barmode="group", legend={"orientation": "h", "y": -0.15})
    fig.update_yaxes(title="mean over test users (95% CI)", rangemode="tozero")
    return _style(fig, title)


def binned_histogram(
    series: Mapping[str, np.ndarray],
    *,
    title: str,
    xaxis: str,
    bins: int | np.ndarray = 20,
    value_range: tuple[float, float] | None = None,
    marks: Mapping[str, float] | None = None,
) -> Figure:
    """Overlaid histograms as share of each series (binned here), with optional vertical marks."""

    arrays = {k: np.asarray(v, dtype=float) for k, v in series.items()}
    finite = np.concatenate([a[np.isfinite(a)] for a in arrays.values()]) if arrays else np.empty(0)
    lo, hi = value_range or ((float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0))
    edges = bins if isinstance(bins, np.ndarray) else np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
    centers, widths = (edges[:-1] + edges[1:]) / 2, np.diff(edges)
    fig = go.Figure()
    for n, (label, values) in enumerate(arrays.items()):
        counts, _ = np.histogram(values[np.isfinite(values)], bins=edges)
        share = 100.0 * counts / max(1, counts.sum())
        fig.add_trace(
            go.Bar(
                x=centers,
                y=share,
                width=widths,
                name=f"{label} (n={values.size:,})",
                marker_color=COLORS[n % len(COLORS)],
                opacity=0.65 if len(arrays) > 1 else 0.9,
                hovertemplate=f"{label}<br>%{{x:.3g}}: %{{y:.1f}}%<extra></extra>",
            )
        )
    for n, (label, x) in enumerate((marks or {}).items()):
        fig.add_vline(
            x=x,
            line={"color": COLORS[(n + 2) % len(COLORS)], "dash": "dash"},
            annotation_text=f"{label} {x:.3g}",
            annotation_position="top" if n % 2 == 0 else "bottom",
        )
    fig.update_layout(barmode="overlay", bargap=0, legend={"orientation": "h", "y": -0.18})
    fig.update_xaxes(title=xaxis)
    fig.update_yaxes(title="share (%)")
    return _style(fig, title)


def segment_counts(segmentation: SegmentCounts) -> Figure:
    """Trainable vs cold-start users: how many users the model actually serves from its factors."""

    labels = ["trainable (in the model)", "cold-start (popularity fallback)"]
    values = [segmentation.users_trainable, segmentation.users_cold_start]
    total = max(1, sum(values))
    fig = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=[COLORS[0], COLORS[1]],
            text=[f"{v:,} ({100 * v / total:.1f}%)" for v in values],
            textposition="auto",
            hovertemplate="%{y}: %{x:,}<extra></extra>",
        )
    )
    fig.update_xaxes(title="users")
    return _style(fig, f"Users: {total:,} in the data, segmented by the rule {segmentation.rule}", 260)


def overlap_histogram(shared: Mapping[str, np.ndarray], k: int) -> Figure:
    """Per-user count of items two top-k lists have in common, one series per pair."""
    edges = np.arange(-0.5, k + 1.5)
    return binned_histogram(
        shared,
        title=f"Items shared by the two top-{k} lists, per test user",
        xaxis=f"shared items (of {k})",
        bins=edges,
    )


def paired_scatter(a: np.ndarray, b: np.ndarray, label_a: str, label_b: str, metric: str) -> Figure:
    """Per-user metric of one model against the other; points above the diagonal favour ``b``."""

    pairs, counts = np.unique(np.column_stack([np.round(a, 3), np.round(b, 3)]), axis=0, return_counts=True)
    fig = go.Figure(
        go.Scatter(
            x=pairs[:, 0],
            y=pairs[:, 1],
            mode="markers",
            marker={"size": 5 + 3 * np.log2(counts), "color": COLORS[0], "opacity": 0.6},
            text=[f"{c} users" for c in counts],
            hovertemplate=f"{label_a} %{{x}}<br>{label_b} %{{y}}<br>%{{text}}<extra></extra>",
            showlegend=False,
        )
    )
    top = float(max(1e-9, pairs.max())) if len(pairs) else 1.0
    fig.add_shape(type="line", x0=0, y0=0, x1=top, y1=top, line={"color": COLORS[1], "dash": "dash"})
    fig.update_xaxes(title=f"{label_a} {metric}")
    fig.update_yaxes(title=f"{label_b} {metric}")
    return _style(fig, f"Per-user test {metric}: {label_b} (up) against {label_a} (right)", 460)


def simple_bars(values: Mapping[str, float], *, title: str, yaxis: str, percent: bool = False) -> Figure:

    labels = list(values)
    ys = [values[k] * (100 if percent else 1) for k in labels]
    fig = go.Figure(
        go.Bar(
            x=labels,
            y=ys,
            marker_color=[COLORS[n % len(COLORS)] for n in range(len(labels))],
            text=[f"{y:.1f}%" if percent else f"{y:.3g}" for y in ys],
            textposition="outside",
        )
    )
    fig.update_yaxes(title=yaxis, rangemode="tozero")
    return _style(fig, title, 340)


__all__ = [
    "binned_histogram",
    "intermediate_curves",
    "metric_bars",
    "optimization_history",
    "overlap_histogram",
    "paired_scatter",
    "parallel_coordinates",
    "param_importances",
    "segment_counts",
    "simple_bars",
    "slices",
]
