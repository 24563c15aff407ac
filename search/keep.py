"""Which trials keep their full factor matrices in the tracking store (``--keep-factors``), and how much the
study's artifacts weigh.

A trial's run folder holds ``<model>_U.npy``, ``<model>_V.npy`` and the id ``mappings.json`` that names their
rows: about 15 MB a trial on a 1M-interaction log, 170 MB at the MovieLens-20M shape. Only a few trials can
matter later: the best ``K`` by value, and the one the selection rule (:mod:`search.selection`) picks. The
others keep their params, curves, metrics, metadata, history and score_range; their run's ``factor_files`` tag
says their factors were dropped and why.

**The rule, decided when each trial ends** (without knowing later trials). A trial keeps its factors while it
is among the best ``K`` so far, or within :func:`margin` of the best value so far; at each trial's end the
factor files of earlier trials now outside both sets are deleted. That keeps every trial that can matter:

- a trial among the final best ``K`` was among the best ``K`` when it ended (later trials only push it down);
- a trial the one-standard-error rule selects has a value ``>= v - se``, with ``v`` the final best value and
  ``se`` that best trial's standard error. ``se`` is not known before that trial exists, and the current
  best's standard error does not bound it (a later best may have a larger one). But per-user values of
  ``ndcg``, ``recall`` and ``hitrate`` lie in ``[0, 1]``, so their variance is at most ``v (1 - v)``, and
  ``se <= sqrt(v (1 - v) / (n - 1))`` over ``n`` validation users: :func:`margin`. ``v - margin(v)`` never
  falls as the best ``v`` grows (above ``v`` of about ``1/(4n)``; below that everything is kept), so a trial
  below it at any moment can never be selected, however the study goes on, resumed with a larger budget
  included. Under ``--select best`` the margin is zero: only the best so far can become the best.

Workers decide under the study's lock and only touch trials Optuna already calls complete, whose runs are
fully logged; a worker that has not yet seen another's trial keeps more, never less, and the end of the study
applies the rule once more over every trial, so one worker, many, or a resumed study keep the same set.
Factors are deleted only from local artifact folders (``file:`` URIs); on a store this cannot delete from (a
tracking server's), a trial outside the kept set when it ends never logs them, and factors logged earlier
stay, their tag says so.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from core.errors import ConfigError
from core.names import filter_value
from search.budget import study_lock_name
from search.locks import store_lock
from search.settings import StudySettings

#: ``--keep-factors`` unless told otherwise (``best:3``): the best three by value, and what the selection rule
#: may pick.
DEFAULT_KEEP: str = StudySettings.keep_factors
#: The trial run's tag saying what happened to its factor files.
FACTORS_TAG = "factor_files"
KEPT = "kept"
#: The study's user attribute holding its number of validation users (the margin's ``n``).
USERS_ATTR = "validation_users"


@dataclass(frozen=True)
class KeepFactors:
    """A parsed ``--keep-factors``: ``best`` is K, None for ``all`` (``none`` is K = 0)."""

    best: int | None

    @classmethod
    def parse(cls, text: str) -> KeepFactors:
        """``best:K`` (K >= 0), ``all`` or ``none``; anything else is a one-line ConfigError."""
        if text == "all":
            return cls(None)
        if text == "none":
            return cls(0)
        head, _, k = text.partition(":")
        if head != "best" or not k.isdigit():
            raise ConfigError(f"--keep-factors must be best:K, all or none, but got {text!r}")
        return cls(int(k))

    def why_dropped(self, rule: str) -> str:
        """The tag value of a trial whose factors are not kept."""
        among = f"not among the best {self.best}" if self.best else "--keep-factors none"
        reach = "below the best" if rule == "best" else "nor within the one-se rule's reach of the best"
        return f"dropped ({among}, {reach})"


@dataclass(frozen=True)
class Scored:
    """What the rule reads of a complete trial."""

    number: int
    value: float


def margin(best: float, users: int) -> float:
    """The largest standard error a trial with mean value ``best`` over ``users`` per-user values in
    ``[0, 1]`` can have, ``sqrt(best (1 - best) / (users - 1))``, or infinity where ``best - margin`` still
    falls as ``best`` grows (``best`` near 0, or fewer than two users): there every trial is kept."""
    if users < 2 or not 0.0 < best <= 1.0:
        return math.inf
    if best == 1.0:
        return 0.0
    root = math.sqrt(best * (1.0 - best) / (users - 1))
    slope = 1.0 - (1.0 - 2.0 * best) / (2.0 * root * (users - 1))  # d/dbest of best - root
    if slope < 0.0:
        return math.inf
    return root * (1.0 + 1e-9) + 1e-12  # never below the evaluator's own rounding of the same number


def kept(trials: Sequence[Scored], keep: KeepFactors, *, rule: str, users: int) -> set[int]:
    """Numbers of the ``trials`` whose factors are kept: all (``all``), else the best ``K`` by value (the
    earlier on ties, as :func:`search.selection.select_trial`) and those the rule ``--select`` may still
    pick (module docstring)."""
    if keep.best is None:
        return {t.number for t in trials}
    if not trials:
        return set()
    ranked = sorted(trials, key=lambda t: (-t.value, t.number))
    best = ranked[0].value
    floor = best if rule == "best" else best - margin(best, users)
    return {t.number for t in ranked[: keep.best]} | {t.number for t in trials if t.value >= floor}


def factor_files(folder: Path) -> list[Path]:
    """The files of a run folder that hold or index the factors: ``*.npy`` and ``mappings.json`` (which
    names the factors' rows: without them it names nothing)."""
    return sorted([*folder.glob("*.npy"), *folder.glob("mappings.json")])


def local_folder(artifact_uri: str) -> Path | None:
    """The local folder behind a ``file:`` (or plain path) artifact URI; None for anything else."""
    parts = urlsplit(artifact_uri)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" and artifact_uri:
        return Path(artifact_uri)
    return None


def drop_factors(artifact_uri: str, folder: str = "run") -> bool:
    """Delete a run's factor files; False where its artifacts are not a local folder (nothing deleted).
    Files already gone count as deleted: a second worker or a rerun repeats it harmlessly."""
    where = local_folder(artifact_uri)
    if where is None:
        return False
    for path in factor_files(where / folder):
        path.unlink(missing_ok=True)
    return True


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            total += (Path(root) / name).stat().st_size
    return total


def artifact_bytes(client: Any, experiment_id: str, study_name: str, skip: Iterable[str] = ()) -> int | None:
    """Bytes of the artifacts of every run of the study (its parent, trial and final runs) and of the models
    they logged, file sizes summed; ``skip`` names paths (relative to a run's artifact folder) left out.
    None where one of them is not a local folder (a tracking server's store)."""
    runs = client.search_runs(
        [experiment_id], f"tags.study_name = {filter_value(study_name)}", max_results=50000
    )
    folders: list[str] = [r.info.artifact_uri for r in runs]
    for run in runs:
        models = client.search_logged_models(
            [experiment_id], filter_string=f"source_run_id = {filter_value(run.info.run_id)}"
        )
        folders += [m.artifact_location for m in models]
    total = 0
    for uri in folders:
        where = local_folder(uri)
        if where is None:
            return None
        total += _folder_bytes(where) if where.is_dir() else 0
        total -= sum((where / s).stat().st_size for s in skip if (where / s).is_file())
    return total


class Keeper:
    """The rule applied to one study's runs: at each complete trial's end (:meth:`trial_ended`) and once at
    the study's end (:meth:`settle`), under the study's lock."""

    def __init__(self, settings: StudySettings, study: Any, client: Any, experiment_id: str) -> None:
        self.keep = KeepFactors.parse(settings.keep_factors)
        self.rule = settings.select
        self.settings = settings
        self.study = study
        self.client = client
        self.experiment_id = experiment_id

    def trial_ended(self, number: int, value: float, users: int) -> tuple[bool, str]:
        """Whether trial ``number`` (complete with ``value`` over ``users`` validation users, not yet told
        to Optuna) logs its factors, and its tag; earlier trials now outside the kept set lose theirs."""
        if self.keep.best is None:
            return True, KEPT
        with store_lock(self.settings.storage_url, study_lock_name(self.study.study_name)):
            if self.study.user_attrs.get(USERS_ATTR) != users:
                self.study.set_user_attr(USERS_ATTR, users)
            scored = [s for s in self._complete() if s.number != number] + [Scored(number, value)]
            keep = kept(scored, self.keep, rule=self.rule, users=users)
            self._drop_outside(keep, pending=number)
        if number in keep:
            return True, KEPT
        return False, self.keep.why_dropped(self.rule).replace("dropped", "not logged", 1)

    def settle(self) -> None:
        """The rule once more over every trial: the kept set no longer depends on which worker saw what.
        Call it under the study's lock, when no trial is running."""
        users = self.study.user_attrs.get(USERS_ATTR)
        if self.keep.best is None or not isinstance(users, int):
            return
        self._drop_outside(kept(self._complete(), self.keep, rule=self.rule, users=users))

    def _complete(self) -> list[Scored]:
        from optuna.trial import TrialState

        done = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return [Scored(t.number, float(t.value)) for t in done]

    def _drop_outside(self, keep: set[int], pending: int | None = None) -> None:
        """Delete the factor files of this study's trials that hold them and are complete outside ``keep``,
        or ended otherwise (failed after logging them); running trials are left alone."""
        from optuna.trial import TrialState

        states = {t.number: t.state for t in self.study.get_trials(deepcopy=False)}
        mine = (
            f"tags.kind = 'trial' and tags.study_name = {filter_value(self.study.study_name)} "
            f"and tags.{FACTORS_TAG} = '{KEPT}'"
        )
        why = self.keep.why_dropped(self.rule)
        for run in self.client.search_runs([self.experiment_id], mine, max_results=50000):
            number = int(run.data.tags.get("trial_number", -1))
            state = states.get(number)
            if number == pending or state is None or not state.is_finished():
                continue
            if state == TrialState.COMPLETE and number in keep:
                continue
            if drop_factors(run.info.artifact_uri):
                self.client.set_tag(run.info.run_id, FACTORS_TAG, why)
            else:  # asked once: this store cannot delete them
                self.client.set_tag(run.info.run_id, FACTORS_TAG, f"{KEPT} (the store cannot delete)")
