#include "deck/deck.hpp"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.hpp"
#include "deck/ini.hpp"
#include "deck/suggest.hpp"

namespace r1 {

namespace fs = std::filesystem;

namespace {

std::vector<std::string_view> section_names() {
  std::vector<std::string_view> names;
  for (const SectionDecl& s : deck_sections()) names.push_back(s.name);
  return names;
}

std::string unknown_section(std::string_view name) {
  std::string msg = "unknown section [" + std::string(name) + "]";
  const std::string near = closest_match(name, section_names());
  return msg + (near.empty() ? " (r1hpc --help-deck lists the sections)" : "; did you mean [" + near + "]?");
}

// Suggests a key of the same section first, then the same key in another section ("lr" in [train]).
std::string unknown_key(std::string_view section, std::string_view key) {
  std::vector<std::string_view> same_section;
  for (const KeyDecl& d : deck_keys())
    if (d.section == section) same_section.push_back(d.key);
  std::string msg = "unknown key '" + std::string(key) + "' in [" + std::string(section) + "]";
  // The stages' own prompt templates became one key for every stage.
  if (key == "template" && (section == "sft" || section == "grpo" || section == "sampling"))
    return msg + "; the prompt template of every stage is [data] chat_template (chat is now r1hpc-chat)";
  const std::string near = closest_match(key, same_section);
  if (!near.empty()) return msg + "; did you mean '" + near + "'?";
  for (const KeyDecl& d : deck_keys())
    if (d.key == key) return msg + "; did you mean [" + std::string(d.section) + "] " + std::string(key) + "?";
  return msg + " (r1hpc --help-deck lists the keys)";
}

KeyValue checked_value(const KeyDecl& decl, std::string_view text, const DeckOrigin& origin) {
  std::string problem;
  auto v = parse_deck_value(decl, text, problem);
  R1_REQUIRE(v.has_value(), origin.where(), ": [", decl.section, "] ", decl.key, " = ", text, ": ", problem);
  return std::move(*v);
}

std::string read_text(const fs::path& file, const std::string& what) {
  std::ifstream in(file, std::ios::binary);
  R1_REQUIRE(in && !fs::is_directory(file), "cannot read ", what, " '", file.string(), "'");
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Where `preset = NAME` looks: the naming deck's directory, then $R1HPC_INPUTS/models (an installed
// copy, chosen at run time), then this source tree's inputs/models (chosen at build time).
std::vector<fs::path> preset_dirs(const fs::path& deck_dir) {
  std::vector<fs::path> dirs{deck_dir};
  if (const char* inputs = std::getenv("R1HPC_INPUTS"); inputs && *inputs) dirs.push_back(fs::path(inputs) / "models");
  dirs.push_back(fs::path(R1HPC_SOURCE_DIR) / "inputs" / "models");
  return dirs;
}

}  // namespace

std::string DeckOrigin::where() const {
  switch (kind) {
    case Kind::default_value: return {};
    case Kind::override_arg: return "--set " + arg;
    default: return file + ":" + std::to_string(line);
  }
}

std::string DeckOrigin::describe() const {
  switch (kind) {
    case Kind::default_value: return "default";
    case Kind::preset: return "preset " + where();
    default: return where();
  }
}

Deck Deck::load(const fs::path& file, const std::vector<std::string>& overrides) {
  return parse(read_text(file, "deck"), file.string(), overrides);
}

Deck Deck::model_of(std::string_view resolved, const std::string& file) {
  std::string text = "[model]\n";
  for (const IniEntry& e : read_ini(resolved, file).entries)
    if (e.section == "model") text += e.key + " = " + e.value + "\n";
  return parse(text, file);
}

Deck Deck::parse(std::string_view text, const std::string& file, const std::vector<std::string>& overrides) {
  Deck d;
  d.file_ = file;
  for (const KeyDecl& k : deck_keys()) {
    std::string problem;
    auto v = parse_deck_value(k, k.default_text, problem);
    R1_CHECK(v.has_value(), "default of ", k.full_name(), ": ", problem);
    d.slots_.emplace(k.full_name(), Slot{&k, std::move(*v), {}});
  }
  d.apply_file(read_ini(text, file), DeckOrigin::Kind::deck);
  for (const std::string& arg : overrides) d.apply_override(arg);
  // The preset goes in last and fills only the [model] keys that the deck and --set left alone.
  const std::string& preset = d.get_string("model.preset");
  if (!preset.empty()) d.load_preset(preset, d.origin("model.preset"));
  return d;
}

void Deck::apply_file(const IniFile& ini, DeckOrigin::Kind kind) {
  const bool preset = kind == DeckOrigin::Kind::preset;
  std::map<std::string, int> first_line;
  auto header = ini.sections.begin();
  // Headers and entries are checked in line order, so the first error reported is the first in the file.
  auto check_headers_before = [&](int line) {
    for (; header != ini.sections.end() && header->line < line; ++header) {
      R1_REQUIRE(find_section(header->name), ini.file, ":", header->line, ": ", unknown_section(header->name));
      R1_REQUIRE(!preset || header->name == "model", ini.file, ":", header->line, ": a preset holds only [model] keys, not [",
                 header->name, "]");
    }
  };
  for (const IniEntry& e : ini.entries) {
    check_headers_before(e.line);
    const KeyDecl* decl = find_key(e.section, e.key);
    R1_CHECK((decl != nullptr) == e.declared, "schema and Boost options disagree on ", e.section, ".", e.key);
    R1_REQUIRE(decl, ini.file, ":", e.line, ": ", unknown_key(e.section, e.key));
    const std::string name = decl->full_name();
    const auto [first, inserted] = first_line.emplace(name, e.line);
    R1_REQUIRE(inserted, ini.file, ":", e.line, ": duplicate key ", e.key, " in [", e.section, "] (first set at line ",
               first->second, ")");
    R1_REQUIRE(!preset || e.key != "preset", ini.file, ":", e.line, ": a preset cannot name another preset");
    DeckOrigin origin{kind, ini.file, e.line, {}};
    // A preset value the deck overrides is still checked: the preset may be used elsewhere without it.
    if (preset && !is_default(name))
      checked_value(*decl, e.value, origin);
    else
      set(*decl, e.value, std::move(origin));
  }
  check_headers_before(std::numeric_limits<int>::max());
}

void Deck::apply_override(const std::string& arg) {
  const auto eq = arg.find('=');
  const auto dot = arg.find('.');
  R1_REQUIRE(eq != std::string::npos && dot < eq, "--set ", arg, ": expected section.key=value");
  const std::string section = arg.substr(0, dot), key = arg.substr(dot + 1, eq - dot - 1);
  R1_REQUIRE(find_section(section), "--set ", arg, ": ", unknown_section(section));
  const KeyDecl* decl = find_key(section, key);
  R1_REQUIRE(decl, "--set ", arg, ": ", unknown_key(section, key));
  // In a deck '#' starts a comment, so such a value could not be written into the resolved deck.
  R1_REQUIRE(arg.find('#', eq) == std::string::npos, "--set ", arg, ": values cannot hold '#'");
  set(*decl, arg.substr(eq + 1), DeckOrigin{DeckOrigin::Kind::override_arg, {}, 0, arg});
}

void Deck::set(const KeyDecl& decl, std::string_view text, DeckOrigin origin) {
  Slot& s = slots_.at(decl.full_name());
  s.value = checked_value(decl, text, origin);
  s.origin = std::move(origin);
}

void Deck::load_preset(const std::string& value, const DeckOrigin& named_at) {
  // A path is relative to the file naming it; from --set, to the working directory.
  const fs::path base = named_at.kind == DeckOrigin::Kind::override_arg ? fs::path(".") : fs::path(named_at.file).parent_path();
  const fs::path deck_dir = base.empty() ? fs::path(".") : base;
  fs::path found;
  if (value.find('/') != std::string::npos || value.ends_with(".deck")) {
    const fs::path p = fs::path(value).is_absolute() ? fs::path(value) : deck_dir / value;
    if (!fs::is_regular_file(p)) fail("model.preset", "no such file " + p.lexically_normal().string());
    found = p;
  } else {
    std::vector<std::string> names;
    std::string searched;
    for (const fs::path& dir : preset_dirs(deck_dir)) {
      searched += (searched.empty() ? "" : ", ") + dir.lexically_normal().string();
      if (fs::is_regular_file(dir / (value + ".deck"))) {
        found = dir / (value + ".deck");
        break;
      }
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(dir, ec))
        if (entry.path().extension() == ".deck") names.push_back(entry.path().stem().string());
    }
    if (found.empty()) {
      const std::string near = closest_match(value, std::vector<std::string_view>(names.begin(), names.end()));
      fail("model.preset", "no preset of that name in " + searched + (near.empty() ? "" : "; did you mean '" + near + "'?"));
    }
  }
  // Shown as the user would type it: relative to the working directory when the file lies below it.
  fs::path shown = found.lexically_normal();
  if (shown.is_absolute()) {
    const fs::path below = shown.lexically_proximate(fs::current_path());
    if (!below.empty() && *below.begin() != "..") shown = below;
  }
  preset_file_ = shown.string();
  apply_file(read_ini(read_text(found, "preset"), preset_file_), DeckOrigin::Kind::preset);
}

RunConfig Deck::config() const {
  RunConfig config;
  for (const auto& [name, s] : slots_) s.decl->assign(config, s.value);
  derive_fields(config);
  return config;
}

const Deck::Slot& Deck::slot(std::string_view key) const {
  const auto it = slots_.find(key);
  R1_CHECK(it != slots_.end(), "deck key '", key, "' is not declared in the schema");
  return it->second;
}

template <class T> const T& Deck::typed(std::string_view key, const char* type) const {
  const Slot& s = slot(key);
  R1_CHECK(std::holds_alternative<T>(s.value), "deck key '", key, "' has type ", key_type_name(s.decl->type), ", not ", type);
  return std::get<T>(s.value);
}

std::int64_t Deck::get_int(std::string_view key) const { return typed<std::int64_t>(key, "int"); }
double Deck::get_float(std::string_view key) const { return typed<double>(key, "float"); }
bool Deck::get_bool(std::string_view key) const { return typed<bool>(key, "bool"); }
const std::string& Deck::get_string(std::string_view key) const { return typed<std::string>(key, "string"); }
const std::vector<std::int64_t>& Deck::get_ints(std::string_view key) const {
  return typed<std::vector<std::int64_t>>(key, "int list");
}

const DeckOrigin& Deck::origin(std::string_view key) const { return slot(key).origin; }

std::string Deck::value_text(std::string_view key) const { return format_deck_value(slot(key).value); }

std::string Deck::describe(std::string_view key) const {
  const Slot& s = slot(key);
  return detail::concat("[", s.decl->section, "] ", s.decl->key, " = ", value_text(key));
}

std::string Deck::mention(std::string_view key) const { return describe(key) + " (" + origin(key).describe() + ")"; }

void Deck::fail(std::string_view key, const std::string& problem) const {
  const DeckOrigin& o = origin(key);
  if (o.kind == DeckOrigin::Kind::default_value) R1_FAIL(user, file_, ": ", describe(key), " (default): ", problem);
  R1_FAIL(user, o.where(), ": ", describe(key), ": ", problem);
}

std::string Deck::resolved_text() const {
  std::ostringstream out;
  out << "# Deck " << file_ << " as r1hpc resolved it: every key, and where its value came from.\n";
  for (const SectionDecl& section : deck_sections()) {
    out << "\n[" << section.name << "]\n";
    for (const KeyDecl& k : deck_keys()) {
      if (k.section != section.name) continue;
      const Slot& s = slot(k.full_name());
      std::string line = std::string(k.key) + " =";
      const std::string value = format_deck_value(s.value);
      if (!value.empty()) line += " " + value;
      // The preset's keys are all written out below it, so the resolved deck needs no preset file.
      if (k.full_name() == "model.preset" && !value.empty())
        line = "# " + line + "  (" + preset_file_ + ", resolved into the keys below)";
      line.resize(std::max<std::size_t>(line.size(), 40), ' ');
      out << line << "  # " << s.origin.describe() << "\n";
    }
  }
  return out.str();
}

}  // namespace r1
