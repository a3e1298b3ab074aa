// The Hugging Face reference fixtures read completely, agree with themselves, and map onto the parameter names and
// shapes of docs/model.md, each HF tensor exactly once.
#include "model/hf_fixture.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "core/error.hpp"
#include "kernels/context.hpp"

namespace r1::test {
namespace {

// Parameter shapes of docs/model.md ("Parameter names") for a configuration; the MoE router_bias is a buffer.
std::map<std::string, Shape> documented_shapes(const ModelConfig& c) {
  const std::int64_t D = c.dim, H = c.n_heads, qk = c.qk_head_dim();
  std::map<std::string, Shape> s;
  s["embed"] = {c.vocab_size, D};
  s["norm"] = {D};
  s["head"] = {c.vocab_size, D};
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = "layers." + std::to_string(l) + ".";
    s[p + "attn_norm"] = {D};
    s[p + "ffn_norm"] = {D};
    if (c.q_lora_rank == 0) {
      s[p + "attn.q_proj"] = {H * qk, D};
    } else {
      s[p + "attn.q_a_proj"] = {c.q_lora_rank, D};
      s[p + "attn.q_a_norm"] = {c.q_lora_rank};
      s[p + "attn.q_b_proj"] = {H * qk, c.q_lora_rank};
    }
    s[p + "attn.kv_a_proj"] = {c.kv_lora_rank + c.qk_rope_head_dim, D};
    s[p + "attn.kv_a_norm"] = {c.kv_lora_rank};
    s[p + "attn.kv_b_proj"] = {H * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank};
    s[p + "attn.o_proj"] = {D, H * c.v_head_dim};
    if (!c.is_moe_layer(l)) {
      s[p + "mlp.gate_up"] = {2 * c.dense_inter_dim, D};
      s[p + "mlp.down"] = {D, c.dense_inter_dim};
    } else {
      const std::int64_t E = c.n_routed_experts, I = c.moe_inter_dim, shared = c.moe_inter_dim * c.n_shared_experts;
      s[p + "moe.router"] = {E, D};
      s[p + "moe.router_bias"] = {E};
      s[p + "moe.experts.gate_up"] = {E, 2 * I, D};
      s[p + "moe.experts.down"] = {E, D, I};
      s[p + "moe.shared.gate_up"] = {2 * shared, D};
      s[p + "moe.shared.down"] = {D, shared};
    }
  }
  return s;
}

bool is_router_bias(const std::string& name) { return name.size() > 12 && name.ends_with(".router_bias"); }

// A store with exactly the documented parameters (what the model will register), zero-filled.
ParamStore documented_store(const ModelConfig& c) {
  ParamStore store(kernels::Context::cpu(), DType::f32);
  for (const auto& [name, shape] : documented_shapes(c))
    store.add(name, shape, Init::zeros, true, /*trainable=*/!is_router_bias(name));
  return store;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && std::memcmp(a.data<float>(), b.data<float>(), a.nbytes()) == 0;
}

class HfFixtureTest : public ::testing::TestWithParam<std::string> {
 protected:
  static const HfFixture& fixture(const std::string& name) {
    static std::map<std::string, HfFixture> cache;
    auto it = cache.find(name);
    if (it == cache.end()) it = cache.emplace(name, load_hf_fixture(hf_fixture_path(name))).first;
    return it->second;
  }
  const HfFixture& fx() const { return fixture(GetParam()); }
};

TEST_P(HfFixtureTest, LoadsEveryPartAndRecordsItsVersions) {
  const HfFixture& f = fx();
  EXPECT_EQ(f.name, GetParam());
  EXPECT_FALSE(f.torch_version.empty());
  EXPECT_FALSE(f.transformers_version.empty());
  EXPECT_EQ(f.batch, 2);
  EXPECT_EQ(f.seq, 12);
  EXPECT_EQ(f.input_ids.size(), static_cast<std::size_t>(f.batch * f.seq));
  EXPECT_GT(f.weights.size(), 20u);
  EXPECT_FALSE(f.grads.empty());
  EXPECT_GT(f.loss, 0.0);
  for (const std::int32_t id : f.input_ids) EXPECT_TRUE(id >= 0 && id < f.vocab) << id;
}

TEST_P(HfFixtureTest, DeckDescribesTheSameModelAsTheHfConfig) {
  const HfFixture& f = fx();
  const ModelConfig c = model_config(f);
  const auto j = nlohmann::json::parse(f.config_json);
  EXPECT_EQ(c.vocab_size, j.at("vocab_size").get<std::int64_t>());
  EXPECT_EQ(c.vocab_size, f.vocab);
  EXPECT_EQ(c.dim, j.at("hidden_size").get<std::int64_t>());
  EXPECT_EQ(c.n_layers, j.at("num_hidden_layers").get<std::int64_t>());
  EXPECT_EQ(c.n_dense_layers, j.at("first_k_dense_replace").get<std::int64_t>());
  EXPECT_EQ(c.n_heads, j.at("num_attention_heads").get<std::int64_t>());
  EXPECT_EQ(c.dense_inter_dim, j.at("intermediate_size").get<std::int64_t>());
  EXPECT_EQ(c.moe_inter_dim, j.at("moe_intermediate_size").get<std::int64_t>());
  EXPECT_EQ(c.n_routed_experts, j.at("n_routed_experts").get<std::int64_t>());
  EXPECT_EQ(c.n_shared_experts, j.at("n_shared_experts").get<std::int64_t>());
  EXPECT_EQ(c.n_activated_experts, j.at("num_experts_per_tok").get<std::int64_t>());
  EXPECT_EQ(c.n_expert_groups, j.at("n_group").get<std::int64_t>());
  EXPECT_EQ(c.n_limited_groups, j.at("topk_group").get<std::int64_t>());
  EXPECT_DOUBLE_EQ(c.route_scale, j.at("routed_scaling_factor").get<double>());
  EXPECT_EQ(c.q_lora_rank, j.at("q_lora_rank").is_null() ? 0 : j.at("q_lora_rank").get<std::int64_t>());
  EXPECT_EQ(c.kv_lora_rank, j.at("kv_lora_rank").get<std::int64_t>());
  EXPECT_EQ(c.qk_nope_head_dim, j.at("qk_nope_head_dim").get<std::int64_t>());
  EXPECT_EQ(c.qk_rope_head_dim, j.at("qk_rope_head_dim").get<std::int64_t>());
  EXPECT_EQ(c.v_head_dim, j.at("v_head_dim").get<std::int64_t>());
  EXPECT_EQ(c.max_seq_len, j.at("max_position_embeddings").get<std::int64_t>());
  EXPECT_DOUBLE_EQ(c.norm_eps, j.at("rms_norm_eps").get<double>());
  const auto& rope = j.at("rope_parameters");
  EXPECT_DOUBLE_EQ(c.rope_theta, rope.at("rope_theta").get<double>());
  const bool yarn = rope.at("rope_type") == "yarn";
  EXPECT_EQ(yarn, c.rope_factor > 1 && c.max_seq_len > c.original_seq_len);
  if (yarn) {
    EXPECT_DOUBLE_EQ(c.rope_factor, rope.at("factor").get<double>());
    EXPECT_EQ(c.original_seq_len, rope.at("original_max_position_embeddings").get<std::int64_t>());
    EXPECT_DOUBLE_EQ(c.beta_fast, rope.at("beta_fast").get<double>());
    EXPECT_DOUBLE_EQ(c.beta_slow, rope.at("beta_slow").get<double>());
    EXPECT_DOUBLE_EQ(c.mscale, rope.at("mscale_all_dim").get<double>());
    EXPECT_DOUBLE_EQ(c.mscale, rope.at("mscale").get<double>());
  }
  const bool v3 = f.arch == "deepseek_v3";
  EXPECT_EQ(j.at("model_type"), v3 ? "deepseek_v3" : "deepseek_v2");
  EXPECT_EQ(c.score_func, v3 ? RouterScore::sigmoid : RouterScore::softmax);
  EXPECT_EQ(c.normalize_gates, j.at("norm_topk_prob").get<bool>());
  if (v3) {
    EXPECT_TRUE(j.at("rope_interleave").get<bool>());  // r1hpc's RoPE pairs are DeepSeek's interleaved ones
  }
  EXPECT_FALSE(j.at("tie_word_embeddings").get<bool>());
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_FALSE(c.dense);
  EXPECT_EQ(c.mtp_depth, 0);
  EXPECT_EQ(c.seq_aux_alpha, 0.0);  // HF's loss has no balance term
}

TEST_P(HfFixtureTest, EveryHfTensorMapsExactlyOnce) {
  const HfFixture& f = fx();
  std::set<std::tuple<std::string, int, int>> places;
  std::int64_t hf_elements = 0;
  for (const auto& [name, t] : f.weights) {
    const HfTarget target = hf_target(name);
    EXPECT_TRUE(places.emplace(target.name, target.expert, target.part).second) << name << " lands on a taken place";
    hf_elements += t.numel();
  }
  std::int64_t mapped_elements = 0;
  for (const auto& [name, t] : mapped_weights(f)) mapped_elements += t.numel();
  EXPECT_EQ(mapped_elements, hf_elements);  // nothing dropped, nothing duplicated
}

TEST_P(HfFixtureTest, MappedShapesAreTheDocumentedOnes) {
  const HfFixture& f = fx();
  const ModelConfig c = model_config(f);
  const auto documented = documented_shapes(c);
  const auto weights = mapped_weights(f);
  for (const auto& [name, t] : weights) {
    const auto it = documented.find(name);
    ASSERT_NE(it, documented.end()) << name << " is not a documented parameter";
    EXPECT_EQ(t.shape(), it->second) << name << ": " << t.shape().str() << " vs documented " << it->second.str();
  }
  for (const auto& [name, shape] : documented) {
    // Softmax (V2) routers have no selection bias in HF; r1hpc's stays zero there.
    const bool may_be_absent = is_router_bias(name) && c.score_func == RouterScore::softmax;
    EXPECT_TRUE(weights.count(name) || may_be_absent) << "no HF tensor fills " << name;
  }
}

TEST_P(HfFixtureTest, GradientsCoverEveryTrainableParameterInTheSameLayout) {
  const HfFixture& f = fx();
  const auto weights = mapped_weights(f);
  const auto grads = mapped_grads(f);
  for (const auto& [name, w] : weights) {
    if (is_router_bias(name)) {
      EXPECT_EQ(grads.count(name), 0u) << name << " is a buffer and has no gradient";
      continue;
    }
    ASSERT_TRUE(grads.count(name)) << "no gradient for " << name;
    EXPECT_EQ(grads.at(name).shape(), w.shape()) << name;
    const TensorDiff zero = diff(grads.at(name), Tensor::host_zeros(w.shape(), DType::f32));
    EXPECT_GT(zero.max_abs, 0.0) << name << " has an all-zero gradient";
  }
  EXPECT_LE(grads.size(), weights.size());
}

TEST_P(HfFixtureTest, LoadIntoFillsTheDocumentedParameters) {
  const HfFixture& f = fx();
  const ModelConfig c = model_config(f);
  ParamStore store = documented_store(c);
  load_into(f, store);
  const auto weights = mapped_weights(f);
  for (const auto& p : store.all()) {
    const auto it = weights.find(p->name);
    if (it == weights.end()) {
      EXPECT_TRUE(is_router_bias(p->name)) << p->name;
      EXPECT_EQ(diff(p->master, Tensor::host_zeros(p->shape, DType::f32)).max_abs, 0.0) << p->name;
      continue;
    }
    EXPECT_TRUE(bit_equal(p->master, it->second)) << p->name;
    EXPECT_EQ(p->compute.raw(), p->master.raw()) << p->name << ": f32 compute reads the master";
  }
}

TEST_P(HfFixtureTest, StoredLossIsTheShiftedCrossEntropyOfTheStoredLogits) {
  const HfFixture& f = fx();
  // The logits are the float64 reference rounded to f32; the loss stays within that rounding.
  EXPECT_NEAR(reference_loss(f), f.loss, 1e-6);
  // The masked labels leave fewer targets than the B x (S - 1) predictions.
  const TokenBatch tb = token_batch(f);
  EXPECT_GT(tb.counted(), 0);
  EXPECT_LT(tb.counted(), f.batch * (f.seq - 1));
  for (std::int64_t b = 0; b < f.batch; ++b) EXPECT_EQ(tb.targets[static_cast<std::size_t>(b * f.seq + f.seq - 1)], -1);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HfFixtureTest, ::testing::ValuesIn(hf_fixture_names()),
                         [](const auto& info) { return info.param; });

// What each fixture is there to exercise.
TEST(HfFixtures, CoverTheirFeatures) {
  const ModelConfig groups = model_config(load_hf_fixture(hf_fixture_path("moe_sigmoid_groups")));
  EXPECT_EQ(groups.score_func, RouterScore::sigmoid);
  EXPECT_LT(groups.n_limited_groups, groups.n_expert_groups);
  EXPECT_EQ(groups.q_lora_rank, 0);
  EXPECT_DOUBLE_EQ(groups.route_scale, 2.5);

  const HfFixture yarn_fx = load_hf_fixture(hf_fixture_path("moe_qlora_yarn"));
  const ModelConfig yarn = model_config(yarn_fx);
  EXPECT_GT(yarn.q_lora_rank, 0);
  EXPECT_GT(yarn.rope_factor, 1.0);
  EXPECT_GT(yarn_fx.seq, yarn.original_seq_len);  // positions past the original context

  const ModelConfig v2 = model_config(load_hf_fixture(hf_fixture_path("v2_softmax")));
  EXPECT_EQ(v2.score_func, RouterScore::softmax);
  EXPECT_FALSE(v2.normalize_gates);
  EXPECT_EQ(v2.n_shared_experts, 2);

  const ModelConfig dense = model_config(load_hf_fixture(hf_fixture_path("dense_first_layers")));
  EXPECT_EQ(dense.n_layers, 3);
  EXPECT_EQ(dense.n_dense_layers, 2);

  // A nonzero selection bias in every sigmoid MoE layer.
  for (const char* name : {"moe_sigmoid_groups", "moe_qlora_yarn", "dense_first_layers"})
    for (const auto& [n, t] : mapped_weights(load_hf_fixture(hf_fixture_path(name))))
      if (is_router_bias(n)) {
        EXPECT_GT(diff(t, Tensor::host_zeros(t.shape(), DType::f32)).max_abs, 0.01) << name << " " << n;
      }
}

// Hub checkpoints name routed experts one by one (mlp.experts.N.{gate,up,down}_proj.weight); they stack into
// the same tensors as transformers' fused ones.
TEST(HfFixtureMapping, PerExpertCheckpointNamesStackLikeFusedOnes) {
  const HfFixture f = load_hf_fixture(hf_fixture_path("moe_sigmoid_groups"));
  std::map<std::string, Tensor> split;
  for (const auto& [name, t] : f.weights) {
    const std::string fused_gate_up = ".mlp.experts.gate_up_proj", fused_down = ".mlp.experts.down_proj";
    if (!name.ends_with(fused_gate_up) && !name.ends_with(fused_down)) {
      split.emplace(name, t);
      continue;
    }
    const bool gate_up = name.ends_with(fused_gate_up);
    const std::string base = name.substr(0, name.size() - (gate_up ? fused_gate_up : fused_down).size()) + ".mlp.experts.";
    const std::int64_t E = t.dim(0), rows = t.dim(1), cols = t.dim(2);
    for (std::int64_t e = 0; e < E; ++e) {
      const float* src = t.data<float>() + e * rows * cols;
      const auto piece = [&](const std::string& n, std::int64_t row0, std::int64_t nrows) {
        Tensor p = Tensor::host({nrows, cols}, DType::f32);
        std::memcpy(p.data<float>(), src + row0 * cols, static_cast<std::size_t>(nrows * cols) * sizeof(float));
        split.emplace(base + std::to_string(e) + "." + n, p);
      };
      if (gate_up) {
        piece("gate_proj.weight", 0, rows / 2);
        piece("up_proj.weight", rows / 2, rows / 2);
      } else {
        piece("down_proj.weight", 0, rows);
      }
    }
  }
  const auto fused = mapped_weights(f);
  const auto stacked = map_hf_tensors(split);
  ASSERT_EQ(stacked.size(), fused.size());
  for (const auto& [name, t] : fused) {
    ASSERT_TRUE(stacked.count(name)) << name;
    EXPECT_TRUE(bit_equal(stacked.at(name), t)) << name;
  }
  // One expert missing is an error naming the parameter and the expert.
  split.erase("model.layers.1.mlp.experts.3.down_proj.weight");
  EXPECT_NE(error_of([&] { map_hf_tensors(split); }).find("layers.1.moe.experts.down expert 3"), std::string::npos);
}

TEST(HfFixtureMapping, DenseAndSharedGateUpPutGateRowsFirst) {
  Tensor gate = Tensor::host({2, 3}, DType::f32), up = Tensor::host({2, 3}, DType::f32);
  for (int i = 0; i < 6; ++i) {
    gate.data<float>()[i] = static_cast<float>(i);
    up.data<float>()[i] = static_cast<float>(10 + i);
  }
  const auto m = map_hf_tensors({{"model.layers.0.mlp.up_proj.weight", up}, {"model.layers.0.mlp.gate_proj.weight", gate},
                                 {"model.layers.1.mlp.shared_experts.gate_proj.weight", gate},
                                 {"model.layers.1.mlp.shared_experts.up_proj.weight", up}});
  for (const char* name : {"layers.0.mlp.gate_up", "layers.1.moe.shared.gate_up"}) {
    const Tensor& t = m.at(name);
    ASSERT_EQ(t.shape(), (Shape{4, 3})) << name;
    for (int i = 0; i < 6; ++i) {
      EXPECT_EQ(t.data<float>()[i], static_cast<float>(i)) << name;
      EXPECT_EQ(t.data<float>()[6 + i], static_cast<float>(10 + i)) << name;
    }
  }
  // Half of a gate_up is an error naming the tensor that is there.
  EXPECT_NE(error_of([&] { map_hf_tensors({{"model.layers.0.mlp.gate_proj.weight", gate}}); })
                .find("model.layers.0.mlp.gate_proj.weight: the up half of layers.0.mlp.gate_up is missing"),
            std::string::npos);
}

TEST(HfFixtureMapping, ErrorsNameTheHfTensor) {
  HfFixture f = load_hf_fixture(hf_fixture_path("moe_sigmoid_groups"));
  const ModelConfig c = model_config(f);

  // An HF tensor r1hpc has no name for.
  HfFixture extra = f;
  extra.weights.emplace("model.layers.0.self_attn.rotary_emb.inv_freq", Tensor::host_zeros({4}, DType::f32));
  ParamStore s1 = documented_store(c);
  EXPECT_NE(error_of([&] { load_into(extra, s1); }).find("HF tensor model.layers.0.self_attn.rotary_emb.inv_freq has no r1hpc counterpart"),
            std::string::npos);

  // A model whose parameter has another shape.
  ParamStore s2(kernels::Context::cpu(), DType::f32);
  for (const auto& [name, shape] : documented_shapes(c))
    s2.add(name, name == "layers.0.attn.o_proj" ? Shape{shape[0], shape[1] + 1} : shape, Init::zeros, true,
           !is_router_bias(name));
  const std::string shape_error = error_of([&] { load_into(f, s2); });
  EXPECT_NE(shape_error.find("HF tensor model.layers.0.self_attn.o_proj.weight maps to layers.0.attn.o_proj of shape"),
            std::string::npos)
      << shape_error;

  // A model without a parameter the HF model has.
  ParamStore s3(kernels::Context::cpu(), DType::f32);
  for (const auto& [name, shape] : documented_shapes(c))
    if (name != "head") s3.add(name, shape, Init::zeros, true, !is_router_bias(name));
  EXPECT_NE(error_of([&] { load_into(f, s3); }).find("HF tensor lm_head.weight maps to head, which the model does not have"),
            std::string::npos);

  // A trainable model parameter that no HF tensor fills.
  ParamStore s4 = documented_store(c);
  s4.add("layers.0.attn.extra", {3}, Init::zeros);
  EXPECT_NE(error_of([&] { load_into(f, s4); }).find("no HF tensor fills the model's parameter layers.0.attn.extra"),
            std::string::npos);

  // A missing fixture says how to make it.
  EXPECT_NE(error_of([] { load_hf_fixture(hf_fixture_dir() / "no_such_fixture.h5"); }).find("tools/hf_fixtures.py"),
            std::string::npos);
}

}  // namespace
}  // namespace r1::test
