// PromptFormat: a chat template ([data] chat_template) bound to a tokenizer: a question laid out before its
// response by token ids (the template's special tokens looked up, the question never matched for them),
// the token that ends a response, and the tokens generation stops on.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/training.hpp"
#include "tokenizer/tokenizer.hpp"

namespace r1 {

class Deck;
struct RunConfig;

// What auto picks: the family whose special tokens the tokenizer has (DeepSeek's <｜User｜> <｜Assistant｜>,
// ChatML's <|im_start|> <|im_end|>, Llama-3's <|start_header_id|> <|eot_id|>), else r1hpc-chat.
ChatTemplate detect_chat_template(const Tokenizer& tok);
std::string_view chat_template_name(ChatTemplate t);  // the deck word

// A template's special tokens missing from the tokenizer.
struct MissingTokens {
  ChatTemplate resolved;
  std::vector<std::string> tokens;  // empty: none missing
};
MissingTokens missing_tokens(ChatTemplate t, const Tokenizer& tok);

class PromptFormat {
 public:
  // t resolved (auto: detect_chat_template) against tok, which must outlive the format. A special token of
  // the template that tok lacks is a user error naming the template and the token (prompt_format names
  // the deck line).
  PromptFormat(ChatTemplate t, const Tokenizer& tok);

  ChatTemplate kind() const { return kind_; }
  const Tokenizer& tokenizer() const { return *tok_; }
  // The question in the template. Its text is encoded with added-token matching off, so a question that
  // contains "<|im_end|>" stays text; only raw (the prompt already carries its template) matches them.
  std::vector<std::int32_t> prompt(std::string_view question) const;
  // The response's ids: the text (special tokens matched) less what the prompt already opened, then end_id.
  std::vector<std::int32_t> response(std::string_view text) const;
  // prompt(question) then response(text): a whole exchange (a reward model's input).
  std::vector<std::int32_t> exchange(std::string_view question, std::string_view text) const;
  // The token that ends a response: <｜end▁of▁sentence｜>, <|im_end|>, <|eot_id|>, or the tokenizer's EOS.
  std::int32_t end_id() const { return end_; }
  // Generation stops on end_id, the tokenizer's EOS and (where special) </answer>.
  std::vector<std::int32_t> stop_ids() const;
  // The start of the response the prompt holds already ("<think>\n" for deepseek-r1): put back before a
  // completion's text when it is scored.
  const std::string& opened() const { return opened_; }

 private:
  struct Element {  // one piece of the layout
    enum Kind { special, literal, question } kind;
    std::string text;    // literal: (matched for added tokens); special: the token
    std::int32_t id = -1;
  };
  const Tokenizer* tok_;
  ChatTemplate kind_;
  std::vector<Element> layout_;
  bool trim_question_ = false;  // Llama-3's template trims the message
  std::int32_t end_ = -1;
  std::string opened_;
};

// The deck's [data] chat_template on tok; a missing token is a deck error naming data.chat_template.
PromptFormat prompt_format(const RunConfig& cfg, const Deck& deck, const Tokenizer& tok);
// The layout of a reward model's input: the deck's template where it is a conversation (a family's or
// r1hpc-chat); for r1-zero and raw, the tokenizer's own (auto). Scores and training share it.
PromptFormat reward_model_format(const RunConfig& cfg, const Deck& deck, const Tokenizer& tok);

}  // namespace r1
