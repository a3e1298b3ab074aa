#include "tokenizer/hf_decoder.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "tokenizer/utf8.hpp"

namespace r1 {
namespace {

using nlohmann::json;

// The byte of a byte-fallback token "<0xAB>" (upper-case hex, as SentencePiece writes it), -1 otherwise.
int fallback_byte(const std::string& t) {
  if (t.size() != 6 || !t.starts_with("<0x") || t[5] != '>') return -1;
  int v = 0;
  for (int k = 3; k < 5; ++k) {
    const char c = t[static_cast<std::size_t>(k)];
    if (c >= '0' && c <= '9') v = v * 16 + (c - '0');
    else if (c >= 'A' && c <= 'F') v = v * 16 + (c - 'A' + 10);
    else return -1;
  }
  return v;
}

// Drops up to n leading (or trailing) copies of the one-character string c.
std::string strip_char(std::string s, const std::string& c, std::size_t start, std::size_t stop) {
  for (std::size_t k = 0; k < start && s.starts_with(c); ++k) s.erase(0, c.size());
  for (std::size_t k = 0; k < stop && s.ends_with(c); ++k) s.erase(s.size() - c.size());
  return s;
}

}  // namespace

HfDecoder HfDecoder::from_json(const json& j, const std::string& where) {
  HfDecoder d;
  if (j.is_object() && j.value("type", "") == "ByteLevel") {
    d.byte_level_ = true;
    return d;
  }
  if (j.is_null()) R1_FAIL(user, where, ": missing (r1hpc needs the decoder to turn tokens into text)");
  d.parse(j, where);
  return d;
}

void HfDecoder::parse(const json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) R1_FAIL(user, where, ": expected an object with a string \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    const json& list = j.value("decoders", json::array());
    for (std::size_t k = 0; k < list.size(); ++k) parse(list[k], detail::concat(where, ".decoders[", k, "]"));
  } else if (type == "Replace") {
    if (!j.at("pattern").contains("String")) R1_FAIL(user, where, ".pattern: only a String pattern is supported in a Replace decoder");
    steps_.push_back({Kind::replace, j["pattern"]["String"].get<std::string>(), j.at("content").get<std::string>()});
  } else if (type == "ByteFallback") {
    steps_.push_back({Kind::byte_fallback, {}, {}});
  } else if (type == "Fuse") {
    steps_.push_back({Kind::fuse, {}, {}});
  } else if (type == "Strip") {
    steps_.push_back({Kind::strip, {}, j.at("content").get<std::string>(), j.value("start", std::size_t{0}), j.value("stop", std::size_t{0})});
  } else if (type == "Metaspace") {
    Step s{Kind::metaspace, j.value("replacement", "\xE2\x96\x81"), {}};
    s.prepend = j.contains("prepend_scheme") ? j["prepend_scheme"].get<std::string>() != "never" : j.value("add_prefix_space", true);
    steps_.push_back(std::move(s));
  } else {
    R1_FAIL(user, where, ": decoder type ", type,
            " is not supported (r1hpc reads ByteLevel, Metaspace, and Sequences of Replace, ByteFallback, Fuse, Strip)");
  }
}

std::string HfDecoder::decode(std::vector<std::string> tokens) const {
  for (const Step& s : steps_) {
    std::vector<std::string> next;
    switch (s.kind) {
      case Kind::replace:
        for (std::string& t : tokens) t = utf8::replace_all(t, s.pattern, s.content);
        break;
      case Kind::byte_fallback:  // consecutive byte tokens form one token of their bytes
        for (std::size_t i = 0; i < tokens.size();) {
          if (fallback_byte(tokens[i]) < 0) {
            next.push_back(std::move(tokens[i++]));
            continue;
          }
          std::string bytes;
          for (int b; i < tokens.size() && (b = fallback_byte(tokens[i])) >= 0; ++i) bytes += static_cast<char>(b);
          next.push_back(std::move(bytes));
        }
        tokens.swap(next);
        break;
      case Kind::fuse: {
        std::string all;
        for (const std::string& t : tokens) all += t;
        tokens.assign(1, std::move(all));
        break;
      }
      case Kind::strip:
        for (std::string& t : tokens) t = strip_char(std::move(t), s.content, s.start, s.stop);
        break;
      case Kind::metaspace:
        for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = utf8::replace_all(tokens[i], s.pattern, i == 0 && s.prepend ? "" : " ");
        break;
    }
  }
  std::string out;
  for (const std::string& t : tokens) out += t;
  return out;
}

}  // namespace r1
