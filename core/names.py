"""One spelling for every name the project writes: metric names, the Ks, the MLflow keys built from them, and
the study names that end up in file names, lock names and MLflow search filters.

A metric is ``<measure>@<k>`` (``ndcg@10``). MLflow keys may not contain ``@``, so the same metric is logged
as ``ndcg_at_10``, with a prefix that says which split it was measured on (``valid_ndcg_at_10``,
``test_ndcg_at_10``). Everything that reads or writes one of these goes through this module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

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


#: The registry aliases: the version that serves, and the runner-up on the champion's data.
CHAMPION_ALIAS = "champion"
CHALLENGER_ALIAS = "challenger"
#: The model-version tag naming the metric the version is ranked on (the study's ``--metric``); a version
#: registered before this tag existed is ranked on :data:`DEFAULT_METRIC`, as it was then.
GATE_METRIC_TAG = "gate_metric"


def gate_metric(tags: Mapping[str, str]) -> str:
    """The metric a version is ranked on: its ``gate_metric`` tag, else ndcg@10 (an older version)."""
    return tags.get(GATE_METRIC_TAG, DEFAULT_METRIC)


def gate_key(metric: str) -> str:
    """The tag (and final-run metric) holding a version's validation value: ``valid_ndcg_at_10``."""
    return mlflow_key(metric, "valid")


#: What a study name may hold: it becomes a file name (``reports/out/<name>.html``), a lock name and an MLflow
#: tag value, so it is ASCII letters and digits, then also ``.``, ``_`` and ``-``; at most 100 characters.
STUDY_NAME_RULE = "ASCII letters, digits, '.', '_' and '-', first a letter or digit, up to 100 of them"
STUDY_NAME_MAX = 100
_STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9._-]+")


def check_study_name(name: str) -> str:
    """``name`` when it follows :data:`STUDY_NAME_RULE`; a one-line error saying the rule otherwise. A name is
    data, never a path (``../x``, ``a/b``) or query text (``a'b``)."""
    if len(name) > STUDY_NAME_MAX or not _STUDY_NAME.fullmatch(name):
        shown = name if len(name) <= 60 else f"{name[:57]}..."
        raise ConfigError(f"--study-name {shown!r} is not a valid study name: use {STUDY_NAME_RULE}")
    return name


def study_name_from(*parts: str) -> str:
    """A valid study name made of ``parts`` joined by ``-`` (a file's stem may hold anything): characters
    outside the rule become ``_``; a name too long is cut and ends in a hash of the whole."""
    joined = "-".join(_NOT_ALLOWED.sub("_", part) for part in parts).lstrip("._-") or "study"
    if len(joined) > STUDY_NAME_MAX:
        digest = hashlib.sha256(joined.encode()).hexdigest()[:12]
        joined = f"{joined[: STUDY_NAME_MAX - 13]}-{digest}"
    return check_study_name(joined)


def file_in(folder: str | Path, name: str) -> Path:
    """``folder / name`` after checking that it stays inside ``folder`` (no ``..``, no absolute name, no
    link out of it): every file named after a user's string is built here."""
    base = Path(folder).resolve()
    path = (base / name).resolve()
    if path.parent != base:
        raise ConfigError(f"{name!r} would be written outside {base}")
    return path


def filter_value(value: str) -> str:
    """``value`` as a quoted literal for an MLflow search filter (``tags.study_name = <this>``). MLflow's
    filter language has no escape character: a value with a single quote is wrapped in double quotes, and a
    value holding both kinds cannot be searched for, which is a clear error, never a broken query."""
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ConfigError(f"{value!r} holds both kinds of quote: MLflow cannot search for it")
