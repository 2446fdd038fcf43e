// Choosing the rebalance's scales per layer, from the weights or measured magnitudes (the math is
// in rebalance.h and docs/ANALYSIS.md section 9).
#include <algorithm>
#include <cmath>
#include <functional>
#include <nlohmann/json.hpp>

#include "arch/arch_profile.h"
#include "io/model_config.h"
#include "model/weights.h"
#include "repair/rebalance_calibrate.h"
#include "repair/rebalance_detail.h"

namespace fusecheck {

Result<KeyBalance> parse_key_balance(std::string_view s) {
  if (s == "flat") return KeyBalance::kFlat;
  if (s == "geo") return KeyBalance::kGeo;
  if (s == "none") return KeyBalance::kNone;
  return make_error("--keys: \"{}\" is not one of flat, geo, none", printable(s));
}

Result<ValueBalance> parse_value_balance(std::string_view s) {
  if (s == "flat") return ValueBalance::kFlat;
  if (s == "none") return ValueBalance::kNone;
  return make_error("--values: \"{}\" is not one of flat, none", printable(s));
}

std::string_view key_balance_name(KeyBalance k) {
  return k == KeyBalance::kFlat ? "flat" : k == KeyBalance::kGeo ? "geo" : "none";
}
std::string_view value_balance_name(ValueBalance v) {
  return v == ValueBalance::kFlat ? "flat" : "none";
}

namespace repair {

namespace {

// The tensors of one layer that the transform touches (full names; empty = absent).
struct LayerNames {
  std::string input_norm, q_proj, k_proj, v_proj, o_proj, q_bias, k_bias, v_bias, q_norm, k_norm;
};

class Reader {
 public:
  explicit Reader(const Checkpoint& ck) : ck_(ck) {}
  // A float tensor of exactly `shape`, as fp32; NaN or Inf is refused. An empty name, or an
  // absent tensor when `optional`, gives an empty vector.
  Result<std::vector<float>> read(const std::string& name, std::vector<uint64_t> shape,
                                  bool optional = false) const {
    const TensorRef* ref = name.empty() ? nullptr : ck_.find(name);
    if (!ref) {
      if (optional || name.empty()) return std::vector<float>{};
      return make_error("{}: missing tensor {}", ck_.dir(), name);
    }
    const TensorInfo& t = *ref->info;
    if (!dtype_is_float_supported(t.dtype))
      return make_error("{}: tensor {} has dtype {}; rebalance handles F32, F16 and BF16",
                        ref->file->path(), name, dtype_name(t.dtype));
    if (!same_shape(t.shape, shape))
      return make_error("{}: tensor {} does not have the shape config.json implies",
                        ref->file->path(), name);
    FC_ASSIGN(v, ref->file->read_f32(t));
    for (float x : v)
      if (!std::isfinite(x))
        return make_error("{}: tensor {} holds NaN or Inf; refusing to rebalance it",
                          ref->file->path(), name);
    return v;
  }
  bool has(const std::string& name) const { return !name.empty() && ck_.find(name) != nullptr; }
  DType dtype(const std::string& name) const {
    const TensorRef* r = name.empty() ? nullptr : ck_.find(name);
    return r ? r->info->dtype : DType::F32;
  }

 private:
  const Checkpoint& ck_;
};

Result<LayerTensors> read_layer(const Reader& rd, const LayerNames& n, const Shapes& s) {
  const auto dim = uint64_t(s.dim), hd = uint64_t(s.hd), q = uint64_t(s.nh) * hd,
             kv = uint64_t(s.nkv) * hd;
  LayerTensors t;
  FC_ASSIGN(in_gain, rd.read(n.input_norm, {dim}));
  FC_ASSIGN(wq, rd.read(n.q_proj, {q, dim}));
  FC_ASSIGN(wk, rd.read(n.k_proj, {kv, dim}));
  FC_ASSIGN(wv, rd.read(n.v_proj, {kv, dim}));
  FC_ASSIGN(wo, rd.read(n.o_proj, {dim, q}));
  FC_ASSIGN(bq, rd.read(n.q_bias, {q}, true));
  FC_ASSIGN(bk, rd.read(n.k_bias, {kv}, true));
  FC_ASSIGN(bv, rd.read(n.v_bias, {kv}, true));
  FC_ASSIGN(gq, rd.read(n.q_norm, {hd}));
  FC_ASSIGN(gk, rd.read(n.k_norm, {hd}));
  t.in_gain = std::move(in_gain), t.wq = std::move(wq), t.wk = std::move(wk);
  t.wv = std::move(wv), t.wo = std::move(wo), t.bq = std::move(bq), t.bk = std::move(bk),
  t.bv = std::move(bv);
  t.gq = std::move(gq), t.gk = std::move(gk);
  t.dq = rd.dtype(n.q_proj), t.dk = rd.dtype(n.k_proj), t.dv = rd.dtype(n.v_proj);
  t.dout = rd.dtype(n.o_proj), t.dbq = rd.dtype(n.q_bias), t.dbk = rd.dtype(n.k_bias);
  t.dbv = rd.dtype(n.v_bias), t.dgq = rd.dtype(n.q_norm), t.dgk = rd.dtype(n.k_norm);
  return t;
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
  return v[v.size() / 2];
}

double max_of(const std::vector<double>& v) {
  return *std::max_element(v.begin(), v.end());
}

// The power-of-two exponent nearest (in log scale) to `ratio` > 0.
int pow2_exp(double ratio) {
  return int(std::clamp(std::lround(std::log2(ratio)), -60L, 60L));
}

// Exponents e (magnitude R * 2^e) that minimise a per-tensor quantiser's cost
// M^2 * sum_p w_p * 4^-e_p, where M = max_p R_p 2^e_p sets the step. For a given M each e_p is
// best as large as M allows, which puts every R_p 2^e_p in (M/2, M]: the magnitudes become flat
// to within one octave, and only M's position within the octave is left to choose; the candidates
// are the R_p themselves. The result is shifted so that the median exponent is 0 (a common factor
// changes nothing). Slots with R_p == 0 are left at 0.
std::vector<int> octave_exponents(const std::vector<double>& r, const std::vector<double>& w) {
  std::vector<int> best(r.size(), 0), e(r.size());
  double best_cost = -1;
  const double rmax = max_of(r);
  for (double cand : r) {
    if (cand <= 0) continue;
    const double m = std::ldexp(cand, int(std::ceil(std::log2(rmax / cand) - 1e-12)));  // >= rmax
    double cost = 0;
    for (size_t p = 0; p < r.size(); ++p) {
      e[p] = r[p] > 0 ? int(std::floor(std::log2(m / r[p]) + 1e-12)) : 0;
      if (r[p] > 0 && std::ldexp(r[p], e[p]) > m * (1 + 1e-12)) --e[p];
      cost += (r[p] > 0 ? w[p] : 0) * std::ldexp(1.0, -2 * e[p]);
    }
    cost *= m * m;
    if (best_cost < 0 || cost < best_cost * (1 - 1e-12)) best_cost = cost, best = e;
  }
  std::vector<int> sorted = best;
  std::nth_element(sorted.begin(), sorted.begin() + std::ptrdiff_t(sorted.size() / 2),
                   sorted.end());
  const int shift = sorted[sorted.size() / 2];
  for (size_t p = 0; p < r.size(); ++p)
    if (r[p] > 0) best[p] -= shift;
  return best;
}

// True when elements v[start + k * stride], k < n, all scale by 2^e exactly in `dt` (an empty v,
// an absent tensor, is trivially exact).
bool scales_exactly(const std::vector<float>& v, size_t start, size_t n, size_t stride, int e,
                    DType dt) {
  if (v.empty() || e == 0) return true;
  unsigned char buf[4];
  for (size_t k = 0; k < n; ++k) {
    const float x = v[start + k * stride];
    if (x == 0) continue;
    const double want = std::ldexp(double(x), e);
    const float y = float(want);
    if (double(y) != want || !std::isfinite(y) || !store_exact(dt, y, buf)) return false;
  }
  return true;
}

// Moves each slot's exponent toward 0 until every weight it scales stays exact (an f16 weight
// near its subnormal range cannot be halved exactly); returns how many slots were moved.
int clamp_to_exact(std::vector<int>& e, const std::function<bool(size_t, int)>& exact) {
  int moved = 0;
  for (size_t p = 0; p < e.size(); ++p) {
    const int before = e[p];
    while (e[p] != 0 && !exact(p, e[p])) e[p] -= e[p] > 0 ? 1 : -1;
    moved += e[p] != before;
  }
  return moved;
}

// Key exponents per slot (kv head and pair, or pair alone).
Result<std::vector<int>> key_exponents(const std::vector<double>& km, const std::vector<double>& qm,
                                       const std::vector<double>& qw, size_t half, KeyBalance mode,
                                       const std::string& what) {
  for (size_t p = 0; p < km.size(); ++p)
    if (km[p] == 0 || (mode == KeyBalance::kGeo && qm[p] == 0))
      return make_error(
          "{}: the {} side of RoPE pair {} (kv head {}) is zero on both channels; no scale can "
          "balance a pair that carries nothing (use --keys none)",
          what, km[p] == 0 ? "key" : "query", p % half, p / half);
  if (mode == KeyBalance::kFlat) return octave_exponents(km, qw);
  std::vector<int> e(km.size());
  for (size_t p = 0; p < km.size(); ++p) e[p] = pow2_exp(std::sqrt(qm[p] / km[p]));
  return e;
}

void spread(const std::vector<double>& m, const std::vector<int>& e, double& before, double& after,
            double* max_before = nullptr, double* max_after = nullptr) {
  std::vector<double> scaled(m.size());
  for (size_t i = 0; i < m.size(); ++i) scaled[i] = std::ldexp(m[i], e[i]);
  const double mb = median(m), ma = median(scaled);
  before = mb > 0 ? max_of(m) / mb : 1;
  after = ma > 0 ? max_of(scaled) / ma : 1;
  if (max_before) *max_before = max_of(m), *max_after = max_of(scaled);
}

bool any_nonzero(const std::vector<int>& v) {
  return std::any_of(v.begin(), v.end(), [](int x) { return x != 0; });
}

void add_edit(std::vector<TensorEdit>& edits, const std::string& name, std::vector<int> rows,
              std::vector<int> cols) {
  if (name.empty() || (!any_nonzero(rows) && !any_nonzero(cols))) return;
  for (auto& e : edits) {  // a tensor edited twice: the scales multiply
    if (e.name != name) continue;
    auto add = [](std::vector<int>& into, const std::vector<int>& more) {
      if (into.empty()) into.assign(more.size(), 0);
      for (size_t i = 0; i < more.size(); ++i) into[i] += more[i];
    };
    add(e.row_exp, rows);
    add(e.col_exp, cols);
    return;
  }
  edits.push_back({name, std::move(rows), std::move(cols)});
}

// [nkv * half] -> [half]: the largest over kv heads (shared per-layer gains take one s per pair).
std::vector<double> across_heads(const std::vector<double>& m, const Shapes& s) {
  std::vector<double> out(size_t(s.half), 0);
  for (size_t i = 0; i < m.size(); ++i) out[i % s.half] = std::max(out[i % s.half], m[i]);
  return out;
}

// Key scales through the shared per-layer q_norm/k_norm gains: one s per pair for all heads.
Status plan_keys_via_norms(const LayerMagnitudes& m, const LayerTensors& t, const LayerNames& n,
                           const Shapes& s, KeyBalance mode, LayerScales& ls,
                           std::vector<TensorEdit>& edits) {
  const auto km = across_heads(m.key, s), qm = across_heads(m.query, s);
  std::vector<double> qw(size_t(s.half), 0);  // shared gains: every head's queries count
  for (size_t i = 0; i < m.query_weight.size(); ++i) qw[i % s.half] += m.query_weight[i];
  FC_ASSIGN(e, key_exponents(km, qm, qw, size_t(s.half), mode, n.k_norm));
  const size_t h2 = size_t(s.half);
  ls.clamped += clamp_to_exact(e, [&](size_t p, int x) {
    return scales_exactly(t.gk, p, 2, h2, x, t.dgk) && scales_exactly(t.gq, p, 2, h2, -x, t.dgq);
  });
  spread(km, e, ls.key_spread_before, ls.key_spread_after, &ls.key_max_before, &ls.key_max_after);
  std::vector<int> ke(size_t(s.hd)), qe(size_t(s.hd));
  for (size_t i = 0; i < size_t(s.half); ++i) {
    ke[i] = ke[i + s.half] = e[i];
    qe[i] = qe[i + s.half] = -e[i];
  }
  ls.key_exp.clear();
  for (int64_t g = 0; g < s.nkv; ++g) ls.key_exp.insert(ls.key_exp.end(), e.begin(), e.end());
  add_edit(edits, n.k_norm, {}, ke);
  add_edit(edits, n.q_norm, {}, qe);
  return ok_status();
}

// Key scales folded into k_proj's rows (and bias) and q_proj's rows of every query head of the
// group: s may differ per kv head.
Status plan_keys_via_rows(const LayerMagnitudes& m, const LayerTensors& t, const Reader& rd,
                          const LayerNames& n, const Shapes& s, KeyBalance mode, LayerScales& ls,
                          std::vector<TensorEdit>& edits) {
  FC_ASSIGN(e, key_exponents(m.key, m.query, m.query_weight, size_t(s.half), mode, n.k_proj));
  const auto dim = size_t(s.dim), hd = size_t(s.hd), half = size_t(s.half);
  ls.clamped += clamp_to_exact(e, [&](size_t slot, int x) {
    const size_t g = slot / half, i = slot % half;
    for (size_t r : {g * hd + i, g * hd + i + half})  // k rows of kv head g, pair i
      if (!scales_exactly(t.wk, r * dim, dim, 1, x, t.dk) ||
          !scales_exactly(t.bk, r, 1, 1, x, t.dbk))
        return false;
    for (size_t h = g * size_t(s.rep); h < (g + 1) * size_t(s.rep); ++h)  // the group's q rows
      for (size_t r : {h * hd + i, h * hd + i + half})
        if (!scales_exactly(t.wq, r * dim, dim, 1, -x, t.dq) ||
            !scales_exactly(t.bq, r, 1, 1, -x, t.dbq))
          return false;
    return true;
  });
  spread(m.key, e, ls.key_spread_before, ls.key_spread_after, &ls.key_max_before,
         &ls.key_max_after);
  ls.key_exp = e;
  std::vector<int> kr(size_t(s.nkv * s.hd)), qr(size_t(s.nh * s.hd));
  for (int64_t h = 0; h < s.nh; ++h)
    for (int64_t i = 0; i < s.half; ++i) {
      const int x = e[size_t((h / s.rep) * s.half + i)];
      qr[size_t(h * s.hd + i)] = qr[size_t(h * s.hd + i + s.half)] = -x;
      if (h % s.rep == 0)
        kr[size_t((h / s.rep) * s.hd + i)] = kr[size_t((h / s.rep) * s.hd + i + s.half)] = x;
    }
  add_edit(edits, n.k_proj, kr, {});
  add_edit(edits, n.q_proj, qr, {});
  if (rd.has(n.k_bias)) add_edit(edits, n.k_bias, {}, kr);
  if (rd.has(n.q_bias)) add_edit(edits, n.q_bias, {}, qr);
  return ok_status();
}

// Value scales: v_proj row (and bias) of (kv head g, channel c) / s, o_proj column h * hd + c * s
// for every query head h of the group.
void plan_values(const LayerMagnitudes& m, const LayerTensors& t, const Reader& rd,
                 const LayerNames& n, const Shapes& s, LayerScales& ls,
                 std::vector<TensorEdit>& edits) {
  // v * 2^e: a value slot's quantisation error reaches the output through o_proj's columns * 2^-e.
  std::vector<int> neg = octave_exponents(m.value, m.value_weight);
  const auto dim = size_t(s.dim), hd = size_t(s.hd), in = size_t(s.nh * s.hd);
  ls.clamped += clamp_to_exact(neg, [&](size_t r, int x) {
    if (!scales_exactly(t.wv, r * dim, dim, 1, x, t.dv) || !scales_exactly(t.bv, r, 1, 1, x, t.dbv))
      return false;
    const size_t g = r / hd, c = r % hd;
    for (size_t h = g * size_t(s.rep); h < (g + 1) * size_t(s.rep); ++h)  // o_proj column (h, c)
      if (!scales_exactly(t.wo, h * hd + c, dim, in, -x, t.dout)) return false;
    return true;
  });
  ls.value_exp.resize(neg.size());
  for (size_t r = 0; r < neg.size(); ++r) ls.value_exp[r] = -neg[r];
  std::vector<int> oc(size_t(s.nh * s.hd));
  spread(m.value, neg, ls.value_spread_before, ls.value_spread_after);
  for (int64_t h = 0; h < s.nh; ++h)
    for (int64_t c = 0; c < s.hd; ++c)
      oc[size_t(h * s.hd + c)] = ls.value_exp[size_t((h / s.rep) * s.hd + c)];
  add_edit(edits, n.v_proj, neg, {});
  if (rd.has(n.v_bias)) add_edit(edits, n.v_bias, {}, neg);
  add_edit(edits, n.o_proj, {}, oc);
}

// The architecture, its tensor prefix and whatever makes an exact transform impossible.
struct ArchView {
  ArchProfile arch;
  std::string prefix;
};

Status check_rope_pairing(const Checkpoint& ck) {
  auto j = nlohmann::json::parse(ck.config_json(), nullptr, false);
  for (const auto* c : {&j, j.contains("text_config") ? &j["text_config"] : nullptr}) {
    if (!c || !c->is_object()) continue;
    auto it = c->find("partial_rotary_factor");
    if (it != c->end() && !(it->is_number() && it->get<double>() == 1.0))
      return make_error(
          "{}: partial_rotary_factor is not 1; RoPE pairs only part of each head, which the "
          "rebalance's pairing (i, i + head_dim/2) does not match",
          ck.config_path());
  }
  return ok_status();
}

Result<ArchView> resolve_arch(const Checkpoint& ck, const ModelConfig& c,
                              const RebalanceOptions& opt) {
  FC_ASSIGN(reg, ArchRegistry::load(opt.arch_profiles));
  FC_ASSIGN(arch, reg.find(c.model_type, ck.config_path()));
  if (!arch->has_decoder)
    return make_error(
        "{}: architecture \"{}\" has no decoder table; rebalance only rewrites models the "
        "engine runs (and can verify)",
        ck.config_path(), arch->name);
  if (arch->convention != GainConvention::kW)
    return make_error("{}: gains of the form 1 + w cannot be scaled exactly by a power of two",
                      ck.config_path());
  if (arch->qk_scope == QkNormScope::kWholeProjection)
    return make_error("{}: q/k norms over the whole projection are not supported by rebalance",
                      ck.config_path());
  FC_TRY(validate_engine_config(c, ck.config_path()));
  FC_TRY(check_rope_pairing(ck));
  const DecoderTensors& d = arch->decoder;
  if (!d.q_norm.empty() && (d.q_norm == d.k_norm || d.q_norm.find("{layer}") == std::string::npos))
    return make_error(
        "{}: q_norm/k_norm of architecture \"{}\" are tied (one tensor for both, or shared by "
        "all layers); a per-layer, per-side scale would not be exact",
        ck.config_path(), arch->name);
  ArchView v{*arch, ""};
  for (const auto& p : arch->tensor_prefixes)
    if (ck.find(p + d.embed_tokens)) v.prefix = p;
  if (v.prefix.empty())
    return make_error("{}: missing tensor {}; not a {} checkpoint or incomplete", ck.dir(),
                      arch->tensor_prefixes.front() + d.embed_tokens, arch->name);
  return v;
}

LayerNames layer_names(const ArchView& v, int64_t l) {
  const DecoderTensors& d = v.arch.decoder;
  auto N = [&](const std::string& t) {
    return t.empty() ? std::string() : layer_tensor_name(v.prefix, t, l);
  };
  return {N(d.input_norm), N(d.q_proj), N(d.k_proj), N(d.v_proj), N(d.o_proj),
          N(d.q_bias),     N(d.k_bias), N(d.v_bias), N(d.q_norm), N(d.k_norm)};
}

}  // namespace

Result<PlannedEdits> plan_edits(const Checkpoint& ck, const RebalanceOptions& opt) {
  FC_ASSIGN(c, parse_model_config(ck.config_json(), ck.config_path()));
  FC_ASSIGN(view, resolve_arch(ck, c, opt));
  const Shapes s{c.hidden_size, c.head_dim,     c.head_dim / 2,
                 c.num_heads,   c.num_kv_heads, c.num_heads / c.num_kv_heads,
                 c.rms_norm_eps};
  PlannedEdits out;
  RebalancePlan& plan = out.plan;
  plan.arch = view.arch.name;
  plan.via_norms = !view.arch.decoder.q_norm.empty();
  plan.calibrated = opt.calibrate;
  plan.num_heads = s.nh, plan.num_kv_heads = s.nkv, plan.head_dim = s.hd;
  std::vector<std::vector<float>> hidden;
  if (opt.calibrate) {
    FC_ASSIGN(h, calibration_hidden(ck.dir(), {opt.arch_profiles, opt.prompts, opt.tokens}));
    hidden = std::move(h);
  }
  Reader rd(ck);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerNames n = layer_names(view, l);
    if (const TensorRef* q = ck.find(n.q_proj); q && l == 0)
      plan.dtype = std::string(dtype_name(q->info->dtype));
    FC_ASSIGN(t, read_layer(rd, n, s));
    const LayerMagnitudes m =
        opt.calibrate ? measured_magnitudes(hidden[size_t(l)], t, s) : weight_magnitudes(t, s);
    LayerScales ls;
    if (opt.keys != KeyBalance::kNone) {
      if (plan.via_norms)
        FC_TRY(plan_keys_via_norms(m, t, n, s, opt.keys, ls, out.edits));
      else
        FC_TRY(plan_keys_via_rows(m, t, rd, n, s, opt.keys, ls, out.edits));
    }
    if (opt.values != ValueBalance::kNone) plan_values(m, t, rd, n, s, ls, out.edits);
    plan.layers.push_back(std::move(ls));
  }
  for (const auto& e : out.edits) plan.changed_tensors.push_back(e.name);
  std::sort(plan.changed_tensors.begin(), plan.changed_tensors.end());
  return out;
}

}  // namespace repair

Result<RebalancePlan> plan_rebalance(const std::string& model_dir, const RebalanceOptions& opt) {
  FC_ASSIGN(ck, Checkpoint::open(model_dir));
  FC_ASSIGN(p, repair::plan_edits(ck, opt));
  return std::move(p.plan);
}

}  // namespace fusecheck
