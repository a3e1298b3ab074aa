// The input deck: every schema key resolved from defaults, a model preset, the deck file and --set
// overrides, each value typed, range-checked and remembering where it came from.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "deck/schema.hpp"
#include "deck/value.hpp"

namespace r1 {

struct IniFile;

// Name of the resolved deck a run keeps in its output directory; it tells a restart of the same run
// from a new run pointed at the same directory.
inline constexpr std::string_view kResolvedDeckName = "deck.resolved.ini";

// Where a value came from; errors and the resolved deck name it.
struct DeckOrigin {
  enum class Kind { default_value, preset, deck, override_arg };
  Kind kind = Kind::default_value;
  std::string file;  // preset or deck file
  int line = 0;
  std::string arg;   // the --set argument, as given

  // Prefix of an error about this value: "FILE:LINE" or "--set section.key=value" ("" for a default).
  std::string where() const;
  // For mentions and the resolved deck: "FILE:LINE", "preset FILE:LINE", "--set ..." or "default".
  std::string describe() const;
};

class Deck {
 public:
  // Reads FILE, the preset its [model] section names, then applies OVERRIDES ("section.key=value",
  // later ones win). Every value is checked for type and range; each error is an r1::Error of kind
  // user naming the file and line (or the --set argument). Cross-key checks are validate_deck's job.
  static Deck load(const std::filesystem::path& file, const std::vector<std::string>& overrides = {});
  // Same, from TEXT that reads as if it came from FILE (whose directory is searched for presets).
  static Deck parse(std::string_view text, const std::string& file, const std::vector<std::string>& overrides = {});
  // The [model] section alone of a checkpoint's resolved deck (its meta/deck), the other keys at their
  // defaults: a checkpoint written while the deck had keys since retired still names its model.
  static Deck model_of(std::string_view resolved, const std::string& file);

  // Every key's value in its member of the typed configuration (before validate_deck: unchecked rules).
  RunConfig config() const;

  // Typed access by "section.key". Asking for an undeclared key or with the wrong type is a bug in
  // r1hpc (internal error), not a deck error. get_string serves string, path and enum keys.
  std::int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  const std::string& get_string(std::string_view key) const;
  const std::vector<std::int64_t>& get_ints(std::string_view key) const;

  // The value as canonical deck text (what resolved_text writes).
  std::string value_text(std::string_view key) const;
  const DeckOrigin& origin(std::string_view key) const;
  bool is_default(std::string_view key) const { return origin(key).kind == DeckOrigin::Kind::default_value; }
  // "[section] key = value", the way a user would find it in the deck.
  std::string describe(std::string_view key) const;
  // describe() plus where the value came from: "[model] n_heads = 16 (preset FILE:LINE)".
  std::string mention(std::string_view key) const;
  // Throws the user error "WHERE: [section] key = value: PROBLEM" for KEY's value.
  [[noreturn]] void fail(std::string_view key, const std::string& problem) const;

  const std::string& file() const { return file_; }
  // The preset file actually read ("" when the deck names none).
  const std::string& preset_file() const { return preset_file_; }

  // Every key with its value and origin as deck text; reading it back gives the same values. The
  // preset is resolved into the [model] keys, so the text stands on its own.
  std::string resolved_text() const;

 private:
  struct Slot {
    const KeyDecl* decl;
    KeyValue value;
    DeckOrigin origin;
  };
  Deck() = default;
  const Slot& slot(std::string_view key) const;
  template <class T> const T& typed(std::string_view key, const char* type) const;
  void set(const KeyDecl& decl, std::string_view text, DeckOrigin origin);
  void apply_file(const IniFile& ini, DeckOrigin::Kind kind);
  void apply_override(const std::string& arg);
  void load_preset(const std::string& value, const DeckOrigin& where);

  std::map<std::string, Slot, std::less<>> slots_;
  std::string file_;
  std::string preset_file_;
};

}  // namespace r1
