// Generation on top of Model: the defaults a checkpoint ships (generation_config.json,
// config.json), and a Session that owns a KV cache, reuses the longest common prefix between calls
// (multi-turn chat re-renders the whole conversation), and streams sampled tokens.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "model/sampler.h"
#include "util/result.h"

namespace fusecheck {

// What the checkpoint says about generation. Missing files or fields keep the defaults.
struct GenerationDefaults {
  SamplingParams sampling;        // greedy unless generation_config.json has do_sample: true
  std::vector<int32_t> eos_ids;   // generation_config.json's, else config.json's eos_token_id
  std::optional<int32_t> bos_id;  // likewise
};
Result<GenerationDefaults> read_generation_defaults(const std::string& dir);

struct GenerationStats {
  int64_t prompt_tokens = 0;  // tokens prefilled (after prefix reuse)
  int64_t generated = 0;      // tokens emitted
  int64_t decode_steps = 0;   // single-token forward passes
  double prefill_s = 0, decode_s = 0;
  double first_token_s = 0;   // from the call to the first sampled token
  bool context_full = false;  // generation stopped because the KV cache holds max_context tokens
  double prefill_tok_s() const { return prefill_s > 0 ? prompt_tokens / prefill_s : 0; }
  double decode_tok_s() const { return decode_s > 0 ? decode_steps / decode_s : 0; }
};

class Session {
 public:
  // plan: the kernels to run (nullptr = standard).
  Session(const Model& m, Precision p, int64_t max_context, const KernelPlan* plan = nullptr);

  // Makes the cache hold exactly `tokens`: keeps the common prefix with what it holds and runs the
  // rest. At least the last token is always run, so its logits are fresh.
  Status feed(std::span<const int32_t> tokens, GenerationStats* stats = nullptr);

  // Samples up to max_tokens tokens, calling on_token for each as it is chosen. Stops before
  // emitting a stop id, when on_token returns false, or when the cache is full (stats'
  // context_full; not an error: what was generated stands). Every emitted token but the last is
  // run (the last needs no logits; the next feed() runs it as part of the conversation).
  // Greedy sampling on a GPU runs each step as a replayed graph that picks the token on the
  // device; the tokens are the same as the sampler's on the downloaded logits.
  Result<std::vector<int32_t>> generate(int64_t max_tokens, Sampler& sampler,
                                        std::span<const int32_t> stop_ids,
                                        const std::function<bool(int32_t)>& on_token,
                                        GenerationStats* stats = nullptr);

  const std::vector<int32_t>& tokens() const { return tokens_; }
  const std::vector<float>& last_logits() const { return logits_; }  // [vocab]
  const KvCache& cache() const { return cache_; }
  void reset();

 private:
  const Model* model_;
  Precision precision_;
  KernelPlan plan_;
  KvCache cache_;
  std::vector<int32_t> tokens_;  // what the cache holds
  std::vector<float> logits_;
  Activations ws_;  // reused by every forward call
  // Decode on a backend with graphs: the step recorded once and replayed, the token chosen on
  // the device (greedy: Model::decode_greedy; sampling: Model::decode_step with Sampler::draw).
  DecodeGraph graph_;
};

}  // namespace fusecheck
