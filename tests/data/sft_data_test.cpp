// SFT data: JSONL loading and its errors, templates and the response-only loss mask, first-fit packing
// with per-example segments, truncation, per-epoch order keyed by global rows, and a model-level check
// that a packed row computes exactly what each of its examples computes alone.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "core/error.hpp"
#include "data/sft_data.hpp"
#include "model/model.hpp"
#include "support/error_of.hpp"
#include "support/tiny_model.hpp"

using namespace r1;

namespace {

using test::error_of;

// JSONL files written for one test and removed after it.
struct TempFiles {
  std::filesystem::path dir = std::filesystem::temp_directory_path() / ("r1hpc_sft_test_" + std::to_string(::getpid()));
  TempFiles() { std::filesystem::create_directories(dir); }
  ~TempFiles() { std::filesystem::remove_all(dir); }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string path = (dir / name).string();
    std::ofstream(path) << text;
    return path;
  }
};

// An example of `prompt` prompt tokens then `response` response tokens (the last one standing for the EOS);
// token values tag the example (100 x tag + index) so rows can be read back.
SftSequence sequence(int tag, int prompt, int response) {
  SftSequence s;
  for (int i = 0; i < prompt + response; ++i) s.tokens.push_back(100 * tag + i);
  s.response_start = prompt;
  return s;
}

SftPacking packing(std::int64_t seq_len, bool pack = true, bool shuffle = false) {
  return SftPacking{.seq_len = seq_len, .pack = pack, .loss_on_prompt = false, .shuffle = shuffle, .seed = 3, .pad = 7};
}

// Examples of a batch by their tag, each once per segment it starts.
std::vector<int> tags_in(const TokenBatch& b) {
  std::vector<int> tags;
  for (std::int64_t t = 0; t < b.batch * b.seq; ++t) {
    const bool starts = t % b.seq == 0 || b.segment_ids[t] != b.segment_ids[t - 1];
    if (starts && b.ids[t] != 7) tags.push_back(b.ids[t] / 100);
  }
  return tags;
}

}  // namespace

TEST(SftJsonl, LoadsPromptResponseAndProvenanceIgnoringOtherFields) {
  const TempFiles files;
  const std::string path = files.write("ok.jsonl", R"({"prompt": "2+2?", "response": "<answer>4</answer>", "kind": "math"})"
                                                   "\n\n"
                                                   R"({"response": "hola", "prompt": "hi", "provenance": {"step": 3}})"
                                                   "\n");
  const auto ex = load_sft_jsonl(path);
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[0].prompt, "2+2?");
  EXPECT_EQ(ex[0].response, "<answer>4</answer>");
  EXPECT_EQ(ex[0].provenance, path + ":1");
  EXPECT_EQ(ex[1].prompt, "hi");
  EXPECT_EQ(ex[1].provenance, path + ":3 {\"step\":3}");  // the blank line counts
}

TEST(SftJsonl, ErrorsNameFileAndLine) {
  const TempFiles files;
  const std::string ok = R"({"prompt": "a", "response": "b"})";
  const std::string bad_json = files.write("bad_json.jsonl", ok + "\n{\"prompt\": \"a\",\n");
  EXPECT_NE(error_of([&] { load_sft_jsonl(bad_json); }).find(bad_json + ":2: not a JSON object"), std::string::npos);
  const std::string missing = files.write("missing.jsonl", ok + "\n" + ok + "\n{\"prompt\": \"a\"}\n");
  EXPECT_NE(error_of([&] { load_sft_jsonl(missing); }).find(missing + ":3: expected a string field \"response\""),
            std::string::npos);
  const std::string number = files.write("number.jsonl", R"({"prompt": 5, "response": "b"})");
  EXPECT_NE(error_of([&] { load_sft_jsonl(number); }).find(number + ":1: expected a string field \"prompt\""),
            std::string::npos);
  const std::string empty_response = files.write("empty_response.jsonl", R"({"prompt": "a", "response": ""})");
  EXPECT_NE(error_of([&] { load_sft_jsonl(empty_response); }).find(empty_response + ":1: the response is empty"),
            std::string::npos);
  const std::string empty_prompt = files.write("empty_prompt.jsonl", ok + "\n" + R"({"prompt": "", "response": "b"})");
  EXPECT_NE(error_of([&] { load_sft_jsonl(empty_prompt); }).find(empty_prompt + ":2: the prompt is empty"), std::string::npos);
  const std::string array = files.write("array.jsonl", "[1, 2]\n");
  EXPECT_NE(error_of([&] { load_sft_jsonl(array); }).find(array + ":1: not a JSON object"), std::string::npos);
  const std::string blank = files.write("blank.jsonl", "\n\n");
  EXPECT_NE(error_of([&] { load_sft_jsonl(blank); }).find(blank + ": holds no examples"), std::string::npos);
}

TEST(SftTokenize, TemplateThenResponseThenEos) {
  const Tokenizer tok = byte_tokenizer();
  const SftExample e{"2+2?", "<think>ok</think><answer>4</answer>", "test"};
  const SftSequence chat = tokenize_example(e, PromptFormat(ChatTemplate::r1hpc_chat, tok));
  const auto prompt = tok.encode("<|user|>2+2?<|assistant|>");
  ASSERT_EQ(chat.response_start, static_cast<std::int64_t>(prompt.size()));
  EXPECT_TRUE(std::equal(prompt.begin(), prompt.end(), chat.tokens.begin()));
  EXPECT_EQ(tok.decode(std::span(chat.tokens).subspan(prompt.size(), chat.tokens.size() - prompt.size() - 1)), e.response);
  EXPECT_EQ(chat.tokens.back(), kTokEos);
  EXPECT_EQ(tokenize_example(e, PromptFormat(ChatTemplate::raw, tok)).response_start, 4);
  EXPECT_EQ(tok.decode(tokenize_example(e, PromptFormat(ChatTemplate::r1_zero, tok)).tokens).substr(0, 31), "A conversation between User and");
  EXPECT_EQ(PromptFormat(ChatTemplate::automatic, tok).kind(), ChatTemplate::r1hpc_chat);
}

TEST(SftSynthetic, ColdStartExamplesInBothLanguagesWithWorkedSolutions) {
  const auto a = synthetic_sft_examples(50, 4), b = synthetic_sft_examples(50, 4);
  ASSERT_EQ(a.size(), 50u);
  int reasoning = 0, spanish = 0, text = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].response, b[i].response);
    EXPECT_FALSE(a[i].response.empty());
    reasoning += a[i].response.starts_with("<think>") && a[i].response.ends_with("</answer>");
    spanish += a[i].provenance.find(":es") != std::string::npos;
    text += a[i].response.find("<think>") == std::string::npos;
  }
  EXPECT_EQ(reasoning, 40);
  EXPECT_EQ(text, 10);
  EXPECT_GT(spanish, 5);
  EXPECT_LT(spanish, 45);
}

TEST(SftPacking, FirstFitRowsWithSegmentsAndResponseOnlyTargets) {
  // Positions filled: 6, 5, 4, 3 into rows of 10: row 0 = examples 0 and 2, row 1 = examples 1 and 3.
  SftData d({sequence(1, 3, 4), sequence(2, 2, 4), sequence(3, 1, 4), sequence(4, 2, 2)}, packing(10));
  EXPECT_EQ(d.rows_in_epoch(0), 2);
  EXPECT_EQ(d.positions(), 18);
  const SftBatch sb = d.batch(0, 2, d.rows(1));
  const TokenBatch& b = sb.tokens;
  EXPECT_EQ(sb.filled, 18);
  EXPECT_EQ(sb.examples, 4);
  EXPECT_EQ(b.ids, (std::vector<std::int32_t>{100, 101, 102, 103, 104, 105, 300, 301, 302, 303,  //
                                              200, 201, 202, 203, 204, 400, 401, 402, 7, 7}));
  // Input t predicts token t + 1 of its own example, only where that token is a response token.
  EXPECT_EQ(b.targets, (std::vector<std::int32_t>{-1, -1, 103, 104, 105, 106, 301, 302, 303, 304,  //
                                                  -1, 202, 203, 204, 205, -1, 402, 403, -1, -1}));
  EXPECT_EQ(b.segment_ids, (std::vector<std::int32_t>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1,  //
                                                      0, 0, 0, 0, 0, 1, 1, 1, 2, 2}));
  EXPECT_EQ(b.counted(), 4 + 4 + 4 + 2);
  // Rows past the end are padding only.
  const SftBatch past = d.batch(1, 2, 2);
  EXPECT_EQ(past.examples, 2);
  EXPECT_TRUE(std::all_of(past.tokens.ids.begin() + 10, past.tokens.ids.end(), [](std::int32_t t) { return t == 7; }));
  EXPECT_EQ(past.tokens.counted(), 6);
}

TEST(SftPacking, LossOnPromptTrainsEveryPositionOfTheExample) {
  SftPacking p = packing(10);
  p.loss_on_prompt = true;
  SftData d({sequence(1, 3, 4)}, p);
  EXPECT_EQ(d.batch(0, 1, 1).tokens.targets, (std::vector<std::int32_t>{101, 102, 103, 104, 105, 106, -1, -1, -1, -1}));
}

TEST(SftPacking, UnpackedRowsHoldOneExampleEach) {
  SftData d({sequence(1, 3, 4), sequence(2, 2, 4), sequence(3, 1, 4)}, packing(10, false));
  EXPECT_EQ(d.rows_in_epoch(0), 3);
  EXPECT_EQ(tags_in(d.batch(0, 3, 3).tokens), (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(d.batch(0, 3, 3).filled, 6 + 5 + 4);
}

TEST(SftPacking, LongExamplesAreTruncatedAndPromptOnlyOnesDropped) {
  // seq_len 8 keeps 9 tokens: example 1 loses the end of its response; example 2's prompt fills the row.
  SftData d({sequence(1, 3, 10), sequence(2, 9, 2), sequence(3, 2, 2)}, packing(8));
  EXPECT_EQ(d.examples(), 2);
  EXPECT_EQ(d.truncated(), 2);
  EXPECT_EQ(d.without_loss(), 1);
  const TokenBatch b = d.batch(0, 2, 2).tokens;
  EXPECT_EQ(std::vector<std::int32_t>(b.ids.begin(), b.ids.begin() + 8), (std::vector<std::int32_t>{100, 101, 102, 103, 104, 105, 106, 107}));
  EXPECT_EQ(b.targets[7], 108);
  EXPECT_NE(error_of([] { SftData({sequence(1, 9, 2)}, packing(8)); }).find("no SFT example keeps a response token"),
            std::string::npos);
}

TEST(SftPacking, EveryEpochHoldsEveryExampleOnceInAnOrderKeyedBySeedAndEpoch) {
  std::vector<SftSequence> seqs;
  for (int i = 0; i < 40; ++i) seqs.push_back(sequence(i + 1, 1 + i % 4, 2 + (i * 7) % 9));
  SftData d(seqs, packing(24, true, true));
  std::vector<std::vector<int>> orders;
  std::int64_t first = 0;
  for (std::int64_t e = 0; e < 3; ++e) {
    const std::int64_t rows = d.rows_in_epoch(e);
    const std::vector<int> tags = tags_in(d.batch(first, rows, d.rows(3)).tokens);
    EXPECT_EQ(std::set<int>(tags.begin(), tags.end()).size(), 40u) << "epoch " << e;
    EXPECT_EQ(tags.size(), 40u);
    EXPECT_NEAR(d.epoch_progress(first + rows), static_cast<double>(e + 1), 1e-12);
    orders.push_back(tags);
    first += rows;
  }
  EXPECT_NE(orders[0], orders[1]);
  // Any split of the global rows reads the same rows: row by row equals all at once, across the epoch edge.
  const std::int64_t edge = d.rows_in_epoch(0);
  const TokenBatch whole = d.batch(edge - 2, 4, d.rows(3)).tokens;
  for (std::int64_t r = 0; r < 4; ++r) {
    const TokenBatch one = d.batch(edge - 2 + r, 1, d.rows(3)).tokens;
    EXPECT_TRUE(std::equal(one.ids.begin(), one.ids.end(), whole.ids.begin() + r * 24));
    EXPECT_TRUE(std::equal(one.segment_ids.begin(), one.segment_ids.end(), whole.segment_ids.begin() + r * 24));
  }
  // The same seed gives the same rows in a fresh object (reading epoch 2 first); another seed does not.
  SftData again(seqs, packing(24, true, true));
  EXPECT_EQ(again.batch(d.rows(2), 3, d.rows(3)).tokens.ids, d.batch(d.rows(2), 3, d.rows(3)).tokens.ids);
  SftPacking other = packing(24, true, true);
  other.seed = 4;
  EXPECT_NE(SftData(seqs, other).batch(0, 3, 100).tokens.ids, d.batch(0, 3, 100).tokens.ids);
}

// A packed row gives every example the logits it gets alone: no attention across samples, positions restart.
TEST(SftPacking, PackedRowLogitsEqualEachExampleAlone) {
  const ModelConfig c = test::tiny_model(
      {.vocab_size = 48, .dim = 32, .dense_inter_dim = 48, .moe_inter_dim = 16, .kv_lora_rank = 16, .max_seq_len = 32});
  ParamStore ps(kernels::Context::cpu(), DType::f32);
  Model m(c, ps);
  ps.initialize(9, c.init_std);

  std::vector<SftSequence> seqs;
  for (int e = 0; e < 3; ++e) {
    SftSequence s;
    for (int i = 0; i < 7 + 3 * e; ++i) s.tokens.push_back((5 * e + 11 * i + 3) % 40);
    s.response_start = 2 + e;
    seqs.push_back(s);
  }
  SftData d(seqs, SftPacking{.seq_len = 32, .pack = true, .shuffle = false, .seed = 1, .pad = 41});
  ASSERT_EQ(d.rows_in_epoch(0), 1);
  const TokenBatch row = d.batch(0, 1, 1).tokens;
  const DeviceBatch db = m.upload(row);
  Tensor pos = Tensor::host({32}, DType::i32);
  copy(pos, db.shape.positions);
  ForwardResult r;
  auto saved = m.forward(db, r);
  Tensor packed = Tensor::host(Model::logits(*saved).shape(), DType::f32);
  copy(packed, Model::logits(*saved));

  std::int64_t at = 0;
  for (const SftSequence& s : seqs) {
    const std::int64_t n = static_cast<std::int64_t>(s.tokens.size()) - 1;
    TokenBatch alone;
    alone.batch = 1;
    alone.seq = n;
    alone.ids.assign(s.tokens.begin(), s.tokens.end() - 1);
    alone.targets.assign(static_cast<std::size_t>(n), -1);
    ForwardResult ra;
    auto sa = m.forward(m.upload(alone), ra);
    Tensor logits = Tensor::host(Model::logits(*sa).shape(), DType::f32);
    copy(logits, Model::logits(*sa));
    double worst = 0;
    for (std::int64_t t = 0; t < n; ++t) {
      EXPECT_EQ(pos.data<std::int32_t>()[at + t], t);  // RoPE positions restart in every segment
      for (std::int64_t v = 0; v < c.vocab_size; ++v)
        worst = std::max(worst, static_cast<double>(std::abs(packed.data<float>()[(at + t) * c.vocab_size + v] -
                                                             logits.data<float>()[t * c.vocab_size + v])));
    }
    EXPECT_LT(worst, 1e-5) << "example at position " << at;
    at += n;
  }
  EXPECT_EQ(at, 6 + 9 + 12);
}
