"""In-process judge with transformers: one forward pass, next-token logprobs of "0".."3".

Runs on one worker thread, one prompt at a time: on a CPU batching buys no throughput here, and
batch size 1 keeps scores independent of what else is in flight (no padding-dependent drift).
JSON for library induction is generated under the schema's grammar with xgrammar's logits processor."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .base import LABELS, JudgeError, parse_json_reply


@dataclass(frozen=True)
class LocalJudgeConfig:
    model_dir: Path
    device: str = "cpu"


class LocalJudge:
    backend = "local"

    def __init__(self, model_dir: Path, device: str = "cpu"):
        self.model_dir = Path(model_dir)
        self.device = device
        self.model_name = f"local:{self.model_dir.name}"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="local-judge")
        self._model = None
        self._tokenizer = None
        self._label_ids: list[int] = []
        self._grammars: dict[str, Any] = {}  # schema JSON -> compiled grammar

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._load)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not (self.model_dir / "config.json").exists():
            raise JudgeError(f"no model at {self.model_dir}; run `scribe-rm models prepare` or set SCRIBE_JUDGE_MODEL_DIR")
        tokenizer = AutoTokenizer.from_pretrained(self.model_dir)
        ids = [tokenizer.encode(label, add_special_tokens=False) for label in LABELS]
        if any(len(i) != 1 for i in ids):
            raise JudgeError(f"the labels 0-3 are not single tokens for this tokenizer: {ids}")
        model = AutoModelForCausalLM.from_pretrained(self.model_dir, dtype=torch.float32).to(self.device).eval()
        self._label_ids = [i[0] for i in ids]
        self._tokenizer, self._model = tokenizer, model

    async def ready(self) -> bool:
        return self._model is not None

    def _forward(self, messages: list[dict[str, str]]) -> list[float]:
        import torch

        assert self._model is not None and self._tokenizer is not None, "judge not started"
        prompt = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self._tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            logits = self._model(**inputs).logits[0, -1].float()
        logprobs = torch.log_softmax(logits, dim=-1)
        return [float(logprobs[i]) for i in self._label_ids]

    async def label_logprobs(self, messages: list[dict[str, str]]) -> list[float]:
        if self._model is None:
            raise JudgeError("local judge is not loaded")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._forward, messages)
        except JudgeError:
            raise
        except Exception as exc:  # a model failure is a judge failure for the item, not a server crash
            raise JudgeError(f"local judge failed: {type(exc).__name__}: {exc}") from exc

    def _generate_json(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int,
                       repetition_penalty: float) -> Any:
        import json

        import torch
        import xgrammar
        from xgrammar.contrib.hf import LogitsProcessor

        assert self._model is not None and self._tokenizer is not None, "judge not started"
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            info = xgrammar.TokenizerInfo.from_huggingface(self._tokenizer, vocab_size=self._model.config.vocab_size)
            # compact JSON: with free whitespace a small model can emit newlines until max_tokens
            self._grammars[key] = xgrammar.GrammarCompiler(info).compile_json_schema(key, any_whitespace=False)
        prompt = self._tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        inputs = self._tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(self.device)
        with torch.inference_mode():
            output = self._model.generate(**inputs, max_new_tokens=max_tokens, do_sample=False,
                                          repetition_penalty=repetition_penalty,
                                          logits_processor=[LogitsProcessor(self._grammars[key])])
        text = self._tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
        return parse_json_reply(text, max_tokens)

    async def generate_json(self, messages: list[dict[str, str]], schema: dict[str, Any], max_tokens: int,
                            repetition_penalty: float = 1.0) -> Any:
        if self._model is None:
            raise JudgeError("local judge is not loaded")
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._executor, self._generate_json, messages, schema, max_tokens, repetition_penalty)
        except JudgeError:
            raise
        except Exception as exc:
            raise JudgeError(f"local judge failed: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
