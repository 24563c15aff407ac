"""Confidence = rating + review quality (+0.2 review > 10 words, +0.3 positive keyword, +0.5 image), the other
modes, and the weight ALS gives an observed cell: 1 + alpha * confidence."""

from __future__ import annotations

import unicodedata

import numpy as np
import pandas as pd
import pytest

from core.confidence import QualityRules, comment_quality, confidence, default_mode
from core.interactions import Interactions

ELEVEN_WORDS = "one two three four five six seven eight nine ten eleven"
TEN_WORDS = "one two three four five six seven eight nine ten"


def _quality(texts: list[object] | None, images: list[bool] | None = None) -> np.ndarray:
    n = len(texts) if texts is not None else len(images or [])
    text = None if texts is None else np.array(texts, dtype=object)
    image = None if images is None else np.array(images)
    return comment_quality(text, image, n)


# ---------------------------------------------------------------------------------------------- quality
def test_long_review_adds_0_2_only_above_ten_words() -> None:
    np.testing.assert_allclose(_quality([ELEVEN_WORDS, TEN_WORDS, ""]), [0.2, 0.0, 0.0])


def test_positive_keyword_adds_0_3_once() -> None:
    np.testing.assert_allclose(
        _quality(["good", "Great, I LOVE it", "sản phẩm tốt", "rất hài lòng", "meh"]),
        [0.3, 0.3, 0.3, 0.3, 0.0],
        rtol=1e-6,
    )


def test_keywords_match_whole_words_only() -> None:
    # "goodness" and "nicely" contain keywords but are other words
    np.testing.assert_allclose(_quality(["goodness me", "nicely done", "nice."]), [0.0, 0.0, 0.3], rtol=1e-6)


def test_vietnamese_keyword_matches_in_either_unicode_normal_form() -> None:
    # "tốt" (good) typed on macOS or pasted from some apps arrives decomposed (NFD): o + circumflex + acute.
    # It is the same word and must earn the same +0.3.
    # Text typed on macOS arrives decomposed (NFD); the keyword must still match.
    composed = "Sản phẩm TỐT"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    np.testing.assert_allclose(_quality([composed, decomposed]), [0.3, 0.3], rtol=1e-6)


def test_image_adds_0_5() -> None:
    np.testing.assert_allclose(_quality(None, [True, False]), [0.5, 0.0])


def test_bonuses_add_up_to_1_0() -> None:
    text = ELEVEN_WORDS + " and it is great"  # 15 words with a keyword: 0.2 + 0.3
    np.testing.assert_allclose(_quality([text, text], [True, False]), [1.0, 0.5], rtol=1e-6)
    assert QualityRules().max_bonus == pytest.approx(1.0)


def test_missing_text_counts_as_empty() -> None:
    np.testing.assert_allclose(_quality([None, np.nan, "good"]), [0.0, 0.0, 0.3], rtol=1e-6)


def test_no_text_and_no_image_gives_zeros() -> None:
    q = comment_quality(None, None, 3)
    np.testing.assert_array_equal(q, [0.0, 0.0, 0.0])
    assert q.dtype == np.float32


def test_custom_rules() -> None:
    rules = QualityRules(long_review_words=2, long_review_bonus=1.0, keyword_bonus=2.0, keywords=("meh",))
    q = comment_quality(np.array(["meh meh meh", "good"], dtype=object), None, 2, rules)
    np.testing.assert_allclose(q, [3.0, 0.0])
    no_keywords = QualityRules(keywords=())
    np.testing.assert_array_equal(
        comment_quality(np.array(["good"], dtype=object), None, 1, no_keywords), [0.0]
    )


# ---------------------------------------------------------------------------------------------- modes
def _reviews() -> Interactions:
    return Interactions.from_frame(
        pd.DataFrame(
            {
                "user_id": [1, 1, 2],
                "item_id": [1, 2, 1],
                "rating": [5.0, 3.0, 1.0],
                "text": ["great", ELEVEN_WORDS, ""],
                "has_image": [True, False, False],
            }
        )
    )


def test_rating_quality_is_rating_plus_bonus() -> None:
    # 5 + 0.3 + 0.5, 3 + 0.2, 1 + 0
    np.testing.assert_allclose(confidence(_reviews()), [5.8, 3.2, 1.0], rtol=1e-6)
    np.testing.assert_allclose(confidence(_reviews(), "rating_quality"), [5.8, 3.2, 1.0], rtol=1e-6)


def test_rating_and_binary_modes() -> None:
    np.testing.assert_array_equal(confidence(_reviews(), "rating"), [5.0, 3.0, 1.0])
    np.testing.assert_array_equal(confidence(_reviews(), "binary"), [1.0, 1.0, 1.0])


def test_log_count_mode() -> None:
    plays = Interactions.from_frame(
        pd.DataFrame({"user_id": [1, 1, 2], "item_id": [1, 2, 1], "rating": [0.0, 1.0, 3.0]}), kind="count"
    )
    assert default_mode(plays) == "log_count"
    np.testing.assert_allclose(confidence(plays), [0.0, np.log(2.0), np.log(4.0)], rtol=1e-6)
    # log(1 + 3 / 3) = log 2
    np.testing.assert_allclose(confidence(plays, eps=3.0), [0.0, np.log(4 / 3), np.log(2.0)], rtol=1e-6)


def test_default_mode_for_ratings_is_rating_quality() -> None:
    assert default_mode(_reviews()) == "rating_quality"


def test_bad_mode_and_eps_are_rejected() -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        confidence(_reviews(), "squared")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eps must be > 0"):
        confidence(_reviews(), "log_count", eps=0.0)
