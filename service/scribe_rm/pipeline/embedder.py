"""Sentence embeddings, computed in one worker thread per model: a sentence-transformers directory (the
transformer tier) or a static model in model2vec's format (the static tier: each text the mean of its tokens'
vectors, ~500x cheaper on a CPU)."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ..blocks.allocator import keep_freed_memory

log = logging.getLogger("scribe_rm")
ANCHOR_CHUNK = 32  # anchors embedded per turn of the embedder thread (~1 s for mpnet on 2 cores)
Precision = Literal["auto", "float32", "bfloat16"]


def cgroup_cpu_limit(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (v2 `cpu.max`, else v1 CFS files); None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    if quota in ("max", "-1"):
        return None
    return int(quota) / int(period)


def available_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs this process may use: its affinity mask, capped by its cgroup quota (a container's or k8s pod's
    CPU limit, which torch does not read: left alone it starts a thread per core of the whole host)."""
    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    limit = cgroup_cpu_limit(cgroup_root)
    return count if limit is None else max(1, min(count, math.ceil(limit)))


@dataclass(frozen=True)
class EmbedderConfig:
    model_dir: Path
    device: str = "cpu"
    batch_size: int = 32
    threads: int = 0  # CPU inference threads; 0: the CPUs this process may use
    kind: Literal["transformer", "static"] = "transformer"
    precision: Precision = "auto"  # the transformer's matmuls; auto: bfloat16 where the device computes it natively
    keep_freed_mb: int = 256  # CPU: freed heap memory the process keeps for the next batch; 0: allocator untouched
    layers: int = 0  # transformer layers run (the first ones; their output is pooled); 0: all of them


def native_bfloat16(device: str) -> bool:
    """Whether `device` computes bfloat16 in hardware (CPU: AVX512-BF16 or AMX; CUDA: compute capability 8+).
    Elsewhere it is emulated and slower than float32."""
    import torch

    if device.startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_precision(precision: Precision, device: str) -> Literal["float32", "bfloat16"]:
    if precision == "auto":
        return "bfloat16" if native_bfloat16(device) else "float32"
    return precision


class Embedder:
    """Wraps a sentence-transformers model directory. `encode_sync` blocks; async callers run it in
    `executor`, the model's one worker thread (the router micro-batches its calls there)."""

    def __init__(self, config: EmbedderConfig):
        self.model_dir = config.model_dir
        self.device = config.device
        self.batch_size = config.batch_size
        self.threads = config.threads or available_cpus()
        transformer = config.kind == "transformer"
        self.precision = resolve_precision(config.precision, config.device) if transformer else "float32"
        self.keep_freed_mb = config.keep_freed_mb
        self.layers = config.layers if transformer else 0
        self._model = None
        self._dimension = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")
        self._last_set: dict[str, np.ndarray] = {}  # the anchors embedded last: a reload embeds only new ones

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        """Blocking load; call it from a worker thread at start-up."""
        import torch
        from sentence_transformers import SentenceTransformer

        if self.device == "cpu":
            torch.set_num_threads(self.threads)
            if self.keep_freed_mb:
                keep_freed_memory(self.keep_freed_mb * 1024 * 1024)
        if not (self.model_dir / "modules.json").is_file():
            # sentence-transformers would read a missing path as a hub id and try to download it
            raise FileNotFoundError(f"{self.model_dir} is not a sentence-transformers model directory "
                                    "(for the default embedder run `scribe-rm models prepare`)")
        self._model = SentenceTransformer(str(self.model_dir), device=self.device)
        if self.layers:
            self._keep_first_layers(self.layers)
        if self.precision == "bfloat16":
            self._store_linear_weights_in_bfloat16()
        self._dimension = int(self.encode_sync(["warm-up"]).shape[1])  # also warms the model

    def _keep_first_layers(self, layers: int) -> None:
        """Drop the encoder's layers after the first `layers`: the model then pools their output. Routing
        chose this by cross-validation (bench/routing_cv.py): the middle layers route the cards' examples
        better than the last one, at a fraction of the cost."""
        encoder = getattr(self._model[0].auto_model, "encoder", None)
        stack = getattr(encoder, "layer", None)
        if stack is None:
            raise ValueError(f"{self.model_dir}: cannot run only some layers of this model (no encoder.layer)")
        if not 0 < layers <= len(stack):
            raise ValueError(f"{self.model_dir} has {len(stack)} layers; cannot run its first {layers}")
        encoder.layer = stack[:layers]

    def _store_linear_weights_in_bfloat16(self) -> None:
        """Autocast rounds every Linear's float32 weight and bias to bfloat16 anew on each call; rounded once
        here, the products are bit-identical and each batch skips copying the weights."""
        import torch

        for module in self._model.modules():
            if isinstance(module, torch.nn.Linear):
                module.to(torch.bfloat16)

    def fingerprint(self) -> str:
        """Changes when the model directory's files, the precision or the layers run change: keys caches of its
        embeddings."""
        files = sorted(p for p in self.model_dir.rglob("*") if p.is_file())
        stats = [f"{p.relative_to(self.model_dir)}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
        head = [str(self.model_dir.resolve()), self.precision, f"layers={self.layers}"]
        return hashlib.sha256("\n".join([*head, *stats]).encode()).hexdigest()

    @property
    def dimension(self) -> int:
        assert self._model is not None, "embedder not loaded"
        return self._dimension

    def encode_sync(self, texts: list[str]) -> np.ndarray:
        """L2-normalized float32 embeddings, shape (len(texts), dim). Blocking. In bfloat16 the matmuls run under
        autocast (weights stay float32) and the vectors are normalized again in float32."""
        import torch

        assert self._model is not None, "embedder not loaded"
        bfloat16 = self.precision == "bfloat16"
        with torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, enabled=bfloat16):
            vectors = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                         convert_to_numpy=True, show_progress_bar=False)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if bfloat16:
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors

    def encode_cached_sync(self, texts: list[str], cache_dir: Path | None) -> np.ndarray:
        """Embeddings of a fixed set of texts (the routing anchors). Blocking; call it from any thread but the
        embedder's own. The set is kept in `cache_dir` (file name: a hash of the model's files and the texts),
        so restarts and replicas skip embedding it. A set not found there reuses the vectors of the set this
        process embedded last and embeds only the new texts, a chunk per turn of the embedder thread: requests
        routed during a library reload wait for one chunk, not for the whole library."""
        path = None
        if cache_dir is not None:
            key = hashlib.sha256(json.dumps([self.fingerprint(), self.device, texts]).encode()).hexdigest()[:32]
            path = cache_dir / f"{key}.npy"
            vectors = self._read_cache(path, len(texts))
            if vectors is not None:
                self._last_set = dict(zip(texts, vectors))
                return vectors
        vectors = self._encode_reusing_last_set(texts)
        if path is not None:
            self._write_cache(path, vectors)
        return vectors

    def _encode_reusing_last_set(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), dtype=np.float32)
        known = self._last_set
        new = [text for text in dict.fromkeys(texts) if text not in known]
        fresh: dict[str, np.ndarray] = {}
        for start in range(0, len(new), ANCHOR_CHUNK):
            chunk = new[start:start + ANCHOR_CHUNK]
            fresh.update(zip(chunk, self.executor.submit(self.encode_sync, chunk).result()))
        vectors = np.stack([fresh[text] if text in fresh else known[text] for text in texts])
        self._last_set = dict(zip(texts, vectors))
        return vectors

    @staticmethod
    def _read_cache(path: Path, expected_rows: int) -> np.ndarray | None:
        try:
            vectors = np.load(path)
            if vectors.shape[0] == expected_rows:
                return vectors
        except (OSError, ValueError) as exc:
            if path.exists():
                log.warning("ignoring unreadable embedding cache %s: %s", path, exc)
        return None

    @staticmethod
    def _write_cache(path: Path, vectors: np.ndarray) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            np.save(tmp, vectors)
            tmp.replace(path)  # atomic: concurrent starts never read a half-written file
        except OSError as exc:
            log.warning("cannot write embedding cache %s: %s", path, exc)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class StaticEmbedder(Embedder):
    """A static embedding model (model2vec format): a text is the normalized mean of its tokens' vectors."""

    def load(self) -> None:
        from model2vec import StaticModel

        if not (self.model_dir / "model.safetensors").is_file():
            raise FileNotFoundError(f"{self.model_dir} is not a static embedding model directory "
                                    "(for the default static tier run `scribe-rm models prepare`)")
        self._model = StaticModel.from_pretrained(str(self.model_dir))
        self._dimension = int(self._model.dim)

    def encode_sync(self, texts: list[str]) -> np.ndarray:
        assert self._model is not None, "embedder not loaded"
        vectors = self._model.encode(texts, use_multiprocessing=False)
        return np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(texts), self._dimension)

    def token_table(self) -> np.ndarray:
        """Each vocabulary token's vector as encode uses it (the model's token mapping and weights applied)."""
        assert self._model is not None, "embedder not loaded"
        model = self._model
        table = model.embedding if model.token_mapping is None else model.embedding[model.token_mapping]
        if model.weights is not None:
            table = table * model.weights[:, None]
        return np.asarray(table, dtype=np.float32)

    def token_ids_sync(self, texts: list[str]) -> list[np.ndarray]:
        """Each text's token ids as encode reads them (cut to the model's max_length)."""
        assert self._model is not None, "embedder not loaded"
        limit = self._model.max_length
        return [np.asarray(ids[:limit], dtype=np.int64) for ids in self._model.tokenize(texts)]


def make_embedder(config: EmbedderConfig) -> Embedder:
    return StaticEmbedder(config) if config.kind == "static" else Embedder(config)
