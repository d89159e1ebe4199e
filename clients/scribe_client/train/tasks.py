"""Generated tasks with verifiable answers: arithmetic, word problems, and tool use in a simulated tool
environment. The prompt asks for `Step n:` lines (which SCRIBE-RM segments) and a final `Answer:` line."""

from __future__ import annotations

import random
import re
from typing import Any, Callable, Dict, List, Optional

FORMAT = ("Solve it step by step. Write each step on its own line as 'Step 1: ...', 'Step 2: ...', "
          "and finish with a line 'Answer: <number>'.")
TOOLS_DOC = ("Tools (call one per step as: Step n: CALL name(arg=value, ...)):\n"
             "- get_price(item): price of one item in USD\n"
             "- convert(amount, to): convert a USD amount to EUR or GBP")
PRICES = {"apple": 0.5, "pen": 1.25, "notebook": 3.0, "coffee": 2.5}
RATES = {"EUR": 0.9, "GBP": 0.8}
ANSWER = re.compile(r"Answer:\s*\$?(-?\d+(?:\.\d+)?)", re.I)
CALL = re.compile(r"CALL\s+(\w+)\(([^)]*)\)")


def arithmetic(rng: random.Random) -> Dict[str, Any]:
    a, b, c = rng.randint(2, 30), rng.randint(2, 12), rng.randint(2, 12)
    return {"kind": "math", "question": f"What is {a} + {b} * {c}?", "answer": float(a + b * c)}


def word_problem(rng: random.Random) -> Dict[str, Any]:
    name = rng.choice(["Tom", "Ana", "Li", "Sara"])
    have, bags, per = rng.randint(1, 20), rng.randint(2, 6), rng.randint(2, 9)
    return {"kind": "math", "answer": float(have + bags * per),
            "question": f"{name} has {have} marbles and buys {bags} bags with {per} marbles each. "
                        f"How many marbles does {name} have now?"}


def tool_task(rng: random.Random) -> Dict[str, Any]:
    item, count, currency = rng.choice(sorted(PRICES)), rng.randint(2, 6), rng.choice(sorted(RATES))
    return {"kind": "tool_use", "answer": round(PRICES[item] * count * RATES[currency], 2),
            "question": f"How much do {count} {item}s cost in {currency}? {TOOLS_DOC}"}


def make_tasks(n: int, seed: int = 0) -> List[Dict[str, Any]]:
    rng = random.Random(seed)
    makers: List[Callable[[random.Random], Dict[str, Any]]] = [arithmetic, word_problem, tool_task]
    tasks = []
    for i in range(n):
        task = makers[i % len(makers)](rng)
        task["prompt"] = [{"role": "user", "content": f"{task['question']}\n{FORMAT}"}]
        tasks.append(task)
    return tasks


def run_tool_calls(completion: str) -> List[str]:
    """Execute the CALL lines against the simulated tools; returns what each call returned."""
    outputs = []
    for name, raw_args in CALL.findall(completion):
        args = dict(re.findall(r"(\w+)\s*=\s*\"?([\w.]+)\"?", raw_args))
        if name == "get_price" and args.get("item", "").rstrip("s") in PRICES:
            outputs.append(str(PRICES[args["item"].rstrip("s")]))
        elif name == "convert" and args.get("to") in RATES:
            try:
                outputs.append(str(round(float(args.get("amount", "x")) * RATES[args["to"]], 2)))
            except ValueError:
                outputs.append("error: amount must be a number")
        else:
            outputs.append(f"error: unknown call {name}({raw_args})")
    return outputs


def final_answer(completion: str) -> Optional[float]:
    found = ANSWER.findall(completion)
    return float(found[-1]) if found else None


def outcome(completion: str, answer: float, kind: str) -> float:
    """1.0 when the final answer is right (tool tasks: and at least one tool call succeeded)."""
    value = final_answer(completion)
    if value is None or abs(value - answer) > 0.011:
        return 0.0
    if kind == "tool_use" and not any(not out.startswith("error") for out in run_tool_calls(completion)):
        return 0.0
    return 1.0
