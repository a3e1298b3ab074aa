// UTF-8 helpers for the tokenizer: sequence lengths that tolerate invalid bytes, encoding, the whitespace
// test Hugging Face tokenizers uses (Rust's char::is_whitespace), and literal replacement.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>

namespace r1::utf8 {

// Length of the valid UTF-8 sequence starting at s[i]; 0 when s[i] starts none (an invalid byte).
std::size_t sequence_length(std::string_view s, std::size_t i);
// The code point of the valid sequence of length len at s[i].
char32_t decode(std::string_view s, std::size_t i, std::size_t len);
void append(std::string& out, char32_t c);
// Unicode White_Space, as Rust's char::is_whitespace.
bool is_whitespace(char32_t c);
// The end of the whitespace run that starts at begin / the start of the one that ends at end (not before
// floor); an invalid byte ends a run.
std::size_t skip_whitespace(std::string_view s, std::size_t begin);
std::size_t skip_whitespace_back(std::string_view s, std::size_t end, std::size_t floor);
// s with every non-overlapping occurrence of pattern (non-empty), left to right, replaced by content.
std::string replace_all(std::string_view s, std::string_view pattern, std::string_view content);

}  // namespace r1::utf8
