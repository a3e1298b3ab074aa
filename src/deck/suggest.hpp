// "Did you mean" suggestions for misspelt deck sections, keys, choices and preset names.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace r1 {

// Optimal-string-alignment distance: insertions, deletions, substitutions and adjacent swaps cost 1.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to WORD, or "" when none is close enough to be a plausible typo
// (distance at most max(1, |WORD| / 3)). Ties go to the earliest candidate.
std::string closest_match(std::string_view word, const std::vector<std::string_view>& candidates);

}  // namespace r1
