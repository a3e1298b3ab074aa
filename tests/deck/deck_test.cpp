#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>

#include "deck/deck.hpp"
#include "deck_test_util.hpp"

namespace r1 {
namespace {

using test::ScratchDir;
using test::user_error_of;
using Kind = DeckOrigin::Kind;

void write(const std::filesystem::path& file, const std::string& text) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << text;
}

TEST(Deck, AnEmptyDeckHoldsTheDefaults) {
  const Deck d = Deck::parse("", "empty.deck");
  EXPECT_EQ(d.get_string("run.stage"), "self_check");
  EXPECT_EQ(d.get_int("model.dim"), 128);
  EXPECT_DOUBLE_EQ(d.get_float("optim.beta2"), 0.95);
  EXPECT_TRUE(d.get_bool("parallel.zero1"));
  EXPECT_EQ(d.get_ints("evaluate.pass_k"), std::vector<std::int64_t>{1});
  EXPECT_TRUE(d.is_default("model.dim"));
  EXPECT_EQ(d.origin("model.dim").describe(), "default");
  EXPECT_TRUE(d.preset_file().empty());
}

TEST(Deck, ValuesCarryTheirTypeAndTheirLine) {
  const Deck d = Deck::parse(
      "# comment line\n[run]\nstage = sft   # trailing comment\nseed = 7\n\n[optim]\nlr = 1e-3\n"
      "[parallel]\nsequence_parallel = yes\n[evaluate]\npass_k = 1, 4,16\n[log]\nprofile_steps =\n",
      "runs.deck");
  EXPECT_EQ(d.get_string("run.stage"), "sft");
  EXPECT_EQ(d.get_int("run.seed"), 7);
  EXPECT_DOUBLE_EQ(d.get_float("optim.lr"), 1e-3);
  EXPECT_TRUE(d.get_bool("parallel.sequence_parallel"));
  EXPECT_EQ(d.get_ints("evaluate.pass_k"), (std::vector<std::int64_t>{1, 4, 16}));
  EXPECT_TRUE(d.get_ints("log.profile_steps").empty());
  EXPECT_EQ(d.origin("run.seed").where(), "runs.deck:4");
  EXPECT_EQ(d.origin("optim.lr").kind, Kind::deck);
  EXPECT_EQ(d.describe("optim.lr"), "[optim] lr = 0.001");
}

TEST(Deck, ACheckpointsModelIsReadPastKeysSinceRetired) {
  // A resolved deck of a checkpoint written when [sft] / [grpo] / [sampling] had a template key.
  const std::string resolved = "[run]\nstage = sft\n[model]\ndim = 96\nn_heads = 3\n[sft]\ntemplate = chat\n[grpo]\ntemplate = r1-zero\n";
  EXPECT_THROW(Deck::parse(resolved, "old/index.h5"), Error);
  const ModelConfig m = Deck::model_of(resolved, "old/index.h5").config().model;
  EXPECT_EQ(m.dim, 96);
  EXPECT_EQ(m.n_heads, 3);
}

TEST(Deck, ItsConfigHoldsEveryValueInItsTypedMember) {
  const Deck d = Deck::parse(
      "[run]\nstage = sft\nseed = 7\n[model]\nscore_func = softmax\n[parallel]\norder = dp-tp-pp\n"
      "[data]\nchat_template = r1hpc-chat\n[grpo]\nadv_std_scale = false\n[sampling]\nmax_new_tokens = 64\n[evaluate]\npass_k = 1, 4\n",
      "c.deck");
  const RunConfig c = d.config();
  EXPECT_EQ(c.run.stage, Stage::sft);
  EXPECT_EQ(c.run.seed, 7);
  EXPECT_EQ(c.model.score_func, RouterScore::softmax);
  EXPECT_EQ(c.parallel.order, "dp-tp-pp");
  EXPECT_EQ(c.data.chat_template, ChatTemplate::r1hpc_chat);
  EXPECT_EQ(c.evaluate.pass_k, (std::vector<std::int64_t>{1, 4}));
  // The fields that follow from other keys.
  EXPECT_FALSE(c.model.normalize_gates);
  EXPECT_EQ(c.grpo.adv_scale, AdvScale::none);
  EXPECT_EQ(c.grpo.max_completion_tokens, 64);
  EXPECT_TRUE(Deck::parse("", "empty.deck").config() == RunConfig{});
}

TEST(Deck, WindowsLineEndsAreAccepted) {
  const Deck d = Deck::parse("[run]\r\nstage = sft\r\nseed = 3\r\n", "crlf.deck");
  EXPECT_EQ(d.get_string("run.stage"), "sft");
  EXPECT_EQ(d.origin("run.seed").line, 3);
}

TEST(Deck, APresetFillsTheModelKeysAndTheDecksOwnKeysWin) {
  const Deck d = Deck::parse("[model]\npreset = tiny\ndim = 256\n", "mine.deck");
  EXPECT_EQ(d.get_int("model.dim"), 256);
  EXPECT_EQ(d.origin("model.dim").where(), "mine.deck:3");
  EXPECT_EQ(d.get_int("model.n_routed_experts"), 8);
  const DeckOrigin& o = d.origin("model.n_routed_experts");
  EXPECT_EQ(o.kind, Kind::preset);
  EXPECT_TRUE(o.file.ends_with("inputs/models/tiny.deck")) << o.file;
  EXPECT_EQ(o.file, d.preset_file());
  EXPECT_EQ(o.describe(), "preset " + o.file + ":" + std::to_string(o.line));
  EXPECT_EQ(d.origin("run.stage").kind, Kind::default_value);
}

TEST(Deck, SetOverridesTheDeckAndThePresetAndTheLastSetWins) {
  const Deck d = Deck::parse("[model]\npreset = tiny\ndim = 256\n", "mine.deck",
                             {"model.dim=64", "model.n_layers=4", "model.n_layers=6"});
  EXPECT_EQ(d.get_int("model.dim"), 64);
  EXPECT_EQ(d.origin("model.dim").describe(), "--set model.dim=64");
  EXPECT_EQ(d.get_int("model.n_layers"), 6);
  EXPECT_EQ(d.origin("model.n_layers").where(), "--set model.n_layers=6");
}

TEST(Deck, SetMayChooseThePreset) {
  const Deck d = Deck::parse("[model]\npreset = tiny\n", "mine.deck", {"model.preset=bench"});
  EXPECT_EQ(d.get_int("model.vocab_size"), 102400);
  EXPECT_EQ(d.get_string("model.score_func"), "softmax");
}

TEST(Deck, APresetPathIsRelativeToTheDeckAndANameLooksInTheDecksDirectoryFirst) {
  ScratchDir dir;
  write(dir.path() / "models" / "wide.deck", "[model]\ndim = 512\n");
  write(dir.path() / "tiny.deck", "# shadows inputs/models/tiny.deck\n[model]\ndim = 96\n");
  write(dir.path() / "a.deck", "[model]\npreset = models/wide.deck\n");
  write(dir.path() / "b.deck", "[model]\npreset = tiny\n");
  EXPECT_EQ(Deck::load(dir.path() / "a.deck").get_int("model.dim"), 512);
  const Deck b = Deck::load(dir.path() / "b.deck");
  EXPECT_EQ(b.get_int("model.dim"), 96);
  EXPECT_EQ(b.origin("model.dim").line, 3);
}

TEST(Deck, R1hpcInputsNamesAnotherPresetDirectory) {
  ScratchDir dir;
  write(dir.path() / "models" / "site.deck", "[model]\nn_layers = 12\n");
  ::setenv("R1HPC_INPUTS", dir.path().c_str(), 1);
  const Deck d = Deck::parse("[model]\npreset = site\n", "elsewhere.deck");
  ::unsetenv("R1HPC_INPUTS");
  EXPECT_EQ(d.get_int("model.n_layers"), 12);
}

TEST(Deck, APresetValueIsCheckedEvenWhereTheDeckOverridesIt) {
  ScratchDir dir;
  write(dir.path() / "p.deck", "[model]\ndim = wide\n");
  write(dir.path() / "d.deck", "[model]\npreset = p.deck\ndim = 64\n");
  const std::string msg = user_error_of([&] { Deck::load(dir.path() / "d.deck"); });
  EXPECT_NE(msg.find("p.deck:2: [model] dim = wide: not an integer"), std::string::npos) << msg;
}

TEST(Deck, PathValuesExpandEnvironmentVariables) {
  ::setenv("R1HPC_TEST_SCRATCH", "/scratch/me", 1);
  const Deck d = Deck::parse("[run]\noutput_dir = ${R1HPC_TEST_SCRATCH}/r1/$run\n", "env.deck");
  ::unsetenv("R1HPC_TEST_SCRATCH");
  EXPECT_EQ(d.get_string("run.output_dir"), "/scratch/me/r1/$run");
}

TEST(Deck, TheResolvedTextReadsBackToTheSameValuesWithoutThePreset) {
  const Deck d = Deck::parse("[model]\npreset = tiny\n[optim]\nlr = 1e-3\n", "mine.deck", {"model.dim=64"});
  const std::string text = d.resolved_text();
  EXPECT_NE(text.find("dim = 64"), std::string::npos);
  EXPECT_NE(text.find("# --set model.dim=64"), std::string::npos);
  EXPECT_NE(text.find("# mine.deck:4"), std::string::npos);
  const Deck back = Deck::parse(text, "deck.resolved.ini");
  EXPECT_TRUE(back.preset_file().empty());
  for (const KeyDecl& k : deck_keys()) {
    if (k.full_name() == "model.preset") continue;
    EXPECT_EQ(back.value_text(k.full_name()), d.value_text(k.full_name())) << k.full_name();
  }
}

TEST(Deck, ReadsADeckFileAndReportsAMissingOneAsAUserError) {
  ScratchDir dir;
  write(dir.path() / "x.deck", "[run]\nstage = sft\n");
  EXPECT_EQ(Deck::load(dir.path() / "x.deck").get_string("run.stage"), "sft");
  const std::string msg = user_error_of([&] { Deck::load(dir.path() / "none.deck"); });
  EXPECT_NE(msg.find("cannot read deck"), std::string::npos) << msg;
}

TEST(Deck, FailNamesTheLineOrTheDeckForADefault) {
  const Deck d = Deck::parse("[train]\nmicro_batch = 4\n", "f.deck");
  EXPECT_EQ(user_error_of([&] { d.fail("train.micro_batch", "too big"); }), "f.deck:2: [train] micro_batch = 4: too big");
  EXPECT_EQ(user_error_of([&] { d.fail("train.global_batch", "odd"); }), "f.deck: [train] global_batch = 0 (default): odd");
  EXPECT_EQ(d.mention("train.micro_batch"), "[train] micro_batch = 4 (f.deck:2)");
}

TEST(Deck, AskingForAnUndeclaredKeyOrTheWrongTypeIsAnInternalError) {
  const Deck d = Deck::parse("", "empty.deck");
  try {
    d.get_int("model.no_such_key");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::internal);
  }
  try {
    d.get_int("run.stage");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::internal);
    EXPECT_NE(std::string(e.what()).find("has type enum, not int"), std::string::npos) << e.what();
  }
}

TEST(Deck, CheckpointsGoUnderTheOutputDirectoryUnlessTheDeckSaysOtherwise) {
  EXPECT_EQ(checkpoint_dir(Deck::parse("[run]\noutput_dir = runs/a\n", "c.deck").config()),
            std::filesystem::path("runs/a/checkpoints"));
  EXPECT_EQ(checkpoint_dir(Deck::parse("[checkpoint]\ndir = /lustre/ck\n", "c.deck").config()), std::filesystem::path("/lustre/ck"));
}

}  // namespace
}  // namespace r1
