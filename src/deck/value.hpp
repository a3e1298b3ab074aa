// Typed deck values: parsing deck text into a value of a key's declared type, and writing it back.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "deck/schema.hpp"

namespace r1 {

// Parses TEXT as DECL's type and checks its range or choices. On failure returns nothing and sets
// PROBLEM to what is wrong and what was expected, e.g. "out of range (expected 1 .. 4096)".
// Paths have ${NAME} replaced by the environment variable NAME (unset: a problem).
std::optional<KeyValue> parse_deck_value(const KeyDecl& decl, std::string_view text, std::string& problem);

// The canonical deck text of a value: parse_deck_value(format_deck_value(v)) gives v back exactly.
std::string format_deck_value(const KeyValue& v);

}  // namespace r1
