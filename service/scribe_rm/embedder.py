"""Sentence embeddings from a sentence-transformers model directory, computed in one worker thread."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


class Embedder:
    """Wraps a sentence-transformers model directory. `encode_sync` blocks; async callers run it in
    `executor`, the model's one worker thread (the router micro-batches its calls there)."""

    def __init__(self, model_dir: Path, device: str = "cpu", batch_size: int = 64):
        self.model_dir = model_dir
        self.device = device
        self.batch_size = batch_size
        self._model = None
        self._dimension = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Blocking load; call it from a worker thread at start-up."""
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(self.model_dir), device=self.device)
        self._dimension = int(self.encode_sync(["warm-up"]).shape[1])  # also warms the model

    @property
    def dimension(self) -> int:
        assert self._model is not None, "embedder not loaded"
        return self._dimension

    def encode_sync(self, texts: list[str]) -> np.ndarray:
        """L2-normalized float32 embeddings, shape (len(texts), dim). Blocking."""
        assert self._model is not None, "embedder not loaded"
        vectors = self._model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
