# Recomputes the int8 per-tensor / per-channel terms of layer 0 both ways (uniform step^2/12 and exact Gaussian bin sum).
import json, struct, math, sys
f = open('/tmp/docs-fx/x/model.safetensors', 'rb'); n = struct.unpack('<Q', f.read(8))[0]; hdr = json.loads(f.read(n)); base = 8 + n
def read(name):
    t = hdr[name]; b, e = t['data_offsets']; f.seek(base + b); raw = f.read(e - b)
    return [struct.unpack('<f', b'\x00\x00' + raw[i:i+2])[0] for i in range(0, len(raw), 2)]
def Phi(z): return 0.5*math.erfc(-z/math.sqrt(2))
def phi(z): return 0.0 if math.isinf(z) else math.exp(-0.5*z*z)/math.sqrt(2*math.pi)
def zphi(z): return 0.0 if math.isinf(z) else z*phi(z)
def gmse(s, step, L=127):
    reach = int(min(L, math.ceil(9*s/step)+1)); m = 0
    for k in range(-reach, reach+1):
        c = k*step; a = -math.inf if k == -L else (k-0.5)*step; b = math.inf if k == L else (k+0.5)*step
        za, zb = a/s, b/s; p = Phi(zb)-Phi(za); m2 = p-(zphi(zb)-zphi(za)); m1 = phi(za)-phi(zb)
        m += s*s*m2 - 2*s*c*m1 + c*c*p
    return max(0, m)
l = int(sys.argv[1]) if len(sys.argv) > 1 else 0
gq = read(f'model.layers.{l}.self_attn.q_norm.weight'); gk = read(f'model.layers.{l}.self_attn.k_norm.weight')
d = len(gq); h = d//2; u = 2**-8; r = 1/(8*math.log(2)); c = 4
Q = [0.5*(gq[i]**2+gq[i+h]**2) for i in range(h)]; K = [0.5*(gk[i]**2+gk[i+h]**2) for i in range(h)]
S = sum(q*k for q, k in zip(Q, K))*2/d; maxk2 = max(2*k for k in K); var_ref = 2*u*u*r; act = 2*u*u*r*S
for scale in ['per_tensor', 'per_channel']:
    uni = gau = 0
    for q, k in zip(Q, K):
        step = c*math.sqrt(maxk2 if scale == 'per_tensor' else 2*k)/127
        uni += q*step*step/12; gau += q*gmse(math.sqrt(k), step)
    uni *= 2/d; gau *= 2/d
    print(f"layer {l} {scale}: step^2/12 model amp {math.sqrt((act+uni)/var_ref):.2f}, Gaussian model amp {math.sqrt((act+gau)/var_ref):.2f}")
print("activation-only amp", math.sqrt(S), "max|k| est", c*math.sqrt(maxk2), "per-tensor step", c*math.sqrt(maxk2)/127)
