// Hostile checkpoint layouts: shard indexes that escape the directory or name missing shards,
// directories, FIFOs and unreadable files where the weights should be, files truncated under us.
#include <sys/stat.h>
#include <unistd.h>

#include "malformed_testing.h"

namespace fusecheck {
namespace {

using namespace malformed;  // NOLINT(google-build-using-namespace): the suite's shared helpers

// ---------------------------------------------------------------------------------------------
// Sharded checkpoints and model.safetensors.index.json.

void ExpectRefusedEntry(ShardedModel& m, const std::string& entry) {
  m.index["weight_map"][k_norm(1)] = entry;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "\"" + entry + "\" is not a plain file name"));
}

TEST(MalformedIndex, ParentDirectoryEntryIsRefused) {
  ShardedModel m;
  m.shard2.write(m.root / "x.safetensors");  // a valid file is there: the name alone is refused
  ExpectRefusedEntry(m, "../x.safetensors");
}

TEST(MalformedIndex, AbsolutePathEntryIsRefused) {
  ShardedModel m;
  ExpectRefusedEntry(m, "/etc/passwd");
}

TEST(MalformedIndex, SubdirectoryEntryIsRefused) {
  ShardedModel m;
  m.write();
  fs::create_directories(m.dir + "/sub");
  m.shard2.write(m.dir + "/sub/dir.safetensors");
  m.index["weight_map"][k_norm(1)] = "sub/dir.safetensors";
  write_text(m.index_path(), m.index.dump());
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "is not a plain file name"));
  ExpectCliInputError(m.dir, "not a plain file name");
}

TEST(MalformedIndex, MissingShard) {
  ShardedModel m;
  m.write();
  fs::remove(m.dir + "/" + ShardedModel::kShard2);
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/" + ShardedModel::kShard2,
                      "missing; model.safetensors.index.json lists it as a shard"));
}

TEST(MalformedIndex, TensorNotInItsShard) {
  ShardedModel m;
  m.index["weight_map"]["model.layers.0.mlp.gate_proj.weight"] = ShardedModel::kShard1;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(),
                      "\"model.layers.0.mlp.gate_proj.weight\" in " +
                          std::string(ShardedModel::kShard1) +
                          ", but that shard does not hold it"));
}

TEST(MalformedIndex, TensorInTheOtherShard) {
  ShardedModel m;
  m.index["weight_map"][k_norm(1)] = ShardedModel::kShard1;  // it is in shard 2
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "that shard does not hold it"));
}

TEST(MalformedIndex, TensorInTwoShards) {
  ShardedModel m;
  m.shard2.add_f32(k_norm(0), head_gains(1));
  m.write();
  EXPECT_TRUE(
      IsError(check(m.dir), m.dir + "/" + ShardedModel::kShard2, "shards must not repeat tensors"));
}

TEST(MalformedIndex, NotJson) {
  ShardedModel m;
  m.write();
  write_text(m.index_path(), "{\"weight_map\": {");
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "not a valid JSON object"));
}

TEST(MalformedIndex, WeightMapNotAnObject) {
  ShardedModel m;
  m.index["weight_map"] = json::array({ShardedModel::kShard1, ShardedModel::kShard2});
  m.write();
  EXPECT_TRUE(IsError(check(m.dir), m.index_path(), "expected a \"weight_map\" object"));
}

TEST(MalformedIndex, ShardFileIsBroken) {
  ShardedModel m;
  m.write();
  write_text(m.dir + "/" + ShardedModel::kShard2, "not safetensors at all");
  EXPECT_TRUE(IsError(check(m.dir), m.dir + "/" + ShardedModel::kShard2, "header length"));
}

// ---------------------------------------------------------------------------------------------
// Directory layout.

TEST(MalformedCheckpoint, OnlyPickleCheckpoint) {
  TinyModel m;
  write_text(m.dir + "/config.json", m.config.dump());
  write_text(m.dir + "/pytorch_model.bin", "PK\x03\x04 not really a zip");
  auto r = check(m.dir);
  EXPECT_TRUE(IsError(r, m.dir, "pytorch_model.bin"));
  EXPECT_TRUE(IsError(r, m.dir, "pickle"));
  EXPECT_TRUE(IsError(r, m.dir, "Convert it to safetensors"));
  ExpectCliInputError(m.dir, "pickle");
}

TEST(MalformedCheckpoint, NoWeightsAtAll) {
  TinyModel m;
  write_text(m.dir + "/config.json", m.config.dump());
  EXPECT_TRUE(IsError(check(m.dir), m.dir, "no model.safetensors"));
}

TEST(MalformedCheckpoint, ModelDirDoesNotExist) {
  TempDir t;
  EXPECT_TRUE(IsError(check(t / "nope"), t / "nope", "no such model directory"));
  ExpectCliInputError(t / "nope", "no such model directory");
}

TEST(MalformedCheckpoint, ModelDirIsAFile) {
  TinyModel m;
  m.write();
  EXPECT_TRUE(IsError(check(m.dir + "/config.json"), m.dir + "/config.json", "found a file"));
  ExpectCliInputError(m.dir + "/config.json", "found a file");
}

TEST(MalformedCheckpoint, SafetensorsIsADirectory) {
  TinyModel m;
  write_text(m.dir + "/config.json", m.config.dump());
  fs::create_directories(m.st_path());
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "is a directory"));
}

TEST(MalformedCheckpoint, SafetensorsUnreadable) {
  if (geteuid() == 0) GTEST_SKIP() << "running as root, which ignores file permissions";
  TinyModel m;
  m.write();
  ASSERT_EQ(::chmod(m.st_path().c_str(), 0), 0);
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "cannot open"));
  ExpectCliInputError(m.dir, "cannot open");
}

TEST(MalformedCheckpoint, SafetensorsIsAFifoDoesNotHang) {
  TinyModel m;
  write_text(m.dir + "/config.json", m.config.dump());
  ASSERT_EQ(::mkfifo(m.st_path().c_str(), 0600), 0);
  // Opening a FIFO for reading blocks until a writer appears; the check must refuse it instead.
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache", "timeout 3");
  EXPECT_NE(r.exit_code, 124) << "fusecheck hung opening a FIFO";
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

// A device where a file should be (a symlink to /dev/zero: endless bytes, and readable as root):
// refused as not a regular file, without reading or allocating.
TEST(MalformedCheckpoint, SafetensorsAndConfigAsCharacterDevice) {
  for (const char* victim : {"model.safetensors", "config.json"}) {
    TinyModel m;
    m.write();
    fs::remove(m.dir + "/" + victim);
    fs::create_symlink("/dev/zero", m.dir + "/" + victim);
    RunResult r = run_cli("check " + shq(m.dir) + " --no-cache", "timeout 5");
    EXPECT_EQ(r.exit_code, 3) << victim << ": " << r.err;
    EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(MalformedCheckpoint, ConfigIsAFifoDoesNotHang) {
  TinyModel m;
  m.weights.write(m.st_path());
  ASSERT_EQ(::mkfifo((m.dir + "/config.json").c_str(), 0600), 0);
  RunResult r = run_cli("check " + shq(m.dir) + " --no-cache", "timeout 3");
  EXPECT_NE(r.exit_code, 124) << "fusecheck hung opening a FIFO";
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
}

TEST(MalformedCheckpoint, FileTruncatedAfterOpen) {
  TinyModel m;
  m.write();
  auto f = SafetensorsFile::open(m.st_path());
  ASSERT_TRUE(f.ok()) << f.error().message;
  const TensorInfo* first = f->find(layer_tensor(0, "input_layernorm.weight"));
  const TensorInfo* last = f->find("model.norm.weight");
  ASSERT_TRUE(first && last);
  // Keep the header and the first tensor; cut into the rest, under the open file.
  ASSERT_EQ(::truncate(m.st_path().c_str(), off_t(first->offset + first->nbytes + 3)), 0);
  auto ok = f->read_f32(*first);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_EQ(*ok, std::vector<float>(kHidden, 1.0f));
  EXPECT_TRUE(IsError(f->read_f32(*last), m.st_path(), "truncated after it was opened"));
  EXPECT_TRUE(IsError(f->read_bytes(*f->find(k_norm(0))), m.st_path(), "file ended"));
  // A fresh check sees the short file at open.
  EXPECT_TRUE(IsError(check(m.dir), m.st_path(), "truncated file"));
}

// Move-assigning onto an open file must release the old one exactly once. Run in a child process:
// a double free aborts, and must not take the rest of the suite with it.
TEST(MalformedReader, MoveAssignOntoAnOpenFile) {
  TinyModel m;
  m.write();
  const std::string other = m.root / "a-second-file-with-a-long-name.safetensors";
  m.weights.write(other);
  EXPECT_EXIT(
      {
        auto a = SafetensorsFile::open(m.st_path());
        auto b = SafetensorsFile::open(other);
        if (!a.ok() || !b.ok()) std::_Exit(10);
        SafetensorsFile x = std::move(*a);
        x = std::move(*b);
        bool same = x.path() == other && x.find("model.norm.weight") != nullptr &&
                    x.read_f32(*x.find("model.norm.weight")).ok();
        std::_Exit(same ? 0 : 11);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace fusecheck
