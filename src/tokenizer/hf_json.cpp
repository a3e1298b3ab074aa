// Hugging Face tokenizer.json (BPE model with its normalizer, pre-tokenizer, added tokens and decoder;
// BOS/EOS from tokenizer_config.json): load and save.
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <set>
#include <unordered_map>

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

bool is_null_or_empty_sequence(const json& n) {
  return n.is_null() || (n.is_object() && n.value("type", "") == "Sequence" && n.value("normalizers", json::array()).empty());
}

// The hand-written rule sets r1hpc has for two exact configurations: GPT-2's ByteLevel pre-tokenizer
// alone, and the Split + ByteLevel sequence r1hpc writes itself. Anything else is PreTokenizer::hf.
PreTokenizer known_rules(const json& j) {
  if (!is_null_or_empty_sequence(j.value("normalizer", json())) || !is_byte_level(j.value("decoder", json()))) return PreTokenizer::hf;
  const json& m = j["model"];
  if (m.value("ignore_merges", false) || m.value("byte_fallback", false) || !m.value("unk_token", json()).is_null()) return PreTokenizer::hf;
  for (const json& t : j.value("added_tokens", json::array()))
    if (t.value("lstrip", false) || t.value("rstrip", false) || t.value("normalized", false)) return PreTokenizer::hf;
  const json pt = j.value("pre_tokenizer", json());
  if (is_byte_level(pt) && !pt.value("add_prefix_space", true) && pt.value("use_regex", true)) return PreTokenizer::gpt2;
  if (pt.is_object() && pt.value("type", "") == "Sequence" && pt.value("pretokenizers", json::array()).size() == 2) {
    const json& split = pt["pretokenizers"][0];
    const json& bytes = pt["pretokenizers"][1];
    if (split.value("type", "") == "Split" && split.contains("pattern") && split["pattern"].value("Regex", "") == kR1hpcSplitRegex &&
        split.value("behavior", "") == "Isolated" && !split.value("invert", false) && is_byte_level(bytes) &&
        !bytes.value("use_regex", true) && !bytes.value("add_prefix_space", false))
      return PreTokenizer::r1hpc;
  }
  return PreTokenizer::hf;
}

// The model's options, and the parts of the pipeline, for a tokenizer.json r1hpc has no rule set for.
std::shared_ptr<HfPipeline> pipeline(const json& j, const json& model, const std::string& path) {
  auto hf = std::make_shared<HfPipeline>();
  hf->normalizer = Normalizer::from_json(j.value("normalizer", json()), path + ": normalizer");
  hf->pre_tokenizer = HfPreTokenizer::from_json(j.value("pre_tokenizer", json()), path + ": pre_tokenizer");
  hf->decoder = HfDecoder::from_json(j.value("decoder", json()), path + ": decoder");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty())
      fail(path, std::string("model.") + key, "is not supported (no byte-level or SentencePiece family uses it)");
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0)
    fail(path, "model.dropout", "BPE dropout is not supported (encoding must be deterministic)");
  hf->ignore_merges = model.value("ignore_merges", false);
  hf->byte_fallback = model.value("byte_fallback", false);
  hf->fuse_unk = model.value("fuse_unk", false);
  nlohmann::ordered_json sections;
  for (const char* key : {"normalizer", "pre_tokenizer", "post_processor", "decoder"}) sections[key] = j.value(key, json());
  hf->sections_json = sections.dump();
  return hf;
}

std::pair<std::string, std::string> merge_pair(const json& m, const std::string& path, std::size_t r) {
  if (m.is_string()) {  // "left right": tokens hold no spaces (byte-level Ġ, SentencePiece ▁)
    const std::string s = m.get<std::string>();
    const auto sp = s.find(' ');
    if (sp == std::string::npos) fail(path, detail::concat("model.merges[", r, "]"), "expected \"left right\"");
    return {s.substr(0, sp), s.substr(sp + 1)};
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) return {m[0].get<std::string>(), m[1].get<std::string>()};
  fail(path, detail::concat("model.merges[", r, "]"), "expected \"left right\" or [left, right]");
}

std::vector<AddedToken> added_tokens(const json& added_json, const std::string& path, const std::function<std::int32_t(const json&, const std::string&)>& id_of) {
  if (!added_json.is_array()) fail(path, "added_tokens", "expected an array");
  std::vector<AddedToken> added;
  for (const json& t : added_json) {
    if (!t.is_object() || !t.contains("id") || !t.contains("content") || !t["content"].is_string())
      fail(path, "added_tokens", "every entry needs an integer id and a string content");
    const std::string content = t["content"].get<std::string>();
    if (t.value("single_word", false)) fail(path, "added_tokens." + content + ".single_word", "true is not supported");
    added.push_back({id_of(t["id"], "added_tokens." + content), content, t.value("lstrip", false), t.value("rstrip", false),
                     t.value("normalized", false), t.value("special", false)});
  }
  return added;
}

Tokenizer from_json(const json& j, const std::string& path) {
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail(path, "model", "missing: not a tokenizer.json");
  const json& model = j["model"];
  if (model.value("type", "BPE") != "BPE") fail(path, "model.type", "only BPE models are supported");
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(path, "model.vocab", "missing or not an object");
  if (!model.contains("merges") || !model["merges"].is_array()) fail(path, "model.merges", "missing or not an array");
  const PreTokenizer rules = known_rules(j);
  const std::shared_ptr<HfPipeline> hf = rules == PreTokenizer::hf ? pipeline(j, model, path) : nullptr;
  const bool byte_level = !hf || hf->pre_tokenizer.byte_level();

  const json added_json = j.value("added_tokens", json::array());
  // Ids are contiguous from 0, so none can reach the number of entries: a larger one is refused before it
  // sizes anything.
  const auto entries = static_cast<std::int64_t>(model["vocab"].size() + (added_json.is_array() ? added_json.size() : 0));
  const auto id_of = [&](const json& id, const std::string& key) {
    if (!id.is_number_integer() || id.get<std::int64_t>() < 0 || id.get<std::int64_t>() >= entries)
      fail(path, key, detail::concat("id ", id.dump(), " is not an integer in [0, ", entries, ") (ids are contiguous from 0)"));
    return static_cast<std::int32_t>(id.get<std::int64_t>());
  };
  std::vector<AddedToken> added = added_tokens(added_json, path, id_of);
  if (hf)  // as Hugging Face does, a normalized added token is matched, and decodes, as its normalized text
    for (AddedToken& a : added)
      if (a.normalized) a.content = hf->normalizer.apply(a.content);
  std::int32_t n = 0;
  for (const auto& [text, id] : model["vocab"].items()) n = std::max(n, id_of(id, "model.vocab." + text) + 1);
  for (const auto& a : added) n = std::max(n, a.id + 1);
  std::vector<std::string> tokens(static_cast<std::size_t>(n));
  std::vector<bool> filled(static_cast<std::size_t>(n), false);
  for (const AddedToken& a : added) {
    if (filled[a.id]) fail(path, "added_tokens." + a.content, "shares its id with another added token");
    tokens[a.id] = a.content;
    filled[a.id] = true;
  }
  for (const auto& [text, id_json] : model["vocab"].items()) {
    const auto id = id_json.get<std::int32_t>();
    if (filled[id] && tokens[id] == text) continue;  // an added token listed in the vocabulary too
    if (filled[id]) fail(path, "model.vocab." + text, "shares its id with another token");
    const auto bytes = byte_level ? from_byte_level(text) : std::optional<std::string>(text);
    if (!bytes) fail(path, "model.vocab." + text, "is not written in the byte-level alphabet");
    tokens[id] = *bytes;
    filled[id] = true;
  }
  for (std::int32_t id = 0; id < n; ++id)
    if (!filled[id]) fail(path, "model.vocab", detail::concat("token id ", id, " is missing (ids must be contiguous)"));

  std::unordered_map<std::string, std::int32_t> vocab;  // hashed: a real vocabulary has 10^5 merges to look up
  for (const auto& [text, id] : model["vocab"].items()) vocab.emplace(text, id.get<std::int32_t>());
  if (hf && model.contains("unk_token") && !model["unk_token"].is_null()) {
    const std::string unk = model["unk_token"].get<std::string>();
    if (!vocab.contains(unk)) fail(path, "model.unk_token", unk + " is not in model.vocab");
    hf->unk = vocab[unk];
  }
  std::vector<Tokenizer::Merge> merges;
  const json& merges_json = model["merges"];
  merges.reserve(merges_json.size());
  for (std::size_t r = 0; r < merges_json.size(); ++r) {
    const auto [left, right] = merge_pair(merges_json[r], path, r);
    const auto a = vocab.find(left), b = vocab.find(right);
    if (a == vocab.end() || b == vocab.end()) fail(path, detail::concat("model.merges[", r, "]"), "names a token that is not in model.vocab");
    merges.emplace_back(a->second, b->second);
  }
  if (!hf) {
    std::vector<std::int32_t> specials;
    for (const AddedToken& a : added) specials.push_back(a.id);
    return Tokenizer(std::move(tokens), std::move(merges), std::move(specials), rules, path);
  }
  return Tokenizer(std::move(tokens), std::move(merges), std::move(added), hf, path);
}

// The id of a token named in tokenizer_config.json (a string, or an AddedToken object with "content").
std::int32_t config_token(const Tokenizer& tok, const json& value, const std::string& where) {
  const std::string text = value.is_object() ? value.at("content").get<std::string>() : value.get<std::string>();
  for (const AddedToken& a : tok.added_vocabulary().tokens())
    if (a.content == text) return a.id;
  const std::string bytes = tok.pre_tokenizer() == PreTokenizer::hf && !tok.hf_pipeline()->pre_tokenizer.byte_level() ? text
                                                                                                                      : from_byte_level(text).value_or(text);
  for (std::int32_t id = 0; id < tok.vocab_size(); ++id)
    if (tok.token(id) == bytes) return id;
  R1_FAIL(user, where, ": ", text, " is not a token of ", tok.source());
}

// BOS/EOS a TemplateProcessing post-processor puts around a single sequence (Llama-2, Llama-3 files).
void post_processor_ids(const json& pp, const std::string& where, SequenceIds& s) {
  if (pp.is_null()) return;
  const std::string type = pp.value("type", "");
  if (type == "Sequence") {
    const json& list = pp.value("processors", json::array());
    for (std::size_t k = 0; k < list.size(); ++k) post_processor_ids(list[k], detail::concat(where, ".processors[", k, "]"), s);
    return;
  }
  if (type == "ByteLevel") return;  // offsets only
  if (type != "TemplateProcessing") R1_FAIL(user, where, ": post-processor type ", type, " is not supported (r1hpc reads TemplateProcessing, ByteLevel)");
  bool after_sequence = false;
  for (const json& item : pp.at("single")) {
    if (item.contains("Sequence")) {
      after_sequence = true;
      continue;
    }
    const json& ids = pp.at("special_tokens").at(item.at("SpecialToken").at("id").get<std::string>()).at("ids");
    std::int32_t& id = after_sequence ? s.eos : s.bos;
    if (ids.size() != 1 || id >= 0) R1_FAIL(user, where, ".single: only one special token before and one after the sequence is supported");
    id = ids[0].get<std::int32_t>();
    (after_sequence ? s.add_eos : s.add_bos) = true;
  }
}

// BOS/EOS: the post-processor's, then tokenizer_config.json beside the tokenizer.json (when there is one)
// names the tokens and, where it says add_bos_token / add_eos_token, whether they are added.
SequenceIds sequence_ids(const Tokenizer& tok, const json& j, const std::string& path) {
  SequenceIds s;
  post_processor_ids(j.value("post_processor", json()), path + ": post_processor", s);
  const std::filesystem::path config = std::filesystem::path(path).parent_path() / "tokenizer_config.json";
  if (!std::filesystem::exists(config)) return s;
  const std::string where = config.string();
  json c;
  try {
    c = json::parse(read_file(where));
    if (c.contains("bos_token") && !c["bos_token"].is_null()) s.bos = config_token(tok, c["bos_token"], where + ": bos_token");
    if (c.contains("eos_token") && !c["eos_token"].is_null()) s.eos = config_token(tok, c["eos_token"], where + ": eos_token");
    s.add_bos = c.value("add_bos_token", s.add_bos);
    s.add_eos = c.value("add_eos_token", s.add_eos);
  } catch (const json::exception& e) {
    R1_FAIL(user, where, ": not valid JSON, or a field of an unexpected type: ", e.what());
  }
  if (s.add_bos && s.bos < 0) R1_FAIL(user, where, ": add_bos_token is true but bos_token is not set");
  if (s.add_eos && s.eos < 0) R1_FAIL(user, where, ": add_eos_token is true but eos_token is not set");
  return s;
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
    Tokenizer tok = from_json(j, path);
    tok.set_sequence_ids(sequence_ids(tok, j, path));
    return tok;
  } catch (const json::exception& e) {  // a field of another JSON type than the checks above expect
    R1_FAIL(user, path, ": a field has an unexpected JSON type: ", e.what());
  }
}

// r1hpc's own and GPT-2's rule sets are written out; a loaded pipeline is written back as it was read.
void save_hf_tokenizer(const Tokenizer& tok, const std::string& path) {
  using ojson = nlohmann::ordered_json;
  const HfPipeline* hf = tok.hf_pipeline();
  const bool byte_level = !hf || hf->pre_tokenizer.byte_level();
  ojson out;
  out["version"] = "1.0";
  out["truncation"] = nullptr;
  out["padding"] = nullptr;
  out["added_tokens"] = ojson::array();
  std::vector<AddedToken> added = tok.added_vocabulary().tokens();
  std::sort(added.begin(), added.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  for (const AddedToken& a : added)
    out["added_tokens"].push_back({{"id", a.id}, {"content", a.content}, {"single_word", false}, {"lstrip", a.lstrip},
                                   {"rstrip", a.rstrip}, {"normalized", a.normalized}, {"special", a.special}});
  if (hf) {
    const ojson sections = ojson::parse(hf->sections_json);
    for (const auto& [key, value] : sections.items()) out[key] = value;
  } else {
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
    out["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  }
  const auto text_of = [&](std::int32_t id) { return byte_level && !tok.is_special(id) ? to_byte_level(tok.token(id)) : tok.token(id); };
  ojson vocab = ojson::object();
  std::set<std::string> seen;
  for (std::int32_t id = 0; id < tok.vocab_size(); ++id) {
    const std::string text = text_of(id);
    R1_REQUIRE(seen.insert(text).second, path, ": token ", id, " (", text, ") duplicates another token's text");
    vocab[text] = id;
  }
  ojson merges = ojson::array();
  for (const auto& [a, b] : tok.merges()) merges.push_back(ojson::array({text_of(a), text_of(b)}));
  const auto unk = hf && hf->unk >= 0 ? ojson(text_of(hf->unk)) : ojson(nullptr);
  out["model"] = {{"type", "BPE"},
                  {"dropout", nullptr},
                  {"unk_token", unk},
                  {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr},
                  {"fuse_unk", hf && hf->fuse_unk},
                  {"byte_fallback", hf && hf->byte_fallback},
                  {"ignore_merges", hf && hf->ignore_merges},
                  {"vocab", vocab},
                  {"merges", merges}};
  write_file_atomic(path, out.dump(2));
}

}  // namespace r1
