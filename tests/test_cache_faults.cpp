// The result cache and report files under faults: 16 concurrent processes, processes SIGKILLed at
// random points of a check (including mid cache write), damaged entries, and cache directories
// or report files that cannot be written even as root (CI runs as root, which ignores permission
// bits: /proc refuses new files to everyone, and RLIMIT_FSIZE stands in for a full disk).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "check/cache.h"
#include "check/check.h"
#include "testing.h"

namespace fusecheck {
namespace {

namespace fs = std::filesystem;
using testing::read_text;
using testing::run_cli;
using testing::RunResult;
using testing::TempDir;
using testing::write_text;

// Two tiny fixtures with different verdicts: "ok" (COMPATIBLE, exit 0), "bad" (INCOMPATIBLE, 2).
struct Models {
  Models() {
    for (auto [name, profile] : {std::pair{"ok", "qwen3-0.6b"}, {"bad", "qwen3-0.6b-extreme"}}) {
      RunResult r = run_cli("fixture " + (root / name) + " --profile " + profile + " --tiny");
      EXPECT_EQ(r.exit_code, 0) << r.err;
    }
  }
  TempDir root;
  std::string ok = root / "ok", bad = root / "bad";
};

CheckOptions cached(const std::string& cache_dir) {
  CheckOptions o;
  o.cache_dir = cache_dir;
  return o;
}

// Runs a shell script, returning its exit status.
int sh(const std::string& script) {
  int status = std::system(script.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::string> files_in(const std::string& dir) {
  std::vector<std::string> v;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) v.push_back(e.path().filename().string());
  std::sort(v.begin(), v.end());
  return v;
}

// Both models, checked again through the cache: served from it, with the right verdicts.
void ExpectCacheServesCorrectVerdicts(const Models& m, const std::string& cache) {
  for (auto [dir, verdict] :
       {std::pair{m.ok, Verdict::kCompatible}, {m.bad, Verdict::kIncompatible}}) {
    auto r = check_model(dir, cached(cache));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_TRUE(r->from_cache) << dir;
    EXPECT_EQ(r->verdict, verdict) << dir;
    EXPECT_TRUE(r->cache_note.empty()) << r->cache_note;
  }
}

TEST(CacheFaults, SixteenConcurrentProcessesSameAndDifferentModels) {
  Models m;
  TempDir t;
  const std::string cache = t / "cache";
  // Cold cache, all 16 start together: 8 race on one entry, 8 on another.
  std::string script = "cd " + t.path() + "; ";
  for (int i = 0; i < 16; ++i)
    script += std::string("( ") + FUSECHECK_BINARY + " check " + (i % 2 ? m.bad : m.ok) +
              " --cache-dir " + cache + " >out" + std::to_string(i) + " 2>err" + std::to_string(i) +
              "; echo $? >rc" + std::to_string(i) + " ) & ";
  script += "wait";
  ASSERT_EQ(sh(script), 0);
  for (int i = 0; i < 16; ++i) {
    std::string n = std::to_string(i);
    EXPECT_EQ(read_text(t / ("rc" + n)), i % 2 ? "2\n" : "0\n")
        << "process " << i << ": " << read_text(t / ("err" + n));
    EXPECT_EQ(read_text(t / ("err" + n)), "") << "process " << i;
    EXPECT_NE(read_text(t / ("out" + n)).find(i % 2 ? "INCOMPATIBLE" : "COMPATIBLE"),
              std::string::npos);
  }
  // Exactly one entry per model, no temporary files left behind, and both entries are served.
  auto entries = files_in(cache);
  EXPECT_EQ(entries.size(), 2u) << ::testing::PrintToString(entries);
  ExpectCacheServesCorrectVerdicts(m, cache);
  // Warm cache, 16 at once again: all hits, same answers.
  ASSERT_EQ(sh(script), 0);
  for (int i = 0; i < 16; ++i)
    EXPECT_EQ(read_text(t / ("rc" + std::to_string(i))), i % 2 ? "2\n" : "0\n");
}

// SIGKILL at random points of `fusecheck check` (startup, analysis, the cache write between the
// temporary file and the rename). Whatever is left in the cache directory must never serve a wrong
// or damaged entry: the next check either hits a complete entry or recomputes and stores one.
TEST(CacheFaults, SigkillAtRandomPointsNeverLeavesAServedCorruptEntry) {
  Models m;
  TempDir t;
  // How long one uncached check takes (the fastest of three), to spread the kills over its run.
  long full_us = 0;
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_EQ(run_cli("check " + m.bad + " --no-cache").exit_code, 2);
    long us = long(
        std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
            .count());
    full_us = i == 0 ? us : std::min(full_us, us);
  }
  std::mt19937 rng(12345);
  int killed = 0, round = 0;
  // Until 20 runs were killed mid-way (load on the machine changes how many finish first).
  for (; killed < 20 && round < 200; ++round) {
    const std::string cache = t / ("c" + std::to_string(round));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1);
      ::dup2(null, 2);
      ::execl(FUSECHECK_BINARY, "fusecheck", "check", m.bad.c_str(), "--cache-dir", cache.c_str(),
              static_cast<char*>(nullptr));
      std::_Exit(127);
    }
    std::uniform_int_distribution<long> when(0, full_us);
    std::this_thread::sleep_for(std::chrono::microseconds(when(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    killed += WIFSIGNALED(status);
    // The damaged cache, whatever state it is in: a correct verdict, and afterwards one complete
    // entry that is served.
    auto r = check_model(m.bad, cached(cache));
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->verdict, Verdict::kIncompatible) << "round " << round;
    auto again = check_model(m.bad, cached(cache));
    ASSERT_TRUE(again.ok());
    EXPECT_TRUE(again->from_cache) << "round " << round;
    EXPECT_EQ(again->verdict, Verdict::kIncompatible);
    // Leftovers of a killed writer are hidden temporary files, never entries.
    for (const auto& f : files_in(cache))
      EXPECT_TRUE(f.ends_with(".json") || f.find(".tmp.") != std::string::npos) << f;
  }
  EXPECT_EQ(killed, 20) << "too few of " << round << " runs were killed mid-way to mean anything";
}

TEST(CacheFaults, DamagedEntriesOfEveryKindAreMissesAndRewritten) {
  TempDir t;
  ResultCache cache(t / "cache");
  const nlohmann::json key = {{"model", "m"}, {"v", 1}};
  const nlohmann::json value = {{"verdict", "COMPATIBLE"}, {"score", 0.9}};
  ASSERT_TRUE(cache.store(key, value).ok());
  const std::string entry = cache.entry_path(key);
  const std::string good = read_text(entry);
  ASSERT_EQ(cache.load(key), value);  // positive control
  std::vector<std::string> bad = {"",          "\0\0\0\0",    good.substr(0, good.size() - 1),
                                  "[1,2,3]",   "{\"key\":1}", good + "trailing",
                                  "\xff\xfe{}"};
  // Same shape, value changed, checksum stale.
  std::string stale = good;
  stale.replace(stale.find("0.9"), 3, "0.1");
  bad.push_back(stale);
  // Valid entry for another key at this key's path (a hash collision or a moved file).
  nlohmann::json other = nlohmann::json::parse(good);
  other["key"]["model"] = "other";
  bad.push_back(other.dump());
  for (const auto& b : bad) {
    write_text(entry, b);
    EXPECT_FALSE(cache.load(key).has_value()) << ::testing::PrintToString(b);
    ASSERT_TRUE(cache.store(key, value).ok());
    EXPECT_EQ(cache.load(key), value);
  }
  // Not a regular file at the entry's path: a FIFO must not block the reader.
  fs::remove(entry);
  ASSERT_EQ(::mkfifo(entry.c_str(), 0600), 0);
  EXPECT_FALSE(cache.load(key).has_value());
  ASSERT_TRUE(cache.store(key, value).ok());  // rename replaces the FIFO
  EXPECT_EQ(cache.load(key), value);
  // A directory there: a miss, and a store error (the caller turns it into a note).
  fs::remove(entry);
  fs::create_directories(entry + "/x");
  EXPECT_FALSE(cache.load(key).has_value());
  auto st = cache.store(key, value);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().message.find('\n'), std::string::npos) << st.error().message;
}

// /proc refuses new files even to root: a cache directory there cannot be written by anyone.
TEST(CacheFaults, UnwritableCacheDirGivesVerdictAndOneLineNote) {
  Models m;
  RunResult r = run_cli("check " + m.bad + " --cache-dir /proc/self");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.out.find("INCOMPATIBLE"), std::string::npos);
  EXPECT_TRUE(r.err.starts_with("fusecheck: note: result not cached")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

// A full disk, as root: RLIMIT_FSIZE 0 with SIGXFSZ ignored makes every write to a regular file
// fail (EFBIG) the way ENOSPC does; stdout and stderr go through a pipe, which the limit spares.
RunResult run_with_no_file_space(const std::string& args) {
  TempDir io;
  // The limit applies in the ( ) subshell only. fd 3 carries stdout past the stderr pipe; fd 4 the
  // exit code.
  write_text(io / "run.sh", "{ { (trap '' XFSZ; ulimit -f 0; exec " +
                                std::string(FUSECHECK_BINARY) + " " + args +
                                "); echo $? >&4; } 2>&1 1>&3 | cat >" + (io / "err") +
                                "; } 3>&1 4>" + (io / "rc") + " | cat >" + (io / "out") + "\n");
  sh("bash " + (io / "run.sh"));
  RunResult r;
  std::string rc = read_text(io / "rc");
  r.exit_code = rc.empty() ? -1 : std::stoi(rc);
  r.out = read_text(io / "out");
  r.err = read_text(io / "err");
  return r;
}

TEST(CacheFaults, FullDiskCacheGivesVerdictAndOneLineNote) {
  Models m;
  TempDir t;
  RunResult r = run_with_no_file_space("check " + m.bad + " --cache-dir " + (t / "cache"));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.out.find("INCOMPATIBLE"), std::string::npos) << r.out;
  EXPECT_TRUE(r.err.starts_with("fusecheck: note: result not cached")) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  // Nothing half-written is left to be served later.
  for (const auto& f : files_in(t / "cache")) ADD_FAILURE() << "left behind: " << f;
  auto after = check_model(m.bad, cached(t / "cache"));
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->from_cache);
}

TEST(CacheFaults, ReportWriteFailureKeepsTheOldReportWhole) {
  Models m;
  TempDir t;
  const std::string report = t / "report.json";
  write_text(report, "previous report\n");
  RunResult r = run_with_no_file_space("check " + m.bad + " --no-cache --report " + report);
  EXPECT_EQ(r.exit_code, 74) << "a report that could not be written is an error, not a verdict";
  EXPECT_NE(r.err.find(report), std::string::npos) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_EQ(read_text(report), "previous report\n") << "the old report was damaged";
  EXPECT_EQ(files_in(t.path()), std::vector<std::string>{"report.json"}) << "temporary file left";
  // And unwritable for everyone: a report inside /proc.
  RunResult p = run_cli("check " + m.bad + " --no-cache --report /proc/self/report.json");
  EXPECT_EQ(p.exit_code, 74) << p.err;
  EXPECT_EQ(std::count(p.err.begin(), p.err.end(), '\n'), 1) << p.err;
}

}  // namespace
}  // namespace fusecheck
