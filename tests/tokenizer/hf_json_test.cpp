#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.hpp"
#include "core/file_io.hpp"
#include "tokenizer/tokenizer.hpp"

using namespace r1;
namespace fs = std::filesystem;

namespace {

const std::string kFixture = std::string(R1HPC_TOKENIZER_FIXTURES) + "/hf_gpt2_bpe.json";

std::string temp_path(const std::string& name) { return (fs::temp_directory_path() / ("r1hpc_tok_" + name)).string(); }

void expect_same(const Tokenizer& a, const Tokenizer& b) {
  ASSERT_EQ(a.vocab_size(), b.vocab_size());
  for (std::int32_t id = 0; id < a.vocab_size(); ++id) EXPECT_EQ(a.token(id), b.token(id)) << id;
  EXPECT_EQ(a.merges(), b.merges());
  EXPECT_EQ(a.pre_tokenizer(), b.pre_tokenizer());
  EXPECT_EQ(a.special_ids().eos, b.special_ids().eos);
  EXPECT_EQ(a.special_ids().assistant, b.special_ids().assistant);
}

}  // namespace

// The fixture was trained by Hugging Face tokenizers (tests/tokenizer/make_hf_fixture.py), which also
// printed these encodings: r1hpc must split and merge exactly as the library does.
TEST(HfTokenizerJson, EncodesLikeHuggingFace) {
  const Tokenizer t = load_hf_tokenizer(kFixture);
  EXPECT_EQ(t.vocab_size(), 330);
  EXPECT_EQ(t.pre_tokenizer(), PreTokenizer::gpt2);
  EXPECT_EQ(t.special_ids().eos, 0);
  EXPECT_EQ(t.special_ids().think, 2);
  const std::vector<std::pair<std::string, std::vector<std::int32_t>>> cases{
      {"The fox jumps over 21 dogs.", {276, 228, 306, 95, 228, 311, 317, 90, 271, 329, 274, 228, 301, 78, 90, 21}},
      {"It's 33, isn't it?", {48, 91, 289, 283, 26, 19, 272, 85, 14, 91, 228, 308, 38}},
      {"Hello  there\n\nworld", {292, 315, 228, 288, 282, 206, 206, 94, 86, 89, 83, 75}},
      {"<think>7 times 3</think><answer>21</answer>", {2, 30, 266, 310, 283, 3, 4, 268, 5}}};
  for (const auto& [text, ids] : cases) {
    EXPECT_EQ(t.encode(text), ids) << text;
    EXPECT_EQ(t.decode(ids), text);
  }
}

TEST(HfTokenizerJson, SaveThenLoadGivesTheSameTokenizer) {
  const Tokenizer hf = load_hf_tokenizer(kFixture);
  const std::string path = temp_path("roundtrip.json");
  save_hf_tokenizer(hf, path);
  expect_same(hf, load_hf_tokenizer(path));

  const Tokenizer trained = train_bpe({"Primero, 7 por 3 es 21.", "First, 7 times 3 is 21.", "Primero, 5 por 3 es 15."}, 300, r1_special_tokens());
  save_hf_tokenizer(trained, path);
  const auto loaded = load_tokenizer(path);
  expect_same(trained, *loaded);
  const std::string text = "<|user|>¿Cuánto es 7 por 3?<|assistant|><think>Primero, 7 por 3 es 21.</think>";
  EXPECT_EQ(loaded->encode(text), trained.encode(text));
  fs::remove(path);
}

TEST(HfTokenizerJson, ErrorsNameTheFileAndKey) {
  const std::string path = temp_path("bad.json");
  auto expect_error = [&](const std::string& content, const std::string& key) {
    write_file_atomic(path, content);
    try {
      load_hf_tokenizer(path);
      ADD_FAILURE() << "no error for " << content;
    } catch (const Error& e) {
      EXPECT_NE(e.message().find(path), std::string::npos) << e.message();
      EXPECT_NE(e.message().find(key), std::string::npos) << e.message();
    }
  };
  expect_error("{not json", "not valid JSON");
  expect_error(R"({"model": {"type": "WordPiece"}})", "model.type");
  std::string text = read_file(kFixture);
  // ByteLevel without its regex is read now (Qwen, Llama-3, DeepSeek use it); an unknown type is not.
  const auto at = text.find("\"type\": \"ByteLevel\"", text.find("\"pre_tokenizer\""));
  expect_error(text.substr(0, at) + "\"type\": \"Whitespace\"" + text.substr(at + 19), "pre_tokenizer: pre-tokenizer type Whitespace");
  const auto merge = text.find("\"merges\": [");
  expect_error(text.substr(0, merge) + "\"merges\": [[\"zz\", \"q\"]," + text.substr(merge + 11), "model.merges[0]");
  // Found by tests/fuzz: an id far beyond the vocabulary sized a vector by it (std::bad_alloc, exit 1).
  const auto id = text.find(": 284,");
  expect_error(text.substr(0, id) + ": 2844294967296," + text.substr(id + 6), "id 2844294967296 is not an integer in [0, ");
  expect_error(R"({"model": {"type": 7, "vocab": {}, "merges": []}})", "unexpected JSON type");
  fs::remove(path);
}
