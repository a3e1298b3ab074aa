// The deck schema: every section and key an input deck may hold, with type, default, range and doc, as
// the typed configuration binds them (config/run_config.hpp), and look-ups by name.
#pragma once
#include <string_view>

#include "config/run_config.hpp"

namespace r1 {

// nullptr when the section or key is not declared.
const SectionDecl* find_section(std::string_view section);
const KeyDecl* find_key(std::string_view section, std::string_view key);
const KeyDecl* find_key(std::string_view full_name);  // "section.key"

}  // namespace r1
