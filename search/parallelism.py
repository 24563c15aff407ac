"""How many local workers a study runs when ``--workers`` is not given, and so how many threads a trial has.

One worker training on all of the machine's cores is the default. implicit's ALS solves each user on its
own and scales with its threads, and on small data a trial is too short for a second process to earn its
start. BPR on a large log is the exception. Its kernel is Hogwild SGD: its threads write the same popular
item rows, and on a small catalog they queue for them. On the ML-1M shape (``bench/scale.py --cli 1m``:
3,706 items) at 256 factors, one thread trains an epoch in 0.54 s and two threads in 0.42 s, while two
one-thread processes side by side take 0.585 s each: the two processes do 1.43x the work of the two threads.
On the ML-20M shape (26,744 items) two threads do 2.08x what one does at 256 factors, and 1.6x at 64.

So where BPR's step budget applies (:func:`search.step_budget.applies`: the kernel's BPR on more than
``REFERENCE_LIKED`` liked training interactions, where every trial is dear), a study runs one
single-threaded worker per core. Memory caps it: each worker holds its own copy of the data, so a helper is
started only while twice this process's resident size fits in half of the memory still available. The
60-trial TPE study on the ML-1M shape took 827 s with one worker and 468 s with two
(``bench/results/scale.json``). ``--workers N`` chooses for itself; ``--workers 1`` keeps one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import psutil

from search.step_budget import applies, liked_interactions

if TYPE_CHECKING:
    from core.prepare import Prepared
    from search.settings import StudySettings

#: Of the memory available when the study starts, the share its helper workers may take.
MEMORY_SHARE = 0.5
#: A helper's peak, in resident sizes of this process after the data is prepared (its own copy, and the
#: scores and factors its trials hold).
HELPER_FOOTPRINT = 2.0


def default_workers(
    model: str,
    fixed: dict[str, Any],
    liked: int,
    trials: int,
    *,
    cores: int | None = None,
    resident: int | None = None,
    available: int | None = None,
) -> int:
    """Local workers for a study without ``--workers``: one per core, as many as memory holds and no more
    than its trials, where BPR's step budget applies (the module docstring); one everywhere else.
    ``cores``, ``resident`` and ``available`` (bytes) default to this machine and this process."""
    if not applies(model, fixed, liked) or trials <= 1:
        return 1
    cores = (os.cpu_count() or 1) if cores is None else cores
    resident = psutil.Process().memory_info().rss if resident is None else resident
    available = psutil.virtual_memory().available if available is None else available
    helpers = int(MEMORY_SHARE * available // max(1.0, HELPER_FOOTPRINT * resident))
    return max(1, min(cores, trials, 1 + helpers))


def resolve_workers(
    settings: StudySettings, fixed: dict[str, Any], prepared: Prepared, trials: int
) -> str | None:
    """Set ``settings.workers`` where ``--workers`` was not given (before any trial: it sets each trial's
    threads), and return the line that says so when it is more than one."""
    if settings.workers is not None:
        return None
    settings.workers = default_workers(settings.model, fixed, liked_interactions(prepared), trials)
    if settings.workers == 1:
        return None
    return (
        f"workers: {settings.workers} on this machine, one thread each (BPR on a large log: its threads "
        "share item rows, processes do not; --workers 1 for one: search.parallelism)"
    )
