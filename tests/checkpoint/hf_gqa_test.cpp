// import_hf / export_hf of the grouped-query-attention students (Llama, Qwen2, Qwen3): config.json round trip to
// the same [model] keys, weights exported and imported back bit for bit (fp32, sharded) or as their bf16
// rounding, transformers' half-split RoPE order of q/k rows in the files, and what the students cannot hold
// refused by key. Parity with transformers itself: tests/model/gqa_parity_test.cpp (tools/make_gqa_fixtures.py).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "checkpoint/hf_import.hpp"
#include "checkpoint/safetensors.hpp"
#include "core/error.hpp"
#include "deck/deck.hpp"
#include "deck/validate.hpp"
#include "kernels/test_util.hpp"
#include "model/model.hpp"
#include "support/error_of.hpp"

using namespace r1;
using test::error_of;
namespace fs = std::filesystem;

namespace {

ModelConfig preset(const std::string& name, const std::vector<std::string>& overrides = {}) {
  return validate_model(Deck::parse("[model]\npreset = " + name + "\n", "p.deck", overrides));
}

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("r1hpc_hf_gqa_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d.parent_path());
  return d;
}

// A model of `c` with random weights everywhere (norms around 1, biases nonzero), so every tensor is distinct.
struct Student {
  explicit Student(const ModelConfig& c) : params(kernels::Context::cpu(), DType::f32), model(c, params) {
    params.initialize(3, 0.1);
    std::uint32_t stream = 50;
    for (const auto& p : params.all())
      if (p->init != Init::normal) {
        const Tensor r = test::random_tensor(p->shape, DType::f32, stream++, 0.3f);
        for (std::int64_t i = 0; i < r.numel(); ++i)
          p->master.data<float>()[i] = (p->init == Init::ones ? 1.0f : 0.0f) + r.data<float>()[i];
      }
    params.refresh_compute();
  }
  ParamStore params;
  Model model;
};

class HfGqa : public testing::TestWithParam<const char*> {};
}  // namespace

TEST_P(HfGqa, ConfigJsonRoundTripsToTheSameModelKeys) {
  const ModelConfig c = preset(GetParam());
  const ModelConfig back = preset(GetParam(), hf::model_overrides(hf::config_json(c, "float32", false), "config.json"));
  EXPECT_EQ(back, c);
}

TEST_P(HfGqa, WeightsRoundTripExactlyInFp32AndAsTheirRoundingInBf16) {
  const ModelConfig c = preset(GetParam());
  const Student s(c);
  for (const char* dtype : {"fp32", "bf16"}) {
    const fs::path dir = fresh_dir(std::string(GetParam()) + "_" + dtype);
    const auto files = hf::export_weights(s.params, c, dir, {.dtype = dtype, .max_shard_bytes = 64 << 10});
    EXPECT_GT(files.size(), 2u) << "expected several shards";
    Student back(c);
    hf::import_weights(dir, c, back.params);
    for (const auto& p : s.params.all()) {
      const Tensor& got = back.params.get(p->name).master;
      for (std::int64_t i = 0; i < got.numel(); ++i) {
        const float want = std::string(dtype) == "fp32" ? p->master.data<float>()[i] : to_float(to_bf16(p->master.data<float>()[i]));
        ASSERT_EQ(got.data<float>()[i], want) << dtype << " " << p->name << " [" << i << "]";
      }
    }
    fs::remove_all(dir);
  }
}

// In the files, each head's q/k features are in transformers' order: its feature i is r1hpc's 2i and its feature
// i + d/2 r1hpc's 2i + 1 (one rotation pair); v is not reordered.
TEST_P(HfGqa, FilesHoldQkRowsInTransformersRopeOrder) {
  const ModelConfig c = preset(GetParam());
  const Student s(c);
  const fs::path dir = fresh_dir(std::string(GetParam()) + "_order");
  hf::export_weights(s.params, c, dir, {.dtype = "fp32"});
  const st::Reader files(dir);
  const std::int64_t d = c.gqa_head_dim(), h = 1;  // the second head
  for (const auto& [hf_name, r1_name, reordered] : {std::tuple<const char*, const char*, bool>{"q_proj.weight", "q_proj", true},
                                                     {"k_proj.weight", "k_proj", true}, {"v_proj.weight", "v_proj", false}}) {
    const Tensor theirs = files.read_f32(std::string("model.layers.1.self_attn.") + hf_name);
    const Tensor& ours = s.params.get(std::string("layers.1.attn.") + r1_name).master;
    const std::int64_t cols = ours.dim(1);
    for (std::int64_t i = 0; i < d / 2; ++i)
      for (std::int64_t half = 0; half < 2; ++half) {
        const std::int64_t their_row = h * d + i + half * d / 2;
        const std::int64_t our_row = reordered ? h * d + 2 * i + half : their_row;
        ASSERT_EQ(std::memcmp(theirs.data<float>() + their_row * cols, ours.data<float>() + our_row * cols,
                              cols * sizeof(float)), 0)
            << hf_name << " head " << h << " feature " << their_row - h * d;
      }
  }
  const nlohmann::json config = nlohmann::json::parse(std::ifstream(dir / "config.json"));
  EXPECT_EQ(config.at("model_type"), GetParam() == std::string("tiny-llama") ? "llama" : std::string(GetParam()).substr(5));
  fs::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(Students, HfGqa, testing::Values("tiny-llama", "tiny-qwen2", "tiny-qwen3"),
                         [](const auto& info) { return std::string(info.param).substr(5); });

TEST(HfGqaImport, WhatTheStudentsCannotHoldIsRefusedByKey) {
  const nlohmann::json llama = hf::config_json(preset("tiny-llama"), "float32", false);
  const auto refused = [&](const char* key, const nlohmann::json& value, const std::string& want) {
    nlohmann::json c = llama;
    c[key] = value;
    const std::string e = error_of([&] { hf::model_overrides(c, "m/config.json"); });
    EXPECT_NE(e.find(want), std::string::npos) << key << ": " << e;
  };
  refused("attention_bias", true, "m/config.json: attention_bias: r1hpc's llama attention has no biases");
  refused("mlp_bias", true, "mlp_bias: r1hpc's SwiGLU FFN has no biases");
  refused("use_sliding_window", true, "use_sliding_window: r1hpc attends over the whole causal context");
  refused("rope_scaling", nlohmann::json{{"rope_type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}},
          "rope_scaling: rope_type: \"yarn\": YaRN with grouped-query attention is not implemented");
  refused("rope_scaling", nlohmann::json{{"rope_type", "dynamic"}, {"factor", 4.0}}, "r1hpc implements default RoPE, YaRN and llama3 only");
  const std::string fp8 = error_of([&] {
    const ModelConfig c = preset("tiny-qwen3");
    const Student s(c);
    hf::export_weights(s.params, c, fresh_dir("fp8"), {.dtype = "fp8"});
  });
  EXPECT_NE(fp8.find("FP8 blocks are DeepSeek-V3's format; export a qwen3 model as bf16 or fp32"), std::string::npos) << fp8;
}

// The published Llama-3.1-8B config.json (llama3 RoPE scaling) gives the llama-3.1-8b preset.
TEST(HfGqaImport, Llama31ConfigGivesThePreset) {
  const nlohmann::json config = {
      {"model_type", "llama"}, {"architectures", {"LlamaForCausalLM"}}, {"vocab_size", 128256}, {"hidden_size", 4096},
      {"intermediate_size", 14336}, {"num_hidden_layers", 32}, {"num_attention_heads", 32}, {"num_key_value_heads", 8},
      {"max_position_embeddings", 131072}, {"rms_norm_eps", 1e-5}, {"rope_theta", 500000.0}, {"hidden_act", "silu"},
      {"attention_bias", false}, {"mlp_bias", false}, {"tie_word_embeddings", false}, {"initializer_range", 0.02},
      {"rope_scaling", {{"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                        {"original_max_position_embeddings", 8192}, {"rope_type", "llama3"}}}};
  ModelConfig imported = validate_model(Deck::parse("[model]\n", "p.deck", hf::model_overrides(config, "config.json")));
  imported.preset = "llama-3.1-8b";  // the one key a config.json does not set
  EXPECT_EQ(imported, preset("llama-3.1-8b"));
}
