#include <gtest/gtest.h>

#include <fstream>
#include <utility>

#include "deck/validate.hpp"
#include "deck_test_util.hpp"

namespace r1 {
namespace {

using test::ScratchDir;
using test::user_error_of;
namespace fs = std::filesystem;

Deck tiny(const std::string& more = {}, const std::vector<std::string>& sets = {}) {
  return Deck::parse("[model]\npreset = tiny\n" + more, "t.deck", sets);
}

void write(const fs::path& file, const std::string& text) {
  fs::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

TEST(ValidateDeck, DataParallelFillsWhatTensorAndPipelineLeave) {
  EXPECT_NO_THROW(validate_deck(tiny("[parallel]\ntensor = 2\npipeline = 2\nexpert = 4\n"), 8));
  EXPECT_NO_THROW(validate_deck(tiny("[parallel]\ntensor = 2\ndata = 4\n"), 8));
  EXPECT_NO_THROW(validate_deck(tiny("[parallel]\nexpert = 8\n"), 8));
}

TEST(ValidateDeck, ExpertsFoldOverDataTimesTensor) {
  // 4 ranks = 2 data x 2 tensor: 4 expert ranks fit although there are only 2 data replicas.
  EXPECT_NO_THROW(validate_deck(tiny("[parallel]\ntensor = 2\nexpert = 4\n"), 4));
}

TEST(ValidateDeck, TheInterleavedScheduleFitsItsStages) {
  EXPECT_NO_THROW(validate_deck(tiny("n_layers = 4\n[parallel]\npipeline = 2\nvirtual_stages = 2\nschedule = interleaved\n"), 2));
}

// DualPipeV cuts the model into 2 x pipeline chunks on a V, without virtual stages.
TEST(ValidateDeck, TheDualPipeVScheduleCutsTwiceThePipelineChunks) {
  EXPECT_NO_THROW(validate_deck(tiny("n_layers = 4\n[parallel]\npipeline = 2\nschedule = dualpipev\n"), 2));
  const std::string odd = user_error_of([] { validate_deck(tiny("n_layers = 3\n[parallel]\npipeline = 3\nschedule = dualpipev\n"), 3); });
  EXPECT_NE(odd.find("2 x pipeline = 6 must divide n_layers"), std::string::npos) << odd;
  const std::string virt = user_error_of(
      [] { validate_deck(tiny("n_layers = 8\n[parallel]\npipeline = 2\nvirtual_stages = 2\nschedule = dualpipev\n"), 2); });
  EXPECT_NE(virt.find("[parallel] virtual_stages = 2: virtual_stages > 1 needs schedule = interleaved (dualpipev"),
            std::string::npos) << virt;
}

// The bidirectional DualPipe cuts the model into pipeline stages (each rank holds two, one a copy), pairs rank r
// with pipeline - 1 - r (an even pipeline) and feeds half the micro-batches from each end (an even number, at
// least 2 x pipeline) in pretrain and sft; each refusal names its key.
TEST(ValidateDeck, TheDualPipeScheduleNeedsAnEvenPipelineAndMicroBatches) {
  const auto pretrain = [](const std::string& parallel, std::int64_t global_batch) {
    return tiny("n_layers = 2\n[run]\nstage = pretrain\nmax_steps = 10\n[data]\nsource = synthetic\n[train]\nglobal_batch = " +
                std::to_string(global_batch) + "\n[parallel]\nschedule = dualpipe\n" + parallel);
  };
  EXPECT_NO_THROW(validate_deck(pretrain("pipeline = 2\n", 4), 2));
  EXPECT_NO_THROW(validate_deck(pretrain("pipeline = 2\nsplit_weight_grad = true\n", 4), 2));
  const std::pair<std::string, std::string> refused[] = {
      {user_error_of([&] { validate_deck(pretrain("pipeline = 3\n", 6), 3); }),
       "[parallel] pipeline = 3: schedule = dualpipe feeds micro-batches from both ends and pairs rank r with rank "
       "pipeline - 1 - r: it needs an even pipeline"},
      {user_error_of([&] { validate_deck(pretrain("pipeline = 4\n", 8), 4); }), "pipeline = 4 must divide n_layers"},
      {user_error_of([&] { validate_deck(pretrain("pipeline = 2\n", 2), 2); }),
       "[train] global_batch = 2: schedule = dualpipe needs at least 2 x pipeline = 4 micro-batches per step"},
      {user_error_of([&] { validate_deck(pretrain("pipeline = 2\n", 5), 2); }),
       "[train] global_batch = 5: schedule = dualpipe feeds half the micro-batches from each end: it needs an even number"},
      {user_error_of([&] { validate_deck(pretrain("pipeline = 2\nvirtual_stages = 2\n", 4), 2); }),
       "[parallel] virtual_stages = 2: virtual_stages > 1 needs schedule = interleaved (dualpipev and dualpipe"}};
  for (const auto& [msg, want] : refused) EXPECT_NE(msg.find(want), std::string::npos) << msg;
}

// The weight-gradient split is dualpipev's and dualpipe's: with either over two stages it passes, otherwise it
// fails on its line.
TEST(ValidateDeck, SplitWeightGradNeedsADualPipeSchedule) {
  EXPECT_NO_THROW(validate_deck(tiny("n_layers = 4\n[parallel]\npipeline = 2\nschedule = dualpipev\nsplit_weight_grad = true\n"), 2));
  EXPECT_NO_THROW(validate_deck(tiny("n_layers = 4\n[parallel]\npipeline = 2\nschedule = dualpipe\nsplit_weight_grad = true\n"), 2));
  for (const char* deck : {"n_layers = 4\n[parallel]\npipeline = 2\nsplit_weight_grad = true\n",
                           "n_layers = 4\n[parallel]\nschedule = dualpipev\nsplit_weight_grad = true\n"}) {
    const std::string msg = user_error_of([&] { validate_deck(tiny(deck), 2); });
    EXPECT_NE(msg.find("[parallel] split_weight_grad = true: split_weight_grad = true needs schedule = dualpipev or dualpipe"),
              std::string::npos) << msg;
  }
}

// precision = fp8 trains the MLA family (model/linear.hpp) and refuses the GQA students on its own line.
TEST(ValidateDeck, Fp8IsOfferedForMlaOnly) {
  EXPECT_EQ(validate_deck(tiny("[train]\nprecision = fp8\n"), 1).train.precision, Precision::fp8);
  const std::string msg = user_error_of([&] {
    validate_deck(Deck::parse("[model]\narch = qwen3\ndense = true\n[train]\nprecision = fp8\n", "t.deck", {}), 1);
  });
  EXPECT_NE(msg.find("t.deck:5: [train] precision = fp8: fp8 trains the MLA family only"), std::string::npos) << msg;
}

TEST(ValidateDeck, SyntheticLevelsAreOneToFourWeightsNotAllZero) {
  EXPECT_EQ(validate_deck(tiny("[data]\nsynthetic_levels = 1, 0, 2\n"), 1).data.synthetic_levels,
            (std::vector<std::int64_t>{1, 0, 2}));
  for (const char* bad : {"0, 0", "1, 1, 1, 1, 1", ""}) {
    const std::string msg = user_error_of([&] { validate_deck(tiny(std::string("[data]\nsynthetic_levels = ") + bad + "\n"), 1); });
    EXPECT_NE(msg.find("t.deck:4: [data] synthetic_levels"), std::string::npos) << msg;
    EXPECT_NE(msg.find("expected 1 to 4 weights"), std::string::npos) << msg;
  }
}

// A choice that is not implemented is not offered: a deck naming one fails on its line like any other word.
TEST(ValidateDeck, ChoicesNotImplementedAreNotOffered) {
  const std::pair<const char*, const char*> refused[] = {
      {"[train]\nrecompute = selective\n", "t.deck:4: [train] recompute = selective: not a valid choice"},
      {"[optim]\nmoment_precision = fp16\n", "t.deck:4: [optim] moment_precision = fp16: not a valid choice"}};
  for (const auto& [deck, want] : refused) {
    const std::string msg = user_error_of([&] { tiny(deck); });
    EXPECT_NE(msg.find(want), std::string::npos) << msg;
  }
}

TEST(ValidateDeck, UnevenLayersSplitWithEmbeddingHeadAndMtpCountedAsLayers) {
  // DeepSeek-V3 on PP16: 61 layers + embedding + head + MTP = 64 = 16 x 4.
  EXPECT_NO_THROW(validate_deck(Deck::parse("[model]\npreset = v3-671b\n[parallel]\npipeline = 16\n", "v3.deck"), 16));
  // 3 layers on 5 stages: 3 + 2 = 5 units, but the first and last stage would hold no layer.
  EXPECT_THROW(validate_deck(tiny("n_layers = 3\n[parallel]\npipeline = 5\n"), 5), Error);
}

TEST(ValidateDeck, ADenseModelIgnoresTheMoeKeysAndTheExpertLayout) {
  EXPECT_NO_THROW(validate_deck(tiny("dense = true\nn_activated_experts = 64\nn_expert_groups = 3\n[parallel]\nexpert = 3\n"), 1));
}

TEST(ValidateDeck, ARuleBetweenTwoKeysNamesTheLineTheUserWrote) {
  // seq_len keeps its default; the deck's max_seq_len is the line to fix.
  const std::string msg = user_error_of([] { validate_deck(tiny("max_seq_len = 128\n"), 1); });
  EXPECT_EQ(msg, "t.deck:3: [model] max_seq_len = 128: seq_len must be at most max_seq_len; [data] seq_len = 256 (default)");
}

TEST(ValidateDeck, AnOverrideIsNamedAsTheSetArgument) {
  const std::string msg = user_error_of([] { validate_deck(tiny({}, {"parallel.tensor=3"}), 3); });
  EXPECT_TRUE(msg.starts_with("--set parallel.tensor=3: [parallel] tensor = 3: tensor must divide n_heads")) << msg;
}

TEST(ValidateDeck, NamedInputFilesMustExist) {
  ScratchDir dir;
  write(dir.path() / "train.jsonl", "{}\n");
  const std::string deck = "[run]\nstage = sft\n[data]\ntrain_path = " + (dir.path() / "train.jsonl").string() + "\n";
  EXPECT_NO_THROW(validate_deck(tiny(deck), 1));
  const std::string msg = user_error_of([&] { validate_deck(tiny("[reward]\nhelpfulness_model = " + (dir.path() / "rm").string() + "\n"), 1); });
  EXPECT_NE(msg.find("t.deck:4: [reward] helpfulness_model = "), std::string::npos) << msg;
  EXPECT_NE(msg.find("no such file or directory"), std::string::npos) << msg;
}

TEST(ValidateDeck, ValidationWritesNothing) {
  ScratchDir dir;
  const fs::path out = dir.path() / "new_run";
  validate_deck(tiny("[run]\noutput_dir = " + out.string() + "\n"), 1);
  EXPECT_FALSE(fs::exists(out));
}

// An output directory that already holds checkpoints, with the resolved deck of the run that wrote them.
class ExistingRun : public ::testing::Test {
 protected:
  void SetUp() override {
    out_ = dir_.path() / "run";
    write(out_ / "checkpoints" / "latest", "step-00000100\n");
    const Deck theirs = deck();
    write(out_ / std::string(kResolvedDeckName), theirs.resolved_text());
  }
  Deck deck(const std::vector<std::string>& sets = {}) const {
    std::vector<std::string> all{"run.output_dir=" + out_.string()};
    all.insert(all.end(), sets.begin(), sets.end());
    return tiny("[run]\nstage = pretrain\nmax_steps = 100\n[data]\nsource = synthetic\n", all);
  }
  ScratchDir dir_;
  fs::path out_;
};

TEST_F(ExistingRun, TheSameRunMayRestartInIt) { EXPECT_NO_THROW(validate_deck(deck({"run.max_steps=500"}), 1)); }

TEST_F(ExistingRun, AnotherModelIsRejectedNamingTheDifference) {
  const std::string msg = user_error_of([&] { validate_deck(deck({"model.dim=64"}), 1); });
  EXPECT_TRUE(msg.starts_with("--set run.output_dir=")) << msg;
  EXPECT_NE(msg.find("of another run: its " + (out_ / "deck.resolved.ini").string() + " has [model] dim = 128, this deck 64"),
            std::string::npos)
      << msg;
}

TEST_F(ExistingRun, ResumingWithLoadLatestIsAllowedWhateverChanged) {
  EXPECT_NO_THROW(validate_deck(deck({"model.dim=64", "checkpoint.load=latest"}), 1));
}

TEST_F(ExistingRun, StepDirectoriesCountAsCheckpointsToo) {
  fs::remove(out_ / "checkpoints" / "latest");
  fs::remove(out_ / std::string(kResolvedDeckName));
  fs::create_directories(out_ / "checkpoints" / "step-00000005");
  const std::string msg = user_error_of([&] { validate_deck(deck(), 1); });
  EXPECT_NE(msg.find("holds checkpoints in " + (out_ / "checkpoints").string() + " of another run"), std::string::npos) << msg;
}

TEST_F(ExistingRun, AnExplicitCheckpointDirectoryIsCheckedOnItsOwnLine) {
  const std::string msg = user_error_of([&] {
    validate_deck(Deck::parse("[model]\npreset = tiny\n[checkpoint]\ndir = " + (out_ / "checkpoints").string() + "\n", "c.deck"), 1);
  });
  EXPECT_TRUE(msg.starts_with("c.deck:4: [checkpoint] dir = ")) << msg;
}

}  // namespace
}  // namespace r1
