// Hugging Face tokenizer.json (BPE model, ByteLevel pre-tokenizer and decoder): load and save.
#include <nlohmann/json.hpp>

#include <set>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "tokenizer/byte_level.hpp"
#include "tokenizer/tokenizer.hpp"

namespace r1 {
namespace {

using nlohmann::json;

[[noreturn]] void fail(const std::string& path, std::string_view key, std::string_view problem) {
  R1_FAIL(user, path, ": ", key, ": ", problem);
}

bool is_byte_level(const json& p) { return p.is_object() && p.value("type", "") == "ByteLevel"; }

PreTokenizer pre_tokenizer_rules(const json& pt, const std::string& path) {
  if (is_byte_level(pt)) {
    if (pt.value("add_prefix_space", false)) fail(path, "pre_tokenizer.add_prefix_space", "true is not supported");
    if (!pt.value("use_regex", true)) fail(path, "pre_tokenizer.use_regex", "false (no split at all) is not supported");
    return PreTokenizer::gpt2;
  }
  if (pt.is_object() && pt.value("type", "") == "Sequence" && pt.contains("pretokenizers") && pt["pretokenizers"].size() == 2) {
    const json& split = pt["pretokenizers"][0];
    const json& bytes = pt["pretokenizers"][1];
    if (split.value("type", "") == "Split" && split.contains("pattern") && split["pattern"].value("Regex", "") == kR1hpcSplitRegex &&
        split.value("behavior", "") == "Isolated" && !split.value("invert", false) && is_byte_level(bytes) &&
        !bytes.value("use_regex", true) && !bytes.value("add_prefix_space", false))
      return PreTokenizer::r1hpc;
  }
  fail(path, "pre_tokenizer",
       "r1hpc reads GPT-2's ByteLevel pre-tokenizer (use_regex true) or the Split + ByteLevel sequence it writes itself");
}

Tokenizer from_json(const json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail(path, "model", "missing: not a tokenizer.json");
  const json& model = j["model"];
  if (model.value("type", "BPE") != "BPE") fail(path, "model.type", "only BPE models are supported");
  if (j.contains("normalizer") && !j["normalizer"].is_null()) fail(path, "normalizer", "normalizers are not supported (r1hpc tokenizes raw bytes)");
  const PreTokenizer rules = pre_tokenizer_rules(j.value("pre_tokenizer", json()), path);
  if (!is_byte_level(j.value("decoder", json()))) fail(path, "decoder", "must be ByteLevel");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(path, "model.vocab", "missing or not an object");
  if (!model.contains("merges") || !model["merges"].is_array()) fail(path, "model.merges", "missing or not an array");

  const json added_json = j.value("added_tokens", json::array());
  if (!added_json.is_array()) fail(path, "added_tokens", "expected an array");
  // Ids are contiguous from 0, so none can reach the number of entries: a larger one is refused before it
  // sizes anything.
  const auto entries = static_cast<std::int64_t>(model["vocab"].size() + added_json.size());
  const auto id_of = [&](const json& id, const std::string& key) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= entries)
      fail(path, key, detail::concat("id ", id.dump(), " is not an integer in [0, ", entries, ") (ids are contiguous from 0)"));
    return static_cast<std::int32_t>(id.get<std::int64_t>());
  };
  std::vector<std::pair<std::string, std::int32_t>> added;
  for (const json& t : added_json) {
    if (!t.is_object() || !t.contains("id") || !t.contains("content") || !t["content"].is_string())
      fail(path, "added_tokens", "every entry needs an integer id and a string content");
    added.emplace_back(t["content"].get<std::string>(), id_of(t["id"], "added_tokens." + t["content"].get<std::string>()));
  }
  std::int32_t n = 0;
  for (const auto& [text, id] : model["vocab"].items()) n = std::max(n, id_of(id, "model.vocab." + text) + 1);
  for (const auto& a : added) n = std::max(n, a.second + 1);
  std::vector<std::string> tokens(static_cast<std::size_t>(n));
  std::vector<bool> filled(static_cast<std::size_t>(n), false);
  std::vector<std::int32_t> specials;
  for (const auto& [text, id] : added) {
    if (filled[id]) fail(path, "added_tokens." + text, "shares its id with another added token");
    tokens[id] = text;
    filled[id] = true;
    specials.push_back(id);
  }
  for (const auto& [text, id_json] : model["vocab"].items()) {
    const auto id = id_json.get<std::int32_t>();
    if (filled[id] && tokens[id] == text) continue;  // an added token listed in the vocabulary too
    if (filled[id]) fail(path, "model.vocab." + text, "shares its id with another token");
    const auto bytes = from_byte_level(text);
    if (!bytes) fail(path, "model.vocab." + text, "is not written in the byte-level alphabet");
    tokens[id] = *bytes;
    filled[id] = true;
  }
  for (std::int32_t id = 0; id < n; ++id)
    if (!filled[id]) fail(path, "model.vocab", detail::concat("token id ", id, " is missing (ids must be contiguous)"));

  const json& vocab = model["vocab"];
  std::vector<Tokenizer::Merge> merges;
  for (std::size_t r = 0; r < model["merges"].size(); ++r) {
    const json& m = model["merges"][r];
    std::string left, right;
    if (m.is_string()) {  // "left right": byte-level tokens hold no spaces
      const std::string s = m.get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos) fail(path, detail::concat("model.merges[", r, "]"), "expected \"left right\"");
      left = s.substr(0, sp);
      right = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      fail(path, detail::concat("model.merges[", r, "]"), "expected \"left right\" or [left, right]");
    }
    if (!vocab.contains(left) || !vocab.contains(right))
      fail(path, detail::concat("model.merges[", r, "]"), "names a token that is not in model.vocab");
    merges.emplace_back(vocab[left].get<std::int32_t>(), vocab[right].get<std::int32_t>());
  }
  return Tokenizer(std::move(tokens), std::move(merges), std::move(specials), rules, path);
}

}  // namespace

Tokenizer load_hf_tokenizer(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    R1_FAIL(user, path, ": not valid JSON: ", e.what());
  }
  try {
    return from_json(j, path);
  } catch (const json::exception& e) {  // a field of another JSON type than the checks above expect
    R1_FAIL(user, path, ": a field has an unexpected JSON type: ", e.what());
  }
}

void save_hf_tokenizer(const Tokenizer& tok, const std::string& path) {
  using ojson = nlohmann::ordered_json;
  const ojson byte_level_decoder = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  ojson out;
  out["version"] = "1.0";
  out["truncation"] = nullptr;
  out["padding"] = nullptr;
  std::vector<std::int32_t> specials = tok.special_token_ids();
  std::sort(specials.begin(), specials.end());
  out["added_tokens"] = ojson::array();
  for (std::int32_t s : specials)
    out["added_tokens"].push_back({{"id", s}, {"content", tok.token(s)}, {"single_word", false}, {"lstrip", false},
                                   {"rstrip", false}, {"normalized", false}, {"special", true}});
  out["normalizer"] = nullptr;
  if (tok.pre_tokenizer() == PreTokenizer::gpt2) {
    out["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  } else {
    out["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", kR1hpcSplitRegex}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  }
  out["post_processor"] = nullptr;
  out["decoder"] = byte_level_decoder;
  ojson vocab = ojson::object();
  std::set<std::string> seen;
  for (std::int32_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string text = tok.is_special(id) ? tok.token(id) : to_byte_level(tok.token(id));
    R1_REQUIRE(seen.insert(text).second, path, ": token ", id, " (", text, ") duplicates another token's text");
    vocab[text] = id;
  }
  ojson merges = ojson::array();
  for (const auto& [a, b] : tok.merges()) merges.push_back(to_byte_level(tok.token(a)) + " " + to_byte_level(tok.token(b)));
  out["model"] = {{"type", "BPE"},         {"dropout", nullptr},        {"unk_token", nullptr},     {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                  {"vocab", vocab},        {"merges", merges}};
  write_file_atomic(path, out.dump(2));
}

}  // namespace r1
