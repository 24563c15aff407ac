"""The numbers a report recomputes rather than reads: the final run folder's stored factors evaluated again
with the one evaluator (per-user values, top items), popularity on the same users for scale, and a sample
of raw scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from core.artifacts import RunArtifacts
from core.baselines import PopularityScorer
from core.evaluate import EvalResult, evaluate, evaluate_scorer
from reports.sources import ReportError, StudyResults
from search.record import StudyRecord

KS = (10, 20)
SCORE_SAMPLE_USERS = 500


@dataclass(frozen=True)
class FolderEval:
    """A run folder evaluated on its own test split: per-user values and top items kept."""

    result: EvalResult
    history: sp.csr_matrix  # train + validation: excluded from test ranking
    truth: sp.csr_matrix


def evaluate_folder(run: RunArtifacts, ks: Sequence[int] = KS) -> FolderEval:
    """Test metrics from the stored factors alone, exactly as the study computed them."""
    if not len(run.test):
        raise ReportError(f"{run.path} holds no test split (a trial folder?); use the final run's folder")
    history = run.matrix("train", "valid")
    truth = run.matrix("test")
    result = evaluate(run.user_factors, run.item_factors, truth, history, ks=ks, keep_top_items=True)
    return FolderEval(result, history, truth)


def score_sample(
    run: RunArtifacts, history: sp.csr_matrix, *, max_users: int = SCORE_SAMPLE_USERS
) -> np.ndarray:
    """Scores of validation users' unseen items (a seeded sample of users), as ``score_range`` sees them."""
    valid = run.matrix("valid")
    users = np.flatnonzero(np.diff(valid.indptr) > 0)
    if len(users) == 0:
        users = np.arange(run.user_factors.shape[0])
    if len(users) > max_users:
        users = np.sort(np.random.default_rng(0).choice(users, size=max_users, replace=False))
    scores = np.asarray(run.user_factors[users] @ run.item_factors.T, dtype=np.float32)
    seen = history[users].toarray() > 0
    return scores[~seen]


@dataclass
class StudyReport:
    """The figures' inputs, computed once, turned into both the HTML and the Markdown."""

    results: StudyResults
    evaluation: FolderEval | None
    popularity: EvalResult | None
    scores: np.ndarray | None

    @property
    def record(self) -> StudyRecord:
        return self.results.record

    def recomputed_matches(self) -> bool | None:
        """Whether the stored factors give back the test numbers in summary.json (they must)."""
        test = self.record.test
        if self.evaluation is None or test is None:
            return None
        got = self.evaluation.result.metrics
        return all(abs(got[m] - v) < 1e-6 for m, v in test.items() if m in got)


def analyse(results: StudyResults) -> StudyReport:
    if results.final is None:
        return StudyReport(results, None, None, None)
    ev = evaluate_folder(results.final)
    pop = evaluate_scorer(
        PopularityScorer.fit(ev.history), ev.truth, ev.history, ks=KS, users=ev.result.users
    )
    return StudyReport(results, ev, pop, score_sample(results.final, ev.history))
