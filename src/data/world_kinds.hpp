// The per-kind problem makers of the synthetic reasoning world (internal to data/): each turns a draw
// into one problem in one language at one difficulty level, with instance_key set and without an id.
// Level 1 takes exactly the draws the makers took before levels existed.
#pragma once
#include <string>
#include <vector>

#include "data/draw.hpp"
#include "data/reasoning_world.hpp"

namespace r1 {

Problem make_arithmetic(Draw& d, Language l, int level);    // world_math.cpp
Problem make_countdown(Draw& d, Language l, int level);     // world_math.cpp
Problem make_comparison(Draw& d, Language l, int level);    // world_words.cpp
Problem make_word_problem(Draw& d, Language l, int level);  // world_words.cpp

// "a, b and c" / "a, b y c".
std::string join_list(const std::vector<std::string>& items, Language l);
// The spoken operator: plus / más, times / por, ...
std::string op_word(char op, Language l);

}  // namespace r1
