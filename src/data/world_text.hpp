// Non-reasoning data of the synthetic world (facts, translations, greetings) and preference pairs for the
// reward-model phase, in English and Spanish, seeded like the problems.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
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
  std::string prompt, chosen, rejected;  // chosen: the response labelled better (helpful / safe)
  bool swapped = false;                  // label noise put the worse response first
};
// Which preference pairs ([data] preference_pairs, preference_label_noise): surface pairs (the default;
// chosen and rejected differ in politeness, hedging or refusal, so the surface separates them), or content
// pairs (the same template with other content: a wrong fact or translation, the other language, an unsafe
// ending after a safe opening); and the share of pairs whose labels are swapped.
struct PreferenceWorld {
  bool content = false;
  double label_noise = 0;
};
// From the deck's words: pairs "surface" or "content", and the label noise.
PreferenceWorld preference_world(std::string_view pairs, double label_noise);
std::vector<PreferencePair> generate_preference_pairs(std::int64_t n, std::uint64_t seed, const PreferenceWorld& world = {});

}  // namespace r1
