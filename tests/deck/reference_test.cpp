#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "deck/reference.hpp"
#include "deck/schema.hpp"
#include "deck_test_util.hpp"

namespace r1 {
namespace {

TEST(DeckReference, DocsDeckMdIsExactlyTheGeneratedReference) {
  std::ifstream in(test::source_dir() / "docs" / "deck.md");
  ASSERT_TRUE(in) << "docs/deck.md is missing";
  std::ostringstream text;
  text << in.rdbuf();
  EXPECT_TRUE(text.str() == deck_reference_markdown())
      << "docs/deck.md differs from the deck schema; regenerate it: build/bin/r1hpc --help-deck=markdown > docs/deck.md";
}

TEST(DeckReference, HelpTextListsEveryKeyUnderItsSectionWithDefaultTypeAndDoc) {
  const std::string text = deck_reference_text();
  for (const SectionDecl& s : deck_sections()) {
    const auto section_at = text.find("\n[" + std::string(s.name) + "]  " + std::string(s.doc) + "\n");
    ASSERT_NE(section_at, std::string::npos) << s.name;
    const auto next_section = text.find("\n[", section_at + 1);
    for (const KeyDecl& k : deck_keys()) {
      if (k.section != s.name) continue;
      const auto at = text.find("\n  " + std::string(k.key) + " = " + std::string(k.default_text) + " ", section_at);
      ASSERT_NE(at, std::string::npos) << k.full_name();
      EXPECT_LT(at, next_section) << k.full_name() << " is listed outside [" << s.name << "]";
      const auto doc_line = text.find('\n', at + 1);  // each key takes two lines: head, then doc
      const std::string entry = text.substr(at, text.find('\n', doc_line + 1) - at);
      EXPECT_NE(entry.find(key_type_name(k.type)), std::string::npos) << entry;
      EXPECT_NE(entry.find(k.range_text()), std::string::npos) << entry;
      EXPECT_NE(entry.find(k.doc), std::string::npos) << entry;
    }
  }
}

TEST(DeckReference, MarkdownHasOneTableRowPerKey) {
  const std::string md = deck_reference_markdown();
  for (const KeyDecl& k : deck_keys()) {
    const std::string row = "| `" + std::string(k.key) + "` | " + std::string(key_type_name(k.type)) + " | ";
    EXPECT_NE(md.find(row), std::string::npos) << k.full_name();
  }
}

}  // namespace
}  // namespace r1
