// GPT-2's byte-to-unicode alphabet: every byte is one printable code point, so byte-level tokens can be
// stored as JSON strings in tokenizer.json.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace r1 {

// Raw bytes -> UTF-8 text in the byte-level alphabet (one code point per byte).
std::string to_byte_level(std::string_view bytes);
// The inverse; nullopt when the text holds a code point outside the alphabet (not a byte-level token).
std::optional<std::string> from_byte_level(std::string_view text);

}  // namespace r1
