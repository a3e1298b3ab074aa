// The deck schema: every section and key an input deck may hold, with type, default, range and doc.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace r1 {

enum class KeyType {
  integer,     // 64-bit signed
  real,        // double
  boolean,     // true|false (also yes|no, on|off, 1|0)
  string,      // free text, checked (if at all) by the deck validator
  path,        // a file or directory; ${VAR} is expanded from the environment
  input_path,  // a path that must exist when it is not empty
  choice,      // one of a fixed set of words
  int_list,    // comma-separated integers, possibly empty
};

// The spelling used in help text and error messages ("int", "float", "path", ...).
std::string_view key_type_name(KeyType t);

struct SectionDecl {
  std::string_view name;
  std::string_view doc;
};

// One deck key. Defaults are written as deck text so that they go through the same parser as user
// values (a test holds every default valid). Ranges are inclusive; integers use imin/imax, reals
// fmin/fmax, int lists check every element against imin/imax.
struct KeyDecl {
  std::string_view section;
  std::string_view key;
  KeyType type = KeyType::string;
  std::string_view default_text;
  std::string_view doc;
  std::int64_t imin = std::numeric_limits<std::int64_t>::min();
  std::int64_t imax = std::numeric_limits<std::int64_t>::max();
  double fmin = -std::numeric_limits<double>::infinity();
  double fmax = std::numeric_limits<double>::infinity();
  std::vector<std::string_view> choices;

  std::string full_name() const;  // "section.key"
  std::string range_text() const;  // "1 .. 65536", ">= 0", "0 .. 1", or "" when unbounded
};

// All sections and keys, in the order they are documented and printed.
const std::vector<SectionDecl>& deck_sections();
const std::vector<KeyDecl>& deck_keys();

// nullptr when the section or key is not declared.
const SectionDecl* find_section(std::string_view section);
const KeyDecl* find_key(std::string_view section, std::string_view key);
const KeyDecl* find_key(std::string_view full_name);  // "section.key"

}  // namespace r1
