#!/usr/bin/python3
"""Writes a bf16 GGUF of a Qwen3-shaped fusecheck fixture (config.json + *.safetensors) with the
llama.cpp peer's own gguf-py (GGUFWriter, TensorNameMap). The fixture has no tokenizer, so the GGUF
carries llama.cpp's "none" vocabulary (vocab_size dummy tokens): both engines are fed token ids.
Matrices stay bf16 bit for bit; 1-D norm gains are written as fp32 (exact), as llama.cpp's own
converter does. Any tensor the map does not know is an error, not skipped.

Usage: fixture_to_gguf.py GGUF_PY_DIR FIXTURE_DIR OUT.gguf
"""
import json
import pathlib
import struct
import sys

import numpy as np


def read_safetensors(path):
    """Yields (name, dtype string, shape, memmapped raw bytes) of one safetensors file."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    base = 8 + n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        yield name, info["dtype"], info["shape"], raw[base + b : base + e]


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: fixture_to_gguf.py GGUF_PY_DIR FIXTURE_DIR OUT.gguf")
    sys.path.insert(0, sys.argv[1])
    import gguf

    src, out = pathlib.Path(sys.argv[2]), sys.argv[3]
    cfg = json.loads((src / "config.json").read_text())
    if cfg.get("model_type") != "qwen3":
        sys.exit(f"{src}/config.json: model_type {cfg.get('model_type')!r}, only qwen3 is written")
    n_layer = cfg["num_hidden_layers"]
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.QWEN3, n_layer)
    w = gguf.GGUFWriter(out, "qwen3")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(n_layer)
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_key_length(cfg["head_dim"])
    w.add_value_length(cfg["head_dim"])
    w.add_rope_freq_base(float(cfg["rope_theta"]))
    w.add_layer_norm_rms_eps(float(cfg["rms_norm_eps"]))
    w.add_vocab_size(cfg["vocab_size"])
    w.add_tokenizer_model("none")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    for st in sorted(src.glob("*.safetensors")):
        for name, dtype, shape, raw in read_safetensors(st):
            gname = names.get_name(name, try_suffixes=(".weight", ".bias"))
            if gname is None:
                sys.exit(f"{st}: tensor {name} has no llama.cpp qwen3 name")
            if dtype != "BF16":
                sys.exit(f"{st}: tensor {name} is {dtype}, expected BF16")
            bits = raw.view(np.uint16).reshape(shape)
            if len(shape) == 1:  # bf16 -> fp32 is exact: the bits shifted up
                w.add_tensor(gname, (bits.astype(np.uint32) << 16).view(np.float32))
            else:
                w.add_tensor(gname, bits, raw_dtype=gguf.GGMLQuantizationType.BF16)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
