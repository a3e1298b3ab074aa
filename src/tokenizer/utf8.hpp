// UTF-8 helpers for the tokenizer: sequence lengths that tolerate invalid bytes, encoding, and the
// whitespace test Hugging Face tokenizers uses (Rust's char::is_whitespace).
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

}  // namespace r1::utf8
