#include <gtest/gtest.h>

#include "deck/validate.hpp"
#include "deck_test_util.hpp"

namespace r1 {
namespace {

using test::source_dir;

Deck preset(const std::string& name) { return Deck::parse("[model]\npreset = " + name + "\n", "p.deck"); }

// Parameters of a DeepSeek-V3-style model as its preset describes it: total, and activated per token
// (the convention of the MFU formula: LM head included, embedding lookup not, MTP not).
struct Params {
  double total = 0, activated = 0;
};

Params count_params(const Deck& d) {
  auto i = [&](const char* key) { return static_cast<double>(d.get_int(std::string("model.") + key)); };
  const double dim = i("dim"), heads = i("n_heads"), qk = i("qk_nope_head_dim") + i("qk_rope_head_dim");
  const double q = i("q_lora_rank") == 0 ? dim * heads * qk : dim * i("q_lora_rank") + i("q_lora_rank") + i("q_lora_rank") * heads * qk;
  const double kv = dim * (i("kv_lora_rank") + i("qk_rope_head_dim")) + i("kv_lora_rank") +
                    i("kv_lora_rank") * heads * (i("qk_nope_head_dim") + i("v_head_dim"));
  const double attention = q + kv + heads * i("v_head_dim") * dim + 2 * dim;  // + wo, + two RMSNorms
  const double expert = 3 * dim * i("moe_inter_dim");
  const double router = dim * i("n_routed_experts");
  const double moe_total = router + (i("n_routed_experts") + i("n_shared_experts")) * expert;
  const double moe_active = router + (i("n_activated_experts") + i("n_shared_experts")) * expert;
  const double dense = 3 * dim * i("dense_inter_dim"), dense_layers = i("n_dense_layers"), moe_layers = i("n_layers") - dense_layers;
  const double body = i("n_layers") * attention + dense_layers * dense + dim;  // + final norm
  const double head = i("vocab_size") * dim;
  return {body + moe_layers * moe_total + 2 * head, body + moe_layers * moe_active + head};
}

TEST(Presets, EachValidatesAndSetsEveryModelKeyItself) {
  for (const char* name : {"tiny", "small", "bench", "v2-lite-16b", "v3-671b"}) {
    const Deck d = preset(name);
    EXPECT_NO_THROW(validate_deck(d, 1)) << name;
    for (const KeyDecl& k : deck_keys()) {
      if (k.section != "model" || k.key == "preset") continue;
      EXPECT_EQ(d.origin(k.full_name()).kind, DeckOrigin::Kind::preset) << name << " leaves " << k.key << " to its default";
    }
  }
}

TEST(Presets, HaveTheirAdvertisedSizes) {
  EXPECT_EQ(count_params(preset("tiny")).total, 587520);
  EXPECT_NEAR(count_params(preset("small")).total, 101.6e6, 0.1e6);
  EXPECT_NEAR(count_params(preset("v2-lite-16b")).total, 15.7e9, 0.05e9);
  const Params v3 = count_params(preset("v3-671b"));
  EXPECT_NEAR(v3.total, 671e9, 0.5e9);
  EXPECT_NEAR(v3.activated, 37e9, 0.5e9);
}

TEST(Presets, BenchIsTheDesignsPerformanceStandard) {
  const Deck d = preset("bench");
  const Params p = count_params(d);
  EXPECT_NEAR(p.total, 2.25e9, 0.01e9);
  EXPECT_NEAR(p.activated, 0.54e9, 0.005e9);
  // FLOPs/token = 6 x activated + 6 x layers x seq x heads x (d_qk + d_v) at sequence 4096.
  const double attention = 6.0 * d.get_int("model.n_layers") * 4096 * d.get_int("model.n_heads") *
                           (d.get_int("model.qk_nope_head_dim") + d.get_int("model.qk_rope_head_dim") + d.get_int("model.v_head_dim"));
  EXPECT_NEAR(6 * p.activated + attention, 3.74e9, 0.01e9);
}

TEST(ExampleDecks, ValidateOnTheRankCountsTheyAreWrittenFor) {
  EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/quickstart/self_check.deck"), 1));
  EXPECT_NO_THROW(validate_deck(Deck::load(source_dir() / "inputs/pipeline/00_pretrain_tiny.deck"), 2));
}

}  // namespace
}  // namespace r1
