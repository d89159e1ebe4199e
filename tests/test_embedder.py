"""The embedder's on-disk cache of anchor embeddings, and its error for a directory that holds no model."""

import numpy as np
import pytest

from scribe_rm.embedder import Embedder

TEXTS = ["Check the tool's output for an error field.", "Factor the quadratic into two linear terms."]


@pytest.fixture
def counted(embedder, monkeypatch):
    calls = []
    real = embedder.encode_sync

    def encode(texts):
        calls.append(list(texts))
        return real(texts)

    monkeypatch.setattr(embedder, "encode_sync", encode)
    return calls


def test_cache_serves_the_same_vectors_without_encoding_again(embedder, counted, tmp_path):
    first = embedder.encode_cached_sync(TEXTS, tmp_path)
    second = embedder.encode_cached_sync(TEXTS, tmp_path)
    assert counted == [TEXTS]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, embedder.encode_sync(TEXTS), atol=1e-5)
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_other_texts_get_their_own_entry(embedder, counted, tmp_path):
    embedder.encode_cached_sync(TEXTS, tmp_path)
    embedder.encode_cached_sync(TEXTS[:1], tmp_path)
    assert counted == [TEXTS, TEXTS[:1]]
    assert len(list(tmp_path.glob("*.npy"))) == 2


def test_corrupt_entry_is_recomputed_and_replaced(embedder, counted, tmp_path):
    embedder.encode_cached_sync(TEXTS, tmp_path)
    (entry,) = tmp_path.glob("*.npy")
    entry.write_bytes(b"not numpy")
    vectors = embedder.encode_cached_sync(TEXTS, tmp_path)
    assert len(counted) == 2 and vectors.shape[0] == len(TEXTS)
    assert np.load(entry).shape == vectors.shape


def test_unwritable_cache_still_returns_vectors(embedder, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache directory should go")
    assert embedder.encode_cached_sync(TEXTS, blocker / "cache").shape[0] == len(TEXTS)


def test_directory_without_a_model_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="scribe-rm models prepare"):
        Embedder(tmp_path).load()


def test_an_empty_cache_setting_turns_the_cache_off(monkeypatch):
    from scribe_rm.settings import Settings

    monkeypatch.setenv("SCRIBE_ANCHOR_CACHE_DIR", "")
    assert Settings().anchor_cache_dir is None  # not Path(""), which is the working directory
