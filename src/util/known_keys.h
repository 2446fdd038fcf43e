// Data files (thresholds, architecture and kernel profiles) are read key by key over defaults: a
// key nothing reads (a typo, a field of another version) would leave its default in force while the
// file seems to load, e.g. a misspelt "q_norm" tensor name the engine would then never apply. So a
// key outside the object's known set is an error; "comment" may document any object.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <string>
#include <string_view>

#include "util/result.h"

namespace fusecheck {

// The error for a key that is not "comment" and not one the object's reader takes.
inline Error unknown_key(std::string_view key, const std::string& where) {
  return make_error("{}: unknown key \"{}\"", where, printable(key));
}

inline Status known_key(std::string_view key, std::initializer_list<std::string_view> known,
                        const std::string& where) {
  if (key == "comment" || std::find(known.begin(), known.end(), key) != known.end())
    return ok_status();
  return unknown_key(key, where);
}

// Every key of an nlohmann::json object (a template, so this header needs no JSON library).
template <class Json>
Status json_known_keys(const Json& obj, std::initializer_list<std::string_view> known,
                       const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) FC_TRY(known_key(it.key(), known, where));
  return ok_status();
}

}  // namespace fusecheck
