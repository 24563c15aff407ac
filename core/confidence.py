"""From interactions to ALS confidence values.

In the data this product was built for, ~95% of ratings are five stars, so the rating alone hardly tells a
"genuine" five-star from a bare one. The review adds that signal: ``confidence = rating + comment_quality``,
with quality +0.2 for a review longer than 10 words, +0.3 for a positive keyword, +0.5 for an attached image
(range 1.0-6.0 on a 1-5 scale). ALS then weighs each observed cell with ``C = 1 + alpha * confidence`` and
each missing one with 1 (:func:`core.als.confidence_weights`); the default alpha is set from the mean
confidence (:mod:`core.defaults`).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from core.interactions import Interactions

ConfidenceMode = Literal["rating_quality", "rating", "binary", "log_count"]
CONFIDENCE_MODES: tuple[str, ...] = ("rating_quality", "rating", "binary", "log_count")

POSITIVE_KEYWORDS_VI: tuple[str, ...] = (
    "tốt", "đẹp", "hài lòng", "thích", "ưng", "tuyệt", "xuất sắc", "đáng tiền", "chất lượng cao",
    "nhanh", "chuẩn", "đúng mô tả", "ok lắm", "yêu", "ổn", "sẽ mua lại", "rất hài lòng", "thơm",
)  # fmt: skip
POSITIVE_KEYWORDS_EN: tuple[str, ...] = (
    "great", "love", "excellent", "perfect", "amazing", "awesome", "best", "recommend", "wonderful",
    "fantastic", "nice", "happy", "good", "favorite", "favourite", "works well",
)  # fmt: skip


@dataclass(frozen=True)
class QualityRules:
    """How much a review adds to the rating. Defaults are the seed's; keyword lists are configurable."""

    long_review_words: int = 10
    long_review_bonus: float = 0.2
    keyword_bonus: float = 0.3
    image_bonus: float = 0.5
    keywords: tuple[str, ...] = POSITIVE_KEYWORDS_VI + POSITIVE_KEYWORDS_EN

    @property
    def max_bonus(self) -> float:
        return self.long_review_bonus + self.keyword_bonus + self.image_bonus


def comment_quality(
    text: np.ndarray | None, has_image: np.ndarray | None, n: int, rules: QualityRules = QualityRules()
) -> np.ndarray:
    """Per-interaction quality bonus in ``[0, rules.max_bonus]`` (zeros when there is no text or image)."""
    bonus = np.zeros(n, dtype=np.float32)
    if text is not None:
        # NFC: the same Vietnamese word typed on different systems may come precomposed or decomposed
        series = pd.Series(text, dtype=object).fillna("").astype(str).str.normalize("NFC")
        words = series.str.split().str.len().fillna(0).to_numpy()
        bonus += np.where(words > rules.long_review_words, rules.long_review_bonus, 0.0).astype(np.float32)
        if rules.keywords:
            # Whole words for Latin keywords; Vietnamese syllables are whole words too once bounded.
            words_re = "|".join(re.escape(unicodedata.normalize("NFC", k.lower())) for k in rules.keywords)
            pattern = r"(?<!\w)(?:" + words_re + r")(?!\w)"
            hit = series.str.lower().str.contains(pattern, regex=True).to_numpy(dtype=bool)
            bonus += np.where(hit, rules.keyword_bonus, 0.0).astype(np.float32)
    if has_image is not None:
        bonus += np.where(np.asarray(has_image, dtype=bool), rules.image_bonus, 0.0).astype(np.float32)
    return bonus


def default_mode(interactions: Interactions) -> ConfidenceMode:
    """Play counts get ``log_count``; ratings get ``rating_quality``."""
    return "log_count" if interactions.kind == "count" else "rating_quality"


def confidence(
    interactions: Interactions,
    mode: ConfidenceMode | None = None,
    *,
    eps: float = 1.0,
    rules: QualityRules = QualityRules(),
) -> np.ndarray:
    """Confidence value per interaction (before alpha).

    - ``rating_quality``: rating + :func:`comment_quality` (the default for ratings)
    - ``rating``: the raw rating
    - ``binary``: 1 for every interaction
    - ``log_count``: ``log(1 + value / eps)`` (Hu, Koren & Volinsky 2008; the default for play counts)
    """
    mode = mode or default_mode(interactions)
    if mode not in CONFIDENCE_MODES:
        raise ValueError(f"mode must be one of {CONFIDENCE_MODES}, but got {mode=}.")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, but got {eps=}.")
    r = interactions.rating.astype(np.float32)
    if mode == "binary":
        return np.ones_like(r)
    if mode == "rating":
        return r
    if mode == "log_count":
        return np.log1p(r / np.float32(eps)).astype(np.float32)
    return r + comment_quality(interactions.text, interactions.has_image, len(interactions), rules)
