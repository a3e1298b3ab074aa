#include "deck/schema.hpp"

namespace r1 {

const SectionDecl* find_section(std::string_view section) {
  for (const auto& s : deck_sections())
    if (s.name == section) return &s;
  return nullptr;
}

const KeyDecl* find_key(std::string_view section, std::string_view key) {
  for (const auto& d : deck_keys())
    if (d.section == section && d.key == key) return &d;
  return nullptr;
}

const KeyDecl* find_key(std::string_view full_name) {
  const auto dot = full_name.find('.');
  if (dot == std::string_view::npos) return nullptr;
  return find_key(full_name.substr(0, dot), full_name.substr(dot + 1));
}

}  // namespace r1
