"""The validation zoo: which checkpoints the study measures, and how each one is made.
Usage: /usr/bin/python3 scripts/validation/zoo.py OUT_DIR
Writes OUT_DIR/zoo-fixtures.json (a `fusecheck fixture --profiles` file, one profile per synthetic
model) and OUT_DIR/zoo.csv (one row per model: name, family, split, how to make it). Deterministic:
the same script writes the same files. Standard library only.

Families (docs/VALIDATION.md): ordinary q/k-norm models of many shapes; one large k_norm layer at the
start, middle or end; q_norm outliers; many moderate layers; q and k outliers together; compensated
outliers (exact logits unchanged); the published Qwen3-0.6B statistics, scaled; Llama-family models
without q/k norms, plain and with planted key outliers in k_proj's rows; the transformers-made and
trained checkpoints of ../shared. bf16 and f16; depths 2-48; head_dim 64/128/256; GQA 1-8.

The split is fixed before any fitting and never looks at a measurement: within each family the
models are ordered by sha256("split-v1:" + name) and alternate fit, held-out, fit, ... (the
first one held out), so every family is split about in half."""
import csv, hashlib, json, os, random, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
builtin = {p["name"]: p for p in json.load(open(os.path.join(ROOT, "data/fixtures.json")))["profiles"]}
rng = random.Random(20261201)

profiles, rows = [], []
# Published Qwen3-0.6B k_norm maxima per layer (data/fixtures.json, qwen3-0.6b-extreme).
PUBLISHED = builtin["qwen3-0.6b-extreme"]["gains"]["k_norm"]["layer_max"]


def split_key(name):
    return hashlib.sha256(("split-v1:" + name).encode()).hexdigest()


def shape(layers, head_dim, kv_heads, gqa):
    return {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": kv_heads * gqa,
            "num_key_value_heads": kv_heads, "head_dim": head_dim, "num_hidden_layers": layers,
            "max_window_layers": layers, "vocab_size": 512, "max_position_embeddings": 512}


def random_shape(max_layers=48):
    hd = rng.choice([64, 128, 256])
    gqa = rng.choice([1, 2, 4, 8])
    kv = rng.choice([1, 2]) if hd < 256 else 1
    layers = rng.choice([l for l in (2, 4, 6, 8, 12, 16, 24, 28, 36, 48) if l <= max_layers])
    if hd == 256 and layers > 24:
        layers = 24  # keep the probe near a second a run
    return shape(layers, hd, kv, gqa)


def add(name, family, config, gains, llama=False, k_proj=None, compensate=False, dtype=None):
    base = builtin["llama-3.2-1b" if llama else "qwen3-0.6b"]
    cfg = dict(base["config"])
    cfg.update(config)
    if llama:
        cfg.pop("max_window_layers", None)
        cfg["rope_scaling"] = None
    p = {"name": name, "description": f"validation zoo, family {family}", "config": cfg,
         "gains": gains}
    if k_proj:
        p["k_proj_outliers"] = k_proj
    profiles.append(p)
    rows.append({"model": name, "family": family, "split": "", "source": "fixture",
                 "path": "", "seed": rng.randrange(1 << 20),
                 "dtype": dtype or rng.choice(["bf16", "bf16", "f16"]),
                 "compensate_q": int(compensate)})


def gains(sigma, k_max=None, q_max=None, llama=False):
    g = {r: {"median": 1.0, "sigma": sigma} for r in
         (["input_layernorm", "post_attention_layernorm", "final_norm"] +
          ([] if llama else ["q_norm", "k_norm"]))}
    if k_max:
        g["k_norm"]["layer_max"] = k_max
    if q_max:
        g["q_norm"]["layer_max"] = q_max
    return g


def table(layers, at):  # {layer: value} -> layer_max list
    return [at.get(l) for l in range(layers)] if at else None


def where(kind, layers):
    return {"start": 0, "middle": layers // 2, "end": layers - 1}[kind]


# 1. Ordinary q/k-norm models: shapes, dtypes, gain spreads.
for i in range(24):
    add(f"ord-{i:02d}", "ordinary", random_shape(), gains(rng.choice([0.1, 0.25, 0.4])))
# 2. One large k_norm layer at the start, the middle or the end.
for i, v in enumerate([6, 10, 16, 24, 30, 40, 48, 64, 80, 96.5, 128, 12, 20, 35, 56, 72, 90, 110]):
    s = random_shape()
    for pos in ("start", "middle", "end") if i < 4 else (rng.choice(["start", "middle", "end"]),):
        L = s["num_hidden_layers"]
        add(f"k1-{v:g}-{pos}-{i:02d}", "k_one_layer", s,
            gains(0.25, k_max=table(L, {where(pos, L): v})))
# 3. q_norm outliers (no KV cache stores q).
for i, v in enumerate([8, 16, 30, 45, 60, 80, 100, 128, 24, 60, 40, 70]):
    s = random_shape()
    L = s["num_hidden_layers"]
    at = {where(rng.choice(["start", "middle", "end"]), L): v}
    if i >= 8:  # several layers
        at = {l: v for l in range(0, L, max(1, L // 4))}
    add(f"q-{v:g}-{i:02d}", "q_outlier", s, gains(0.25, q_max=table(L, at)))
# 4. Many moderate layers.
for i in range(18):
    s = random_shape()
    L = s["num_hidden_layers"]
    v = rng.choice([5, 8, 12, 16, 20, 30])
    frac = rng.choice([0.25, 0.5, 1.0])
    at = {l: v * rng.uniform(0.7, 1.0) for l in range(L) if rng.random() < frac}
    add(f"kmany-{v:g}-{int(frac*100)}-{i:02d}", "k_many_moderate", s, gains(0.25, k_max=table(L, at)))
# 5. q and k outliers in the same layers.
for i in range(10):
    s = random_shape()
    L = s["num_hidden_layers"]
    kv, qv = rng.choice([8, 16, 32, 64]), rng.choice([8, 16, 32, 64])
    ls = rng.sample(range(L), min(L, rng.choice([1, 2, 3])))
    add(f"qk-{kv:g}-{qv:g}-{i:02d}", "qk_outlier", s,
        gains(0.25, k_max=table(L, {l: kv for l in ls}), q_max=table(L, {l: qv for l in ls})))
# 6. Compensated outliers: k_norm large on one pair, q_norm divided by it (exact logits unchanged).
for i, v in enumerate([16, 32, 64, 96.5, 128, 48, 24, 80]):
    s = random_shape()
    L = s["num_hidden_layers"]
    ls = range(min(L, 4)) if i % 2 == 0 else [rng.randrange(L)]
    add(f"kcomp-{v:g}-{i:02d}", "k_compensated", s, gains(0.25, k_max=table(L, {l: v for l in ls})),
        compensate=True)
# 7. The published Qwen3-0.6B statistics, scaled.
for i, f in enumerate([0.25, 0.5, 0.75, 1.0, 1.25, 0.35]):
    s = random_shape()
    s["num_hidden_layers"] = s["max_window_layers"] = 28
    if s["head_dim"] == 256:
        s["head_dim"] = 128
    add(f"published-x{f:g}-{i:02d}", "published", s,
        gains(0.3, k_max=[m * f for m in PUBLISHED]))
# 8. Llama family without q/k norms, ordinary.
for i in range(16):
    s = random_shape()
    s.pop("max_window_layers")
    if s["head_dim"] == 256:
        s["head_dim"] = 128
    add(f"llama-ord-{i:02d}", "llama_plain", s, gains(rng.choice([0.1, 0.25]), llama=True), llama=True)
# 9. Llama family with planted key outliers in k_proj rows (the case norms cannot show).
for i, v in enumerate([2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 3, 5, 8, 16, 4, 10, 20, 6, 40, 2.5, 12, 7, 64, 5, 9, 14]):
    s = random_shape()
    s.pop("max_window_layers")
    if s["head_dim"] == 256:
        s["head_dim"] = 128
    L = s["num_hidden_layers"]
    pattern = rng.choice(["one", "all", "some"])
    at = ({where(rng.choice(["start", "middle", "end"]), L): v} if pattern == "one" else
          {l: v for l in range(L)} if pattern == "all" else
          {l: v * rng.uniform(0.5, 1.0) for l in range(L) if rng.random() < 0.4} or {0: v})
    add(f"llama-kproj-{v:g}-{pattern}-{i:02d}", "llama_kproj", s, gains(0.25, llama=True), llama=True,
        k_proj=table(L, at))

# 10. Transformers-made and trained checkpoints.
for name, path in [("qwen3-tiny", "../shared/testdata/hf/qwen3-tiny/bf16"),
                   ("llama-tiny", "../shared/testdata/hf/llama-tiny/bf16"),
                   ("qwen2-tiny", "../shared/testdata/hf/qwen2-tiny/bf16"),
                   ("stories260K", "../shared/models/stories260K/hf"),
                   ("qwen3-tiny-extreme", "tests/data/hf/qwen3-tiny-extreme/bf16")]:
    rows.append({"model": name, "family": "checkpoint", "split": "", "source": "path",
                 "path": path, "seed": 0, "dtype": "", "compensate_q": 0})

by_family = {}
for r in rows:
    by_family.setdefault(r["family"], []).append(r)
for fam in by_family.values():
    for i, r in enumerate(sorted(fam, key=lambda r: split_key(r["model"]))):
        r["split"] = "heldout" if i % 2 == 0 else "fit"

# Base profiles are not needed: every profile above is complete.
json.dump({"comment": "Generated by scripts/validation/zoo.py: one profile per zoo model.",
           "profiles": profiles}, open(os.path.join(out, "zoo-fixtures.json"), "w"), indent=1)
with open(os.path.join(out, "zoo.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
    w.writeheader()
    w.writerows(rows)
print(f"{len(rows)} models ({sum(r['split'] == 'heldout' for r in rows)} held out)", file=sys.stderr)
