#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.hpp"

#include <pcre2.h>

#include "core/error.hpp"
#include "tokenizer/utf8.hpp"

namespace r1 {
namespace {

pcre2_code* code_of(const std::shared_ptr<void>& p) { return static_cast<pcre2_code*>(p.get()); }

// One match block per thread, sized for the whole-match pair only (pre-tokenizers ignore groups).
pcre2_match_data* match_data() {
  thread_local std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> data(pcre2_match_data_create(1, nullptr), pcre2_match_data_free);
  return data.get();
}

bool general_category(std::string_view name) {
  static const std::string_view cats[] = {"L", "Lu", "Ll", "Lt", "Lm", "Lo", "L&", "LC", "M", "Mn", "Mc", "Me", "N", "Nd", "Nl", "No", "P", "Pc",
                                          "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "S", "Sm", "Sc", "Sk", "So", "Z", "Zs", "Zl", "Zp", "C", "Cc",
                                          "Cf", "Cs", "Co", "Cn", "Any"};
  for (std::string_view c : cats)
    if (name == c) return true;
  return name.starts_with("X") || name.find(':') != std::string_view::npos || name.find('=') != std::string_view::npos;
}

// Oniguruma (the engine Hugging Face patterns are written for) reads \p{Han} as the Script property;
// PCRE2 reads it as Script_Extensions, which puts shared punctuation such as U+3002 in Han too. So a
// script name becomes \p{sc:Name}; general categories stay as they are.
std::string onig_to_pcre2(const std::string& pattern) {
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    out += pattern[i];
    if (pattern[i] != '\\' || i + 2 >= pattern.size()) continue;
    const char p = pattern[i + 1];
    if ((p == 'p' || p == 'P') && pattern[i + 2] == '{') {
      const std::size_t close = pattern.find('}', i + 3);
      if (close != std::string::npos) {
        std::string_view name(pattern.data() + i + 3, close - i - 3);
        if (name.starts_with('^')) name.remove_prefix(1);
        if (!general_category(name)) {
          out += pattern.substr(i + 1, 2) + (pattern[i + 3] == '^' ? "^" : "") + "sc:" + std::string(name) + "}";
          i = close;
          continue;
        }
      }
    }
    out += pattern[++i];  // the escaped character: an escaped backslash starts no escape
  }
  return out;
}

}  // namespace

Regex::Regex(const std::string& onig_pattern, const std::string& where) {
  int err = 0;
  PCRE2_SIZE offset = 0;
  const std::string pattern = onig_to_pcre2(onig_pattern);
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &offset, nullptr);
  if (!code) {
    PCRE2_UCHAR msg[256];
    pcre2_get_error_message(err, msg, sizeof msg);
    R1_FAIL(user, where, ": the regex ", onig_pattern, " does not compile (PCRE2, at offset ", offset, "): ", reinterpret_cast<const char*>(msg));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // without JIT (unsupported CPU) pcre2_match interprets
  code_ = std::shared_ptr<void>(code, [](void* c) { pcre2_code_free(static_cast<pcre2_code*>(c)); });
}

void Regex::find_all(std::string_view text, std::vector<std::pair<std::size_t, std::size_t>>& out) const {
  pcre2_match_data* md = match_data();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  std::size_t at = 0;
  while (at <= text.size()) {
    const int rc = pcre2_match(code_of(code_), subject, text.size(), at, 0, md, nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) return;
    R1_CHECK(rc >= 0, "pcre2_match failed with code ", rc);  // 0: groups beyond the whole match not kept
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    if (ov[1] > ov[0]) {
      out.emplace_back(ov[0], ov[1]);
      at = ov[1];
    } else {  // an empty match splits nothing: search on from the next character
      if (ov[0] >= text.size()) return;
      const std::size_t len = utf8::sequence_length(text, ov[0]);
      at = ov[0] + (len ? len : 1);
    }
  }
}

}  // namespace r1
