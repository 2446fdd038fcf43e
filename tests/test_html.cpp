// The HTML report (src/report/html): self-contained (no script, no external reference), text
// escaped, one mark per layer; and rendered in a real browser (Debian's chromium, headless): the
// DOM it builds has one mark per layer and the screenshot is not blank and shows the verdict's
// colour. The browser test skips when chromium is not installed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "check/check.h"
#include "probe/probe.h"
#include "report/html.h"
#include "testing.h"

namespace fusecheck {
namespace {

using testing::read_text;
using testing::run_cli;
using testing::TempDir;

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

CheckResult check_of(const std::string& dir, const std::string& kernels) {
  CheckOptions o;
  o.use_cache = false, o.kernels = kernels;
  auto r = check_model(dir, o);
  EXPECT_TRUE(r.ok()) << r.error().message;
  return *r;
}

TEST(Html, SelfContainedEscapedAndOneMarkPerLayer) {
  TempDir t;
  ASSERT_EQ(run_cli("fixture " + (t / "m") + " --profile qwen3-0.6b-extreme --tiny").exit_code, 0);
  const CheckResult c = check_of(t / "m", "fused");
  ProbeResult p;
  p.profile = "fused";
  p.layers.resize(c.analysis.layers.size(), LayerError{1e-3, 3e-3, 1e-3, 2e-3});
  p.verdict = Verdict::kIncompatible;
  p.reason = "<b>reason</b>";
  HtmlSection s{&c, &p, "<img src=x onerror=alert(1)>", "probe measurement", {"fusecheck a & b"}};
  const std::string html = render_html({s}, "title <x>");
  EXPECT_EQ(count(html, "class=\"layer-mark\""), c.analysis.layers.size());
  EXPECT_EQ(count(html, "class=\"layer-mark\""), 28u);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("<img"), std::string::npos) << "model name not escaped";
  EXPECT_NE(html.find("&lt;img src=x onerror=alert(1)&gt;"), std::string::npos);
  EXPECT_NE(html.find("&lt;b&gt;reason&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(html.find("fusecheck a &amp; b"), std::string::npos);
  EXPECT_NE(html.find("Measured relative error per layer"), std::string::npos);
  EXPECT_NE(html.find("default-src 'none'"), std::string::npos);
  // The only URL is the SVG namespace; nothing is fetched (the escaped hostile name aside).
  std::string rest = html;
  for (const std::string cut : {"http://www.w3.org/2000/svg", "src=x onerror"})
    for (size_t pos; (pos = rest.find(cut)) != std::string::npos;) rest.erase(pos, cut.size());
  EXPECT_EQ(rest.find("://"), std::string::npos);
  EXPECT_EQ(rest.find("src="), std::string::npos);
  EXPECT_EQ(rest.find("href="), std::string::npos);
  // Each k_norm's planted maximum is in the table.
  double kmax = 0;
  for (const auto& n : c.analysis.norms)
    if (n.role == "k_norm") kmax = std::max(kmax, n.stats.max_abs);
  EXPECT_NE(html.find(fmt::format("<td>{:.4g}</td>", kmax)), std::string::npos);
}

std::string chromium() {
  for (const char* c : {"chromium", "chromium-browser"})
    if (std::system((std::string("command -v ") + c + " >/dev/null 2>&1").c_str()) == 0) return c;
  return "";
}

// Runs headless chromium on a local page with a fresh profile, no network, no updates.
int browse(const std::string& browser, const TempDir& t, const std::string& what,
           const std::string& page, const std::string& out) {
  static int n = 0;
  const std::string profile = t / ("profile" + std::to_string(n++));
  const std::string cmd =
      "timeout 120 " + browser +
      " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync "
      "--disable-dev-shm-usage --user-data-dir=" +
      profile + " " + what + " file://" + page + " >" + out + " 2>" + (t / "browser.err");
  int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(Html, RendersInHeadlessChromium) {
  const std::string browser = chromium();
  if (browser.empty())
    GTEST_SKIP() << "chromium is not installed (scripts/setup.sh installs it): the HTML report "
                    "was not rendered in a browser";
  TempDir t;
  for (auto [name, profile] : {std::pair{"ok", "qwen3-0.6b"}, {"bad", "qwen3-0.6b-extreme"}})
    ASSERT_EQ(run_cli("fixture " + (t / name) + " --profile " + profile + " --tiny").exit_code, 0);
  // A check page (COMPATIBLE, green badge) and a probe page (measured, with the error chart).
  auto ok = run_cli("check " + (t / "ok") + " --no-cache --kernels generic --format html");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  testing::write_text(t / "ok.html", ok.out);
  auto probe = run_cli("probe " + (t / "bad") +
                       " --kernels fused-int8kv --tokens 16 "
                       "--greedy-tokens 0 --no-cache --report " +
                       (t / "bad.html"));
  ASSERT_LE(probe.exit_code, 2) << probe.err;
  for (auto [page, colour] : {std::pair{"ok.html", "1e8449"}, {"bad.html", "c0392b"}}) {
    SCOPED_TRACE(page);
    ASSERT_EQ(browse(browser, t, "--dump-dom", t / page, t / "dom.html"), 0)
        << read_text(t / "browser.err");
    const std::string dom = read_text(t / "dom.html");
    EXPECT_EQ(count(dom, "class=\"layer-mark\""), 28u) << dom.substr(0, 500);
    EXPECT_NE(dom.find("</svg>"), std::string::npos);
    ASSERT_EQ(browse(browser, t, "--window-size=900,900 --screenshot=" + (t / "shot.png"), t / page,
                     t / "shot.out"),
              0)
        << read_text(t / "browser.err");
    const std::string cmd = "/usr/bin/python3 " + std::string(FUSECHECK_SOURCE_DIR) +
                            "/tests/tools/png_stats.py " + (t / "shot.png") + " " + colour + " >" +
                            (t / "stats");
    ASSERT_EQ(std::system(cmd.c_str()), 0);
    std::istringstream in(read_text(t / "stats"));
    int w = 0, h = 0;
    double nonwhite = 0;
    long near = 0;
    in >> w >> h >> nonwhite >> near;
    EXPECT_EQ(w, 900);
    EXPECT_GT(nonwhite, 0.02) << "the screenshot is (almost) blank";
    EXPECT_GT(near, 200) << "the verdict's colour #" << colour << " is not on screen";
  }
}

}  // namespace
}  // namespace fusecheck
