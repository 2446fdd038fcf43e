// The compatibility database under faults: 16 writer processes at once, SIGKILLed at random points
// (mid-transaction included); a damaged file and a damaged row; a database nobody may write (as
// root, the lookup runs as the unprivileged user "nobody", since root ignores permission bits).
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "db/database.h"
#include "testing.h"

namespace fusecheck {
namespace {

namespace fs = std::filesystem;
using testing::read_text;
using testing::run_cli;
using testing::TempDir;
using testing::write_text;

const char* kProfiles[] = {"generic",
                           "standard",
                           "fused",
                           "fused-fp16acc",
                           "fused-fp16kv",
                           "fused-int8kv",
                           "fused-int8kv-channel",
                           "fused-fp8kv"};

struct Writer {
  pid_t pid = 0;
  std::string model, kernels;
};

// `fusecheck db add` as a child process, output discarded.
pid_t spawn_add(const std::string& model, const std::string& kernels, const std::string& name,
                const std::string& db, const std::string& err) {
  pid_t pid = fork();
  if (pid == 0) {
    int null = ::open("/dev/null", O_WRONLY);
    int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(null, 1), ::dup2(e, 2);
    ::execl(FUSECHECK_BINARY, "fusecheck", "db", "add", model.c_str(), "--kernels", kernels.c_str(),
            "--name", name.c_str(), "--db", db.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  return pid;
}

// Every record of the database, verified; the (model name, kernels) pairs.
std::vector<std::pair<std::string, std::string>> rows(const std::string& db) {
  auto d = Database::open(db, DbMode::kReadOnly);
  EXPECT_TRUE(d.ok()) << d.error().message;
  if (!d) return {};
  auto v = d->verify();
  EXPECT_TRUE(v.ok()) << v.error().message;
  std::vector<std::pair<std::string, std::string>> out;
  auto all = d->find("", "");
  EXPECT_TRUE(all.ok()) << all.error().message;
  if (!all) return {};
  for (const auto& r : *all) out.emplace_back(r.model_name, r.key.kernels);
  std::sort(out.begin(), out.end());
  return out;
}

TEST(DbFaults, SixteenWritersSigkilledMidWriteLoseNoRowAndCorruptNone) {
  TempDir t;
  for (auto [name, profile] : {std::pair{"ok", "qwen3-0.6b"}, {"bad", "qwen3-0.6b-extreme"}})
    ASSERT_EQ(run_cli("fixture " + (t / name) + " --profile " + profile + " --tiny").exit_code, 0);
  const std::string db = t / "data/f.db";
  // 16 distinct keys: two checkpoints under eight profiles. First all at once, none killed.
  auto run_round = [&](const std::string& tag, std::vector<Writer>& ws) {
    ws.clear();
    for (int i = 0; i < 16; ++i) {
      Writer w{0, t / (i % 2 ? "bad" : "ok"), kProfiles[i / 2]};
      w.pid = spawn_add(w.model, w.kernels, tag + "/" + (i % 2 ? "bad" : "ok"), db,
                        t / ("err" + std::to_string(i)));
      ASSERT_GT(w.pid, 0);
      ws.push_back(w);
    }
  };
  std::vector<Writer> ws;
  const auto t0 = std::chrono::steady_clock::now();
  run_round("r0", ws);
  for (auto& w : ws) {
    int status = 0;
    ASSERT_EQ(::waitpid(w.pid, &status, 0), w.pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << w.kernels << ": " << read_text(t / ("err" + std::to_string(&w - ws.data())));
  }
  const long round_us = long(
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  auto first = rows(db);
  ASSERT_EQ(first.size(), 16u);
  for (const auto& [name, k] : first) EXPECT_TRUE(name.starts_with("r0/")) << name;

  // Then rounds where a random half is killed at a random moment of the round. A killed writer's
  // row keeps its old name or has the new one, whole; a finished writer's row has the new one.
  // The kill times fall in the first half of the calibration round, and rounds go on (up to 24)
  // until at least 10 writers died mid-way: how fast a round runs varies with the machine's load
  // and the sanitizer, and a fixed number of rounds killed too few on a busy machine.
  std::mt19937 rng(777);
  int killed = 0;
  for (int round = 1; round <= 24 && (round <= 6 || killed < 10); ++round) {
    const std::string tag = "r" + std::to_string(round);
    run_round(tag, ws);
    std::vector<std::pair<long, size_t>> kills;
    std::uniform_int_distribution<long> when(0, round_us / 2);
    for (size_t i = 0; i < ws.size(); ++i)
      if (rng() % 2) kills.emplace_back(when(rng), i);
    std::sort(kills.begin(), kills.end());
    const auto start = std::chrono::steady_clock::now();
    for (auto [us, i] : kills) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(us));
      ::kill(ws[i].pid, SIGKILL);
    }
    std::vector<bool> finished(ws.size());
    for (size_t i = 0; i < ws.size(); ++i) {
      int status = 0;
      ASSERT_EQ(::waitpid(ws[i].pid, &status, 0), ws[i].pid);
      killed += WIFSIGNALED(status);
      finished[i] = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (WIFEXITED(status)) {
        EXPECT_EQ(WEXITSTATUS(status), 0)
            << ws[i].kernels << ": " << read_text(t / ("err" + std::to_string(i)));
      }
    }
    auto now = rows(db);
    ASSERT_EQ(now.size(), 16u) << "round " << round << ": a row was lost";
    for (size_t i = 0; i < ws.size(); ++i) {
      const std::string model = i % 2 ? "bad" : "ok";
      auto it = std::find_if(now.begin(), now.end(), [&](const auto& p) {
        return p.second == ws[i].kernels && p.first.ends_with("/" + model);
      });
      ASSERT_NE(it, now.end()) << ws[i].kernels << " " << model;
      if (finished[i]) {
        EXPECT_EQ(it->first, tag + "/" + model) << "a finished write was lost";
      }
    }
  }
  EXPECT_GE(killed, 10) << "too few writers were killed mid-way to mean anything";
}

TEST(DbFaults, DamagedFileGivesOneLineErrorAndRebuildKeepsWhatCanBeRead) {
  TempDir t;
  ASSERT_EQ(run_cli("fixture " + (t / "m") + " --profile qwen3-0.6b-extreme --tiny").exit_code, 0);
  const std::string db = t / "f.db";
  // Not a database at all.
  write_text(db, std::string(8192, 'x'));
  auto list = run_cli("db list --db " + db);
  EXPECT_EQ(list.exit_code, 3);
  EXPECT_EQ(std::count(list.err.begin(), list.err.end(), '\n'), 1) << list.err;
  EXPECT_NE(list.err.find("damaged"), std::string::npos) << list.err;
  EXPECT_NE(list.err.find("fusecheck db rebuild --db " + db), std::string::npos) << list.err;
  // Loading a model is not stopped by it: a note, and the static check decides.
  auto gen = run_cli("generate " + (t / "m") + " --token-ids 1,2 -n 1 --kernels fused --db " + db);
  EXPECT_EQ(gen.exit_code, 0) << gen.err;
  EXPECT_NE(gen.err.find("note: database not used"), std::string::npos) << gen.err;
  auto rebuilt = run_cli("db rebuild --db " + db);
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.err;
  EXPECT_NE(rebuilt.out.find("0 records kept"), std::string::npos) << rebuilt.out;
  EXPECT_NE(run_cli("db list --db " + db).out.find("0 records"), std::string::npos);

  // A valid file with one row whose bytes changed on disk, where SQLite cannot see it.
  for (const char* k : {"fused", "generic"})
    ASSERT_EQ(run_cli("db add " + (t / "m") + " --kernels " + k + " --db " + db).exit_code, 0);
  std::string bytes = read_text(db);
  ASSERT_FALSE(fs::exists(db + "-wal") && fs::file_size(db + "-wal") > 0)
      << "the last writer did not checkpoint";
  const std::string needle = "\"kernels\":\"generic\"";
  size_t pos = bytes.find(needle);
  ASSERT_NE(pos, std::string::npos);
  bytes[pos + needle.size() - 2] = 'd';  // "generid"
  write_text(db, bytes);
  auto lookup = run_cli("db list --db " + db);
  EXPECT_EQ(lookup.exit_code, 3);
  EXPECT_NE(lookup.err.find("a record is damaged (checksum mismatch)"), std::string::npos)
      << lookup.err;
  EXPECT_EQ(std::count(lookup.err.begin(), lookup.err.end(), '\n'), 1) << lookup.err;
  rebuilt = run_cli("db rebuild --db " + db);
  ASSERT_EQ(rebuilt.exit_code, 0) << rebuilt.err;
  EXPECT_NE(rebuilt.out.find("1 records kept"), std::string::npos) << rebuilt.out;
  auto after = run_cli("db lookup " + (t / "m") + " --json --db " + db);
  ASSERT_EQ(after.exit_code, 0) << after.err;
  auto j = nlohmann::json::parse(after.out);
  ASSERT_EQ(j["records"].size(), 1u);
  EXPECT_EQ(j["records"][0]["kernels"], "fused");
  // Cut in half: damaged as well, never a crash.
  bytes = read_text(db);
  write_text(db, bytes.substr(0, bytes.size() / 2));
  auto cut = run_cli("db list --db " + db);
  EXPECT_EQ(cut.exit_code, 3) << cut.out;
  EXPECT_EQ(std::count(cut.err.begin(), cut.err.end(), '\n'), 1) << cut.err;
}

TEST(DbFaults, ReadOnlyDatabaseStillAnswersLookups) {
  TempDir t;
  ASSERT_EQ(run_cli("fixture " + (t / "m") + " --profile qwen3-0.6b --tiny").exit_code, 0);
  const std::string dir = t / "ro";
  const std::string db = dir + "/f.db";
  ASSERT_EQ(run_cli("db add " + (t / "m") + " --kernels fused --name org/m --db " + db).exit_code,
            0);
  // Nobody may write the file or its folder (so no -shm file can be made beside it).
  ASSERT_EQ(::chmod(db.c_str(), 0444), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0555), 0);
  ASSERT_EQ(::chmod(t.path().c_str(), 0755), 0);
  std::string prefix;
  if (::geteuid() == 0) {
    // Root ignores permissions: run as "nobody" from a copy of the binary it may execute.
    if (std::system("command -v setpriv >/dev/null 2>&1") != 0)
      GTEST_SKIP() << "running as root without setpriv (util-linux): cannot drop privileges";
    fs::copy_file(FUSECHECK_BINARY, t / "fusecheck");
    ASSERT_EQ(::chmod((t / "fusecheck").c_str(), 0755), 0);
    ASSERT_EQ(::chmod((t / "m").c_str(), 0755), 0);
    prefix = "setpriv --reuid=65534 --regid=65534 --clear-groups " + (t / "fusecheck");
  } else {
    prefix = FUSECHECK_BINARY;
  }
  auto sh = [&](const std::string& args) {
    const std::string cmd = prefix + " " + args + " >" + (t / "out") + " 2>" + (t / "err");
    int st = std::system(cmd.c_str());
    return std::tuple{WIFEXITED(st) ? WEXITSTATUS(st) : -1, read_text(t / "out"),
                      read_text(t / "err")};
  };
  auto [rc, out, err] = sh("db lookup org/m --json --db " + db);
  ASSERT_EQ(rc, 0) << err;
  auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["records"].size(), 1u);
  EXPECT_EQ(j["records"][0]["static"]["verdict"], "COMPATIBLE");
  // Writing is refused with one line; the file is unchanged.
  const std::string before = read_text(db);
  auto [rc2, out2, err2] = sh("db add " + (t / "m") + " --kernels generic --db " + db);
  EXPECT_EQ(rc2, 3) << out2;
  EXPECT_NE(err2.find("read-only"), std::string::npos) << err2;
  EXPECT_EQ(std::count(err2.begin(), err2.end(), '\n'), 1) << err2;
  EXPECT_EQ(read_text(db), before);
}

}  // namespace
}  // namespace fusecheck
