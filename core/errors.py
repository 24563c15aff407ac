"""Named failures, so that callers (the CLI, a study's ``catch=``) can tell them apart from bugs."""

from __future__ import annotations


class CftuneError(Exception):
    """Base class of every error cftune raises on purpose."""


class DataError(CftuneError, ValueError):
    """Bad input data. The message names the file, where in it (``row`` counts ``unit``: the 1-based line of
    a text file, header included, or the 1-based record of a Parquet file) and the column when known."""

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        row: int | None = None,
        column: str | None = None,
        unit: str = "line",
    ) -> None:
        self.message = message
        self.source = source
        self.row = row
        self.column = column
        self.unit = unit
        where = []
        if source:
            where.append(str(source))
        if row is not None:
            where.append(f"{unit} {row}")
        if column:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class ConfigError(CftuneError, ValueError):
    """An invalid hyperparameter, preset name, or search-space entry."""


class ModelFitError(CftuneError, RuntimeError):
    """Training diverged (NaN or inf in loss or factors); nothing is saved."""


class StopTraining(Exception):
    """Raised by a per-iteration callback to end training early (early stopping, pruning).

    The trainer catches it, keeps the factors of the last finished iteration and records why it stopped.
    Pruning wraps its own exception instead, so that the study sees ``TrialPruned``.
    """


class StoreFault(CftuneError):
    """A store could not be written or read: read-only, full, unreachable, or its schema belongs to another
    version. The message names the store (Optuna storage, MLflow tracking store, artifact store, output
    folder) and the cause in one line; what the store holds is left as it was before the failing write."""
