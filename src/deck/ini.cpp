#include "deck/ini.hpp"

#include <boost/program_options.hpp>

#include <cctype>
#include <sstream>

#include "core/error.hpp"
#include "deck/schema.hpp"

namespace r1 {

namespace po = boost::program_options;

namespace {

bool is_name(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  return true;
}

// Every schema key as a Boost option "section.key", so that Boost marks the others unregistered.
const po::options_description& schema_options() {
  static const po::options_description desc = [] {
    po::options_description d("deck");
    for (const KeyDecl& k : deck_keys()) d.add_options()(k.full_name().c_str(), po::value<std::string>());
    return d;
  }();
  return desc;
}

// Boost's config-file parser reports no line numbers, so the lines come from this scan, which also
// rejects (with a line) everything Boost would reject without one.
IniFile scan_lines(std::string_view text, const std::string& file) {
  IniFile out{file, {}, {}};
  std::string section;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    line = trim_blanks(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    if (line.front() == '[') {
      const std::string_view name = line.back() == ']' ? line.substr(1, line.size() - 2) : std::string_view{};
      R1_REQUIRE(is_name(name), file, ":", line_no, ": bad section header '", line,
                 "' (expected [name] with letters, digits and _)");
      section = name;
      out.sections.push_back({section, line_no});
      continue;
    }
    const auto eq = line.find('=');
    R1_REQUIRE(eq != std::string_view::npos, file, ":", line_no, ": '", line, "' is not a key line (expected key = value)");
    const std::string_view key = trim_blanks(line.substr(0, eq));
    R1_REQUIRE(is_name(key), file, ":", line_no, ": bad key name '", key, "' (expected letters, digits and _ before '=')");
    R1_REQUIRE(!section.empty(), file, ":", line_no, ": key '", key, "' is outside any [section] (expected a [section] line above it)");
    out.entries.push_back({section, std::string(key), std::string(trim_blanks(line.substr(eq + 1))), line_no, false});
  }
  return out;
}

}  // namespace

std::string_view trim_blanks(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

IniFile read_ini(std::string_view text, const std::string& file) {
  IniFile ini = scan_lines(text, file);
  std::istringstream in{std::string(text)};
  po::parsed_options parsed(nullptr);
  try {
    parsed = po::parse_config_file(in, schema_options(), /*allow_unregistered=*/true);
  } catch (const po::error& e) {
    R1_FAIL(user, file, ": ", e.what());
  }
  R1_CHECK(parsed.options.size() == ini.entries.size(), file, ": Boost read ", parsed.options.size(), " entries, the line scan ",
           ini.entries.size());
  for (std::size_t i = 0; i < ini.entries.size(); ++i) {
    IniEntry& e = ini.entries[i];
    const po::option& o = parsed.options[i];
    R1_CHECK(o.string_key == e.section + "." + e.key && o.value.size() == 1, file, ":", e.line, ": Boost read '",
             o.string_key, "'");
    e.value = o.value.front();
    e.declared = !o.unregistered;
  }
  return ini;
}

}  // namespace r1
