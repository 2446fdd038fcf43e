// `fusecheck db ...`: the compatibility database (src/db). Every subcommand takes --db PATH
// (default $XDG_DATA_HOME/fusecheck/fusecheck.db, else ~/.local/share/fusecheck/fusecheck.db).
//   add MODEL [--kernels K] [--probe] [--name N] [--revision R]   record the check (and probe)
//   lookup MODEL|NAME|FINGERPRINT [--kernels K] [--json]          exit 1 when nothing is stored
//   list [--json]
//   export FILE [--model-card | --html] [--model Q] [--kernels K]  JSON lines by default
//   import FILE [--prefer-imported]                                bad lines: listed, exit 3
//   merge OTHER.db [--prefer-imported]
//   rebuild                                                        move a damaged file aside
// Exit codes: 0 done, 1 lookup found nothing, 3 the model, a file or the database cannot be used,
// 64 usage.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>

#include "check/check.h"
#include "check/result_json.h"
#include "cli/commands.h"
#include "db/exchange.h"
#include "db/store.h"
#include "probe/probe_report.h"
#include "report/html.h"
#include "report/model_card.h"
#include "util/atomic_file.h"
#include "util/hash.h"

namespace fusecheck::cli {

std::string resolve_db_path(const std::string& flag) {
  if (!flag.empty()) return flag;
  return default_db_path(std::getenv("XDG_DATA_HOME"), std::getenv("HOME"));
}

std::string default_db_hint() {
  return "$XDG_DATA_HOME/fusecheck/fusecheck.db";
}

namespace {

using json = nlohmann::json;

struct DbArgs {
  std::string db, model, kernels, name, revision, file, query;
  bool probe = false, json = false, model_card = false, html = false, prefer_imported = false;
};

int fail(const std::string& msg, int code = kExitInputError) {
  std::fprintf(stderr, "fusecheck: error: %s\n", msg.c_str());
  return code;
}

int emit(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0)
    return fail("cannot write to standard output");
  return 0;
}

bool is_dir(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// Whether a record was made under this build's analysis, probe and profile definitions.
bool is_current(const DbRecord& r) {
  auto reg = NumericsRegistry::load("");
  if (!reg) return false;
  auto p = reg->find(r.key.kernels);
  return p && current_key(r.key.fingerprint, *p, r.key.device) == r.key;
}

std::string origin(const DbRecord& r) {
  if (!r.probe) return "static";
  return r.is_local() ? "probe" : "database";
}

std::string record_line(const DbRecord& r) {
  std::string name = r.model_name.empty() ? "(unnamed)" : r.model_name;
  if (!r.model_revision.empty()) name += "@" + r.model_revision.substr(0, 12);
  std::string s = fmt::format("{:<32} {}  {:<20} {:<4}", name, r.key.fingerprint.substr(0, 12),
                              r.key.kernels, r.key.device);
  if (r.static_result)
    s += fmt::format("  static {} ({:.2f})", r.static_verdict(),
                     r.static_result->value("/score/total"_json_pointer, 0.0));
  if (r.probe) {
    s += "  measured " + r.measured_verdict();
    if (auto kl = r.measured_kl()) s += fmt::format(" (KL {:.3g})", *kl);
  }
  s += "  " + r.source + "  " + r.date.substr(0, 10);
  if (!is_current(r)) s += "  [older revision, not used]";
  return s + "\n";
}

std::string records_json(const std::string& path, const std::vector<DbRecord>& rs) {
  json arr = json::array();
  for (const auto& r : rs) {
    json j = record_to_json(r);
    j["current"] = is_current(r);
    j["verdict_from"] = origin(r);
    arr.push_back(std::move(j));
  }
  return json{{"schema", "fusecheck.db-records/1"}, {"database", path}, {"records", arr}}.dump(2) +
         "\n";
}

// MODEL: a checkpoint folder (its fingerprint), else a model name or a fingerprint prefix.
Result<std::string> query_for(const std::string& model) {
  if (!is_dir(model)) return model;
  CheckOptions co;

  FC_ASSIGN(r, check_model(model, co));
  return r.fingerprint;
}

int run_add(const DbArgs& a) {
  const std::string path = resolve_db_path(a.db);
  ModelIdentity id = identity_from_path(a.model);
  if (!a.name.empty()) id.name = a.name;
  if (!a.revision.empty()) id.revision = a.revision;
  auto stored = add_checkpoint(path, a.model, a.kernels.empty() ? "fused" : a.kernels, a.probe, id);
  if (!stored) return fail(stored.error().message);
  return emit("recorded in " + path + ":\n" + record_line(*stored));
}

int run_lookup(const DbArgs& a) {
  const std::string path = resolve_db_path(a.db);
  auto q = query_for(a.query);
  if (!q) return fail(q.error().message);
  auto db = Database::open(path, DbMode::kReadOnly);
  if (!db) return fail(db.error().message);
  auto rs = db->find(*q, a.kernels);
  if (!rs) return fail(rs.error().message);
  if (a.json) {
    if (int rc = emit(records_json(path, *rs))) return rc;
  } else {
    std::string out;
    for (const auto& r : *rs) out += record_line(r);
    if (int rc = emit(out)) return rc;
  }
  if (rs->empty()) {
    std::fprintf(stderr, "fusecheck: no record for %s in %s\n", a.query.c_str(), path.c_str());
    return 1;
  }
  return 0;
}

int run_list(const DbArgs& a) {
  const std::string path = resolve_db_path(a.db);
  auto db = Database::open(path, DbMode::kReadOnly);
  if (!db) return fail(db.error().message);
  auto rs = db->find("", "");
  if (!rs) return fail(rs.error().message);
  if (a.json) return emit(records_json(path, *rs));
  std::string out;
  for (const auto& r : *rs) out += record_line(r);
  out +=
      fmt::format("{} records in {}{}\n", rs->size(), path, db->read_only() ? " (read-only)" : "");
  return emit(out);
}

std::string card_for(const std::vector<DbRecord>& rs) {
  CardInput in;
  in.fingerprint = rs.front().key.fingerprint;
  in.tool_version = kCheckerVersion;
  for (const auto& r : rs) {
    if (in.model_name.empty()) in.model_name = r.model_name, in.revision = r.model_revision;
    CardProfile p;
    p.kernels = r.key.kernels;
    p.static_verdict = r.static_verdict();
    if (r.static_result) {
      p.score = r.static_result->value("/score/total"_json_pointer, 0.0);
      p.amplification = r.static_result->value("/analysis/amplification"_json_pointer, 0.0);
    }
    p.measured_verdict = r.measured_verdict();
    p.measured_kl = r.measured_kl();
    p.source = origin(r);
    in.profiles.push_back(p);
  }
  return render_card_front_matter(in) + render_card_table(in);
}

std::string html_for(const std::vector<DbRecord>& rs, const std::string& path) {
  // The sections point into these, so they are filled first.
  std::vector<CheckResult> checks;
  std::vector<std::optional<ProbeResult>> probes;
  std::vector<const DbRecord*> used;
  checks.reserve(rs.size()), probes.reserve(rs.size());
  for (const auto& r : rs) {
    if (!r.static_result) continue;  // the charts need the static analysis
    auto c = result_from_json(*r.static_result);
    if (!c) continue;
    checks.push_back(*c);
    probes.push_back(r.probe ? std::optional<ProbeResult>(*probe_from_json(*r.probe))
                             : std::nullopt);
    used.push_back(&r);
  }
  std::vector<HtmlSection> secs;
  for (size_t i = 0; i < checks.size(); ++i) {
    const DbRecord& r = *used[i];
    const std::string q = r.model_name.empty() ? r.key.fingerprint : r.model_name;
    HtmlSection s{
        &checks[i],
        probes[i] ? &*probes[i] : nullptr,
        (r.model_name.empty() ? "(unnamed)" : r.model_name) + " / " + r.key.kernels,
        origin(r) == "static" ? "static check" : origin(r) + " (" + r.source + ")",
        {"fusecheck db lookup " + q + " --kernels " + r.key.kernels + " --db " + path,
         "fusecheck db add MODEL_DIR --kernels " + r.key.kernels + (r.probe ? " --probe" : "")}};
    secs.push_back(s);
  }
  return render_html(secs, "fusecheck database: " + path);
}

int run_export(const DbArgs& a) {
  if (a.model_card && a.html) return fail("--model-card and --html exclude each other", kExitUsage);
  const std::string path = resolve_db_path(a.db);
  auto db = Database::open(path, DbMode::kReadOnly);
  if (!db) return fail(db.error().message);
  std::string q = a.query;
  if (!q.empty()) {
    auto r = query_for(q);
    if (!r) return fail(r.error().message);
    q = *r;
  }
  auto rs = db->find(q, a.kernels);
  if (!rs) return fail(rs.error().message);
  std::vector<DbRecord> keep;
  for (auto& r : *rs)
    if (!a.model_card || is_current(r)) keep.push_back(std::move(r));
  std::string text;
  size_t n_plans = 0;
  if (a.model_card) {
    std::map<std::string, int> fps;
    for (const auto& r : keep) ++fps[r.key.fingerprint];
    if (fps.size() != 1)
      return fail(
          fmt::format("--model-card: {} checkpoints match; name one with --model", fps.size()),
          kExitUsage);
    text = card_for(keep);
  } else if (a.html) {
    text = html_for(keep, path);
  } else {
    auto plans = plans_for_export(*db, keep, !q.empty(), a.kernels);
    if (!plans) return fail(plans.error().message);
    text = export_jsonl(keep, *plans);
    n_plans = plans->size();
  }
  if (auto st = write_file_atomic(a.file, text); !st) return fail(st.error().message);
  std::fprintf(stderr, "fusecheck: wrote %zu records and %zu plans to %s\n", keep.size(), n_plans,
               a.file.c_str());
  return 0;
}

int print_import(const ImportStats& s, const std::string& path) {
  return emit(
      fmt::format("{}: {} added, {} replaced, {} kept (a local result is kept; "
                  "--prefer-imported replaces it)\n",
                  path, s.added, s.replaced, s.kept_local));
}

int run_import(const DbArgs& a, bool merge) {
  const std::string path = resolve_db_path(a.db);
  auto db = Database::open(path);
  if (!db) return fail(db.error().message);
  if (db->read_only()) return fail(path + ": read-only (" + db->read_only_reason() + ")");
  if (merge) {
    auto s = merge_database(*db, a.file, a.prefer_imported);
    if (!s) return fail(s.error().message);
    return print_import(*s, path);
  }
  auto rep = import_file(*db, a.file, a.prefer_imported);
  if (!rep) return fail(rep.error().message);
  for (const auto& e : rep->rejected) std::fprintf(stderr, "fusecheck: rejected: %s\n", e.c_str());
  if (int rc = print_import(rep->stats, path)) return rc;
  const ImportStats& p = rep->plan_stats;
  if (p.added + p.replaced + p.kept_local > 0)
    if (int rc = emit(fmt::format("{}: plans: {} added, {} replaced, {} kept\n", path, p.added,
                                  p.replaced, p.kept_local)))
      return rc;
  return rep->rejected.empty() ? 0 : kExitInputError;
}

int run_rebuild(const DbArgs& a) {
  const std::string path = resolve_db_path(a.db);
  auto s = rebuild_database(path);
  if (!s) return fail(s.error().message);
  return emit(fmt::format("{}: rebuilt; the old file is {}; {} records kept, {} plans kept\n", path,
                          s->moved_to, s->salvaged, s->plans_salvaged));
}

}  // namespace

void register_db_command(CLI::App& app, int& exit_code) {
  auto a = std::make_shared<DbArgs>();
  CLI::App* db = app.add_subcommand(
      "db",
      "The compatibility database: static results and probe measurements by checkpoint "
      "fingerprint, kernel profile and device; shared as JSON lines.\nExit codes: 0 done, 1 "
      "lookup found nothing, 3 the model, a file or the database cannot be used, 64 usage.");
  db->require_subcommand(1);
  auto with_db = [&](CLI::App* c) {
    c->add_option("--db", a->db,
                  "database file (default " + default_db_hint() +
                      ", else ~/.local/share/fusecheck/fusecheck.db)");
  };
  CLI::App* add = db->add_subcommand("add", "Check MODEL_DIR (and --probe it) and record it");
  add->add_option("MODEL_DIR", a->model, "Hugging Face checkpoint directory")->required();
  add->add_option("--kernels", a->kernels, "kernel profile (default fused)");
  add->add_flag("--probe", a->probe, "also measure the profile (fusecheck probe) and record it");
  add->add_option("--name", a->name,
                  "model name, e.g. Qwen/Qwen3-0.6B (default: from the HF "
                  "cache path models--ORG--NAME/snapshots/REV)");
  add->add_option("--revision", a->revision, "model revision (default: from the HF cache path)");
  with_db(add);
  add->callback([a, &exit_code] { exit_code = run_add(*a); });

  CLI::App* lookup = db->add_subcommand("lookup", "Show the records of a model");
  lookup->add_option("MODEL", a->query, "checkpoint directory, model name or fingerprint (8+ hex)")
      ->required();
  lookup->add_option("--kernels", a->kernels, "only this kernel profile");
  lookup->add_flag("--json", a->json, "print JSON (fusecheck.db-records/1)");
  with_db(lookup);
  lookup->callback([a, &exit_code] { exit_code = run_lookup(*a); });

  CLI::App* list = db->add_subcommand("list", "List every record");
  list->add_flag("--json", a->json, "print JSON (fusecheck.db-records/1)");
  with_db(list);
  list->callback([a, &exit_code] { exit_code = run_list(*a); });

  CLI::App* exp =
      db->add_subcommand("export", "Write records to FILE (JSON lines, fusecheck.db/1)");
  exp->add_option("FILE", a->file, "output file (written atomically)")->required();
  exp->add_flag("--model-card", a->model_card,
                "write Hugging Face model-card front-matter and a markdown section instead");
  exp->add_flag("--html", a->html, "write one self-contained HTML page instead");
  exp->add_option("--model", a->query, "only this checkpoint directory, model name or fingerprint");
  exp->add_option("--kernels", a->kernels, "only this kernel profile");
  with_db(exp);
  exp->callback([a, &exit_code] { exit_code = run_export(*a); });

  CLI::App* imp = db->add_subcommand("import", "Import an exported JSON lines file");
  imp->add_option("FILE", a->file, "fusecheck.db/1 JSON lines")->required();
  imp->add_flag("--prefer-imported", a->prefer_imported,
                "let imported records replace local measurements");
  with_db(imp);
  imp->callback([a, &exit_code] { exit_code = run_import(*a, false); });

  CLI::App* merge = db->add_subcommand("merge", "Import every record of another database file");
  merge->add_option("OTHER_DB", a->file, "another fusecheck database")->required();
  merge->add_flag("--prefer-imported", a->prefer_imported,
                  "let its records replace local measurements");
  with_db(merge);
  merge->callback([a, &exit_code] { exit_code = run_import(*a, true); });

  CLI::App* rebuild = db->add_subcommand(
      "rebuild", "Move a damaged database aside and start a new one with every readable record");
  with_db(rebuild);
  rebuild->callback([a, &exit_code] { exit_code = run_rebuild(*a); });
}

}  // namespace fusecheck::cli
