#include "check/check.h"

#include <algorithm>
#include <charconv>
#include <memory>
#include <optional>

#include "arch/arch_profile.h"
#include "check/cache.h"
#include "check/key_rows.h"
#include "check/result_json.h"
#include "io/checkpoint.h"
#include "util/atomic_file.h"
#include "util/hash.h"
#include "util/runs.h"

namespace fusecheck {

namespace {

// The unit roundoff of the standard path's activations: the engine computes in the dtype of the
// decoder's weights (Model::act_type reads layer 0's q_proj), so the header says it, no bytes
// read. bf16 when the tensor is absent (the check's own errors cover a missing projection).
double standard_unit_roundoff(const Checkpoint& ck, const ArchProfile& arch,
                              const std::string& prefix) {
  const TensorRef* t = ck.find(layer_tensor_name(prefix, arch.decoder.q_proj, 0));
  if (!t) return kBf16UnitRoundoff;
  switch (t->info->dtype) {
    case DType::F16:
      return 1.0 / 2048.0;
    case DType::F32:
      return 1.0 / 16777216.0;
    default:
      return kBf16UnitRoundoff;
  }
}

// Picks the tensor-name prefix under which this checkpoint stores the language model.
Result<std::string> find_prefix(const Checkpoint& ck, const ArchProfile& arch) {
  const NormSpec& probe = arch.norms.front();
  for (const auto& p : arch.tensor_prefixes)
    if (ck.find(probe.tensor_name(p, 0))) return p;
  return make_error(
      "{}: missing tensor {} (also tried the prefixes of architecture \"{}\"); the "
      "checkpoint is incomplete or not a {} model",
      ck.dir(), probe.tensor_name(arch.tensor_prefixes.front(), 0), arch.name, arch.name);
}

// Locates one norm tensor and checks its shape against the config.
Result<const TensorRef*> locate_norm(const Checkpoint& ck, const ModelConfig& cfg,
                                     const NormSpec& spec, const NormGains& g) {
  const TensorRef* ref = ck.find(g.tensor);
  if (!ref)
    return make_error("{}: missing tensor \"{}\" ({} of layer {}); config.json says {} layers",
                      ck.dir(), g.tensor, spec.role, g.layer, cfg.num_layers);
  const TensorInfo& t = *ref->info;
  const int64_t want = spec.expected_size(cfg);
  if (t.shape.size() != 1 || int64_t(t.shape[0]) != want) {
    std::string shape;
    for (auto d : t.shape) shape += (shape.empty() ? "" : ", ") + std::to_string(d);
    return make_error("{}: tensor \"{}\" has shape [{}], expected [{}] from config.json",
                      ref->file->path(), g.tensor, shape, want);
  }
  return ref;
}

// The gains from a norm's raw bytes: the dtype must be a float one; the convention applied.
Status convert_norm(const TensorRef& ref, const char* raw, GainConvention convention,
                    NormGains& g) {
  const TensorInfo& t = *ref.info;
  if (!dtype_is_float_supported(t.dtype))
    return make_error("{}: norm tensor \"{}\" has dtype {}; expected F32, F16 or BF16",
                      ref.file->path(), g.tensor, dtype_name(t.dtype));
  g.gains.resize(t.numel);
  convert_to_f32(t.dtype, raw, t.numel, g.gains.data());
  if (convention == GainConvention::kOnePlusW)
    for (float& x : g.gains) x = 1.0f + x;
  return ok_status();
}

// A tensor of a layer that config.json does not count ("model.layers.27.*" when
// num_hidden_layers is 27): the check would skip that layer's norms, so its verdict would not
// describe the checkpoint. Reads names only.
Status check_no_extra_layers(const Checkpoint& ck, const ModelConfig& cfg, const ArchProfile& arch,
                             const std::string& prefix) {
  const std::string& tmpl = arch.norms.front().tensor;  // e.g. "layers.{layer}.input_layernorm..."
  const size_t at = tmpl.find("{layer}");
  if (at == std::string::npos) return ok_status();
  const std::string head = prefix + tmpl.substr(0, at);  // "model.layers."
  for (const auto& f : ck.files())
    for (const TensorInfo& t : f.tensors()) {
      if (t.name.compare(0, head.size(), head) != 0) continue;
      int64_t layer = -1;
      const char* b = t.name.data() + head.size();
      auto [p, ec] = std::from_chars(b, t.name.data() + t.name.size(), layer);
      if (ec != std::errc() || p == b || layer < cfg.num_layers) continue;
      return make_error(
          "{}: tensor {} belongs to layer {}, but config.json says num_hidden_layers {}; the "
          "check would ignore that layer's norms",
          f.path(), t.name, layer, cfg.num_layers);
    }
  return ok_status();
}

// Explicit thresholds (flags, validated) or the thresholds file / built-in defaults.
Result<Thresholds> resolve_thresholds(const CheckOptions& o) {
  if (!o.thresholds) return load_thresholds(o.thresholds_file);
  FC_TRY(validate_thresholds(*o.thresholds, "thresholds"));
  return *o.thresholds;
}

// Fingerprint: config, every shard's name, size and header (the norm bytes are added as they are
// read). Enough to notice any edit that changes the verdict, without hashing gigabytes of matrices.
void fingerprint_files(const Checkpoint& ck, Hasher& fp) {
  fp.update(ck.config_json());
  for (const auto& f : ck.files()) {
    fp.update(f.path().substr(f.path().rfind('/') + 1));
    fp.update_u64(f.file_size());
    fp.update(f.header_json());
  }
}

struct NormJob {
  const NormSpec* spec;
  int64_t layer;  // -1: a model-wide norm
};

// Every norm the architecture names, in report order: per layer in layer order, then the
// model-wide ones.
std::vector<NormJob> norm_jobs(const ModelConfig& cfg, const ArchProfile& arch) {
  std::vector<NormJob> jobs;
  for (int64_t l = 0; l < cfg.num_layers; ++l)
    for (const auto& spec : arch.norms)
      if (spec.per_layer()) jobs.push_back({&spec, l});
  for (const auto& spec : arch.norms)
    if (!spec.per_layer()) jobs.push_back({&spec, -1});
  return jobs;
}

// Below this many channels per thread a thread's start costs more than the reads.
constexpr int64_t kNormChannelsPerThread = 100'000;
// Norms of one file at most this far apart are read with one pread, the bytes between included.
constexpr uint64_t kMaxReadGap = 4096;

// One located norm: its tensor, where its bytes land in the block of all norms' bytes, and the
// outcome of reading and converting it.
struct NormSlot {
  NormGains g;
  const TensorRef* ref = nullptr;
  size_t raw_at = 0;
  Status status = ok_status();
};

// One pread: the bytes [begin, end) of `file`, holding the norms `order[first, last)`, to `raw_at`.
struct NormRead {
  const SafetensorsFile* file;
  uint64_t begin, end;
  size_t raw_at, first, last;
};

// The reads for `slots`: sorted by file and offset, norms close together in one range (a
// layer's q/k norms and post-attention norm sit side by side in the usual layouts, so the 0.6B
// check reads 57 ranges for 113 norms). Sets each slot's raw_at; returns the block's size.
size_t plan_norm_reads(std::vector<NormSlot>& slots, std::vector<size_t>& order,
                       std::vector<NormRead>& reads) {
  order.resize(slots.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto at = [&](size_t i) { return std::pair(slots[i].ref->file, slots[i].ref->info->offset); };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return at(a) < at(b); });
  size_t raw = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    const TensorRef& r = *slots[order[k]].ref;
    const uint64_t begin = r.info->offset, end = begin + r.info->nbytes;
    if (reads.empty() || reads.back().file != r.file || begin > reads.back().end + kMaxReadGap) {
      if (!reads.empty()) raw += reads.back().end - reads.back().begin;
      reads.push_back({r.file, begin, end, raw, k, k + 1});
    } else {
      reads.back().end = std::max(reads.back().end, end);
      reads.back().last = k + 1;
    }
  }
  if (!reads.empty()) raw += reads.back().end - reads.back().begin;
  for (const NormRead& rd : reads)
    for (size_t k = rd.first; k < rd.last; ++k)
      slots[order[k]].raw_at = rd.raw_at + (slots[order[k]].ref->info->offset - rd.begin);
  return raw;
}

// Reads and converts every slot, the reads in contiguous runs on up to `threads` threads (a 235B
// model: 377 norms, ~800,000 channels). A range that cannot be read whole is read norm by norm,
// so each slot's status is what reading that norm alone gives.
void read_norm_slots(std::vector<NormSlot>& slots, GainConvention convention, int threads,
                     int64_t channels, std::unique_ptr<char[]>& block) {
  std::vector<size_t> order;
  std::vector<NormRead> reads;
  block = std::make_unique_for_overwrite<char[]>(
      std::max<size_t>(plan_norm_reads(slots, order, reads), 1));
  char* raw = block.get();
  const size_t runs = run_count(threads, channels, kNormChannelsPerThread);
  for_each_run(reads.size(), runs, [&](size_t, size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const NormRead& rd = reads[i];
      const bool whole = rd.file->read_at(rd.begin, rd.end - rd.begin, raw + rd.raw_at);
      for (size_t k = rd.first; k < rd.last; ++k) {
        NormSlot& s = slots[order[k]];
        if (!whole) s.status = s.ref->file->read_bytes_into(*s.ref->info, raw + s.raw_at);
        if (s.status) s.status = convert_norm(*s.ref, raw + s.raw_at, convention, s.g);
      }
    }
  });
}

// The norms of norm_jobs, in report order. The first failing norm in that order is the error
// (missing, wrong shape, unreadable, not a float dtype, checked in that order for each norm),
// and the names and bytes go into the fingerprint in that order, whatever the threads.
Result<std::vector<NormGains>> read_norms(const Checkpoint& ck, const ModelConfig& cfg,
                                          const ArchProfile& arch, const std::string& prefix,
                                          int threads, Hasher& fp) {
  const std::vector<NormJob> jobs = norm_jobs(cfg, arch);
  std::vector<NormSlot> slots;
  slots.reserve(jobs.size());
  std::optional<Error> located_error;  // the first norm that is missing or misshapen
  int64_t channels = 0;
  for (const NormJob& j : jobs) {
    NormGains g;
    g.role = j.spec->role;
    g.kind = j.spec->kind;
    g.layer = j.layer;
    g.tensor = j.spec->tensor_name(prefix, j.layer);
    auto ref = locate_norm(ck, cfg, *j.spec, g);
    if (!ref) {
      located_error = ref.error();  // the norms before it are read: one may fail first
      break;
    }
    channels += int64_t((*ref)->info->numel);
    slots.push_back({std::move(g), *ref, 0, ok_status()});
  }
  std::unique_ptr<char[]> block;
  read_norm_slots(slots, arch.convention, threads, channels, block);
  std::vector<NormGains> norms;
  norms.reserve(slots.size());
  for (NormSlot& s : slots) {
    FC_TRY(std::move(s.status));
    fp.update(s.g.tensor);
    fp.update({block.get() + s.raw_at, s.ref->info->nbytes});
    norms.push_back(std::move(s.g));
  }
  if (located_error) return *located_error;
  return norms;
}

}  // namespace

Result<Verdict> parse_verdict(std::string_view name) {
  for (Verdict v : {Verdict::kCompatible, Verdict::kWarning, Verdict::kIncompatible})
    if (name == verdict_name(v)) return v;
  return make_error("\"{}\" is not COMPATIBLE, WARNING or INCOMPATIBLE", name);
}

std::string fallback_warning(const std::string& model_dir, bool measured) {
  const char* why = measured ? "A probe measurement found that fused kernels change this model's "
                               "outputs beyond the budget (cached; fusecheck probe)."
                             : "This model has extreme normalization weights that make it "
                               "incompatible with fused kernels.";
  return fmt::format(
      "WARNING: {}\nFalling back to standard kernels.\nTo see detailed compatibility report, run: "
      "fusecheck check {}",
      why, model_dir);
}

Result<CheckResult> check_model(const std::string& model_dir, const CheckOptions& o) {
  FC_ASSIGN(ck, Checkpoint::open(model_dir, o.threads));
  return check_checkpoint(ck, o);
}

Result<CheckResult> check_checkpoint(const Checkpoint& ck, const CheckOptions& o) {
  const std::string& model_dir = ck.dir();
  FC_ASSIGN(archs, ArchRegistry::load(o.arch_profiles_file));
  // The cache key holds the profile file's contents, not its path: editing it in place must miss.
  std::string arch_profiles_hash = "builtin";
  if (!o.arch_profiles_file.empty()) {
    FC_ASSIGN(text, read_small_file(o.arch_profiles_file, kMaxConfigBytes));
    arch_profiles_hash = hash_hex(text);
  }
  FC_ASSIGN(numerics, NumericsRegistry::load(o.kernel_profiles_file));
  FC_ASSIGN(kernels, numerics.find(o.kernels));
  FC_ASSIGN(thresholds, resolve_thresholds(o));

  FC_ASSIGN(cfg, parse_model_config(ck.config_json(), ck.config_path()));
  FC_ASSIGN(arch, archs.find(cfg.model_type, ck.config_path()));
  FC_ASSIGN(prefix, find_prefix(ck, *arch));
  FC_TRY(check_no_extra_layers(ck, cfg, *arch, prefix));

  Hasher fp;
  fingerprint_files(ck, fp);
  FC_ASSIGN(norms, read_norms(ck, cfg, *arch, prefix, o.threads, fp));

  // Models without q/k norms: key magnitudes from k_proj's rows, within a byte budget.
  FC_ASSIGN(key_rows, read_key_rows(ck, cfg, *arch, prefix, norms, fp));

  CheckResult r;
  r.model_path = model_dir;
  r.fingerprint = fp.hex();
  // The cache key, built only when there is a cache (--no-cache skips it and its JSON).
  nlohmann::json key;
  std::optional<ResultCache> cache;
  if (o.use_cache) {
    cache.emplace(o.cache_dir);
    key = {{"checker_version", kCheckerVersion},           {"fingerprint", r.fingerprint},
           {"thresholds", thresholds_to_json(thresholds)}, {"kernels", numerics_to_json(kernels)},
           {"analysis_revision", kAnalysisRevision},       {"architecture", arch->name},
           {"arch_profiles", arch_profiles_hash}};
  }
  bool hit = false;
  if (cache) {
    if (auto v = cache->load(key)) {
      if (auto cached = result_from_json(*v)) {
        r = std::move(cached).value();
        r.model_path = model_dir;  // the same bytes may sit at another path
        r.from_cache = true;
        hit = true;
      }
    }
  }
  if (!hit) {
    r.architecture = arch->name;
    r.model_type = cfg.model_type;
    r.gain_convention = std::string(gain_convention_name(arch->convention));
    r.config = cfg;
    r.kernels = kernels;
    r.thresholds = thresholds;
    r.analysis =
        analyze_gains(cfg, arch->qk_scope, norms, kernels, thresholds.extreme_weight_threshold,
                      key_rows.rows, key_rows.info, o.threads);
    set_model_rounding(r.analysis, standard_unit_roundoff(ck, *arch, prefix));
    r.score = score_analysis(r.analysis, thresholds, kernels);
    r.verdict = r.score.verdict;
    if (cache) {
      if (auto st = cache->store(key, result_to_json(r)); !st)
        r.cache_note = "result not cached: " + st.error().message;
    }
  }
  // The testing override is applied after the cache, so it never leaks into stored results.
  if (o.force_verdict) {
    r.verdict = *o.force_verdict;
    r.overridden = true;
  }
  return r;
}

}  // namespace fusecheck
