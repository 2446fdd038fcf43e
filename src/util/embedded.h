// Data files compiled into the library (data/*.json), by file name; empty if unknown.
#pragma once

#include <string_view>

namespace fusecheck {
std::string_view embedded_data(std::string_view name);
}
