// Applying the rebalance: tensor edits in their own dtype, and the staged copy of the checkpoint.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "repair/rebalance_detail.h"
#include "repair/staged_file.h"
#include "util/half.h"

namespace fusecheck {

namespace fs = std::filesystem;

namespace repair {

bool store_exact(DType dtype, float x, unsigned char* dst) {
  float back;
  if (dtype == DType::BF16) {
    uint16_t h = f32_to_bf16(x);
    std::memcpy(dst, &h, 2);
    back = bf16_to_f32(h);
  } else if (dtype == DType::F16) {
    uint16_t h = f32_to_f16(x);
    std::memcpy(dst, &h, 2);
    back = f16_to_f32(h);
  } else {
    std::memcpy(dst, &x, 4);
    back = x;
  }
  return back == x;
}

Result<std::string> apply_edit(const SafetensorsFile& file, const TensorInfo& t,
                               const TensorEdit& e) {
  const size_t rows = t.shape.size() == 2 ? size_t(t.shape[0]) : 1;
  const size_t cols = t.shape.empty() ? 0 : size_t(t.shape.back());
  if ((!e.row_exp.empty() && e.row_exp.size() != rows) ||
      (!e.col_exp.empty() && e.col_exp.size() != cols) || rows * cols != t.numel)
    return make_error("{}: internal error: edit of {} does not match its shape", file.path(),
                      t.name);
  FC_ASSIGN(x, file.read_f32(t));
  FC_ASSIGN(bytes, file.read_bytes(t));
  const size_t es = dtype_size(t.dtype);
  auto* out = reinterpret_cast<unsigned char*>(bytes.data());
  for (size_t r = 0; r < rows; ++r) {
    const int re = e.row_exp.empty() ? 0 : e.row_exp[r];
    for (size_t c = 0; c < cols; ++c) {
      const int ex = re + (e.col_exp.empty() ? 0 : e.col_exp[c]);
      if (ex == 0) continue;
      const size_t i = r * cols + c;
      const double want = std::ldexp(double(x[i]), ex);  // exact in double
      const float y = float(want);
      if (double(y) != want || !std::isfinite(y) || !store_exact(t.dtype, y, out + i * es))
        return make_error(
            "{}: tensor {} element {}: {} * 2^{} is not exactly representable in {}; the "
            "transform must be exact, so nothing was written",
            file.path(), t.name, i, x[i], ex, dtype_name(t.dtype));
    }
  }
  return bytes;
}

namespace {

bool is_regular(const fs::path& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);  // symlinks followed
}

// Output directory rules: not the model directory (nor a link to it), a directory, empty unless
// forced.
Status prepare_out(const std::string& model_dir, const std::string& out_dir, bool force) {
  std::error_code ec;
  const fs::path out(out_dir);
  if (fs::exists(out, ec)) {
    if (fs::equivalent(out, fs::path(model_dir), ec))
      return make_error(
          "{}: the output directory is the model directory; rebalance writes a new "
          "checkpoint and never changes the original",
          out_dir);
    if (!fs::is_directory(out, ec)) return make_error("{}: exists and is not a directory", out_dir);
    if (fs::directory_iterator(out, ec) != fs::directory_iterator() && !force)
      return make_error("{}: exists and is not empty; pass --force to overwrite", out_dir);
    if (ec) return make_error("{}: cannot read the directory: {}", out_dir, ec.message());
    return ok_status();
  }
  fs::create_directories(out, ec);
  if (ec) return make_error("{}: cannot create the output directory: {}", out_dir, ec.message());
  return ok_status();
}

bool is_pickle_weights(const std::string& name) {
  for (const char* ext : {".bin", ".pt", ".pth", ".ckpt"})
    if (name.ends_with(ext)) return true;
  return false;
}

nlohmann::json record_json(const RebalancePlan& p, const RebalanceOptions& opt,
                           const std::string& model_dir) {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& l : p.layers)
    layers.push_back({{"key_exp", l.key_exp},
                      {"value_exp", l.value_exp},
                      {"key_spread_before", l.key_spread_before},
                      {"key_spread_after", l.key_spread_after},
                      {"key_max_before", l.key_max_before},
                      {"key_max_after", l.key_max_after},
                      {"value_spread_before", l.value_spread_before},
                      {"value_spread_after", l.value_spread_after},
                      {"clamped_for_exactness", l.clamped}});
  return {{"schema", "fusecheck.rebalance/1"},
          {"source", model_dir},
          {"keys", key_balance_name(opt.keys)},
          {"values", value_balance_name(opt.values)},
          {"architecture", p.arch},
          {"scales_from", p.calibrated ? "calibration (fp32 reference)" : "weights"},
          {"key_scales_in", p.via_norms ? "q_norm/k_norm" : "q_proj/k_proj rows"},
          {"scales",
           "s = 2^exp; keys * s and queries / s per (kv head, RoPE pair i, i + head_dim/2); "
           "v_proj rows / s and o_proj columns * s per (kv head, channel)"},
          {"changed_tensors", p.changed_tensors},
          {"layers", layers}};
}

// Stages one output file per entry of the model directory.
Status stage_files(const Checkpoint& ck, const PlannedEdits& pe, const std::string& out_dir,
                   std::vector<StagedFile>& staged, RebalanceSummary& sum) {
  std::map<std::string, std::vector<const TensorEdit*>> by_file;  // file name -> its edits
  for (const auto& e : pe.edits)
    by_file[fs::path(ck.find(e.name)->file->path()).filename().string()].push_back(&e);
  std::error_code ec;
  std::vector<fs::path> entries;
  for (const auto& d : fs::directory_iterator(ck.dir(), ec)) entries.push_back(d.path());
  if (ec) return make_error("{}: cannot list the directory: {}", ck.dir(), ec.message());
  std::sort(entries.begin(), entries.end());
  for (const auto& p : entries) {
    const std::string name = p.filename().string();
    if (name == kRebalanceRecord) continue;  // replaced by this run's record
    if (!is_regular(p)) {
      sum.skipped.push_back(name + " (not a regular file)");
      continue;
    }
    if (is_pickle_weights(name)) {
      sum.skipped.push_back(name + " (pickle weights: not rebalanced, so not copied)");
      continue;
    }
    FC_ASSIGN(f, StagedFile::create(out_dir + "/" + name));
    FC_TRY(f.append_file(p.string()));
    if (auto it = by_file.find(name); it != by_file.end()) {
      for (const TensorEdit* e : it->second) {
        const TensorRef* ref = ck.find(e->name);
        FC_ASSIGN(bytes, apply_edit(*ref->file, *ref->info, *e));
        FC_TRY(f.write_at(ref->info->offset, bytes));
      }
      ++sum.files_rewritten;
    } else {
      ++sum.files_copied;
    }
    FC_TRY(f.finish());
    staged.push_back(std::move(f));
  }
  return ok_status();
}

// With --force: checkpoint files in OUT that this run did not write would make it a different
// checkpoint (an old index beside a new single file); remove them.
Status remove_stale(const std::string& out_dir, const std::vector<StagedFile>& staged) {
  std::vector<std::string> keep;
  for (const auto& f : staged) keep.push_back(fs::path(f.path()).filename().string());
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(out_dir, ec)) {
    const std::string n = d.path().filename().string();
    const bool ours = n.ends_with(".safetensors") || n == "model.safetensors.index.json";
    if (ours && std::find(keep.begin(), keep.end(), n) == keep.end() && ::unlink(d.path().c_str()))
      return make_error("{}: cannot remove the stale file: {}", d.path().string(), strerror(errno));
  }
  return ok_status();
}

}  // namespace

}  // namespace repair

Result<RebalanceSummary> rebalance_checkpoint(const std::string& model_dir,
                                              const std::string& out_dir,
                                              const RebalanceOptions& opt) {
  FC_ASSIGN(ck, Checkpoint::open(model_dir));
  FC_ASSIGN(pe, repair::plan_edits(ck, opt));
  FC_TRY(repair::prepare_out(model_dir, out_dir, opt.force));
  RebalanceSummary sum;
  std::vector<StagedFile> staged;  // discarded on every early return
  FC_TRY(repair::stage_files(ck, pe, out_dir, staged, sum));
  FC_ASSIGN(rec, StagedFile::create(out_dir + "/" + std::string(kRebalanceRecord)));
  FC_TRY(rec.append(repair::record_json(pe.plan, opt, model_dir).dump(1) + "\n"));
  FC_TRY(rec.finish());
  staged.push_back(std::move(rec));
  // Every file is complete on disk; only now does any appear under its name.
  for (auto& f : staged) FC_TRY(f.commit());
  FC_TRY(repair::remove_stale(out_dir, staged));
  sum.plan = std::move(pe.plan);
  return sum;
}

}  // namespace fusecheck
