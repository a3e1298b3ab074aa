// The INI layer of a deck: Boost.ProgramOptions config-file syntax, with the line of every entry.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace r1 {

struct IniSection {
  std::string name;
  int line;
};

struct IniEntry {
  std::string section;
  std::string key;
  std::string value;
  int line;
  bool declared;  // a key of the deck schema (a registered option to Boost.ProgramOptions)
};

struct IniFile {
  std::string file;  // as the user named it, for messages
  std::vector<IniSection> sections;
  std::vector<IniEntry> entries;  // in file order
};

// S without leading and trailing spaces, tabs and carriage returns.
std::string_view trim_blanks(std::string_view s);

// Reads deck text: `[section]` headers, `key = value` lines, '#' starts a comment, blank lines are
// skipped. A line that is neither header nor entry, an entry before the first header, or an empty
// section or key name is a user error "FILE:LINE: ...". Whether sections and keys exist is left to the
// caller, which knows what to suggest instead.
IniFile read_ini(std::string_view text, const std::string& file);

}  // namespace r1
