import json, struct, math
f = open('/tmp/docs-fx/x/model.safetensors', 'rb'); n = struct.unpack('<Q', f.read(8))[0]; hdr = json.loads(f.read(n)); base = 8 + n
def read(name):
    t = hdr[name]; b, e = t['data_offsets']; f.seek(base + b); raw = f.read(e - b)
    return [struct.unpack('<f', b'\x00\x00' + raw[i:i+2])[0] for i in range(0, len(raw), 2)]
for l in [3, 4]:
    gq = read(f'model.layers.{l}.self_attn.q_norm.weight'); gk = read(f'model.layers.{l}.self_attn.k_norm.weight')
    d = 128; h = 64
    terms = sorted(((0.5*(gq[i]**2+gq[i+h]**2))*(0.5*(gk[i]**2+gk[i+h]**2)), i, 0.5*(gq[i]**2+gq[i+h]**2), 0.5*(gk[i]**2+gk[i+h]**2)) for i in range(h))[::-1]
    S = sum(t[0] for t in terms)*2/d
    print(l, 'S', round(S,3), 'top pairs (QpKp, i, Qp, Kp):', [(round(a,1), i, round(q,3), round(k,1)) for a,i,q,k in terms[:3]])
