// Typed reads from tokenizer.json / tokenizer_config.json with one-line errors naming the file and
// the JSON path, so a hostile or malformed file is an Error, never a nlohmann exception or a crash.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "util/result.h"

namespace fusecheck::tok_json {

using json = nlohmann::json;

inline const char* type_name(const json& j) {
  return j.type_name();
}

// obj[key] when obj is an object holding key and the value is not null; else nullptr.
inline const json* find(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

inline Result<std::string> get_string(const json& obj, const char* key, const std::string& file,
                                      const std::string& where) {
  const json* v = find(obj, key);
  if (!v || !v->is_string())
    return make_error("{}: expected a string at {}.{}, found {}", file, where, key,
                      v ? type_name(*v) : "nothing");
  return v->get<std::string>();
}

// Optional string: absent/null gives fallback; another type is an error.
inline Result<std::string> get_string_or(const json& obj, const char* key, std::string fallback,
                                         const std::string& file, const std::string& where) {
  const json* v = find(obj, key);
  if (!v) return fallback;
  if (!v->is_string())
    return make_error("{}: expected a string at {}.{}, found {}", file, where, key, type_name(*v));
  return v->get<std::string>();
}

inline Result<bool> get_bool_or(const json& obj, const char* key, bool fallback,
                                const std::string& file, const std::string& where) {
  const json* v = find(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean())
    return make_error("{}: expected true or false at {}.{}, found {}", file, where, key,
                      type_name(*v));
  return v->get<bool>();
}

// Parses a whole file's text; the error names the file and where parsing stopped.
inline Result<json> parse(const std::string& text, const std::string& file) {
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // e.what() starts "[json.exception.parse_error.101] parse error at line 1, column 3: ...";
    // the library's bracketed id means nothing to a user.
    std::string what = e.what();
    if (size_t b = what.find("] "); what.starts_with("[json.exception") && b != std::string::npos)
      what.erase(0, b + 2);
    return make_error("{}: not valid JSON ({}); hint: is the file truncated?", file,
                      printable(what));
  } catch (const json::exception&) {
    return make_error("{}: not valid JSON; hint: is the file truncated?", file);
  }
}

}  // namespace fusecheck::tok_json
