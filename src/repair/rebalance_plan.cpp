// Choosing the rebalance's scales from the weights (the math is in rebalance.h).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "arch/arch_profile.h"
#include "io/model_config.h"
#include "model/weights.h"
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

struct Shapes {
  int64_t dim, hd, half, nh, nkv, rep;
};

class Reader {
 public:
  explicit Reader(const Checkpoint& ck) : ck_(ck) {}
  // A float tensor of exactly `shape`, as fp32; NaN or Inf is refused.
  Result<std::vector<float>> read(const std::string& name, std::vector<uint64_t> shape) const {
    const TensorRef* ref = ck_.find(name);
    if (!ref) return make_error("{}: missing tensor {}", ck_.dir(), name);
    const TensorInfo& t = *ref->info;
    if (!dtype_is_float_supported(t.dtype))
      return make_error("{}: tensor {} has dtype {}; rebalance handles F32, F16 and BF16",
                        ref->file->path(), name, dtype_name(t.dtype));
    if (t.shape != shape)
      return make_error("{}: tensor {} does not have the shape config.json implies",
                        ref->file->path(), name);
    FC_ASSIGN(v, ref->file->read_f32(t));
    for (float x : v)
      if (!std::isfinite(x))
        return make_error("{}: tensor {} holds NaN or Inf; refusing to rebalance it",
                          ref->file->path(), name);
    return v;
  }
  bool has(const std::string& name) const { return ck_.find(name) != nullptr; }

 private:
  const Checkpoint& ck_;
};

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
  return v[v.size() / 2];
}

double max_of(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

// The power-of-two exponent nearest (in log scale) to `ratio` > 0.
int pow2_exp(double ratio) {
  return int(std::clamp(std::lround(std::log2(ratio)), -60L, 60L));
}

// Row norms of W [rows, cols] as the layer sees it: the input RMSNorm's gain scales its columns.
std::vector<double> row_norms(const std::vector<float>& w, const std::vector<float>& gain,
                              int64_t rows) {
  const size_t cols = gain.size();
  std::vector<double> out(static_cast<size_t>(rows));
  for (size_t r = 0; r < size_t(rows); ++r) {
    double s = 0;
    for (size_t c = 0; c < cols; ++c) {
      const double x = double(w[r * cols + c]) * gain[c];
      s += x * x;
    }
    out[r] = std::sqrt(s);
  }
  return out;
}

// Pairs (i, i + half) of each head: the larger magnitude. mag: [heads * hd] -> [heads * half].
std::vector<double> pair_max(const std::vector<double>& mag, const Shapes& s) {
  std::vector<double> out(mag.size() / 2);
  const size_t heads = mag.size() / size_t(s.hd);
  for (size_t h = 0; h < heads; ++h)
    for (size_t i = 0; i < size_t(s.half); ++i)
      out[h * s.half + i] = std::max(mag[h * s.hd + i], mag[h * s.hd + i + s.half]);
  return out;
}

// Key exponents per (kv head, pair) from key and query pair magnitudes (both [nkv * half]).
Result<std::vector<int>> key_exponents(const std::vector<double>& km, const std::vector<double>& qm,
                                       size_t half, KeyBalance mode, const std::string& what) {
  const double target = median(km);
  std::vector<int> e(km.size(), 0);
  for (size_t p = 0; p < km.size(); ++p) {
    if (km[p] == 0 || (mode == KeyBalance::kGeo && qm[p] == 0))
      return make_error(
          "{}: the {} side of RoPE pair {} (kv head {}) is zero on both channels; no scale can "
          "balance a pair that carries nothing (use --keys none)",
          what, km[p] == 0 ? "key" : "query", p % half, p / half);
    e[p] = mode == KeyBalance::kFlat ? pow2_exp(target / km[p]) : pow2_exp(std::sqrt(qm[p] / km[p]));
  }
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

// Key scales through the shared per-layer q_norm/k_norm gains: one s per pair for all heads.
Status plan_keys_via_norms(const Reader& rd, const LayerNames& n, const Shapes& s,
                           KeyBalance mode, LayerScales& ls, std::vector<TensorEdit>& edits) {
  const auto hd = uint64_t(s.hd);
  FC_ASSIGN(gq, rd.read(n.q_norm, {hd}));
  FC_ASSIGN(gk, rd.read(n.k_norm, {hd}));
  std::vector<double> aq(gq.begin(), gq.end()), ak(gk.begin(), gk.end());
  for (auto& x : aq) x = std::abs(x);
  for (auto& x : ak) x = std::abs(x);
  const auto qm = pair_max(aq, s), km = pair_max(ak, s);
  FC_ASSIGN(e, key_exponents(km, qm, size_t(s.half), mode, n.k_norm));
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
Status plan_keys_via_rows(const Reader& rd, const LayerNames& n, const Shapes& s,
                          const std::vector<float>& in_gain, KeyBalance mode, LayerScales& ls,
                          std::vector<TensorEdit>& edits) {
  const auto dim = uint64_t(s.dim);
  FC_ASSIGN(wq, rd.read(n.q_proj, {uint64_t(s.nh * s.hd), dim}));
  FC_ASSIGN(wk, rd.read(n.k_proj, {uint64_t(s.nkv * s.hd), dim}));
  const auto km = pair_max(row_norms(wk, in_gain, s.nkv * s.hd), s);
  const auto qh = pair_max(row_norms(wq, in_gain, s.nh * s.hd), s);  // [nh * half]
  std::vector<double> qm(km.size(), 0);  // the group's largest query magnitude per pair
  for (int64_t h = 0; h < s.nh; ++h)
    for (int64_t i = 0; i < s.half; ++i) {
      double& m = qm[size_t((h / s.rep) * s.half + i)];
      m = std::max(m, qh[size_t(h * s.half + i)]);
    }
  FC_ASSIGN(e, key_exponents(km, qm, size_t(s.half), mode, n.k_proj));
  spread(km, e, ls.key_spread_before, ls.key_spread_after, &ls.key_max_before, &ls.key_max_after);
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
Status plan_values(const Reader& rd, const LayerNames& n, const Shapes& s,
                   const std::vector<float>& in_gain, LayerScales& ls,
                   std::vector<TensorEdit>& edits) {
  FC_ASSIGN(wv, rd.read(n.v_proj, {uint64_t(s.nkv * s.hd), uint64_t(s.dim)}));
  const auto vm = row_norms(wv, in_gain, s.nkv * s.hd);
  const double target = median(vm);
  ls.value_exp.assign(vm.size(), 0);
  for (size_t r = 0; r < vm.size(); ++r)
    if (vm[r] > 0 && target > 0) ls.value_exp[r] = pow2_exp(vm[r] / target);  // zero row: kept
  std::vector<int> neg(ls.value_exp.size()), oc(size_t(s.nh * s.hd));
  for (size_t r = 0; r < neg.size(); ++r) neg[r] = -ls.value_exp[r];
  spread(vm, neg, ls.value_spread_before, ls.value_spread_after);
  for (int64_t h = 0; h < s.nh; ++h)
    for (int64_t c = 0; c < s.hd; ++c)
      oc[size_t(h * s.hd + c)] = ls.value_exp[size_t((h / s.rep) * s.hd + c)];
  add_edit(edits, n.v_proj, neg, {});
  if (rd.has(n.v_bias)) add_edit(edits, n.v_bias, {}, neg);
  add_edit(edits, n.o_proj, {}, oc);
  return ok_status();
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
  const Shapes s{c.hidden_size, c.head_dim,    c.head_dim / 2,
                 c.num_heads,   c.num_kv_heads, c.num_heads / c.num_kv_heads};
  PlannedEdits out;
  RebalancePlan& plan = out.plan;
  plan.arch = view.arch.name;
  plan.via_norms = !view.arch.decoder.q_norm.empty();
  plan.num_heads = s.nh, plan.num_kv_heads = s.nkv, plan.head_dim = s.hd;
  Reader rd(ck);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const LayerNames n = layer_names(view, l);
    if (const TensorRef* q = ck.find(n.q_proj); q && l == 0)
      plan.dtype = std::string(dtype_name(q->info->dtype));
    LayerScales ls;
    FC_ASSIGN(in_gain, rd.read(n.input_norm, {uint64_t(s.dim)}));
    if (opt.keys != KeyBalance::kNone) {
      if (plan.via_norms)
        FC_TRY(plan_keys_via_norms(rd, n, s, opt.keys, ls, out.edits));
      else
        FC_TRY(plan_keys_via_rows(rd, n, s, in_gain, opt.keys, ls, out.edits));
    }
    if (opt.values != ValueBalance::kNone)
      FC_TRY(plan_values(rd, n, s, in_gain, ls, out.edits));
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
