// Real Hugging Face tokenizer families (fixtures made by tests/tokenizer/make_family_fixtures.py with the
// `tokenizers` library): r1hpc gives the library's ids and decoded text on a multilingual corpus.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace r1;
namespace fs = std::filesystem;

namespace {

const fs::path kFamilies = fs::path(R1HPC_TOKENIZER_FIXTURES) / "families";

std::string from_hex(const std::string& hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
  return out;
}

std::string show(const std::string& s) {
  std::string out;
  for (unsigned char c : s) out += (c >= 0x20 && c < 0x7f) ? std::string(1, static_cast<char>(c)) : "\\x" + std::to_string(c);
  return out;
}

// Every text: the library's ids and decoded text. Every invalid-UTF-8 input (which the library cannot
// take): a lossless round trip, in the families whose decoder carries bytes and whose normalizer leaves
// such text alone (lossless).
void expect_family(const std::string& family, bool lossless) {
  const Tokenizer tok = load_hf_tokenizer((kFamilies / family / "tokenizer.json").string());
  const auto fixture = nlohmann::json::parse(read_file((kFamilies / family / "cases.json").string()));
  ASSERT_EQ(fixture["lossless"].get<bool>(), lossless) << family;
  const auto& cases = fixture["cases"];
  ASSERT_GT(cases.size(), 20u);
  int invalid = 0;
  for (const auto& c : cases) {
    if (c.contains("hex")) {
      if (!lossless) continue;
      const std::string bytes = from_hex(c["hex"].get<std::string>());
      EXPECT_EQ(tok.decode(tok.encode(bytes)), bytes) << family << ": " << show(bytes);
      ++invalid;
      continue;
    }
    const std::string text = c["text"].get<std::string>();
    const auto ids = tok.encode(text);
    EXPECT_EQ(ids, c["ids"].get<std::vector<std::int32_t>>()) << family << ": " << show(text);
    EXPECT_EQ(tok.encode_sequence(text), c["sequence_ids"].get<std::vector<std::int32_t>>()) << family << ": " << show(text);
    EXPECT_EQ(tok.decode(c["ids"].get<std::vector<std::int32_t>>()), c["decoded"].get<std::string>()) << family << ": " << show(text);
  }
  EXPECT_EQ(invalid > 0, lossless);
}

}  // namespace

TEST(HfFamilies, DeepSeekV3RealTokenizerJson) { expect_family("deepseek_v3", true); }
TEST(HfFamilies, Qwen25) { expect_family("qwen2_5", true); }
TEST(HfFamilies, Llama3IgnoreMerges) { expect_family("llama3", true); }
TEST(HfFamilies, Llama2ByteFallbackReplacePrependStrip) { expect_family("llama2_bytefallback", true); }
// Not lossless: Metaspace without a ByteFallback decoder writes <0xAB> tokens as text; split_behaviors
// lowercases and removes whitespace.
TEST(HfFamilies, MetaspacePreTokenizerAndDecoder) { expect_family("metaspace", false); }
TEST(HfFamilies, SplitBehaviorsDigitsAndNormalizers) { expect_family("split_behaviors", false); }

// BOS/EOS: Llama-3's post-processor adds BOS (its tokenizer_config.json names BOS and EOS only); DeepSeek's
// tokenizer_config.json says add_bos_token false.
TEST(HfFamilies, BosAndEosFromTokenizerConfig) {
  const Tokenizer llama = load_hf_tokenizer((kFamilies / "llama3" / "tokenizer.json").string());
  const std::int32_t bos = llama.special_id("<|begin_of_text|>");
  EXPECT_EQ(llama.sequence_ids().bos, bos);
  EXPECT_EQ(llama.sequence_ids().eos, llama.special_id("<|eot_id|>"));
  EXPECT_TRUE(llama.sequence_ids().add_bos);
  EXPECT_FALSE(llama.sequence_ids().add_eos);
  EXPECT_EQ(llama.special_ids().bos, bos);
  EXPECT_EQ(llama.special_ids().eos, llama.special_id("<|eot_id|>"));
  std::vector<std::int32_t> expected{bos};
  for (std::int32_t id : llama.encode("Hello world")) expected.push_back(id);
  EXPECT_EQ(llama.encode_sequence("Hello world"), expected);

  const Tokenizer ds = load_hf_tokenizer((kFamilies / "deepseek_v3" / "tokenizer.json").string());
  EXPECT_EQ(ds.sequence_ids().bos, ds.special_id("<｜begin▁of▁sentence｜>"));
  EXPECT_EQ(ds.sequence_ids().eos, ds.special_id("<｜end▁of▁sentence｜>"));
  EXPECT_FALSE(ds.sequence_ids().add_bos);
  EXPECT_EQ(ds.encode_sequence("Hello"), ds.encode("Hello"));
}

// A loaded pipeline is written back as read: the saved file loads to a tokenizer giving the same ids.
TEST(HfFamilies, SaveThenLoadKeepsThePipeline) {
  for (const char* family : {"deepseek_v3", "llama2_bytefallback", "split_behaviors"}) {
    const Tokenizer tok = load_hf_tokenizer((kFamilies / family / "tokenizer.json").string());
    const std::string path = (fs::temp_directory_path() / (std::string("r1hpc_tok_save_") + family + ".json")).string();
    save_hf_tokenizer(tok, path);
    const Tokenizer back = load_hf_tokenizer(path);
    const auto cases = nlohmann::json::parse(read_file((kFamilies / family / "cases.json").string()));
    for (const auto& c : cases["cases"]) {
      if (!c.contains("text")) continue;
      EXPECT_EQ(back.encode(c["text"].get<std::string>()), c["ids"].get<std::vector<std::int32_t>>()) << family;
    }
    fs::remove(path);
  }
}

// What r1hpc does not read is refused by name: the file, the JSON path, the component.
TEST(HfFamilies, UnsupportedComponentsAreNamed) {
  const std::string source = read_file((kFamilies / "qwen2_5" / "tokenizer.json").string());
  const fs::path dir = fs::temp_directory_path() / "r1hpc_tok_unsupported";
  fs::create_directories(dir);
  const std::string path = (dir / "tokenizer.json").string();
  auto expect_error = [&](const std::function<void(nlohmann::json&)>& edit, const std::string& what) {
    auto j = nlohmann::json::parse(source);
    edit(j);
    write_file_atomic(path, j.dump());
    try {
      load_hf_tokenizer(path);
      ADD_FAILURE() << "no error for " << what;
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(path), std::string::npos) << e.message();
      EXPECT_NE(e.message().find(what), std::string::npos) << e.message();
    }
  };
  using J = nlohmann::json;
  expect_error([](J& j) { j["normalizer"] = {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "BertNormalizer"}}}}}; },
               "normalizer.normalizers[1]: normalizer type BertNormalizer is not supported");
  expect_error([](J& j) { j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "Sideways"; }, "pre_tokenizer.pretokenizers[0].behavior: Sideways");
  expect_error([](J& j) { j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed"; },
               "pre_tokenizer.pretokenizers[0].pattern.Regex: the regex (unclosed does not compile");
  expect_error([](J& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "decoder: decoder type WordPiece is not supported");
  expect_error([](J& j) { j["model"]["dropout"] = 0.1; }, "model.dropout");
  expect_error([](J& j) { j["model"]["continuing_subword_prefix"] = "##"; }, "model.continuing_subword_prefix");
  expect_error([](J& j) { j["added_tokens"][0]["single_word"] = true; }, "added_tokens.<|endoftext|>.single_word");
  write_file_atomic((dir / "tokenizer_config.json").string(), R"({"add_bos_token": true, "bos_token": "<nope>"})");
  expect_error([](J&) {}, "tokenizer_config.json: bos_token: <nope> is not a token of");
  fs::remove_all(dir);
}

// Added tokens with lstrip / rstrip take the whitespace around them; the leftmost match wins, then the
// longest; a normalized added token is matched in the normalized text.
TEST(HfFamilies, AddedTokensStripAndMatchLeftmostLongest) {
  const Tokenizer tok = load_hf_tokenizer((kFamilies / "split_behaviors" / "tokenizer.json").string());
  const std::int32_t mask = tok.special_id("[MASK]"), hello = tok.special_id("hello");
  EXPECT_EQ(tok.encode("  [MASK]  "), std::vector<std::int32_t>{mask});
  EXPECT_EQ(tok.encode("HELLO"), std::vector<std::int32_t>{hello});  // Lowercase runs before the match
  const Tokenizer ds = load_hf_tokenizer((kFamilies / "deepseek_v3" / "tokenizer.json").string());
  // "<｜tool▁calls▁begin｜>" and "<｜tool▁call▁begin｜>" share a prefix; each is found whole.
  EXPECT_EQ(ds.encode("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>"),
            (std::vector<std::int32_t>{ds.special_id("<｜tool▁calls▁begin｜>"), ds.special_id("<｜tool▁call▁begin｜>")}));
}

// A Split pattern with capture groups splits on the whole match, as Hugging Face's does.
TEST(HfFamilies, SplitRegexWithGroups) {
  const std::string source = read_file((kFamilies / "qwen2_5" / "tokenizer.json").string());
  auto j = nlohmann::json::parse(source);
  j["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(a)(b)|(\\s+)";
  const fs::path dir = fs::temp_directory_path() / "r1hpc_tok_groups";
  fs::create_directories(dir);
  write_file_atomic((dir / "tokenizer.json").string(), j.dump());
  const Tokenizer grouped = load_hf_tokenizer((dir / "tokenizer.json").string());
  // Isolated pieces "x", "ab", " ", "ab": each encodes as on its own.
  std::vector<std::int32_t> expected = grouped.encode("x");
  for (const char* piece : {"ab", " ", "ab"})
    for (std::int32_t id : grouped.encode(piece)) expected.push_back(id);
  EXPECT_EQ(grouped.encode("xab ab"), expected);
  EXPECT_EQ(grouped.decode(grouped.encode("xab ab")), "xab ab");
  fs::remove_all(dir);
}
