// Real Hugging Face tokenizer families (fixtures made by tests/tokenizer/make_family_fixtures.py with the
// `tokenizers` library): r1hpc gives the library's ids and decoded text on a multilingual corpus.
#include <gtest/gtest.h>

#include <filesystem>
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
