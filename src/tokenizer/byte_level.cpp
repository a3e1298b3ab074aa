#include "tokenizer/byte_level.hpp"

#include <array>
#include <cstdint>
#include <unordered_map>

namespace r1 {
namespace {

// GPT-2's table: printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100 onwards.
const std::array<char32_t, 256>& byte_to_code_point() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      t[static_cast<std::size_t>(b)] = printable ? static_cast<char32_t>(b) : next++;
    }
    return t;
  }();
  return table;
}

const std::unordered_map<char32_t, unsigned char>& code_point_to_byte() {
  static const auto table = [] {
    std::unordered_map<char32_t, unsigned char> t;
    for (int b = 0; b < 256; ++b) t[byte_to_code_point()[static_cast<std::size_t>(b)]] = static_cast<unsigned char>(b);
    return t;
  }();
  return table;
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else {  // the alphabet stays below U+0800: two bytes suffice
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

}  // namespace

std::string to_byte_level(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(out, byte_to_code_point()[b]);
  return out;
}

std::optional<std::string> from_byte_level(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size();) {
    const auto c0 = static_cast<unsigned char>(text[i]);
    char32_t cp;
    if (c0 < 0x80) {
      cp = c0;
      i += 1;
    } else if ((c0 & 0xE0) == 0xC0 && i + 1 < text.size()) {
      cp = (static_cast<char32_t>(c0 & 0x1F) << 6) | (static_cast<unsigned char>(text[i + 1]) & 0x3F);
      i += 2;
    } else {
      return std::nullopt;
    }
    const auto it = code_point_to_byte().find(cp);
    if (it == code_point_to_byte().end()) return std::nullopt;
    out += static_cast<char>(it->second);
  }
  return out;
}

}  // namespace r1
