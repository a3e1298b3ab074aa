#include "tokenizer/normalizer.hpp"

#include <utf8proc.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "tokenizer/utf8.hpp"

namespace r1 {
namespace {

using nlohmann::json;

// Applies f to each maximal run of valid UTF-8, copying invalid bytes between runs unchanged.
template <class F>
std::string map_valid_runs(std::string_view text, F&& f) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t j = i;
    while (j < text.size()) {
      const std::size_t len = utf8::sequence_length(text, j);
      if (!len) break;
      j += len;
    }
    if (j > i) f(text.substr(i, j - i), out);
    if (j < text.size()) out += text[j++];
    i = j;
  }
  return out;
}

std::string unicode_form(std::string_view text, int options) {
  return map_valid_runs(text, [&](std::string_view run, std::string& out) {
    utf8proc_uint8_t* dst = nullptr;
    const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(run.data()), static_cast<utf8proc_ssize_t>(run.size()), &dst,
                                            static_cast<utf8proc_option_t>(UTF8PROC_STABLE | options));
    R1_CHECK(n >= 0, "utf8proc_map failed on valid UTF-8: ", utf8proc_errmsg(n));
    out.append(reinterpret_cast<const char*>(dst), static_cast<std::size_t>(n));
    std::free(dst);
  });
}

// Rust's char::to_lowercase per character: utf8proc's simple mapping, plus the one unconditional
// multi-character lowercase (U+0130 -> i + U+0307).
std::string lowercase(std::string_view text) {
  return map_valid_runs(text, [](std::string_view run, std::string& out) {
    for (std::size_t i = 0; i < run.size();) {
      const std::size_t len = utf8::sequence_length(run, i);
      const char32_t c = utf8::decode(run, i, len);
      if (c == 0x130) {
        out += "i\xCC\x87";
      } else {
        utf8::append(out, static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
      }
      i += len;
    }
  });
}

std::string replace_regex(std::string_view text, const Regex& re, const std::string& content) {
  std::vector<std::pair<std::size_t, std::size_t>> hits;
  re.find_all(text, hits);
  std::string out;
  std::size_t at = 0;
  for (const auto& [b, e] : hits) {
    out.append(text.substr(at, b - at));
    out += content;
    at = e;
  }
  out.append(text.substr(at));
  return out;
}

}  // namespace

Normalizer Normalizer::from_json(const json& j, const std::string& where) {
  Normalizer n;
  if (!j.is_null()) parse(j, where, n.steps_);
  return n;
}

void Normalizer::parse(const json& j, const std::string& where, std::vector<Step>& steps) {
  if (!j.is_object() || !j.contains("type") || !j["type"].is_string()) R1_FAIL(user, where, ": expected an object with a string \"type\"");
  const std::string type = j["type"].get<std::string>();
  if (type == "Sequence") {
    const json& list = j.value("normalizers", json::array());
    if (!list.is_array()) R1_FAIL(user, where, ".normalizers: expected an array");
    for (std::size_t k = 0; k < list.size(); ++k) parse(list[k], detail::concat(where, ".normalizers[", k, "]"), steps);
    return;
  }
  static const std::pair<const char*, Kind> forms[] = {{"NFC", Kind::nfc}, {"NFD", Kind::nfd}, {"NFKC", Kind::nfkc}, {"NFKD", Kind::nfkd},
                                                       {"Lowercase", Kind::lowercase}};
  for (const auto& [name, kind] : forms)
    if (type == name) {
      steps.push_back({kind, {}, {}, nullptr});
      return;
    }
  if (type == "Replace") {
    Step s{Kind::replace, {}, j.at("content").get<std::string>(), nullptr};
    const json& p = j.at("pattern");
    if (p.contains("String")) {
      s.pattern = p["String"].get<std::string>();
      if (s.pattern.empty()) R1_FAIL(user, where, ".pattern.String: an empty pattern is not supported");
    } else if (p.contains("Regex")) {
      s.regex = std::make_shared<const Regex>(p["Regex"].get<std::string>(), where + ".pattern.Regex");
    } else {
      R1_FAIL(user, where, ".pattern: expected {\"String\": ...} or {\"Regex\": ...}");
    }
    steps.push_back(std::move(s));
  } else if (type == "Prepend") {
    steps.push_back({Kind::prepend, {}, j.at("prepend").get<std::string>(), nullptr});
  } else if (type == "Strip") {
    Step s{Kind::strip, {}, {}, nullptr};
    s.left = j.value("strip_left", false);
    s.right = j.value("strip_right", false);
    steps.push_back(std::move(s));
  } else {
    R1_FAIL(user, where, ": normalizer type ", type,
            " is not supported (r1hpc reads Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip)");
  }
}

std::string Normalizer::apply(std::string_view text) const {
  std::string s(text);
  for (const Step& step : steps_) {
    switch (step.kind) {
      case Kind::nfc: s = unicode_form(s, UTF8PROC_COMPOSE); break;
      case Kind::nfd: s = unicode_form(s, UTF8PROC_DECOMPOSE); break;
      case Kind::nfkc: s = unicode_form(s, UTF8PROC_COMPOSE | UTF8PROC_COMPAT); break;
      case Kind::nfkd: s = unicode_form(s, UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT); break;
      case Kind::lowercase: s = lowercase(s); break;
      case Kind::replace: s = step.regex ? replace_regex(s, *step.regex, step.content) : utf8::replace_all(s, step.pattern, step.content); break;
      case Kind::prepend:
        if (!s.empty()) s = step.content + s;
        break;
      case Kind::strip: {
        const std::size_t b = step.left ? utf8::skip_whitespace(s, 0) : 0;
        const std::size_t e = step.right ? utf8::skip_whitespace_back(s, s.size(), b) : s.size();
        s = s.substr(b, e - b);
        break;
      }
    }
  }
  return s;
}

}  // namespace r1
