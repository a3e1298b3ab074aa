// Deck keys bound to the members of typed configuration structs: the key kinds, the one-line key
// declarations that declare, document and bind a member, and the deck words of the enums choices bind to.
#pragma once
#include <array>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "core/error.hpp"

namespace r1 {

struct RunConfig;

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

// A key's value as a deck holds it: int, float, bool, string (also paths and choice words), int list.
using KeyValue = std::variant<std::int64_t, double, bool, std::string, std::vector<std::int64_t>>;

inline constexpr std::int64_t kNoMax = std::numeric_limits<std::int64_t>::max();

struct SectionDecl {
  std::string_view name;
  std::string_view doc;
};

// One deck key, bound to a member of its section's struct in RunConfig. Defaults are deck text, so that
// they go through the same parser as user values (a test holds them equal to the members' defaults).
// Ranges are inclusive; integers use imin/imax, reals fmin/fmax, int lists check every element.
struct KeyDecl {
  std::string_view section;
  std::string_view key;
  KeyType type = KeyType::string;
  std::string default_text;
  std::string_view doc;
  std::int64_t imin = std::numeric_limits<std::int64_t>::min();
  std::int64_t imax = kNoMax;
  double fmin = -std::numeric_limits<double>::infinity();
  double fmax = std::numeric_limits<double>::infinity();
  std::vector<std::string_view> choices;
  // Stores a value of this key (parsed and checked as declared) into the bound member.
  void (*assign)(RunConfig& config, const KeyValue& value) = nullptr;

  std::string full_name() const;   // "section.key"
  std::string range_text() const;  // "1 .. 65536", ">= 0", "0 .. 1", or "" when unbounded
};

// The deck word of each value of an enum that a choice key binds to. Each such enum E declares, beside
// itself, `constexpr auto choice_words(E) { return std::to_array<ChoiceWord<E>>({{"word", E::value}, ...}); }`.
template <class E> struct ChoiceWord {
  std::string_view word;
  E value;
};

template <class E> std::string_view choice_word(E value) {
  for (const ChoiceWord<E>& c : choice_words(E{}))
    if (c.value == value) return c.word;
  R1_FAIL(internal, "an enum value without a deck word");
}

// The words of an enum's values, in its table's order.
template <class E> std::vector<std::string_view> choice_word_list() {
  std::vector<std::string_view> words;
  for (const ChoiceWord<E>& c : choice_words(E{})) words.push_back(c.word);
  return words;
}

namespace detail {
// The member type of a choice key: its enum, or std::string for words no code branches on.
std::string choice_member(const char* word);
template <class E> requires std::is_enum_v<E> E choice_member(E value);
}  // namespace detail

}  // namespace r1

// A section's keys are one list macro, one line per key:
//   KEY(kind, member, default, range, doc)
// kind     member type                  range
// integer  std::int64_t                 (lo, hi)
// real     double                       (lo, hi)
// flag     bool                         ()
// text     std::string                  ()
// path     std::string, ${VAR} expanded ()
// input    std::string, an existing path when not empty; default ""
// choice   the default's enum, or std::string for a word default; range: the words offered, in order, or
//          () for every word of the enum's choice_words
// ints     std::vector<std::int64_t>    (lo, hi) for each element
// The key is the member's name; a member named like a C++ keyword ends in _, which the key drops
// (template_ is the key `template`). R1_CONFIG_MEMBERS(LIST) declares a section struct's members with
// their defaults; config/run_config.cpp binds them to the schema.
#define R1_CONFIG_MEMBERS(LIST) LIST(R1_CONFIG_MEMBER)
#define R1_CONFIG_MEMBER(kind, member, def, range, doc) R1_CONFIG_TYPE_##kind(def) member = def;
#define R1_CONFIG_TYPE_integer(def) std::int64_t
#define R1_CONFIG_TYPE_real(def) double
#define R1_CONFIG_TYPE_flag(def) bool
#define R1_CONFIG_TYPE_text(def) std::string
#define R1_CONFIG_TYPE_path(def) std::string
#define R1_CONFIG_TYPE_input(def) std::string
#define R1_CONFIG_TYPE_choice(def) decltype(::r1::detail::choice_member(def))
#define R1_CONFIG_TYPE_ints(def) std::vector<std::int64_t>
