"""An instantaneous OpenAI-compatible judge for load and overhead benchmarks (never for scoring quality).

Answers /v1/chat/completions with logprobs for "0".."3" derived from a hash of the prompt (so repeated
prompts get repeated scores), /tokenize with the SmolLM2 ids 32-35, and /health.
    python bench/fake_judge.py --port 8021 [--delay 0.5]"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import math
import os

import uvicorn
from fastapi import FastAPI, Request

app = FastAPI()


@app.get("/health")
async def health() -> dict:
    return {}


@app.post("/tokenize")
async def tokenize(request: Request) -> dict:
    body = await request.json()
    return {"tokens": [32 + "0123".index(body["prompt"])] if body.get("prompt") in ("0", "1", "2", "3") else [0, 1]}


@app.post("/v1/chat/completions")
async def chat(request: Request) -> dict:
    body = await request.json()
    await asyncio.sleep(float(os.environ.get("FAKE_JUDGE_DELAY_S", "0")))
    digest = hashlib.sha256(str(body.get("messages")).encode()).digest()
    weights = [1 + b for b in digest[:4]]
    total = sum(weights)
    top = [{"token": str(i), "logprob": math.log(w / total)} for i, w in enumerate(weights)]
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": top[0]["token"]},
                         "logprobs": {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"],
                                                   "top_logprobs": top}]}}]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8021)
    parser.add_argument("--delay", type=float, default=0.0, help="Seconds before each chat answer.")
    args = parser.parse_args()
    os.environ["FAKE_JUDGE_DELAY_S"] = str(args.delay)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
