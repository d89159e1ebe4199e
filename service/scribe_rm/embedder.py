"""Sentence embeddings off the event loop, with concurrent requests merged into shared batches."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np


class Embedder:
    """Wraps a sentence-transformers model directory. `embed` is async and micro-batched:
    calls arriving within `window_ms` of each other (up to `batch_size` texts) share one encode."""

    def __init__(self, model_dir: Path, device: str = "cpu", batch_size: int = 64, window_ms: float = 5.0):
        self.model_dir = model_dir
        self.device = device
        self.batch_size = batch_size
        self.window_s = window_ms / 1000.0
        self._model = None
        self._dimension = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._pending: list[tuple[list[str], asyncio.Future[np.ndarray]]] = []
        self._pending_texts = 0
        self._flush_timer: asyncio.TimerHandle | None = None

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

    async def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((list(texts), future))
        self._pending_texts += len(texts)
        if self._pending_texts >= self.batch_size:
            self._flush()
        elif self._flush_timer is None:
            self._flush_timer = loop.call_later(self.window_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        batch, self._pending, self._pending_texts = self._pending, [], 0
        if batch:
            asyncio.get_running_loop().create_task(self._run(batch))

    async def _run(self, batch: list[tuple[list[str], asyncio.Future[np.ndarray]]]) -> None:
        texts = [t for chunk, _ in batch for t in chunk]
        try:
            vectors = await asyncio.get_running_loop().run_in_executor(self._executor, self.encode_sync, texts)
        except Exception as exc:  # hand the failure to every waiter rather than losing it
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for chunk, future in batch:
            if not future.done():
                future.set_result(vectors[start : start + len(chunk)])
            start += len(chunk)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
