#include "model/generate.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/checkpoint.h"
#include "util/atomic_file.h"

namespace fusecheck {

using json = nlohmann::json;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// eos_token_id may be an int, a list of ints, or null.
Status read_ids(const json& j, const char* key, std::vector<int32_t>& out,
                const std::string& path) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return ok_status();
  auto one = [&](const json& v) -> Status {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
      return make_error("{}: \"{}\" must be a non-negative token id or a list of them", path, key);
    out.push_back(static_cast<int32_t>(v.get<int64_t>()));
    return ok_status();
  };
  out.clear();
  if (it->is_array()) {
    for (const auto& v : *it) FC_TRY(one(v));
    return ok_status();
  }
  return one(*it);
}

Status read_defaults_file(const std::string& path, GenerationDefaults& d, bool sampling) {
  if (!std::ifstream(path).good()) return ok_status();
  FC_ASSIGN(text, read_small_file(path, kMaxConfigBytes));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return make_error("{}: expected a JSON object; the file is damaged", path);
  std::vector<int32_t> eos;
  FC_TRY(read_ids(j, "eos_token_id", eos, path));
  if (!eos.empty() && d.eos_ids.empty()) d.eos_ids = eos;
  std::vector<int32_t> bos;
  FC_TRY(read_ids(j, "bos_token_id", bos, path));
  if (!bos.empty() && !d.bos_id) d.bos_id = bos.front();
  if (!sampling) return ok_status();
  auto num = [&](const char* key, auto& dst, double lo, double hi) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return ok_status();
    if (!it->is_number() || it->get<double>() < lo || it->get<double>() > hi)
      return make_error("{}: \"{}\" must be a number in [{}, {}]", path, key, lo, hi);
    dst = static_cast<std::decay_t<decltype(dst)>>(it->get<double>());
    return ok_status();
  };
  SamplingParams s;
  s.temperature = 1.0f;
  FC_TRY(num("temperature", s.temperature, 0.0, 100.0));
  FC_TRY(num("top_k", s.top_k, 0.0, 1e9));
  FC_TRY(num("top_p", s.top_p, 0.0, 1.0));
  FC_TRY(num("min_p", s.min_p, 0.0, 1.0));
  auto ds = j.find("do_sample");
  // transformers samples only with do_sample: true; otherwise generation is greedy.
  if (ds != j.end() && ds->is_boolean() && ds->get<bool>()) d.sampling = s;
  return ok_status();
}

}  // namespace

Result<GenerationDefaults> read_generation_defaults(const std::string& dir) {
  GenerationDefaults d;
  FC_TRY(read_defaults_file(dir + "/generation_config.json", d, true));
  FC_TRY(read_defaults_file(dir + "/config.json", d, false));
  return d;
}

Session::Session(const Model& m, Precision p, int64_t max_context, const KernelPlan* plan)
    : model_(&m),
      precision_(p),
      plan_(plan ? *plan : m.standard_plan()),
      cache_(m.new_cache(p, max_context, &plan_)) {}

void Session::reset() {
  graph_.reset();  // it points into the old cache
  cache_ = model_->new_cache(precision_, cache_.max_context(), &plan_);  // recalibrates KV scales
  tokens_.clear();
  logits_.clear();
}

Status Session::feed(std::span<const int32_t> tokens, GenerationStats* stats) {
  if (tokens.empty()) return make_error("nothing to run: the prompt is empty");
  size_t common = 0;
  while (common < tokens_.size() && common < tokens.size() && tokens_[common] == tokens[common])
    ++common;
  if (common == tokens.size()) --common;  // rerun the last token for its logits
  // Positions past the common prefix are stale; keys/values before it are unchanged.
  cache_.set_size(static_cast<int64_t>(common));
  tokens_.resize(common);
  const double t0 = now_s();
  std::span<const int32_t> rest = tokens.subspan(common);
  FC_TRY(
      model_->forward(rest, precision_, cache_, LogitsFor::kLast, logits_, nullptr, &plan_, &ws_));
  tokens_.insert(tokens_.end(), rest.begin(), rest.end());
  if (stats) {
    stats->prompt_tokens += static_cast<int64_t>(rest.size());
    stats->prefill_s += now_s() - t0;
  }
  return ok_status();
}

Result<std::vector<int32_t>> Session::generate(int64_t max_tokens, Sampler& sampler,
                                               std::span<const int32_t> stop_ids,
                                               const std::function<bool(int32_t)>& on_token,
                                               GenerationStats* stats) {
  if (logits_.empty()) return make_error("generate: feed a prompt first");
  std::vector<int32_t> out;
  const double t0 = now_s();
  double decode_start = t0;
  // Greedy, or sampling when the backend samples on the device too: a recorded step per token.
  const Backend& be = model_->backend();
  const bool on_device =
      be.supports_graphs() && (sampler.params().greedy() || be.supports_device_sampling());
  bool device_logits = false;  // logits_ is stale: the last step's row is on the device
  int32_t chosen = -1;         // the device's choice for the last step
  while (static_cast<int64_t>(out.size()) < max_tokens) {
    const int32_t next = device_logits ? chosen : sampler.next(logits_);
    if (out.empty() && stats) {
      stats->first_token_s = stats->prefill_s + (now_s() - t0);
      decode_start = now_s();
    }
    if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
    out.push_back(next);
    if (stats) stats->generated++;
    if ((on_token && !on_token(next)) || static_cast<int64_t>(out.size()) >= max_tokens) break;
    if (cache_.size() >= cache_.max_context()) {  // no room to run it: the context is full
      if (stats) stats->context_full = true;
      break;
    }
    // Run the token just emitted: its logits give the next one. (The last emitted token is not
    // run; a later feed() of the conversation runs it.)
    if (on_device) {
      // The draw the CPU's next() would take for this token, so both paths emit the same tokens.
      const double u = sampler.params().greedy() ? 0.0 : sampler.draw();
      FC_TRY(model_->decode_step(next, precision_, cache_, plan_, ws_, graph_, sampler.params(), u,
                                 &chosen));
      device_logits = true;
    } else {
      FC_TRY(model_->forward({&next, 1}, precision_, cache_, LogitsFor::kLast, logits_, nullptr,
                             &plan_, &ws_));
    }
    tokens_.push_back(next);
    if (stats) stats->decode_steps++;
  }
  if (stats) stats->decode_s += now_s() - decode_start;
  if (device_logits) model_->read_logits(ws_, logits_);  // last_logits() as without a graph
  return out;
}

}  // namespace fusecheck
