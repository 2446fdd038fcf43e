// The Hugging Face cache layout: snapshots/<rev>/* are relative symlinks into blobs/<hash>. The
// checker must follow them, give the same verdict and fingerprint as on a plain copy, and report a
// dangling link (an interrupted download) as a clear error.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "check/check.h"
#include "fixture/fixture.h"
#include "testing.h"
#include "util/hash.h"

namespace fusecheck {
namespace {

using testing::read_text;
using testing::TempDir;
namespace fs = std::filesystem;

constexpr const char* kRev = "c1899de289a04d12100db370d81485cdf75e47ca";

CheckOptions no_cache() {
  CheckOptions o;
  o.use_cache = false;
  return o;
}

// A fixture checkpoint written to `plain`, then moved into `hub` as the HF cache lays it out:
// hub/blobs/<content hash> and hub/snapshots/<rev>/<name> -> ../../blobs/<content hash>.
struct HubCheckpoint {
  explicit HubCheckpoint(const std::string& profile) {
    FixtureOptions o;
    o.profile = profile;
    o.tiny = true;
    o.shard_bytes = 1 << 20;  // tiny qwen3-0.6b is ~3 MB in bf16: a few shards
    auto s = write_fixture(plain, o);
    if (!s.ok()) throw std::runtime_error(s.error().message);
    shards = s->shard_count;
    auto r = check_model(plain, no_cache());
    if (!r.ok()) throw std::runtime_error(r.error().message);
    plain_result = std::move(r).value();

    fs::create_directories(hub.path() + "/blobs");
    fs::create_directories(snapshot);
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(plain)) names.push_back(e.path().filename());
    for (const auto& name : names) {
      const std::string hash = hash_hex(read_text(plain + "/" + name));
      fs::rename(plain + "/" + name, hub.path() + "/blobs/" + hash);  // moved: the copy is gone
      fs::create_symlink("../../blobs/" + hash, snapshot + "/" + name);
      blob_of.emplace_back(name, hub.path() + "/blobs/" + hash);
    }
  }
  std::string blob(const std::string& name) const {
    for (const auto& [n, b] : blob_of)
      if (n == name) return b;
    throw std::runtime_error("no blob for " + name);
  }

  TempDir tmp, hub;
  std::string plain = tmp / "plain";
  std::string snapshot = hub.path() + "/snapshots/" + kRev;
  size_t shards = 0;
  CheckResult plain_result;
  std::vector<std::pair<std::string, std::string>> blob_of;  // file name -> blob path
};

class SymlinkHubProfile : public ::testing::TestWithParam<const char*> {};

TEST_P(SymlinkHubProfile, SameVerdictAndFingerprintAsThePlainDirectory) {
  HubCheckpoint hc(GetParam());
  ASSERT_GE(hc.shards, 2u);
  ASSERT_TRUE(fs::is_empty(hc.plain));  // nothing left to read there by mistake
  for (const auto& e : fs::directory_iterator(hc.snapshot)) {
    ASSERT_TRUE(e.is_symlink()) << e.path();
    EXPECT_EQ(fs::read_symlink(e.path()).string().rfind("../../blobs/", 0), 0u);
  }
  ASSERT_TRUE(fs::exists(hc.snapshot + "/model.safetensors.index.json"));

  auto r = check_model(hc.snapshot, no_cache());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->verdict, hc.plain_result.verdict);
  EXPECT_EQ(r->fingerprint, hc.plain_result.fingerprint);
  EXPECT_EQ(r->analysis.amplification, hc.plain_result.analysis.amplification);
  EXPECT_EQ(r->analysis.norms.size(), hc.plain_result.analysis.norms.size());
  EXPECT_EQ(r->model_path, hc.snapshot);
}

INSTANTIATE_TEST_SUITE_P(Symlink, SymlinkHubProfile,
                         ::testing::Values("qwen3-0.6b", "qwen3-0.6b-extreme"),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace_if(
                               n.begin(), n.end(),
                               [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); },
                               '_');
                           return n;
                         });

TEST(SymlinkSnapshotVerdicts, FixturesGiveTheirExpectedVerdicts) {
  // Guards the test above against comparing two identical failures.
  HubCheckpoint ordinary("qwen3-0.6b"), extreme("qwen3-0.6b-extreme");
  EXPECT_EQ(ordinary.plain_result.verdict, Verdict::kCompatible);
  EXPECT_EQ(extreme.plain_result.verdict, Verdict::kIncompatible);
  EXPECT_NE(ordinary.plain_result.fingerprint, extreme.plain_result.fingerprint);
}

TEST(SymlinkSnapshot, ModelDirItselfASymlink) {
  HubCheckpoint hc("qwen3-0.6b");
  const std::string link = hc.hub / "latest";
  fs::create_directory_symlink("snapshots/" + std::string(kRev), link);
  auto r = check_model(link, no_cache());
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->fingerprint, hc.plain_result.fingerprint);
}

TEST(SymlinkSnapshot, DanglingShardSymlink) {
  HubCheckpoint hc("qwen3-0.6b");
  const std::string shard = fmt::format("model-00002-of-{:05}.safetensors", hc.shards);
  fs::remove(hc.blob(shard));  // the link stays, its target is gone
  ASSERT_TRUE(fs::is_symlink(hc.snapshot + "/" + shard));
  auto r = check_model(hc.snapshot, no_cache());
  ASSERT_FALSE(r.ok());
  const std::string& m = r.error().message;
  EXPECT_NE(m.find(hc.snapshot + "/" + shard + ": missing"), std::string::npos) << m;
  EXPECT_NE(m.find("model.safetensors.index.json lists it"), std::string::npos) << m;
  EXPECT_EQ(m.find('\n'), std::string::npos) << m;

  auto cli = testing::run_cli("check '" + hc.snapshot + "' --no-cache");
  EXPECT_EQ(cli.exit_code, 3) << cli.err;
  EXPECT_TRUE(cli.err.starts_with("fusecheck: error: ")) << cli.err;
  EXPECT_EQ(std::count(cli.err.begin(), cli.err.end(), '\n'), 1) << cli.err;
}

TEST(SymlinkSnapshot, DanglingConfigSymlink) {
  HubCheckpoint hc("qwen3-0.6b");
  fs::remove(hc.blob("config.json"));
  auto r = check_model(hc.snapshot, no_cache());
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find(hc.snapshot + "/config.json: missing"), std::string::npos)
      << r.error().message;
}

TEST(SymlinkSnapshot, TruncatedBlobBehindSymlink) {
  HubCheckpoint hc("qwen3-0.6b");
  const std::string shard = fmt::format("model-00001-of-{:05}.safetensors", hc.shards);
  fs::resize_file(hc.blob(shard), fs::file_size(hc.blob(shard)) - 2);
  auto r = check_model(hc.snapshot, no_cache());
  ASSERT_FALSE(r.ok());
  // The error names the path the user gave (the snapshot link), not the blob.
  EXPECT_NE(r.error().message.find(hc.snapshot + "/" + shard + ": "), std::string::npos)
      << r.error().message;
  EXPECT_NE(r.error().message.find("truncated file"), std::string::npos) << r.error().message;
}

}  // namespace
}  // namespace fusecheck
