#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "deck/schema.hpp"
#include "deck/suggest.hpp"
#include "deck/value.hpp"

namespace r1 {
namespace {

TEST(DeckSchema, EveryDefaultParsesAsItsTypeAndLiesInItsRange) {
  for (const KeyDecl& k : deck_keys()) {
    std::string problem;
    EXPECT_TRUE(parse_deck_value(k, k.default_text, problem).has_value()) << k.full_name() << ": " << problem;
  }
}

// A member's default is written once, in its key's line: the struct's default and the deck's agree.
TEST(DeckSchema, EveryMembersDefaultIsItsKeysDefault) {
  for (const KeyDecl& k : deck_keys()) {
    std::string problem;
    RunConfig c;
    k.assign(c, *parse_deck_value(k, k.default_text, problem));
    EXPECT_TRUE(c == RunConfig{}) << k.full_name();
  }
}

// A value of the key's type other than its default (none for a choice of one word).
std::optional<KeyValue> other_value(const KeyDecl& k) {
  std::string problem;
  const KeyValue v = *parse_deck_value(k, k.default_text, problem);
  switch (k.type) {
    case KeyType::integer: {
      const std::int64_t i = std::get<std::int64_t>(v);
      return KeyValue{i == k.imax ? i - 1 : i + 1};
    }
    case KeyType::real: return KeyValue{std::get<double>(v) == k.fmax ? k.fmin : k.fmax};
    case KeyType::boolean: return KeyValue{!std::get<bool>(v)};
    case KeyType::choice:
      for (std::string_view c : k.choices)
        if (c != k.default_text) return KeyValue{std::string(c)};
      return std::nullopt;
    case KeyType::int_list: return KeyValue{std::vector<std::int64_t>{k.imin, k.imin}};
    default: return KeyValue{std::get<std::string>(v) + "x"};
  }
}

// Setting one key changes one member, and no two keys share a member.
TEST(DeckSchema, EveryKeyBindsAMemberOfItsOwn) {
  std::vector<std::pair<std::string, RunConfig>> changed;
  for (const KeyDecl& k : deck_keys()) {
    const auto v = other_value(k);
    if (!v) continue;
    RunConfig c;
    k.assign(c, *v);
    EXPECT_FALSE(c == RunConfig{}) << k.full_name() << " changes nothing";
    for (const auto& [name, other] : changed) EXPECT_FALSE(c == other) << k.full_name() << " and " << name << " bind one member";
    changed.emplace_back(k.full_name(), c);
  }
}

TEST(DeckSchema, SectionsAndKeysAreDeclaredOnceAndEveryKeyInADeclaredSection) {
  std::set<std::string_view> sections;
  for (const SectionDecl& s : deck_sections()) EXPECT_TRUE(sections.insert(s.name).second) << s.name;
  std::set<std::string> keys;
  for (const KeyDecl& k : deck_keys()) {
    EXPECT_TRUE(keys.insert(k.full_name()).second) << k.full_name();
    EXPECT_TRUE(sections.count(k.section)) << k.full_name();
  }
  for (const char* s : {"run", "model", "parallel", "data", "optim", "train", "sft", "grpo", "reward", "sampling",
                        "checkpoint", "log"})
    EXPECT_TRUE(sections.count(s)) << "the issue asks for [" << s << "]";
}

TEST(DeckSchema, EveryDocIsOneLineThatFitsATableCell) {
  for (const KeyDecl& k : deck_keys()) {
    EXPECT_FALSE(k.doc.empty()) << k.full_name();
    EXPECT_EQ(k.doc.find_first_of("\n|"), std::string_view::npos) << k.full_name();
  }
  for (const SectionDecl& s : deck_sections()) EXPECT_EQ(s.doc.find_first_of("\n|"), std::string_view::npos) << s.name;
}

TEST(DeckSchema, FindsKeysByFullName) {
  ASSERT_NE(find_key("model.dim"), nullptr);
  EXPECT_EQ(find_key("model.dim")->type, KeyType::integer);
  EXPECT_EQ(find_key("model.nope"), nullptr);
  EXPECT_EQ(find_key("dim"), nullptr);
}

TEST(DeckValue, IntegersAreWholeDecimalNumbersWithinInt64) {
  const KeyDecl& seed = *find_key("run.seed");
  std::string problem;
  EXPECT_EQ(std::get<std::int64_t>(*parse_deck_value(seed, "+42", problem)), 42);
  EXPECT_FALSE(parse_deck_value(seed, "1.5", problem));
  EXPECT_FALSE(parse_deck_value(seed, "99999999999999999999", problem));
  EXPECT_NE(problem.find("not an integer"), std::string::npos) << problem;
  EXPECT_FALSE(parse_deck_value(seed, "", problem));
}

TEST(DeckValue, FloatsAreFiniteAndRangeChecked) {
  const KeyDecl& lr = *find_key("optim.lr");
  std::string problem;
  EXPECT_DOUBLE_EQ(std::get<double>(*parse_deck_value(lr, "3e-4", problem)), 3e-4);
  EXPECT_FALSE(parse_deck_value(lr, "nan", problem));
  EXPECT_FALSE(parse_deck_value(lr, "inf", problem));
  EXPECT_FALSE(parse_deck_value(lr, "2", problem));
  EXPECT_EQ(problem, "out of range (expected float, 0 .. 1)");
}

TEST(DeckValue, FormattedValuesParseBackExactly) {
  for (const char* name : {"optim.lr", "model.norm_eps", "model.mscale", "run.seed", "evaluate.pass_k", "model.dense"}) {
    const KeyDecl& k = *find_key(name);
    for (const char* text : {"0.1", "3e-4", "1", "1, 4, 16", "true", "0.707"}) {
      std::string problem;
      const auto v = parse_deck_value(k, text, problem);
      if (!v) continue;
      const auto back = parse_deck_value(k, format_deck_value(*v), problem);
      ASSERT_TRUE(back) << name << " " << text;
      EXPECT_EQ(*back, *v) << name << " " << text;
    }
  }
}

TEST(DeckSuggest, CountsEditsAndAdjacentSwaps) {
  EXPECT_EQ(edit_distance("dimm", "dim"), 1u);
  EXPECT_EQ(edit_distance("modle", "model"), 1u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
}

TEST(DeckSuggest, SuggestsOnlyPlausibleTypos) {
  EXPECT_EQ(closest_match("cosin", {"cosine", "wsd", "constant"}), "cosine");
  EXPECT_EQ(closest_match("n_head", {"n_layers", "n_heads"}), "n_heads");
  EXPECT_EQ(closest_match("learning_rate", {"lr", "min_lr"}), "");
}

}  // namespace
}  // namespace r1
