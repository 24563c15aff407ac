"""One spelling for every name the project writes: metric names, the Ks, and the MLflow keys built from them.

A metric is ``<measure>@<k>`` (``ndcg@10``). MLflow keys may not contain ``@``, so the same metric is logged
as ``ndcg_at_10``, with a prefix that says which split it was measured on (``valid_ndcg_at_10``,
``test_ndcg_at_10``). Everything that reads or writes one of these goes through this module.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from core.errors import ConfigError

#: The accuracy measures the evaluator computes at each k.
MEASURES: tuple[str, ...] = ("ndcg", "recall", "hitrate")
#: The cut-offs every run reports unless told otherwise.
DEFAULT_KS: tuple[int, ...] = (10, 20)
#: The metric that drives validation, pruning and the champion gate unless a study names another.
DEFAULT_METRIC = "ndcg@10"
#: MLflow's tag linking a nested run to its parent.
PARENT_RUN_TAG = "mlflow.parentRunId"


def metric_k(metric: str) -> int:
    """``ndcg@10`` -> 10; a clear error for a metric the evaluator does not compute."""
    name, _, k = metric.partition("@")
    if name not in MEASURES or not k.isdigit() or int(k) < 1:
        raise ConfigError(f"metric must look like ndcg@10, recall@20 or hitrate@10, but got {metric!r}")
    return int(k)


def metric_names(ks: Iterable[int], measures: Sequence[str] = MEASURES) -> list[str]:
    """Every ``measure@k``, by k then measure: ``[ndcg@10, recall@10, hitrate@10, ndcg@20, ...]``."""
    return [f"{m}@{k}" for k in ks for m in measures]


def mlflow_key(metric: str, prefix: str = "") -> str:
    """``ndcg@10`` -> ``ndcg_at_10``; with ``prefix="test"``, ``test_ndcg_at_10``."""
    key = metric.replace("@", "_at_")
    return f"{prefix}_{key}" if prefix else key
