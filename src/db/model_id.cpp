#include "db/model_id.h"

#include <filesystem>
#include <vector>

namespace fusecheck {

ModelIdentity identity_from_path(const std::string& model_dir) {
  std::vector<std::string> parts;
  for (const auto& p : std::filesystem::path(model_dir).lexically_normal())
    if (!p.empty() && p != "/") parts.push_back(p.string());
  while (!parts.empty() && (parts.back().empty() || parts.back() == ".")) parts.pop_back();
  ModelIdentity id;
  const size_t n = parts.size();
  if (n < 3 || parts[n - 2] != "snapshots" || !parts[n - 3].starts_with("models--")) return id;
  // models--ORG--NAME (an org-less model is models--NAME); "--" never occurs inside a name.
  std::string rest = parts[n - 3].substr(8);
  const size_t sep = rest.find("--");
  id.name = sep == std::string::npos ? rest : rest.substr(0, sep) + "/" + rest.substr(sep + 2);
  id.revision = parts[n - 1];
  return id;
}

}  // namespace fusecheck
