#!/usr/bin/env python3
"""Export small models of current architectures to ONNX, with random weights, through both of
torch.onnx's exporters (the TorchScript path and dynamo), into fixtures/exports/.

Pinned: torch==2.15.0 transformers==5.23.0 timm==1.0.31 onnxscript==0.7.2 onnx==1.23.2
(PyPI; torch brings its CUDA libraries, a few GB: this runs once, by hand, never in CI).

    python3 -m venv /tmp/exportenv && /tmp/exportenv/bin/pip install torch==2.15.0 \
        transformers==5.23.0 timm==1.0.31 onnxscript==0.7.2 onnx==1.23.2 onnxruntime==1.32.0
    /tmp/exportenv/bin/python scripts/export-current.py [OUT_DIR]

No weights are downloaded: every model is built from a config (transformers) or constructor
arguments (timm) with a fixed seed, in a configuration small enough that each file stays under
2 MB. Every symbolic axis is named as the exporter names it (dynamic_axes for TorchScript,
torch.export Dims for dynamo), so the files show both exporters' habits: TorchScript names each
input's axes apart, dynamo writes `s0`-style symbols and expressions such as `s0 + 1`.
Each model is checked (onnx full_check) and run in onnxruntime at two sizes before it is kept;
the file list with the sizes it ran at is written to OUT_DIR/exports.tsv.
"""
import os
import sys
import hashlib
import traceback

import numpy as np
import onnx
import onnxruntime as ort
import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "exports")
os.makedirs(OUT, exist_ok=True)
LIMIT = 2 * 1024 * 1024
rows = []


def seed():
    torch.manual_seed(0)
    np.random.seed(0)


# ---------------------------------------------------------------------------------------------
# The models: (name, module, example inputs, {input: {axis: name}}, second sizes)

def vit():
    from transformers import ViTConfig, ViTForImageClassification
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64, image_size=32, patch_size=8, num_labels=10)
    m = ViTForImageClassification(cfg)
    return m, {"pixel_values": torch.randn(1, 3, 32, 32)}, {"pixel_values": {0: "batch"}}


def llama_config():
    from transformers import LlamaConfig
    return LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)


class LogitsOnly(torch.nn.Module):
    """A causal LM without its cache: input_ids and attention_mask in, logits out."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, input_ids, attention_mask):
        return self.lm(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def llama():
    from transformers import LlamaForCausalLM
    m = LogitsOnly(LlamaForCausalLM(llama_config()))
    ids = torch.randint(0, 128, (1, 8))
    return m, {"input_ids": ids, "attention_mask": torch.ones(1, 8, dtype=torch.int64)}, {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
    }


class CachedStep(torch.nn.Module):
    """One decoder step with its KV cache as tensors: the new token, the mask over past + 1
    positions and each layer's past keys and values in; logits and the present cache out."""

    def __init__(self, lm, layers):
        super().__init__()
        self.lm = lm
        self.layers = layers

    def forward(self, input_ids, attention_mask, past_key_0, past_value_0, past_key_1,
                past_value_1):
        from transformers import DynamicCache
        past = (past_key_0, past_value_0, past_key_1, past_value_1)
        cache = DynamicCache()
        for layer in range(self.layers):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = self.lm(input_ids=input_ids, attention_mask=attention_mask,
                      past_key_values=cache, use_cache=True)
        present = []
        for layer in range(self.layers):
            present += [out.past_key_values.layers[layer].keys, out.past_key_values.layers[layer].values]
        return (out.logits, *present)


def llama_kv():
    from transformers import LlamaForCausalLM
    cfg = llama_config()
    m = CachedStep(LlamaForCausalLM(cfg), cfg.num_hidden_layers)
    past = 6
    head_dim = cfg.hidden_size // cfg.num_attention_heads
    # Batch 2 in the example: torch.export specialises a dim whose example size is 1.
    inputs = {"input_ids": torch.randint(0, 128, (2, 1)),
              "attention_mask": torch.ones(2, past + 1, dtype=torch.int64)}
    axes = {"input_ids": {0: "batch"}, "attention_mask": {0: "batch", 1: "past_plus_one"}}
    for layer in range(cfg.num_hidden_layers):
        for kv in ("key", "value"):
            name = f"past_{kv}_{layer}"
            inputs[name] = torch.randn(2, cfg.num_key_value_heads, past, head_dim)
            axes[name] = {0: "batch", 2: "past"}
    return m, inputs, axes


def bert():
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bert = BertModel(cfg)

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    ids = torch.randint(0, 128, (1, 8))
    return Encoder(), {"input_ids": ids, "attention_mask": torch.ones(1, 8, dtype=torch.int64),
                       "token_type_ids": torch.zeros(1, 8, dtype=torch.int64)}, {
        "input_ids": {0: "batch", 1: "sequence"},
        "attention_mask": {0: "batch", 1: "sequence"},
        "token_type_ids": {0: "batch", 1: "sequence"},
    }


def whisper_encoder():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder
    cfg = WhisperConfig(num_mel_bins=16, d_model=32, encoder_layers=2, encoder_attention_heads=2,
                        encoder_ffn_dim=64, max_source_positions=32)

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = WhisperEncoder(cfg)

        def forward(self, input_features):
            return self.encoder(input_features).last_hidden_state

    return Encoder(), {"input_features": torch.randn(1, 16, 64)}, {"input_features": {0: "batch"}}


IMAGES = {"images": {0: "batch", 2: "height", 3: "width"}}


def mobilenetv3():
    from timm.models.mobilenetv3 import _gen_mobilenet_v3
    m = _gen_mobilenet_v3("mobilenetv3_small_050", 0.35, num_classes=10)
    return m, {"images": torch.randn(1, 3, 64, 64)}, IMAGES


def efficientnet():
    from timm.models.efficientnet import _gen_efficientnet
    m = _gen_efficientnet("efficientnet_b0", channel_multiplier=0.25, depth_multiplier=0.34,
                          num_classes=10)
    return m, {"images": torch.randn(1, 3, 64, 64)}, IMAGES


def convnext():
    from timm.models.convnext import ConvNeXt
    m = ConvNeXt(depths=(1, 1, 2, 1), dims=(8, 16, 32, 64), num_classes=10)
    return m, {"images": torch.randn(1, 3, 64, 64)}, IMAGES


MODELS = [
    ("vit", vit),
    ("llama", llama),
    ("llama_kv", llama_kv),
    ("bert", bert),
    ("whisper_encoder", whisper_encoder),
    ("mobilenetv3", mobilenetv3),
    ("efficientnet", efficientnet),
    ("convnext", convnext),
]


# ---------------------------------------------------------------------------------------------

def strip_machine_paths(path):
    """Drop what names this machine's files: the dynamo exporter records each node's Python
    stack trace (`pkg.torch.onnx.stack_trace`, with site-packages paths) in its metadata."""
    model = onnx.load(path)

    def clean(graph):
        for node in graph.node:
            keep = [p for p in node.metadata_props if not p.key.endswith("stack_trace")]
            del node.metadata_props[:]
            node.metadata_props.extend(keep)
            for attr in node.attribute:
                if attr.HasField("g"):
                    clean(attr.g)
                for g in attr.graphs:
                    clean(g)

    clean(model.graph)
    for f in model.functions:
        for node in f.node:
            keep = [p for p in node.metadata_props if not p.key.endswith("stack_trace")]
            del node.metadata_props[:]
            node.metadata_props.extend(keep)
    onnx.save(model, path)


def export(name, make, exporter):
    seed()
    model, inputs, axes = make()
    model.eval()
    path = os.path.join(OUT, f"{name}.{exporter}.onnx")
    names = list(inputs)
    args = tuple(inputs[n] for n in names)
    with torch.no_grad():
        if exporter == "torchscript":
            torch.onnx.export(model, args, path, input_names=names, dynamic_axes=axes,
                              opset_version=17, dynamo=False)
        else:
            dims = {}
            shapes = {}
            for n in names:
                spec = {}
                for axis, sym in axes.get(n, {}).items():
                    if sym not in dims:
                        dims[sym] = torch.export.Dim(sym, min=1, max=512)
                    spec[axis] = dims[sym]
                shapes[n] = spec
            if name == "llama_kv":
                # The mask is one longer than the cache: the exporter writes `past + 1`.
                for n in names:
                    if n == "attention_mask":
                        shapes[n] = {0: dims["batch"], 1: dims["past"] + 1}
            program = torch.onnx.export(model, args, input_names=names,
                                        dynamic_shapes=tuple(shapes[n] for n in names), dynamo=True)
            program.save(path, external_data=False)
    strip_machine_paths(path)
    size = os.path.getsize(path)
    if size > LIMIT:
        os.remove(path)
        raise RuntimeError(f"{size} bytes, over the 2 MB limit")
    onnx.checker.check_model(path, full_check=True)
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    ran = []
    for point in (0, 1):
        feeds = {}
        for n in names:
            t = inputs[n]
            shape = list(t.shape)
            for axis, sym in axes.get(n, {}).items():
                shape[axis] += point * (2 if axis == 0 else 3 if sym not in ("height", "width") else 32)
            if name == "llama_kv" and n == "attention_mask":
                shape[1] = inputs["past_key_0"].shape[2] + point * 3 + 1
            if t.dtype == torch.int64:
                feeds[n] = np.random.randint(0, 2 if n != "input_ids" else 128, shape).astype(np.int64)
            else:
                feeds[n] = np.random.randn(*shape).astype(np.float32)
        session.run(None, feeds)
        ran.append(" ".join(f"{n}={'x'.join(map(str, feeds[n].shape))}" for n in names))
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    rows.append((os.path.basename(path), name, exporter, str(size), digest, ran[0], ran[1]))
    print(f"{path}: {size} bytes, ran at {ran[0]} and {ran[1]}")


def main():
    failed = []
    for name, make in MODELS:
        for exporter in ("torchscript", "dynamo"):
            try:
                export(name, make, exporter)
            except Exception as e:  # noqa: BLE001 - report and go on with the next model
                failed.append(f"{name} ({exporter}): {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                traceback.print_exc(limit=2)
    with open(os.path.join(OUT, "exports.tsv"), "w") as f:
        f.write("# Written by scripts/export-current.py (torch %s): file, model, exporter, bytes, sha256,\n" % torch.__version__)
        f.write("# the sizes onnxruntime ran it at (two points).\n")
        f.write("file\tmodel\texporter\tbytes\tsha256\tfirst\tsecond\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    print(f"{len(rows)} exported; {len(failed)} failed")
    for f in failed:
        print("  failed:", f)


if __name__ == "__main__":
    main()
