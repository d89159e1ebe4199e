"""Issue 25, a measured road not taken: can a better static space send fewer steps to the second tier?

The shipped static tier is model2vec's distillation (each vocabulary token embedded alone). Tokenlearn's idea
is to then fit the static vectors so that their mean over a sentence's tokens mimics the transformer's own
sentence vector. No corpus may be downloaded here, and the cards' examples are the cross-validation's test
folds, so the corpus is what the machine has: the docstrings of Python's standard library and of the
installed packages, cut into plain-prose sentences (about 95,000; test files skipped). The transformer encodes
`--sentences` of them (the set-up cost: ~21 ms a sentence on 2 cores); then the distilled vectors, one weight
per token and a linear head are fitted by cosine loss (AdamW, early stopping on a tenth held back), and the
head is folded into the vectors, so that every token, seen in the corpus or not, moves into the same space.
The result is written as a static model directory; its routing figures come from the same cross-validation
as every other setting:
    .venv/bin/python bench/static_tokenlearn.py --out /tmp/static-tokenlearn \
        --json-out bench/results/static_tokenlearn.json
    SCRIBE_STATIC_MODEL_DIR=/tmp/static-tokenlearn .venv/bin/python bench/routing_cv.py \
        --json-out bench/results/routing_cv_static_tokenlearn.json"""

from __future__ import annotations

import argparse
import ast
import random
import re
import shutil
import sysconfig
import time
from pathlib import Path

import numpy as np
import torch
from model2vec import StaticModel

from common import report
from scribe_rm.pipeline.embedder import make_embedder
from scribe_rm.settings import Settings

SOURCES = ("stdlib", "sympy", "numpy", "scipy", "pandas", "sklearn", "httpx", "requests", "fastapi", "starlette",
           "pydantic", "click", "typer", "rich", "datasets", "networkx", "jinja2", "matplotlib", "urllib3", "aiohttp",
           "trl", "transformers")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
MARKUP_START = (">>>", "...", ":", "-", "*", "=", "|")


def prose_sentences(docstring: str) -> list[str]:
    """Sentences of a docstring's prose paragraphs (no doctests, lists, tables or directives)."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", docstring):
        lines = [line.strip() for line in paragraph.splitlines()]
        if any(line.startswith(MARKUP_START) or line.endswith("::") for line in lines):
            continue
        text = " ".join(lines)
        if "  " in text or "``" in text:
            continue
        for sentence in SENTENCE_END.split(text):
            wordy = sum(c.isalpha() or c == " " for c in sentence) / max(len(sentence), 1)
            if 40 <= len(sentence) <= 400 and wordy > 0.85 and sentence[0].isupper():
                sentences.append(sentence)
    return sentences


def source_dir(name: str) -> Path:
    """"stdlib": the standard library; else an installed package."""
    return Path(sysconfig.get_paths()["stdlib" if name == "stdlib" else "purelib"]) / ("" if name == "stdlib" else name)


def local_corpus(sources: list[str]) -> list[str]:
    """Docstring sentences of the sources' modules, deduplicated, shuffled (seed 0)."""
    roots = [source_dir(name) for name in sources if source_dir(name).exists()]
    found: set[str] = set()
    for root in roots:
        for path in root.rglob("*.py"):
            if "tests" in path.parts or path.name.startswith("test"):
                continue
            try:
                tree = ast.parse(path.read_text(errors="ignore"))
            except (SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    found.update(prose_sentences(ast.get_docstring(node) or ""))
    corpus = sorted(found)
    random.Random(0).shuffle(corpus)
    return corpus


class Student(torch.nn.Module):
    """Static vectors, one weight per token, a linear head: a sentence is head(weighted mean of its tokens)."""

    def __init__(self, vectors: np.ndarray, head: np.ndarray):
        super().__init__()
        self.bag = torch.nn.EmbeddingBag.from_pretrained(torch.from_numpy(vectors), freeze=False, mode="sum")
        self.weights = torch.nn.Parameter(torch.ones(len(vectors)))
        self.head = torch.nn.Parameter(torch.from_numpy(head))

    def forward(self, ids: list[list[int]]) -> torch.Tensor:
        flat = torch.tensor([t for row in ids for t in row])
        lengths = torch.tensor([len(row) for row in ids], dtype=torch.float32)
        offsets = torch.cumsum(torch.cat([torch.zeros(1), lengths[:-1]]), 0).long()
        summed = self.bag(flat, offsets, per_sample_weights=self.weights[flat])
        return (summed / lengths[:, None]) @ self.head

    def folded(self) -> np.ndarray:
        return ((self.bag.weight * self.weights[:, None]) @ self.head).detach().numpy().astype(np.float32)


def mean_vectors(vectors: np.ndarray, ids: list[list[int]]) -> np.ndarray:
    return np.stack([vectors[row].mean(axis=0) for row in ids])


def cosine_loss(student: Student, ids: list[list[int]], targets: torch.Tensor) -> torch.Tensor:
    return (1 - torch.nn.functional.cosine_similarity(student(ids), targets)).mean()


def fit(vectors: np.ndarray, ids: list[list[int]], targets: np.ndarray, epochs: int, batch_size: int = 256,
        patience: int = 3) -> tuple[Student, list[float]]:
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    order = rng.permutation(len(ids))
    held, train = order[: len(ids) // 10], order[len(ids) // 10:]
    head = np.linalg.lstsq(mean_vectors(vectors, [ids[i] for i in train]), targets[train], rcond=None)[0]
    student = Student(vectors, head.astype(np.float32))
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-3, weight_decay=0.0)
    goal = torch.from_numpy(targets)

    def held_loss() -> float:
        with torch.no_grad():
            return cosine_loss(student, [ids[i] for i in held], goal[held]).item()

    def snapshot() -> dict[str, torch.Tensor]:
        return {name: tensor.clone() for name, tensor in student.state_dict().items()}

    losses, waited = [held_loss()], 0
    best, best_state = losses[0], snapshot()
    for _ in range(epochs):
        shuffled = rng.permutation(train)
        for start in range(0, len(shuffled), batch_size):
            batch = shuffled[start:start + batch_size]
            optimizer.zero_grad()
            cosine_loss(student, [ids[i] for i in batch], goal[batch]).backward()
            optimizer.step()
        losses.append(held_loss())
        if losses[-1] < best - 1e-4:
            best, best_state, waited = losses[-1], snapshot(), 0
        else:
            waited += 1
            if waited >= patience:
                break
    student.load_state_dict(best_state)
    return student, losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the trained static model is written")
    parser.add_argument("--sentences", type=int, default=24_000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sources", nargs="+", default=SOURCES, help="'stdlib' and installed packages whose "
                        "docstrings make the corpus")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    settings = Settings()
    static_dir = settings.resolved_static_dir()
    distilled = StaticModel.from_pretrained(str(static_dir))
    started = time.perf_counter()
    corpus = local_corpus(args.sources)
    texts = corpus[: args.sentences]
    corpus_s = time.perf_counter() - started
    teacher = make_embedder(settings.embedder_config())
    teacher.load()
    started = time.perf_counter()
    targets = teacher.encode_sync(texts).astype(np.float32)
    teacher_s = time.perf_counter() - started
    ids = [row[:512] for row in distilled.tokenize(texts)]  # as the static tier tokenizes at inference
    started = time.perf_counter()
    student, losses = fit(distilled.embedding.astype(np.float32), ids, targets, args.epochs)
    fit_s = time.perf_counter() - started
    shutil.rmtree(args.out, ignore_errors=True)
    fitted = StaticModel(student.folded(), distilled.tokenizer, config={"model_type": "model2vec", "normalize": True},
                         normalize=True, base_model_name=static_dir.name)
    fitted.save_pretrained(args.out)
    rows = [("corpus sentences found / used", f"{len(corpus)} / {len(texts)}", None),
            ("corpus extraction, s", round(corpus_s, 1), None),
            ("transformer encoding the corpus, s", round(teacher_s, 1), None),
            ("fitting, s", round(fit_s, 1), None),
            ("held-back cosine loss before -> after", f"{losses[0]:.3f} -> {min(losses):.3f}", None),
            ("epochs run", len(losses) - 1, None)]
    report("Static tier fitted to the transformer on local docstrings", rows,
           {"args": {**vars(args), "out": str(args.out)}, "held_back_losses": losses}, args.json_out)


if __name__ == "__main__":
    main()
