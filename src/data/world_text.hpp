// Non-reasoning data of the synthetic world (facts, translations, greetings) and preference pairs for the
// reward-model phase, in English and Spanish, seeded like the problems.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/reasoning_world.hpp"

namespace r1 {

struct TextExample {
  std::string kind;  // fact | translation | greeting
  Language language = Language::en;  // the response's language
  std::string prompt, response;
};
std::vector<TextExample> generate_text_examples(std::int64_t n, std::uint64_t seed);

enum class PreferenceKind { helpfulness, harmlessness };
struct PreferencePair {
  PreferenceKind kind = PreferenceKind::helpfulness;
  Language language = Language::en;
  std::string prompt, chosen, rejected;  // chosen: the better (helpful / safe) response
};
std::vector<PreferencePair> generate_preference_pairs(std::int64_t n, std::uint64_t seed);

}  // namespace r1
