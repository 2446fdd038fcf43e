// CheckResult <-> JSON: the documented, stable report schema (docs/JSON_SCHEMA.md) and the cache's
// storage format. Non-finite numbers are written as the strings "inf", "-inf" and "nan".
#pragma once

#include <nlohmann/json.hpp>

#include "check/check.h"
#include "util/result.h"

namespace fusecheck {

nlohmann::json result_to_json(const CheckResult& r);
// The report as text: byte for byte result_to_json(r).dump(2), written without building the tree.
std::string result_to_json_text(const CheckResult& r);
// Fails (no exception) when the JSON does not have the schema.
Result<CheckResult> result_from_json(const nlohmann::json& j);

nlohmann::json thresholds_to_json(const Thresholds& t);
nlohmann::json numerics_to_json(const NumericsProfile& k);

}  // namespace fusecheck
