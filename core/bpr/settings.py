"""The setting rules both BPR trainers (:class:`core.bpr.BPR`, :class:`core.bpr.torch_trainer.TorchBPR`)
share: what counts as an integer or a real number, Hard-BPR's constants, and how the per-row L2 weights
default to ``regularization``."""

from __future__ import annotations

import math

import numpy as np

from core.errors import ConfigError


def is_int(x: object) -> bool:
    """An integer setting: a Python or numpy integer, not a bool."""
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


def is_real(x: object) -> bool:
    """A real setting: a finite Python or numpy number, not a bool."""
    return (
        isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool) and math.isfinite(x)
    )


def per_row_regularization(
    regularization: float, reg_user: float | None, reg_pos: float | None, reg_neg: float | None
) -> tuple[float, float, float]:
    """The L2 weights of the user, the positive and the negative item: each ``reg_*`` that is None is
    ``regularization`` (the rule of both BPR trainers and of a study's first trial)."""
    base = float(regularization)
    user, pos, neg = (base if value is None else float(value) for value in (reg_user, reg_pos, reg_neg))
    return user, pos, neg


def check_hard_bpr(a: float, b: float, c: float) -> None:
    """Hard-BPR's constants (``hard_bpr_a/b/c``), as both trainers take them: ``a >= 0``, ``b`` finite,
    ``c > 0``."""
    if not is_real(a) or a < 0:
        raise ConfigError(f"hard_bpr_a must be a finite number >= 0, but got hard_bpr_a={a!r}.")
    if not is_real(b):
        raise ConfigError(f"hard_bpr_b must be a finite number, but got hard_bpr_b={b!r}.")
    if not is_real(c) or c <= 0:
        raise ConfigError(f"hard_bpr_c must be a finite number > 0, but got hard_bpr_c={c!r}.")
