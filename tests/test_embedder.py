"""The embedder's on-disk cache of anchor embeddings, its error for a directory that holds no model, its
CPU thread count, its precision and the memory it keeps between batches."""

import os
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from scribe_rm.library import load_library
from scribe_rm.pipeline.embedder import (ANCHOR_CHUNK, Embedder, EmbedderConfig, available_cpus, cgroup_cpu_limit,
                                         resolve_precision)

TEXTS = ["Check the tool's output for an error field.", "Factor the quadratic into two linear terms."]


class Calls(list):
    threads: list[str]  # the thread of each call


@pytest.fixture
def counted(embedder, monkeypatch):
    calls, threads = Calls(), []
    calls.threads = threads
    real = embedder.encode_sync

    def encode(texts):
        calls.append(list(texts))
        threads.append(threading.current_thread().name)
        return real(texts)

    monkeypatch.setattr(embedder, "encode_sync", encode)
    monkeypatch.setattr(embedder, "_last_set", {})  # a process that has embedded no anchors yet
    return calls


def test_cache_serves_the_same_vectors_without_encoding_again(embedder, counted, tmp_path):
    first = embedder.encode_cached_sync(TEXTS, tmp_path)
    second = embedder.encode_cached_sync(TEXTS, tmp_path)
    assert counted == [TEXTS]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, embedder.encode_sync(TEXTS), atol=1e-5)
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_a_changed_set_gets_its_own_entry_and_embeds_only_its_new_texts(embedder, counted, tmp_path):
    embedder.encode_cached_sync(TEXTS, tmp_path)
    changed = embedder.encode_cached_sync([TEXTS[1], "Sort the rows by date."], tmp_path)
    assert counted == [TEXTS, ["Sort the rows by date."]]
    assert len(list(tmp_path.glob("*.npy"))) == 2
    np.testing.assert_allclose(changed, embedder.encode_sync([TEXTS[1], "Sort the rows by date."]), atol=1e-5)


def test_new_texts_are_embedded_a_chunk_per_turn_of_the_embedder_thread(embedder, counted):
    texts = [f"Anchor number {k}." for k in range(ANCHOR_CHUNK + 5)]
    assert embedder.encode_cached_sync(texts, None).shape[0] == len(texts)
    assert [len(call) for call in counted] == [ANCHOR_CHUNK, 5]
    assert all(name.startswith("embedder") for name in counted.threads)  # its tokenizer is not thread-safe


def test_corrupt_entry_is_recomputed_and_replaced(embedder, counted, tmp_path, monkeypatch):
    embedder.encode_cached_sync(TEXTS, tmp_path)
    (entry,) = tmp_path.glob("*.npy")
    entry.write_bytes(b"not numpy")
    monkeypatch.setattr(embedder, "_last_set", {})  # a restarted process
    vectors = embedder.encode_cached_sync(TEXTS, tmp_path)
    assert len(counted) == 2 and vectors.shape[0] == len(TEXTS)
    assert np.load(entry).shape == vectors.shape


def test_unwritable_cache_still_returns_vectors(embedder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should go")
    assert embedder.encode_cached_sync(TEXTS, blocker / "cache").shape[0] == len(TEXTS)


def test_directory_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="scribe-rm models prepare"):
        Embedder(EmbedderConfig(tmp_path)).load()


def test_an_empty_cache_setting_turns_the_cache_off(monkeypatch):
    from scribe_rm.settings import Settings

    monkeypatch.setenv("SCRIBE_ANCHOR_CACHE_DIR", "")
    assert Settings().anchor_cache_dir is None  # not Path(""), which is the working directory


def test_cpu_threads_follow_the_cgroup_quota(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    assert available_cpus(tmp_path) == cpus  # no cgroup files: the affinity mask
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None and available_cpus(tmp_path) == cpus
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # a k8s limit of 1.5 CPUs
    assert cgroup_cpu_limit(tmp_path) == 1.5 and available_cpus(tmp_path) == min(cpus, 2)
    (tmp_path / "cpu.max").unlink()
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")  # cgroup v1, half a CPU
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 0.5 and available_cpus(tmp_path) == 1


def test_embedder_sets_torch_threads_on_load(settings):
    embedder = Embedder(settings.model_copy(update={"embedder_threads": 1}).embedder_config())
    before = torch.get_num_threads()
    try:
        embedder.load()
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
        embedder.close()


def test_bfloat16_matmuls_keep_the_float32_embeddings_and_their_own_cache_key(settings):
    """SCRIBE_EMBEDDER_PRECISION=bfloat16 (auto's choice on CPUs with native bf16) must route as float32 does."""
    texts = [text for card in load_library(settings.library_dir, settings.fallback_card_id).cards.values()
             for text in card.examples[:1]][:24]
    vectors = {}
    for precision in ("float32", "bfloat16"):
        embedder = Embedder(replace(settings.embedder_config(), precision=precision))
        embedder.load()
        vectors[precision] = embedder.encode_sync(texts)
        vectors[precision + " fingerprint"] = embedder.fingerprint()
        embedder.close()
    np.testing.assert_allclose(np.linalg.norm(vectors["bfloat16"], axis=1), 1.0, atol=1e-5)
    assert not np.array_equal(vectors["float32"], vectors["bfloat16"])  # the bf16 kernels did run
    cosines = (vectors["float32"] * vectors["bfloat16"]).sum(1)
    assert cosines.min() >= 0.999, cosines.min()
    assert vectors["float32 fingerprint"] != vectors["bfloat16 fingerprint"]


def test_bfloat16_weights_stored_once_give_exactly_what_autocast_gives(settings):
    """The Linear weights are rounded to bfloat16 at load; autocast over the float32 weights (rounding them on
    every call) must give bit-identical embeddings."""
    stored = Embedder(replace(settings.embedder_config(), precision="bfloat16"))
    stored.load()
    linears = [m for m in stored._model.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(m.weight.dtype == torch.bfloat16 for m in linears)
    rounded_per_call = Embedder(replace(settings.embedder_config(), precision="float32"))
    rounded_per_call.load()
    rounded_per_call.precision = "bfloat16"  # encode under autocast, weights left in float32
    assert all(m.weight.dtype == torch.float32 for m in rounded_per_call._model.modules()
               if isinstance(m, torch.nn.Linear))
    np.testing.assert_array_equal(stored.encode_sync(TEXTS), rounded_per_call.encode_sync(TEXTS))
    stored.close()
    rounded_per_call.close()


@pytest.mark.parametrize("keep_mb", [0, 256])
def test_loading_keeps_freed_memory_as_set(settings, monkeypatch, keep_mb):
    """SCRIBE_EMBEDDER_KEEP_FREED_MB: the allocator is set up when the transformer loads on a CPU, 0 leaves it."""
    calls = []
    monkeypatch.setattr("scribe_rm.pipeline.embedder.keep_freed_memory", calls.append)
    embedder = Embedder(replace(settings.embedder_config(), keep_freed_mb=keep_mb))
    embedder.load()
    embedder.close()
    assert calls == ([keep_mb * 1024 * 1024] if keep_mb else [])


@pytest.mark.parametrize(("device", "native", "expected"), [
    ("cpu", True, "bfloat16"), ("cpu", False, "float32"), ("mps", False, "float32")])
def test_auto_precision_is_bfloat16_only_where_the_hardware_computes_it(monkeypatch, device, native, expected):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", device) == expected
    assert resolve_precision("float32", device) == "float32"


def test_first_layers_pool_what_the_whole_model_computes_at_that_depth(settings):
    """SCRIBE_EMBEDDER_LAYERS=k: the vectors are the model's own hidden states after layer k, mean-pooled and
    normalized (as the whole model pools its last layer), and caches of them get their own key."""
    from transformers import AutoModel, AutoTokenizer

    config = replace(settings.embedder_config(), precision="float32")
    truncated = Embedder(replace(config, layers=4))
    truncated.load()
    assert len(truncated._model[0].auto_model.encoder.layer) == 4
    tokenizer = AutoTokenizer.from_pretrained(config.model_dir)
    model = AutoModel.from_pretrained(config.model_dir).eval()
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch, output_hidden_states=True).hidden_states[4]
    mask = batch["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(truncated.encode_sync(TEXTS), expected, atol=1e-5)
    whole = Embedder(replace(config, layers=0))
    assert truncated.fingerprint() != whole.fingerprint()
    truncated.close()
    whole.close()


@pytest.mark.parametrize("layers", [13, 99])
def test_more_layers_than_the_model_has_is_a_clear_error(settings, layers):
    embedder = Embedder(replace(settings.embedder_config(), layers=layers))
    with pytest.raises(ValueError, match=f"has 12 layers; cannot run its first {layers}"):
        embedder.load()
    embedder.close()
