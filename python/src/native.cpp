// fusecheck._native: the C++ checker, probe and load-time decision for the Python package
// (python/fusecheck/__init__.py builds the public API on it). Results cross as the CLI's JSON text,
// so Python's to_dict() is the CLI's output by construction. Every C++ error becomes
// _native.Error with the CLI's one-line message; the GIL is released while C++ runs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "check/cache.h"
#include "check/check.h"
#include "db/exchange.h"
#include "db/model_id.h"
#include "db/store.h"
#include "engine/decide_path.h"
#include "kernels/dot_choice.h"
#include "plan/plan.h"
#include "probe/probe_report.h"
#include "report/report.h"
#include "util/atomic_file.h"

namespace py = pybind11;

namespace fusecheck::python {

namespace {

// The checker's result held for report(); immutable once made, so threads may share it.
struct NativeCheck {
  CheckResult result;
  std::string json;  // the `fusecheck check --format json` text
};

[[noreturn]] void raise(const std::string& message);

template <class T>
T take(Result<T>&& r) {
  if (!r.ok()) raise(r.error().message);
  return std::move(r).value();
}

CheckOptions check_options(const std::string& kernels, const std::optional<std::string>& thresholds,
                           bool use_cache, const std::string& cache_dir,
                           const std::optional<std::string>& force_status) {
  CheckOptions o;
  o.kernels = kernels;
  o.use_cache = use_cache;
  o.cache_dir = cache_dir;
  if (force_status) o.force_verdict = take(parse_verdict(*force_status));
  if (thresholds) {
    Thresholds base = take(load_thresholds(""));
    o.thresholds = take(apply_thresholds_json(base, *thresholds, "thresholds argument"));
  }
  return o;
}

std::shared_ptr<NativeCheck> check(const std::string& path, const std::string& kernels,
                                   const std::optional<std::string>& thresholds, bool use_cache,
                                   const std::string& cache_dir,
                                   const std::optional<std::string>& force_status) {
  CheckOptions o = check_options(kernels, thresholds, use_cache, cache_dir, force_status);
  Result<CheckResult> r = Error{};
  {
    py::gil_scoped_release nogil;
    r = check_model(path, o);
  }
  auto out = std::make_shared<NativeCheck>();
  out->result = take(std::move(r));
  out->json = render_report(out->result, ReportFormat::kJson, {});
  return out;
}

std::string report(const NativeCheck& c, const std::string& format, bool verbose) {
  ReportFormat f = take(parse_report_format(format));
  ReportOptions ro;
  ro.verbose = verbose;
  return render_report(c.result, f, ro);
}

// `fusecheck probe PATH --kernels K --json`: the same steps, report and cache entry.
Result<std::string> probe_json(const std::string& path, const std::string& kernels,
                               const std::vector<std::vector<int32_t>>& sequences, int64_t tokens,
                               int64_t greedy_tokens, bool use_cache, const std::string& cache_dir,
                               const std::string& db_path) {
  FC_ASSIGN(registry, NumericsRegistry::load(""));
  FC_ASSIGN(profile, registry.find(kernels));
  CheckOptions co;
  co.kernels = kernels;
  co.use_cache = use_cache;
  co.cache_dir = cache_dir;
  FC_ASSIGN(check, check_model(path, co));
  FC_ASSIGN(model, Model::load(path));
  ProbeOptions opt;
  opt.profile = profile;
  opt.greedy_tokens = greedy_tokens;
  if (sequences.empty()) {
    FC_ASSIGN(inputs, calibration_inputs(model, tokens, ""));
    opt.inputs = std::move(inputs);
  } else {
    opt.inputs = sequences;
  }
  FC_ASSIGN(r, run_probe(model, opt));
  nlohmann::json j = probe_to_json(r);
  j["model_path"] = path;
  j["static_verdict"] = verdict_name(check.verdict);
  j["static_score"] = check.score.total;
  j["dot"] = std::string(dot_choice_name(opt.dot));  // as the CLI's JSON; Python runs the default
  // As the CLI: the measurement goes into the compatibility database, where the load-time
  // decision finds it; a database that cannot be written costs the reuse, not the measurement.
  if (use_cache && !db_path.empty())
    (void)record_locally(db_path, local_record(check, &r, identity_from_path(path)));
  return j.dump(2) + "\n";
}

std::string probe(const std::string& path, const std::string& kernels,
                  const std::vector<std::vector<int32_t>>& sequences, int64_t tokens,
                  int64_t greedy_tokens, bool use_cache, const std::string& cache_dir,
                  const std::string& db_path) {
  Result<std::string> r = Error{};
  {
    py::gil_scoped_release nogil;
    r = probe_json(path, kernels, sequences, tokens, greedy_tokens, use_cache, cache_dir, db_path);
  }
  return take(std::move(r));
}

py::dict decide(const std::string& path, const std::string& kernels, bool strict, bool force,
                bool use_cache, const std::string& cache_dir,
                const std::optional<std::string>& force_status, const std::string& db_path,
                const std::string& device) {
  std::optional<Verdict> forced_verdict;
  if (force_status) forced_verdict = take(parse_verdict(*force_status));
  KernelRequest req;
  req.use_custom_kernels = true;
  req.kernels = kernels;
  req.strict = strict;
  req.force = force;
  req.use_cache = use_cache;
  req.cache_dir = cache_dir;
  req.db_path = db_path;
  Result<DirDecision> r = Error{};
  {
    py::gil_scoped_release nogil;
    r = decide_kernels_for_dir(path, req, forced_verdict, device);
  }
  DirDecision d = take(std::move(r));
  const KernelDecision& k = d.decision;
  auto verdict = [](const std::optional<Verdict>& v) -> py::object {
    return v ? py::str(std::string(verdict_name(*v))) : py::object(py::none());
  };
  py::dict out;
  out["outcome"] = std::string(kernel_outcome_name(k.outcome));
  out["use_fused"] = k.outcome == KernelOutcome::kFused ||
                     k.outcome == KernelOutcome::kFusedWithWarning ||
                     k.outcome == KernelOutcome::kForced;
  out["verdict"] = verdict(d.verdict);
  out["static_verdict"] = verdict(k.static_verdict);
  out["measured_verdict"] = verdict(k.measured_verdict);
  out["source"] = d.source;
  out["basis"] = k.basis;
  out["message"] = k.message;
  out["kernels"] = kernels;
  out["check_error"] = d.check_error;
  out["strict_refusal"] = d.strict_refusal;
  out["check_ms"] = k.check_ms;
  out["plan"] = py::none();
  if (k.outcome == KernelOutcome::kPlan) {  // per layer: the groups it fuses and its KV format
    py::list layers;
    for (const LayerPlan& l : k.plan.layers) {
      py::list groups;
      for (int g = 0; g < kFusedGroupCount; ++g)
        if (l.fused[static_cast<size_t>(g)])
          groups.append(std::string(fused_group_name(FusedGroup(g))));
      py::dict layer;
      layer["fused"] = groups;
      layer["kv"] = kv_layer_format_name(l.kv);
      layers.append(layer);
    }
    out["plan"] = layers;
  }
  return out;
}

// The compatibility database (db/database.h) as JSON text: records as `fusecheck.db/1` objects.
std::string records_json(const std::vector<DbRecord>& rs) {
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& r : rs) arr.push_back(record_to_json(r));
  return arr.dump();
}

std::string db_add(const std::string& db_path, const std::string& model_dir,
                   const std::string& kernels, bool probe, const std::string& name,
                   const std::string& revision) {
  Result<DbRecord> r = Error{};
  {
    py::gil_scoped_release nogil;
    ModelIdentity id = identity_from_path(model_dir);
    if (!name.empty()) id.name = name;
    if (!revision.empty()) id.revision = revision;
    r = add_checkpoint(db_path, model_dir, kernels, probe, id);
  }
  return record_to_json(take(std::move(r))).dump();
}

// query: a fingerprint prefix (8+ hex digits), a model name, or "" (every record).
std::string db_find(const std::string& db_path, const std::string& query,
                    const std::string& kernels) {
  Result<std::vector<DbRecord>> r = Error{};
  {
    py::gil_scoped_release nogil;
    r = [&]() -> Result<std::vector<DbRecord>> {
      FC_ASSIGN(db, Database::open(db_path, DbMode::kReadOnly));
      return db.find(query, kernels);
    }();
  }
  return records_json(take(std::move(r)));
}

// Writes the records `query` selects (db_find) to `file` as JSON lines, atomically; returns the
// count.
size_t db_export(const std::string& db_path, const std::string& file, const std::string& query) {
  Result<size_t> r = Error{};
  {
    py::gil_scoped_release nogil;
    r = [&]() -> Result<size_t> {
      FC_ASSIGN(db, Database::open(db_path, DbMode::kReadOnly));
      FC_ASSIGN(rs, db.find(query, ""));
      FC_ASSIGN(plans, plans_for_export(db, rs, !query.empty(), ""));
      FC_TRY(write_file_atomic(file, export_jsonl(rs, plans)));
      return rs.size();
    }();
  }
  return take(std::move(r));
}

py::dict db_import(const std::string& db_path, const std::string& file, bool prefer_imported) {
  Result<ImportReport> r = Error{};
  {
    py::gil_scoped_release nogil;
    r = [&]() -> Result<ImportReport> {
      FC_ASSIGN(db, Database::open(db_path));
      return import_file(db, file, prefer_imported);
    }();
  }
  ImportReport rep = take(std::move(r));
  py::dict out;
  out["added"] = rep.stats.added;
  out["replaced"] = rep.stats.replaced;
  out["kept_local"] = rep.stats.kept_local;
  out["rejected"] = rep.rejected;
  return out;
}

// fusecheck._native.Error; one reference is kept for the life of the process on purpose (a
// py::object would be released after the interpreter is gone).
PyObject* g_error = nullptr;

[[noreturn]] void raise(const std::string& message) {
  PyErr_SetString(g_error, message.c_str());
  throw py::error_already_set();
}

}  // namespace

}  // namespace fusecheck::python

PYBIND11_MODULE(_native, m) {
  using namespace fusecheck::python;
  m.doc() = "fusecheck's C++ checker (use the fusecheck package, not this module)";
  g_error = PyErr_NewException("fusecheck._native.Error", PyExc_Exception, nullptr);
  m.add_object("Error", py::handle(g_error));
  m.attr("version") = fusecheck::kCheckerVersion;
  // Anything else C++ throws (std::bad_alloc, ...) is still an Error with its text, never a crash.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const py::error_already_set&) {
      throw;
    } catch (const py::builtin_exception&) {
      throw;  // pybind11's own argument errors (TypeError, ...) keep their type
    } catch (const std::exception& e) {
      PyErr_SetString(g_error, (std::string("internal error: ") + e.what()).c_str());
    }
  });
  py::class_<NativeCheck, std::shared_ptr<NativeCheck>>(m, "NativeCheck")
      .def_property_readonly("json", [](const NativeCheck& c) { return c.json; })
      .def("report", &report, py::arg("format"), py::arg("verbose") = false);
  m.def("check", &check, py::arg("path"), py::arg("kernels"), py::arg("thresholds"),
        py::arg("use_cache"), py::arg("cache_dir"), py::arg("force_status"));
  m.def("probe", &probe, py::arg("path"), py::arg("kernels"), py::arg("sequences"),
        py::arg("tokens"), py::arg("greedy_tokens"), py::arg("use_cache"), py::arg("cache_dir"),
        py::arg("db_path"));
  m.def("db_add", &db_add, py::arg("db_path"), py::arg("model_dir"), py::arg("kernels"),
        py::arg("probe"), py::arg("name"), py::arg("revision"));
  m.def("db_find", &db_find, py::arg("db_path"), py::arg("query"), py::arg("kernels"));
  m.def("db_export", &db_export, py::arg("db_path"), py::arg("file"), py::arg("query"));
  m.def("db_import", &db_import, py::arg("db_path"), py::arg("file"), py::arg("prefer_imported"));
  m.def("decide", &decide, py::arg("path"), py::arg("kernels"), py::arg("strict"), py::arg("force"),
        py::arg("use_cache"), py::arg("cache_dir"), py::arg("force_status"), py::arg("db_path"),
        py::arg("device"));
}
