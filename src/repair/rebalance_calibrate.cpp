#include "repair/rebalance_calibrate.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <random>

#include "model/model.h"
#include "probe/probe.h"

namespace fusecheck::repair {

namespace {

// y = W x (+ b) for one token: W [rows, cols], x [cols], in double.
void matvec(const std::vector<float>& w, const std::vector<float>& b, const double* x, size_t rows,
            size_t cols, std::vector<double>& y) {
  y.assign(rows, 0);
  for (size_t r = 0; r < rows; ++r) {
    const float* row = w.data() + r * cols;
    double s = b.empty() ? 0 : b[r];
    for (size_t c = 0; c < cols; ++c) s += double(row[c]) * x[c];
    y[r] = s;
  }
}

// Per-head RMSNorm with gain g (when the model has q/k norms), in place on y [heads * hd].
void head_norm(std::vector<double>& y, const std::vector<float>& g, const Shapes& s) {
  if (g.empty()) return;
  for (size_t h = 0; h < y.size() / size_t(s.hd); ++h) {
    double* v = y.data() + h * s.hd;
    double ss = 0;
    for (int64_t i = 0; i < s.hd; ++i) ss += v[i] * v[i];
    const double inv = 1.0 / std::sqrt(ss / double(s.hd) + s.eps);
    for (int64_t i = 0; i < s.hd; ++i) v[i] = v[i] * inv * g[size_t(i)];
  }
}

// Running maximum of each head's pair radii; `group` maps a head to its slot (kv head).
void max_pair_radius(const std::vector<double>& y, const Shapes& s, int64_t group,
                     std::vector<double>& out) {
  for (size_t h = 0; h < y.size() / size_t(s.hd); ++h)
    for (int64_t i = 0; i < s.half; ++i) {
      const double a = y[h * s.hd + size_t(i)], b = y[h * s.hd + size_t(i + s.half)];
      double& m = out[size_t((int64_t(h) / group) * s.half + i)];
      m = std::max(m, std::sqrt(a * a + b * b));
    }
}

std::vector<double> row_norms(const std::vector<float>& w, const std::vector<float>& gain) {
  const size_t cols = gain.size(), rows = w.size() / cols;
  std::vector<double> out(rows);
  for (size_t r = 0; r < rows; ++r) {
    double s = 0;
    for (size_t c = 0; c < cols; ++c) {
      const double x = double(w[r * cols + c]) * gain[c];
      s += x * x;
    }
    out[r] = std::sqrt(s);
  }
  return out;
}

// Pair maxima of per-channel magnitudes [heads * hd] into [heads / group * half] slots.
std::vector<double> pair_max(const std::vector<double>& mag, const Shapes& s, int64_t group) {
  const int64_t heads = int64_t(mag.size()) / s.hd;
  std::vector<double> out(size_t(heads / group * s.half), 0);
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t i = 0; i < s.half; ++i) {
      double& m = out[size_t((h / group) * s.half + i)];
      m = std::max({m, mag[size_t(h * s.hd + i)], mag[size_t(h * s.hd + i + s.half)]});
    }
  return out;
}

// Squared norm of o_proj's column h * hd + c summed over the group's query heads: [nkv * hd].
std::vector<double> o_column_energy(const std::vector<float>& wo, const Shapes& s) {
  const size_t in = size_t(s.nh * s.hd), rows = wo.size() / in;
  std::vector<double> out(size_t(s.nkv * s.hd), 0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t j = 0; j < in; ++j) {
      const size_t h = j / size_t(s.hd), c = j % size_t(s.hd);
      out[(h / size_t(s.rep)) * s.hd + c] += double(wo[r * in + j]) * wo[r * in + j];
    }
  return out;
}

}  // namespace

LayerMagnitudes weight_magnitudes(const LayerTensors& t, const Shapes& s) {
  LayerMagnitudes m;
  if (!t.gk.empty()) {
    std::vector<double> aq, ak;
    for (int64_t g = 0; g < s.nkv; ++g)
      for (int64_t i = 0; i < s.hd; ++i)
        aq.push_back(std::abs(t.gq[size_t(i)])), ak.push_back(std::abs(t.gk[size_t(i)]));
    m.key = pair_max(ak, s, 1), m.query = pair_max(aq, s, 1);
  } else {
    m.key = pair_max(row_norms(t.wk, t.in_gain), s, 1);
    m.query = pair_max(row_norms(t.wq, t.in_gain), s, s.rep);
  }
  m.query_weight = m.query;
  for (auto& x : m.query_weight) x *= x;
  m.value = row_norms(t.wv, t.in_gain);
  m.value_weight = o_column_energy(t.wo, s);
  return m;
}

Result<std::vector<std::vector<float>>> calibration_hidden(const std::string& model_dir,
                                                           const CalibrationOptions& opt) {
  LoadOptions lo;
  lo.arch_profiles = opt.arch_profiles;
  FC_ASSIGN(model, Model::load(model_dir, lo));
  std::vector<std::vector<int32_t>> inputs;
  if (!opt.prompts.empty() || std::ifstream(model_dir + "/tokenizer.json").good()) {
    FC_ASSIGN(in, calibration_inputs(model, opt.tokens, opt.prompts));
    inputs = std::move(in);
  } else {
    std::mt19937_64 rng(0x72656261);  // not the probe's seed: calibration and measurement differ
    std::uniform_int_distribution<int32_t> id(0, int32_t(model.config().vocab_size - 1));
    inputs.assign(4, std::vector<int32_t>(size_t(opt.tokens)));
    for (auto& seq : inputs)
      for (auto& x : seq) x = id(rng);
  }
  const auto n_layers = size_t(model.config().num_layers);
  std::vector<std::vector<float>> hidden(n_layers);
  for (const auto& seq : inputs) {
    KvCache cache = model.new_cache(Precision::kFp32, int64_t(seq.size()));
    std::vector<float> logits;
    ForwardTrace trace;
    FC_TRY(model.forward(seq, Precision::kFp32, cache, LogitsFor::kLast, logits, &trace));
    for (size_t l = 0; l < n_layers; ++l)
      hidden[l].insert(hidden[l].end(), trace.hidden[l].begin(), trace.hidden[l].end());
  }
  return hidden;
}

LayerMagnitudes measured_magnitudes(const std::vector<float>& hidden, const LayerTensors& t,
                                    const Shapes& s) {
  const auto dim = size_t(s.dim);
  LayerMagnitudes m;
  m.key.assign(size_t(s.nkv * s.half), 0);
  m.query.assign(size_t(s.nkv * s.half), 0);
  m.query_weight.assign(size_t(s.nkv * s.half), 0);
  m.value.assign(size_t(s.nkv * s.hd), 0);
  std::vector<double> x(dim), q, k, v;
  for (size_t tok = 0; tok < hidden.size() / dim; ++tok) {
    const float* h = hidden.data() + tok * dim;
    double ss = 0;
    for (size_t c = 0; c < dim; ++c) ss += double(h[c]) * h[c];
    const double inv = 1.0 / std::sqrt(ss / double(dim) + s.eps);
    for (size_t c = 0; c < dim; ++c) x[c] = h[c] * inv * t.in_gain[c];
    matvec(t.wq, t.bq, x.data(), size_t(s.nh * s.hd), dim, q);
    matvec(t.wk, t.bk, x.data(), size_t(s.nkv * s.hd), dim, k);
    matvec(t.wv, t.bv, x.data(), size_t(s.nkv * s.hd), dim, v);
    head_norm(q, t.gq, s);
    head_norm(k, t.gk, s);
    max_pair_radius(q, s, s.rep, m.query);
    for (int64_t h = 0; h < s.nh; ++h)
      for (int64_t i = 0; i < s.half; ++i) {
        const double a = q[size_t(h * s.hd + i)], b = q[size_t(h * s.hd + i + s.half)];
        m.query_weight[size_t((h / s.rep) * s.half + i)] += a * a + b * b;
      }
    max_pair_radius(k, s, 1, m.key);
    for (size_t c = 0; c < v.size(); ++c) m.value[c] = std::max(m.value[c], std::abs(v[c]));
  }
  m.value_weight = o_column_energy(t.wo, s);
  return m;
}

}  // namespace fusecheck::repair
