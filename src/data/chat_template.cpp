#include "data/chat_template.hpp"

#include <algorithm>

#include "config/run_config.hpp"
#include "core/error.hpp"
#include "data/reasoning_world.hpp"
#include "deck/deck.hpp"

namespace r1 {
namespace {

// The layouts, as the families' tokenizer_config.json chat templates render one user message with
// add_generation_prompt (no system message), and r1hpc's own. S: a special token, T: literal text, Q: the question.
struct Piece {
  char kind;  // 'S', 'T', 'Q'
  std::string_view text;
};
struct Layout {
  std::vector<Piece> pieces;
  std::string_view end;     // the special token that ends a response; empty: the tokenizer's EOS
  std::string_view opened;  // the start of the response the prompt holds
  bool trim = false;
};

const Layout& layout_of(ChatTemplate t) {
  static const Layout deepseek{
      {{'S', "<｜begin▁of▁sentence｜>"}, {'S', "<｜User｜>"}, {'Q', ""}, {'S', "<｜Assistant｜>"}, {'S', "<think>"}, {'T', "\n"}},
      "<｜end▁of▁sentence｜>", "<think>\n"};
  static const Layout chatml{{{'S', "<|im_start|>"}, {'T', "user\n"}, {'Q', ""}, {'S', "<|im_end|>"}, {'T', "\n"},
                              {'S', "<|im_start|>"}, {'T', "assistant\n"}},
                             "<|im_end|>", ""};
  static const Layout llama3{{{'S', "<|begin_of_text|>"}, {'S', "<|start_header_id|>"}, {'T', "user"}, {'S', "<|end_header_id|>"},
                              {'T', "\n\n"}, {'Q', ""}, {'S', "<|eot_id|>"}, {'S', "<|start_header_id|>"}, {'T', "assistant"},
                              {'S', "<|end_header_id|>"}, {'T', "\n\n"}},
                             "<|eot_id|>", "", /*trim=*/true};
  static const Layout r1hpc_chat{{{'S', "<|user|>"}, {'Q', ""}, {'S', "<|assistant|>"}}, "", ""};
  static const Layout r1_zero{{{'T', kR1ZeroBefore}, {'Q', ""}, {'T', kR1ZeroAfter}}, "", ""};
  static const Layout raw{{{'Q', ""}}, "", ""};
  switch (t) {
    case ChatTemplate::deepseek_r1: return deepseek;
    case ChatTemplate::chatml: return chatml;
    case ChatTemplate::llama3: return llama3;
    case ChatTemplate::r1hpc_chat: return r1hpc_chat;
    case ChatTemplate::r1_zero: return r1_zero;
    case ChatTemplate::raw: return raw;
    case ChatTemplate::automatic: break;
  }
  R1_FAIL(internal, "the auto chat template is resolved before its layout is read");
}

// The id of an added token by its text; -1 when the tokenizer has none.
std::int32_t added_id(const Tokenizer& tok, std::string_view text) {
  for (const AddedToken& a : tok.added_vocabulary().tokens())
    if (a.content == text) return a.id;
  return -1;
}

ChatTemplate resolve(ChatTemplate t, const Tokenizer& tok) { return t == ChatTemplate::automatic ? detect_chat_template(tok) : t; }

std::string_view trimmed(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\n\r\f\v");
  if (b == std::string_view::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\n\r\f\v") - b + 1);
}

std::string describe(const MissingTokens& missing, const Tokenizer& tok) {
  std::string list;
  for (const std::string& t : missing.tokens) list += (list.empty() ? "" : ", ") + t;
  return detail::concat("the template ", chat_template_name(missing.resolved), " needs special tokens that the tokenizer (", tok.source(),
                        ") lacks: ", list);
}

}  // namespace

ChatTemplate detect_chat_template(const Tokenizer& tok) {
  const auto has = [&](std::initializer_list<std::string_view> names) {
    return std::all_of(names.begin(), names.end(), [&](std::string_view n) { return added_id(tok, n) >= 0; });
  };
  if (has({"<｜User｜>", "<｜Assistant｜>"})) return ChatTemplate::deepseek_r1;
  if (has({"<|im_start|>", "<|im_end|>"})) return ChatTemplate::chatml;
  if (has({"<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"})) return ChatTemplate::llama3;
  return ChatTemplate::r1hpc_chat;
}

std::string_view chat_template_name(ChatTemplate t) {
  for (const auto& w : choice_words(ChatTemplate{}))
    if (w.value == t) return w.word;
  return "?";
}

MissingTokens missing_tokens(ChatTemplate t, const Tokenizer& tok) {
  MissingTokens m{resolve(t, tok), {}};
  const Layout& l = layout_of(m.resolved);
  for (const Piece& p : l.pieces)
    if (p.kind == 'S' && added_id(tok, p.text) < 0 &&
        std::find(m.tokens.begin(), m.tokens.end(), p.text) == m.tokens.end())
      m.tokens.emplace_back(p.text);
  if (!l.end.empty() && added_id(tok, l.end) < 0 && std::find(m.tokens.begin(), m.tokens.end(), l.end) == m.tokens.end())
    m.tokens.emplace_back(l.end);
  if (l.end.empty() && tok.special_ids().eos < 0) m.tokens.emplace_back("an end-of-sequence token (tokenizer_config.json eos_token)");
  return m;
}

PromptFormat::PromptFormat(ChatTemplate t, const Tokenizer& tok) : tok_(&tok), kind_(resolve(t, tok)) {
  const MissingTokens missing = missing_tokens(kind_, tok);
  if (!missing.tokens.empty()) R1_FAIL(user, "chat template: ", describe(missing, tok));
  const Layout& l = layout_of(kind_);
  for (const Piece& p : l.pieces) {
    const auto kind = p.kind == 'S' ? Element::special : p.kind == 'T' ? Element::literal : Element::question;
    layout_.push_back({kind, std::string(p.text), kind == Element::special ? added_id(tok, p.text) : -1});
  }
  end_ = l.end.empty() ? tok.special_ids().eos : added_id(tok, l.end);
  opened_ = l.opened;
  trim_question_ = l.trim;
}

std::vector<std::int32_t> PromptFormat::prompt(std::string_view question) const {
  // Text between two special tokens is encoded as one (as the rendered template would be), the question's
  // part of it with added-token matching off, except in raw, whose prompt carries its own template.
  std::vector<std::int32_t> out;
  std::vector<TextPart> run;
  const auto flush = [&] {
    const std::vector<std::int32_t> ids = tok_->encode_parts(run);
    out.insert(out.end(), ids.begin(), ids.end());
    run.clear();
  };
  for (const Element& e : layout_) {
    if (e.kind == Element::special) {
      flush();
      out.push_back(e.id);
    } else if (e.kind == Element::literal) {
      run.push_back({e.text, true});
    } else {
      run.push_back({trim_question_ ? trimmed(question) : question, kind_ == ChatTemplate::raw});
    }
  }
  flush();
  return out;
}

std::vector<std::int32_t> PromptFormat::response(std::string_view text) const {
  if (!opened_.empty() && text.starts_with(opened_)) text.remove_prefix(opened_.size());
  std::vector<std::int32_t> ids = tok_->encode(text);
  ids.push_back(end_);
  return ids;
}

std::vector<std::int32_t> PromptFormat::exchange(std::string_view question, std::string_view text) const {
  std::vector<std::int32_t> ids = prompt(question);
  const std::vector<std::int32_t> r = response(text);
  ids.insert(ids.end(), r.begin(), r.end());
  return ids;
}

std::vector<std::int32_t> PromptFormat::stop_ids() const {
  std::vector<std::int32_t> ids{end_};
  for (std::int32_t s : {tok_->special_ids().eos, tok_->special_ids().answer_end})
    if (s >= 0 && std::find(ids.begin(), ids.end(), s) == ids.end()) ids.push_back(s);
  return ids;
}

PromptFormat prompt_format(const RunConfig& cfg, const Deck& deck, const Tokenizer& tok) {
  const MissingTokens missing = missing_tokens(cfg.data.chat_template, tok);
  if (!missing.tokens.empty()) deck.fail("data.chat_template", describe(missing, tok));
  return PromptFormat(cfg.data.chat_template, tok);
}

PromptFormat reward_model_format(const RunConfig& cfg, const Deck& deck, const Tokenizer& tok) {
  const ChatTemplate t = cfg.data.chat_template;
  if (t != ChatTemplate::r1_zero && t != ChatTemplate::raw) return prompt_format(cfg, deck, tok);
  RunConfig conversation = cfg;
  conversation.data.chat_template = ChatTemplate::automatic;
  return prompt_format(conversation, deck, tok);
}

}  // namespace r1
