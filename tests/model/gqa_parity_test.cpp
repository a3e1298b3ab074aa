// The grouped-query-attention students against transformers' LlamaForCausalLM (llama3 RoPE), Qwen2ForCausalLM
// (q/k/v biases, tied embeddings) and Qwen3ForCausalLM (q/k norms) on the fixtures of tools/make_gqa_fixtures.py
// (tests/fixtures/gqa/*.h5). The reference ran in float64; r1hpc runs in f32 on the CPU, so logits, loss and every
// parameter gradient must agree to f32 rounding: 1e-5 of the largest magnitude. The HF q/k rows are reordered
// into r1hpc's interleaved RoPE pairs as import_hf does (hf::permute_rope_pairs). Until the fixtures are made
// (on a machine with torch and transformers) the test fails, saying how to make them.
#include <gtest/gtest.h>

#include "model/parity_checks.hpp"

using namespace r1;
namespace fs = std::filesystem;

namespace {
class GqaParity : public testing::TestWithParam<std::string> {};
}  // namespace

TEST_P(GqaParity, LogitsLossAndGradientsMatchTransformers) {
  const fs::path file = test::hf_fixture_dir() / "gqa" / (GetParam() + ".h5");
  ASSERT_TRUE(fs::exists(file)) << file.string() << " is missing: make the fixtures with `python3 "
                                << "tools/make_gqa_fixtures.py --out tests/fixtures/gqa` (torch, transformers >= 5, "
                                << "h5py, numpy; no network) and commit them";
  test::HfFixture fx = test::load_hf_fixture(file);
  const ModelConfig cfg = test::model_config(fx);
  ASSERT_TRUE(cfg.gqa()) << fx.name << ": its deck is not a grouped-query-attention model";
  if (cfg.tie_embeddings) fx.weights.erase("lm_head.weight");  // the state dict's second name of the embedding
  hf::permute_rope_pairs(fx.weights, cfg.gqa_head_dim(), /*to_r1hpc=*/true);
  hf::permute_rope_pairs(fx.grads, cfg.gqa_head_dim(), /*to_r1hpc=*/true);
  ParamStore params(kernels::Context::cpu(), DType::f32);
  Model model(cfg, params);
  hf::load_hf_tensors(fx.weights, params, fx.name);
  const auto grads = test::map_hf_tensors(fx.grads);
  ASSERT_EQ(grads.size(), params.all().size()) << fx.name << ": a gradient for every parameter";
  test::expect_matches_reference(model, params, fx, grads);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GqaParity, testing::Values("llama_gqa", "qwen2_gqa", "qwen3_gqa"),
                         [](const testing::TestParamInfo<std::string>& i) { return i.param; });
