# Reads the fixture's q_norm/k_norm (bf16) and compares the seed's formula with the pair-aware S_pair.
import json, struct, math, sys
path = sys.argv[1]
f = open(path, 'rb'); n = struct.unpack('<Q', f.read(8))[0]; hdr = json.loads(f.read(n)); base = 8 + n
def read(name):
    t = hdr[name]; b, e = t['data_offsets']; f.seek(base + b); raw = f.read(e - b)
    assert t['dtype'] == 'BF16'
    return [struct.unpack('<f', b'\x00\x00' + raw[i:i+2])[0] for i in range(0, len(raw), 2)]
for l in [0, 1, 2, 27]:
    gq = [abs(x) for x in read(f'model.layers.{l}.self_attn.q_norm.weight')]
    gk = [abs(x) for x in read(f'model.layers.{l}.self_attn.k_norm.weight')]
    d = len(gq); h = d // 2
    seed = math.sqrt(sum((a*b)**2 for a, b in zip(gq, gk)) / d)
    S = sum(0.5*(gq[i]**2+gq[i+h]**2) * 0.5*(gk[i]**2+gk[i+h]**2) for i in range(h)) * 2 / d
    i = max(range(d), key=lambda i: gk[i]); j = (i + h) % d
    print(f"layer {l}: seed {seed:.3f}  pair-aware sqrt(S_pair) {math.sqrt(S):.3f}  S_pair {S:.3f}  max k gain {gk[i]} at ch {i}, partner ch {j} k={gk[j]:.3f}, q[{i}]={gq[i]:.3f} q[{j}]={gq[j]:.3f}")
