"""A CLIP folder whose text tower has CLIP ViT-B/32's real size and random weights, for server benchmarks.

Why: the tests' tiny CLIP (a word-vector lookup, 16-d) makes every embedding nearly free, so a load figure
measured on it says nothing about what a user's server does. The real weights cannot be downloaded here and
compute cost does not depend on the weights' values, so the text tower is a 12-layer, 512-wide, 8-head
transformer with a 2,048 MLP and a 49,408-token embedding table (the published `clip-vit-base-patch32`
text config), mean-pooled and projected to 512-d, with random weights (`embed_throughput.random_bert`).
The vision tower stays the tiny one, widened to 512-d (the text-only benchmarks never call it); the
tokenizer is the tiny fixture's word-level one, padded and truncated to CLIP's 77 tokens as fastembed reads
it. Rankings are meaningless; only cost is realistic. Label figures "random-weight CLIP-B/32-size text tower".
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from benchmarks.embed_throughput import TOWERS, random_bert

ROOT = Path(__file__).resolve().parent.parent
LABEL = "random-weight CLIP ViT-B/32-size text tower (12 x 512, 49,408 tokens, 512-d; tiny vision tower)"
DIM = 512


def _text_tower(seed: int = 0) -> bytes:
    """The encoder of `random_bert`, adapted to the CLIP text interface: inputs input_ids and
    attention_mask only (token types are zeros), output `text_embeds` = masked mean @ projection."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    hidden, layers, heads, mlp, tokens, vocab = TOWERS["clip-vit-b32 text (chunks)"]
    model = onnx.load_from_string(random_bert(hidden, layers, heads, mlp, tokens, vocab, seed))
    graph = model.graph
    kept = [i for i in graph.input if i.name != "token_type_ids"]
    del graph.input[:]
    graph.input.extend(kept)
    rng = np.random.default_rng(seed + 1)
    projection = (rng.standard_normal((hidden, DIM)) / np.sqrt(hidden)).astype(np.float32)
    graph.initializer.extend(
        [
            numpy_helper.from_array(projection, "text_projection"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "pool_axis"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "mask_axis"),
            numpy_helper.from_array(np.array(0, dtype=np.int64), "zero_id"),
            numpy_helper.from_array(np.array([1.0], dtype=np.float32), "one_f"),
        ]
    )
    head = [helper.make_node("Mul", ["input_ids", "zero_id"], ["token_type_ids"])]
    tail = [
        helper.make_node("Cast", ["attention_mask"], ["pool_mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["pool_mask", "mask_axis"], ["pool_mask3"]),
        helper.make_node("Mul", ["last_hidden_state", "pool_mask3"], ["pool_masked"]),
        helper.make_node("ReduceSum", ["pool_masked", "pool_axis"], ["pool_sum"], keepdims=0),
        helper.make_node("ReduceSum", ["pool_mask3", "pool_axis"], ["pool_count"], keepdims=0),
        helper.make_node("Max", ["pool_count", "one_f"], ["pool_safe"]),
        helper.make_node("Div", ["pool_sum", "pool_safe"], ["pooled"]),
        helper.make_node("MatMul", ["pooled", "text_projection"], ["text_embeds"]),
    ]
    nodes = head + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info("text_embeds", TensorProto.FLOAT, ["batch", DIM]))
    onnx.checker.check_model(model, full_check=False)
    return model.SerializeToString()


def build_random_clip(dest: Path) -> Path:
    """Write the folder (`text/`, `vision/`, `nova-mcp.json`) into `dest` and return it (~10 s, ~170 MB)."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from fixtures.tiny_clip import build_tiny_clip

    build_tiny_clip(dest, dim=DIM)
    (dest / "text" / "model.onnx").write_bytes(_text_tower())
    config_path = dest / "text" / "config.json"
    config = json.loads(config_path.read_text())
    config.update(hidden_size=512, num_hidden_layers=12, num_attention_heads=8, intermediate_size=2048)
    config_path.write_text(json.dumps(config, indent=1))
    marker = json.loads((dest / "nova-mcp.json").read_text())
    marker["model"] = "random-clip-b32-text"
    (dest / "nova-mcp.json").write_text(json.dumps(marker, indent=1))
    return dest


if __name__ == "__main__":
    print(build_random_clip(Path(sys.argv[1])))
