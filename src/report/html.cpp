#include "report/html.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>

#include "probe/probe.h"

namespace fusecheck {

namespace {

std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string num(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return fmt::format("{:.4g}", v);
}

const char* verdict_color(std::string_view v) {
  if (v == "COMPATIBLE") return "#1e8449";
  if (v == "WARNING") return "#b9770e";
  return "#c0392b";
}

// One chart: layers on x, a log-scaled y, series as bars (the first, if bars) or lines with dots,
// and an optional horizontal limit. Non-finite and non-positive values are not drawn.
struct Series {
  std::string name, color;
  std::vector<double> y;  // one per layer
};
struct Chart {
  std::string title, y_label;
  std::vector<Series> series;
  bool first_as_bars = false;  // the first series' bars are the per-layer marks
  double limit = NAN;
  std::string limit_label;
};

constexpr double kW = 900, kH = 240, kLeft = 60, kRight = 190, kTop = 28, kBottom = 34;

// The plot's frame: a log10 y axis over [10^llo, 10^lhi], one column per layer.
struct Plot {
  double llo, lhi, pw, ph, step;
  double ypos(double v) const { return kTop + ph * (1 - (std::log10(v) - llo) / (lhi - llo)); }
  double xpos(size_t l) const { return kLeft + step * (double(l) + 0.5); }
  double base() const { return kTop + ph; }
};

Plot frame_for(const Chart& c, size_t layers) {
  double lo = INFINITY, hi = -INFINITY;
  auto take = [&](double v) {
    if (std::isfinite(v) && v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
  };
  for (const auto& s : c.series)
    for (double v : s.y) take(v);
  take(c.limit);
  if (!(lo <= hi)) lo = 0.1, hi = 10;
  // A limit or value on a decade line stays inside the plot, not on its edge.
  double llo = std::floor(std::log10(lo * 0.9)), lhi = std::ceil(std::log10(hi * 1.1));
  if (lhi - llo < 1) lhi = llo + 1;
  const double pw = kW - kLeft - kRight, ph = kH - kTop - kBottom;
  return {llo, lhi, pw, ph, pw / double(std::max<size_t>(layers, 1))};
}

// One series: a bar per layer (the first series of a bar chart), else points and a polyline.
void draw_series(std::string& o, const Plot& p, const Series& s, bool bars, size_t layers) {
  if (bars) {
    for (size_t l = 0; l < layers && l < s.y.size(); ++l) {
      const double v = s.y[l];
      const double y = std::isfinite(v) && v > 0 ? std::max(kTop, p.ypos(v)) : p.base();
      o += fmt::format(
          "<rect class=\"layer-mark\" data-layer=\"{}\" x=\"{:.1f}\" y=\"{:.1f}\" "
          "width=\"{:.1f}\" "
          "height=\"{:.1f}\" fill=\"{}\"><title>layer {}: {} {}</title></rect>\n",
          l, p.xpos(l) - p.step * 0.4, y, p.step * 0.8, std::max(0.0, p.base() - y), s.color, l,
          esc(s.name), num(v));
    }
    return;
  }
  std::string pts;
  for (size_t l = 0; l < s.y.size(); ++l) {
    const double v = s.y[l];
    if (!std::isfinite(v) || v <= 0) continue;
    pts += fmt::format("{:.1f},{:.1f} ", p.xpos(l), p.ypos(v));
    o += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"3\" fill=\"{}\"><title>layer {}: {} {}</title>"
        "</circle>\n",
        p.xpos(l), p.ypos(v), s.color, l, esc(s.name), num(v));
  }
  if (!pts.empty())
    o += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\n",
                     pts, s.color);
}

std::string render_chart(const Chart& c, size_t layers) {
  const Plot p = frame_for(c, layers);
  const double pw = p.pw;
  std::string o = fmt::format(
      "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {} {}\" "
      "width=\"{}\" height=\"{}\" role=\"img\"><title>{}</title>\n",
      kW, kH, kW, kH, esc(c.title));
  o += fmt::format("<text x=\"{}\" y=\"18\" class=\"ct\">{}</text>\n", kLeft, esc(c.title));
  for (double e = p.llo; e <= p.lhi; ++e) {  // decade grid
    const double y = p.ypos(std::pow(10.0, e));
    o += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/><text x=\"{}\" "
        "y=\"{:.1f}\" class=\"ax\" text-anchor=\"end\">1e{}</text>\n",
        kLeft, kLeft + pw, y, y, kLeft - 6, y + 4, int(e));
  }
  const size_t every = std::max<size_t>(1, layers / 16);
  for (size_t l = 0; l < layers; l += every)
    o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"ax\" text-anchor=\"middle\">{}</text>\n",
                     p.xpos(l), kH - kBottom + 14, l);
  o += fmt::format("<text x=\"{}\" y=\"{}\" class=\"ax\" text-anchor=\"middle\">layer</text>\n",
                   kLeft + pw / 2, kH - 4);
  for (size_t si = 0; si < c.series.size(); ++si)
    draw_series(o, p, c.series[si], si == 0 && c.first_as_bars, layers);
  if (std::isfinite(c.limit) && c.limit > 0) {
    const double y = p.ypos(c.limit);
    o += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"limit\"/><text x=\"{}\" "
        "y=\"{:.1f}\" class=\"ax\">{}</text>\n",
        kLeft, kLeft + pw, y, y, kLeft + pw + 6, y + 4, esc(c.limit_label));
  }
  double ly = kTop + 24;  // legend
  for (const auto& s : c.series) {
    o += fmt::format(
        "<rect x=\"{}\" y=\"{:.1f}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{}\" "
        "y=\"{:.1f}\" class=\"ax\">{}</text>\n",
        kLeft + pw + 6, ly, s.color, kLeft + pw + 20, ly + 9, esc(s.name));
    ly += 16;
  }
  return o + "</svg>\n";
}

const char* kPalette[] = {"#2e86c1", "#c0392b", "#7d3c98", "#17a589", "#d35400", "#566573"};

// Per layer, each per-layer norm role's max |gain| (NaN when the layer has none).
std::map<std::string, std::vector<double>> gains_by_role(const CheckResult& r) {
  std::map<std::string, std::vector<double>> out;
  const size_t n = r.analysis.layers.size();
  for (const auto& nr : r.analysis.norms) {
    if (nr.layer < 0 || size_t(nr.layer) >= n) continue;
    auto& v = out[nr.role];
    if (v.empty()) v.assign(n, NAN);
    const double g = nr.stats.n_nan + nr.stats.n_inf > 0 ? INFINITY : nr.stats.max_abs;
    v[size_t(nr.layer)] = std::isnan(v[size_t(nr.layer)]) ? g : std::max(v[size_t(nr.layer)], g);
  }
  return out;
}

std::string reasons_html(const CheckResult& r) {
  std::string o = "<h3>Reasons</h3><ul>";
  if (r.score.issues.empty() && r.score.findings.empty())
    o += "<li>No norm exceeds a threshold.</li>";
  for (const auto& i : r.score.issues) o += "<li>" + esc(i) + "</li>";
  for (const auto& f : r.score.findings)
    o += "<li><b>" + esc(f.severity) + ":</b> " + esc(f.message) + "</li>";
  o += "</ul><h3>Recommendation</h3><ul>";
  for (const auto& rec : r.score.recommendations) o += "<li>" + esc(rec) + "</li>";
  return o + "</ul>\n";
}

std::string probe_summary_html(const ProbeResult& p) {
  std::string o = fmt::format(
      "<h3>Measured (probe, {} sequences, {} positions)</h3><table><tr><th>logits</th><th>KL "
      "mean</th><th>KL p99</th><th>KL max</th><th>top-1</th></tr>",
      p.sequences, p.positions);
  for (auto [name, s] : {std::pair{"standard vs fp32", &p.standard_vs_fp32},
                         {"fused vs fp32", &p.fused_vs_fp32},
                         {"fused vs standard", &p.fused_vs_standard}})
    o += fmt::format("<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1f}%</td></tr>", name,
                     num(s->kl_mean), num(s->kl_p99), num(s->kl_max), 100 * s->top1);
  o += "</table>";
  o += fmt::format("<p>Measured verdict: <b style=\"color:{}\">{}</b> ({})</p>\n",
                   verdict_color(verdict_name(p.verdict)), verdict_name(p.verdict), esc(p.reason));
  return o;
}

std::string layer_table_html(const CheckResult& r, const ProbeResult* p,
                             const std::map<std::string, std::vector<double>>& gains) {
  std::string o = "<details><summary>Per-layer table</summary><table><tr><th>layer</th>";
  for (const auto& [role, v] : gains) o += "<th>max |g| " + esc(role) + "</th>";
  o += "<th>amplification</th>";
  if (p) o += "<th>standard err</th><th>fused err</th><th>std shadow</th><th>fused shadow</th>";
  o += "</tr>\n";
  for (size_t l = 0; l < r.analysis.layers.size(); ++l) {
    o += fmt::format("<tr><td>{}</td>", l);
    for (const auto& [role, v] : gains) o += "<td>" + num(v[l]) + "</td>";
    o += "<td>" + num(r.analysis.layers[l].noise.amplification) + "</td>";
    if (p && l < p->layers.size()) {
      const auto& e = p->layers[l];
      o += fmt::format("<td>{}</td><td>{}</td><td>{}</td><td>{}</td>", num(e.standard),
                       num(e.fused), num(e.standard_shadow), num(e.fused_shadow));
    }
    o += "</tr>\n";
  }
  return o + "</table></details>\n";
}

std::string section_html(const HtmlSection& s) {
  const CheckResult& r = *s.check;
  const std::string v(verdict_name(s.probe ? s.probe->verdict : r.verdict));
  const size_t n = r.analysis.layers.size();
  std::string o = fmt::format(
      "<section class=\"report\" data-verdict=\"{}\"><h2>{} <span class=\"badge\" "
      "style=\"background:{}\">{}</span></h2>\n",
      v, esc(s.model), verdict_color(v), v);
  o += fmt::format(
      "<p>Kernel profile <code>{}</code> ({}). Verdict from: <b>{}</b>. Static check: {} (score "
      "{:.2f}); predicted amplification {} (worst layer {}).</p>\n",
      esc(r.kernels.name), esc(r.kernels.description),
      esc(s.verdict_source.empty() ? "static check" : s.verdict_source), verdict_name(r.verdict),
      r.score.total, num(r.analysis.amplification), r.analysis.worst_layer);
  if (s.probe) o += probe_summary_html(*s.probe);
  const auto gains = gains_by_role(r);
  Chart amp{"Predicted amplification per layer", "amplification", {}, true,
            r.thresholds.max_safe_amplification, "limit"};
  std::vector<double> a;
  for (const auto& L : r.analysis.layers) a.push_back(L.noise.amplification);
  amp.series.push_back({"amplification", "#2e86c1", a});
  o += render_chart(amp, n);
  Chart g{"Max |gain| per layer, each norm",     "max |g|", {}, false,
          r.thresholds.extreme_weight_threshold, "extreme"};
  size_t ci = 0;
  for (const auto& [role, vals] : gains) g.series.push_back({role, kPalette[ci++ % 6], vals});
  o += render_chart(g, n);
  if (s.probe && !s.probe->layers.empty()) {
    Chart e{"Measured relative error per layer (vs fp32)", "rel. error", {}, false, NAN, ""};
    std::vector<double> st, fu, sts, fus;
    for (const auto& L : s.probe->layers)
      st.push_back(L.standard), fu.push_back(L.fused), sts.push_back(L.standard_shadow),
          fus.push_back(L.fused_shadow);
    e.series = {{"standard", "#2e86c1", st},
                {"fused", "#c0392b", fu},
                {"standard shadow", "#85c1e9", sts},
                {"fused shadow", "#f1948a", fus}};
    o += render_chart(e, s.probe->layers.size());
  }
  o += reasons_html(r);
  o += layer_table_html(r, s.probe, gains);
  o += "<h3>Reproduce</h3><pre>";
  for (const auto& c : s.commands) o += esc(c) + "\n";
  o += "</pre>";
  o += fmt::format("<p class=\"foot\">fusecheck {} &middot; fingerprint <code>{}</code></p>",
                   esc(r.checker_version), esc(r.fingerprint));
  return o + "</section>\n";
}

}  // namespace

std::string render_html(const std::vector<HtmlSection>& sections, const std::string& title) {
  std::string o =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
      "'unsafe-inline'; img-src data:\">\n<title>" +
      esc(title) +
      "</title>\n<style>\n"
      "body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}\n"
      ".badge{color:#fff;padding:2px 10px;border-radius:4px;font-size:0.8em}\n"
      "section.report{border-top:2px solid #ddd;padding-top:8px;margin-bottom:32px}\n"
      "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;padding:2px "
      "6px;text-align:right}\n"
      ".chart{display:block;margin:12px 0}.ct{font-size:14px;font-weight:bold}"
      ".ax{font-size:11px;fill:#444}.grid{stroke:#eee}"
      ".limit{stroke:#c0392b;stroke-dasharray:6 4;stroke-width:1.5}\n"
      "pre{background:#f4f4f4;padding:8px;overflow-x:auto}.foot{color:#777;font-size:0.8em}\n"
      "</style></head><body>\n<h1>" +
      esc(title) + "</h1>\n";
  if (sections.empty()) o += "<p>No records.</p>\n";
  for (const auto& s : sections) o += section_html(s);
  return o + "</body></html>\n";
}

}  // namespace fusecheck
