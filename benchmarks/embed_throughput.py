"""Local embedding throughput at the real tower sizes of CLIP ViT-B/32 and jina-clip-v1 (random weights).

    python -m benchmarks.embed_throughput            # the committed figures (a few minutes)
    python -m benchmarks.embed_throughput --smoke    # a tiny encoder, seconds (CI)

The real weights cannot be downloaded here, and compute cost does not depend on the weights' values, so each
tower is a transformer encoder of the real size (width, layers, heads, MLP width, tokens) with random
weights, built as ONNX by `minilm_onnx.build_graph` and run by onnxruntime with one intra-op thread per
core -- what fastembed does underneath. Labelled as such in the JSON. Not included: tokenising, image
decoding/resizing, and the patch embedding (a few % of a vision tower's FLOPs). Text towers run padded to
their token count (CLIP pads to 77; jina-clip's text chunks are taken as 128 tokens, our chunk size order).

Batches of 1, 8 and 32 show where the cores fill; figures are items/s (chunks/s or images/s).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.minilm_onnx import build_graph

RESULTS = Path(__file__).parent / "results"

# name: (hidden, layers, heads, mlp, tokens, vocab), sizes from the models' published configs
TOWERS: dict[str, tuple[int, int, int, int, int, int]] = {
    "clip-vit-b32 text (chunks)": (512, 12, 8, 2048, 77, 49408),
    "clip-vit-b32 vision (images)": (768, 12, 12, 3072, 50, 64),  # 7x7 patches + class token
    "jina-clip-v1 text (chunks)": (768, 12, 12, 3072, 128, 61056),  # JinaBERT v2 base
    "jina-clip-v1 vision (images)": (768, 12, 12, 3072, 197, 64),  # EVA02-B/16: 14x14 patches + class token
}
SMOKE = {"tiny text (chunks)": (32, 2, 2, 64, 16, 100)}


def random_bert(hidden: int, layers: int, heads: int, mlp: int, tokens: int, vocab: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)

    def t(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.02).astype(np.float32)

    w: dict[str, np.ndarray] = {
        "embeddings.word_embeddings.weight": t(vocab, hidden),
        "embeddings.position_embeddings.weight": t(max(tokens, 8), hidden),
        "embeddings.token_type_embeddings.weight": t(2, hidden),
        "embeddings.LayerNorm.weight": np.ones(hidden, np.float32),
        "embeddings.LayerNorm.bias": np.zeros(hidden, np.float32),
    }
    for i in range(layers):
        p = f"encoder.layer.{i}"
        for name, (rows, cols) in {
            "attention.self.query": (hidden, hidden),
            "attention.self.key": (hidden, hidden),
            "attention.self.value": (hidden, hidden),
            "attention.output.dense": (hidden, hidden),
            "intermediate.dense": (mlp, hidden),
            "output.dense": (hidden, mlp),
        }.items():
            w[f"{p}.{name}.weight"], w[f"{p}.{name}.bias"] = t(rows, cols), t(rows)
        for name in ("attention.output.LayerNorm", "output.LayerNorm"):
            w[f"{p}.{name}.weight"], w[f"{p}.{name}.bias"] = np.ones(hidden, np.float32), np.zeros(hidden, np.float32)
    config = {"hidden_size": hidden, "num_attention_heads": heads, "num_hidden_layers": layers}
    return build_graph(w, config)


def measure(model: bytes, tokens: int, vocab: int, batches: Sequence[int], seconds: float) -> dict[str, float]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(model)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    out: dict[str, float] = {}
    rng = np.random.default_rng(1)
    for batch in batches:
        feeds = {
            "input_ids": rng.integers(0, vocab, (batch, tokens), dtype=np.int64),
            "attention_mask": np.ones((batch, tokens), np.int64),
            "token_type_ids": np.zeros((batch, tokens), np.int64),
        }
        session.run(None, feeds)  # warm-up
        done, began = 0, time.perf_counter()
        while True:
            session.run(None, feeds)
            done += batch
            if time.perf_counter() - began >= seconds and done >= 2 * batch:
                break
        out[f"batch {batch}"] = done / (time.perf_counter() - began)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="per tower and batch size")
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="directory for embed_throughput.json")
    args = parser.parse_args(argv)
    towers = SMOKE if args.smoke else TOWERS
    batches = [1, 4] if args.smoke else [1, 8, 32]
    seconds = 0.2 if args.smoke else args.seconds
    load_before = os.getloadavg()
    results = {}
    for name, (hidden, layers, heads, mlp, tokens, vocab) in towers.items():
        model = random_bert(hidden, layers, heads, mlp, tokens, vocab)
        results[name] = {
            "shape": {"hidden": hidden, "layers": layers, "heads": heads, "mlp": mlp, "tokens": tokens},
            "items_per_s": measure(model, tokens, vocab, batches, seconds),
        }
        print(f"{name:32s} " + "  ".join(f"{b}: {v:7.1f}/s" for b, v in results[name]["items_per_s"].items()))
    report = {
        "benchmark": "embed_throughput",
        "model": "random weights at the real tower sizes (not the trained models): encoder only, onnxruntime CPU",
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "towers": results,
    }
    out_dir = args.out or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    name = "embed_throughput_smoke.json" if args.smoke else "embed_throughput.json"
    (out_dir / name).write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
