#include "io/checkpoint.h"

#include <simdjson.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <optional>
#include <span>
#include <string_view>
#include <thread>

#include "util/atomic_file.h"
#include "util/runs.h"

namespace fusecheck {

namespace fs = std::filesystem;

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;  // follows symlinks: a dangling link does not exist
}

// An index entry must name a file directly inside the model directory.
bool is_plain_file_name(std::string_view s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string_view::npos &&
         s.find('\\') == std::string_view::npos &&
         std::none_of(s.begin(), s.end(), [](char c) { return (unsigned char)c < 32; });
}

Error refuse_pickle(const std::string& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::string ext = e.path().extension().string();
    if (ext == ".bin" || ext == ".pt" || ext == ".pth" || ext == ".ckpt")
      return make_error(
          "{}: only a PyTorch pickle checkpoint ({}) is here; pickle can run code when loaded, so "
          "fusecheck does not read it. Convert it to safetensors first (transformers: "
          "model.save_pretrained(dir, safe_serialization=True))",
          dir, e.path().filename().string());
  }
  return make_error("{}: no model.safetensors or model.safetensors.index.json found", dir);
}

// "; hint: the model directories inside are bf16/, fp32/" when subdirectories hold a config.json
// (a folder of variants, like tests' reference checkpoints); "" otherwise.
std::string subdirectory_hint(const std::string& dir) {
  std::vector<std::string> found;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_directory(ec) && exists((e.path() / "config.json").string()))
      found.push_back(printable(e.path().filename().string()) + "/");
  if (found.empty()) return "";
  std::sort(found.begin(), found.end());
  std::string list;
  for (const auto& f : found) list += (list.empty() ? "" : ", ") + f;
  return "; hint: the model directories inside are " + list;
}

}  // namespace

namespace {

// Reads model.safetensors.index.json's weight_map: its (tensor, shard) entries, viewing the
// document `parser` holds (so listing ~37k entries allocates no strings), and the distinct
// shard names, each checked to be a plain file name in the model directory.
Status read_weight_map(const std::string& index_path, simdjson::dom::parser& parser,
                       std::vector<std::pair<std::string_view, std::string_view>>& weight_map,
                       std::vector<std::string>& shard_names) {
  // Read with simdjson's padding after the text, so the parser reads it in place (a 235B
  // index is 3 MB: a padded copy of it cost ~800 page faults).
  FC_ASSIGN(text, read_small_file_padded(index_path, kMaxIndexBytes, simdjson::SIMDJSON_PADDING));
  simdjson::dom::element root;
  simdjson::dom::object map;
  if (parser.parse(text.data.get(), text.size, /*realloc_if_needed=*/false).get(root) ||
      !root.is_object())
    return make_error("{}: not a valid JSON object", index_path);
  if (root["weight_map"].get_object().get(map))
    return make_error("{}: expected a \"weight_map\" object of tensor name -> shard file",
                      index_path);
  weight_map.reserve(map.size());
  // Each shard name is checked once, at its first entry (~120 names for ~37k entries; entries
  // of one shard mostly follow each other, so a repeat of the last name is not even hashed).
  std::unordered_map<std::string_view, bool> seen;
  std::string_view last;
  for (auto [name, file] : map) {
    std::string_view f;
    if (file.get_string().get(f))
      return make_error("{}: weight_map[\"{}\"] must be a file name string", index_path,
                        printable(name));
    if (f != last || shard_names.empty()) {
      if (seen.emplace(f, true).second) {
        if (!is_plain_file_name(f))
          return make_error(
              "{}: weight_map[\"{}\"] = \"{}\" is not a plain file name in the model "
              "directory; refusing to follow it",
              index_path, printable(name), printable(f));
        shard_names.emplace_back(f);
      }
      last = f;
    }
    weight_map.emplace_back(name, f);
  }
  if (shard_names.empty()) return make_error("{}: weight_map is empty", index_path);
  return ok_status();
}

// The directory's *.safetensors names, sorted: the shards its index most likely lists.
std::vector<std::string> likely_shards(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    constexpr std::string_view kExt = ".safetensors";
    if (name.size() > kExt.size() && name.ends_with(kExt)) out.push_back(std::move(name));
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every index entry must be where the index says it is. Looked up in that shard's own index: the
// entries of one shard mostly follow each other, so its small table stays in cache (the whole
// checkpoint's table of ~37,000 names did not: a cache miss per entry). A large index is split
// into contiguous runs, one per thread; the first failing run's error is the one a single pass
// reports first, so the message does not depend on the thread count.
Status check_index_run(const std::vector<SafetensorsFile>& files,
                       const std::vector<std::string>& shard_names,
                       std::span<const std::pair<std::string_view, std::string_view>> entries,
                       const std::string& index_path) {
  const SafetensorsFile* shard = nullptr;
  std::string_view shard_name;
  for (const auto& [name, want] : entries) {
    if (!shard || want != shard_name) {
      const auto it = std::lower_bound(shard_names.begin(), shard_names.end(), want);
      if (it == shard_names.end() || *it != want)  // cannot happen: every listed name was opened
        return make_error("{}: shard {} of tensor \"{}\" was not opened", index_path, want,
                          printable(name));
      shard = &files[size_t(it - shard_names.begin())];
      shard_name = want;
    }
    if (!shard->find(name))
      return make_error("{}: index lists tensor \"{}\" in {}, but that shard does not hold it",
                        index_path, printable(name), want);
  }
  return ok_status();
}

// Below this many entries per thread a thread's start costs more than the lookups.
constexpr int64_t kIndexEntriesPerThread = 8192;

Status check_index_entries(const std::vector<SafetensorsFile>& files,
                           const std::vector<std::string>& shard_names,
                           const std::vector<std::pair<std::string_view, std::string_view>>& map,
                           const std::string& index_path, int threads) {
  const size_t runs = run_count(threads, int64_t(map.size()), kIndexEntriesPerThread);
  std::vector<Status> status(runs, ok_status());
  for_each_run(map.size(), runs, [&](size_t r, size_t begin, size_t end) {
    status[r] =
        check_index_run(files, shard_names, std::span(map).subspan(begin, end - begin), index_path);
  });
  for (Status& st : status) FC_TRY(std::move(st));
  return ok_status();
}

}  // namespace

// Parses shard headers on worker threads that claim the files of a sorted list one at a time,
// until stopped (stop(), or the destructor: an early error returns promptly); the opening thread
// then takes each parsed file's result by name. Stopping once the index is read bounds the work
// spent on files the index does not list to that time, whatever the directory holds.
class ShardPool {
 public:
  ShardPool(const std::string& dir, std::vector<std::string> names)
      : dir_(dir), names_(std::move(names)), opened_(names_.size()) {}
  void start(size_t workers) {
    for (size_t w = 0; w < workers; ++w)
      workers_.emplace_back([this](std::stop_token stop) { claim(stop); });
  }
  // Asks the workers to claim no more files and waits for the ones they hold.
  void stop() {
    for (auto& w : workers_) w.request_stop();
    for (auto& w : workers_) w.join();
  }
  // The result for `name` (moved out), or nullopt if it was not in the list or not parsed.
  std::optional<Result<SafetensorsFile>> take(const std::string& name) {
    const auto it = std::lower_bound(names_.begin(), names_.end(), name);
    if (it == names_.end() || *it != name) return std::nullopt;
    return std::move(opened_[size_t(it - names_.begin())]);
  }

 private:
  void claim(const std::stop_token& stop) {
    HeaderParser parser;
    while (!stop.stop_requested()) {
      const size_t i = next_.fetch_add(1);
      if (i >= names_.size()) return;
      opened_[i].emplace(SafetensorsFile::open(dir_ + "/" + names_[i], &parser));
    }
  }

  const std::string dir_;
  const std::vector<std::string> names_;                        // sorted
  std::vector<std::optional<Result<SafetensorsFile>>> opened_;  // [names_.size()]
  std::atomic<size_t> next_{0};
  std::vector<std::jthread> workers_;  // last: joined before the results are destroyed
};

Result<Checkpoint> Checkpoint::open(const std::string& dir, int threads) {
  Checkpoint ck;
  ck.dir_ = dir;
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return make_error("{}: no such model directory", dir);
  if (!S_ISDIR(st.st_mode))
    return make_error(
        "{}: expected a model directory (with config.json and *.safetensors), found a "
        "file",
        dir);
  ck.config_path_ = dir + "/config.json";
  if (!exists(ck.config_path_))
    return make_error("{}: missing; a Hugging Face model directory needs its config.json{}",
                      ck.config_path_, subdirectory_hint(dir));
  FC_ASSIGN(cfg, read_small_file(ck.config_path_, kMaxConfigBytes));
  ck.config_json_ = std::move(cfg);

  const std::string index_path = dir + "/model.safetensors.index.json";
  const std::string single_path = dir + "/model.safetensors";
  std::vector<std::string> shard_names;
  // weight_map entries (tensor, shard file). A 235B model lists ~37k tensors: parsed with simdjson,
  // which is several times faster than a DOM of std::maps here. The entries view the parsed
  // document (index_parser outlives them), so listing them allocates no strings.
  std::vector<std::pair<std::string_view, std::string_view>> weight_map;
  simdjson::dom::parser index_parser;
  std::optional<ShardPool> early;
  if (exists(index_path)) {
    // While this thread reads the index (3.3 MB for a 235B model, a tenth of its check), workers
    // parse the directory's *.safetensors headers: the shards the index most likely lists. Only
    // the results of listed shards are used; an unlisted file's parse (or error) is dropped.
    // One thread (the engine's load): no workers, so the directory is not even listed.
    std::vector<std::string> likely = threads > 1 ? likely_shards(dir) : std::vector<std::string>{};
    const size_t workers =
        threads > 1 ? std::min(size_t(threads) - 1, likely.size() / kShardsPerThread) : 0;
    if (workers > 0) {
      early.emplace(dir, std::move(likely));
      early->start(workers);
    }
    FC_TRY(read_weight_map(index_path, index_parser, weight_map, shard_names));
  } else if (exists(single_path)) {
    shard_names.push_back("model.safetensors");
  } else {
    return refuse_pickle(dir);
  }

  std::sort(shard_names.begin(), shard_names.end());
  for (const auto& name : shard_names)
    if (!exists(dir + "/" + name))
      return make_error("{}/{}: missing; {} lists it as a shard", dir, name,
                        fs::path(index_path).filename().string());
  FC_TRY(ck.open_shards(shard_names, threads, early ? &*early : nullptr));
  FC_TRY(ck.index_tensors());

  FC_TRY(check_index_entries(ck.files_, shard_names, weight_map, index_path, threads));
  return ck;
}

// Parses the shards' headers, `threads` at a time (each with its own parser); a 235B checkpoint
// has ~120 shards, whose parsing was half the check. With `early`, its workers are stopped and
// the shards they parsed kept; only the others are parsed here.
// Reports the first failing shard in name order, whatever the thread that saw it.
Status Checkpoint::open_shards(const std::vector<std::string>& names, int threads,
                               ShardPool* early) {
  const size_t n = names.size();
  std::vector<std::optional<Result<SafetensorsFile>>> opened(n);
  std::vector<size_t> rest;  // the shards left to parse here
  if (early) {
    early->stop();
    for (size_t i = 0; i < n; ++i)
      if (!(opened[i] = early->take(names[i]))) rest.push_back(i);  // not listed or not reached
  } else {
    for (size_t i = 0; i < n; ++i) rest.push_back(i);
  }
  const size_t workers =
      std::clamp<size_t>(size_t(std::max(threads, 1)), 1, rest.size() / kShardsPerThread + 1);
  auto parse_every = [&](size_t first) {
    HeaderParser parser;
    for (size_t j = first; j < rest.size(); j += workers)
      opened[rest[j]].emplace(SafetensorsFile::open(dir_ + "/" + names[rest[j]], &parser));
  };
  {
    std::vector<std::jthread> pool;
    for (size_t w = 1; w < workers; ++w) pool.emplace_back(parse_every, w);
    parse_every(0);
  }  // joined
  files_.reserve(n);
  for (auto& r : opened) {
    if (!r->ok()) return r->error();
    files_.push_back(std::move(*r).value());
  }
  return ok_status();
}

Status Checkpoint::index_tensors() {
  size_t total = 0;
  for (const auto& f : files_) total += f.tensors().size();
  refs_.reserve(total);
  names_ = NameIndex(total);
  for (const auto& f : files_) {
    for (const auto& t : f.tensors()) {
      const uint32_t seen = names_.insert(t.name, t.name_hash, uint32_t(refs_.size()));
      if (seen != NameIndex::kAbsent)
        return make_error("{}: tensor \"{}\" is also in {}; shards must not repeat tensors",
                          f.path(), printable(t.name), refs_[seen].file->path());
      refs_.push_back({&f, &t});
    }
  }
  return ok_status();
}

const TensorRef* Checkpoint::find(std::string_view name) const {
  const uint32_t i = names_.find(name);
  return i == NameIndex::kAbsent ? nullptr : &refs_[i];
}

}  // namespace fusecheck
