"""An instantaneous OpenAI-compatible judge for load and overhead benchmarks (never for scoring quality).

Answers /v1/chat/completions with logprobs for "0".."3" derived from a hash of the prompt (so repeated
prompts get repeated scores), /tokenize with the SmolLM2 ids 32-35, and /health. A bare ASGI app on
uvicorn, no framework, so that on a small machine it takes as little CPU as possible from the service.
    python bench/fake_judge.py --port 8021 [--delay 0.5]"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import math

import uvicorn

DELAY_S = 0.0


def completion(messages: object) -> dict:
    digest = hashlib.sha256(str(messages).encode()).digest()
    weights = [1 + b for b in digest[:4]]
    total = sum(weights)
    top = [{"token": str(i), "logprob": math.log(w / total)} for i, w in enumerate(weights)]
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": top[0]["token"]},
                         "logprobs": {"content": [{"token": top[0]["token"], "logprob": top[0]["logprob"],
                                                   "top_logprobs": top}]}}]}


def tokenize(prompt: object) -> dict:
    return {"tokens": [32 + "0123".index(prompt)] if prompt in ("0", "1", "2", "3") else [0, 1]}


async def app(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    path, status, answer = scope["path"], 200, {}
    if path in ("/v1/chat/completions", "/tokenize"):
        body = json.loads(b"".join(chunks) or b"{}")
        if path == "/tokenize":
            answer = tokenize(body.get("prompt"))
        else:
            await asyncio.sleep(DELAY_S)
            answer = completion(body.get("messages"))
    elif path != "/health":
        status, answer = 404, {"detail": "Not Found"}
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8021)
    parser.add_argument("--delay", type=float, default=0.0, help="Seconds before each chat answer.")
    args = parser.parse_args()
    DELAY_S = args.delay
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
