// import_hf / export_hf: the committed HF safetensors fixture (tests/fixtures/hf_safetensors, the weights of
// moe_sigmoid_groups.h5 saved by transformers) imported through the stage gives the fixture's logits; export
// writes the same tensors back; FP8 blocks are dequantised as fp8 * scale_inv; config.json maps to the
// [model] keys, and what r1hpc cannot represent exactly is refused by name.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/hf_import.hpp"
#include "checkpoint/hf_names.hpp"
#include "checkpoint/safetensors.hpp"
#include "checkpoint/train_state.hpp"
#include "core/error.hpp"
#include "deck/deck.hpp"
#include "kernels/fp8.hpp"
#include "model/hf_fixture.hpp"
#include "model/model.hpp"
#include "stages/stage.hpp"

using namespace r1;
namespace fs = std::filesystem;

namespace {

fs::path fixture(const std::string& name) { return test::hf_fixture_dir() / "hf_safetensors" / name; }

fs::path fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("r1hpc_hf_import_test_" + std::to_string(::getpid())) / name;
  fs::remove_all(d);
  fs::create_directories(d.parent_path());
  return d;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.shape() == b.shape() && a.dtype() == b.dtype() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(std::ifstream(p)); }

// Runs one stage of r1hpc in this process, as `r1hpc deck` would after validation.
void run(const std::string& deck_text) {
  const Deck d = Deck::parse(deck_text, (fs::temp_directory_path() / "hf_import_test.deck").string());
  ASSERT_EQ(run_stage(d, d.config(), 0, 1), 0);
}

// The logits of the fixture's batch under params loaded from `checkpoint`, with the checkpoint's own model.
Tensor logits_of(const fs::path& checkpoint, const test::HfFixture& fx) {
  const ckpt::Meta meta = ckpt::read_meta(checkpoint);
  const ModelConfig cfg = Deck::parse(meta.deck, (checkpoint / "index.h5").string()).config().model;
  ParamStore params(kernels::Context::cpu(), DType::f32);
  Model model(cfg, params);
  ckpt::load_train_state(checkpoint, ckpt::LoadMode::weights, params, nullptr);
  const DeviceBatch db = model.upload(test::token_batch(fx));
  ForwardResult r;
  auto saved = model.forward(db, r);
  Tensor logits = Tensor::host(Model::logits(*saved).shape(), DType::f32);
  copy(logits, Model::logits(*saved));
  return logits;
}

}  // namespace

TEST(HfImport, ConfigJsonGivesTheFixturesModelKeys) {
  const test::HfFixture fx = test::load_hf_fixture(test::hf_fixture_path("moe_sigmoid_groups"));
  const auto config = read_json(fixture("moe_sigmoid_groups") / "config.json");
  const Deck d = Deck::parse("[model]\nseq_aux_alpha = 0\nbias_update_gamma = 0\n", "x.deck",
                             hf::model_overrides(config, "config.json"));
  const ModelConfig got = d.config().model, want = test::model_config(fx);
  for (const auto& [a, b] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {got.vocab_size, want.vocab_size}, {got.dim, want.dim}, {got.n_layers, want.n_layers},
           {got.n_dense_layers, want.n_dense_layers}, {got.n_heads, want.n_heads}, {got.dense_inter_dim, want.dense_inter_dim},
           {got.moe_inter_dim, want.moe_inter_dim}, {got.n_routed_experts, want.n_routed_experts},
           {got.n_shared_experts, want.n_shared_experts}, {got.n_activated_experts, want.n_activated_experts},
           {got.n_expert_groups, want.n_expert_groups}, {got.n_limited_groups, want.n_limited_groups},
           {got.q_lora_rank, want.q_lora_rank}, {got.kv_lora_rank, want.kv_lora_rank},
           {got.qk_nope_head_dim, want.qk_nope_head_dim}, {got.qk_rope_head_dim, want.qk_rope_head_dim},
           {got.v_head_dim, want.v_head_dim}, {got.max_seq_len, want.max_seq_len}, {got.mtp_depth, want.mtp_depth}})
    EXPECT_EQ(a, b);
  EXPECT_EQ(got.route_scale, want.route_scale);
  EXPECT_EQ(got.rope_theta, want.rope_theta);
  EXPECT_EQ(got.norm_eps, want.norm_eps);
  EXPECT_EQ(got.score_func, RouterScore::sigmoid);
}

TEST(HfImport, DeepSeekReleaseStyleYarnConfig) {
  // DeepSeek-V3's own config.json keys: rope_theta and rope_scaling {type: yarn}, MTP layer.
  nlohmann::json c = read_json(fixture("moe_sigmoid_groups") / "config.json");
  c.erase("rope_parameters");
  c["rope_theta"] = 10000.0;
  c["max_position_embeddings"] = 163840;
  c["num_nextn_predict_layers"] = 1;
  c["rope_scaling"] = {{"type", "yarn"}, {"factor", 40}, {"original_max_position_embeddings", 4096}, {"beta_fast", 32},
                       {"beta_slow", 1}, {"mscale", 1.0}, {"mscale_all_dim", 1.0}};
  const ModelConfig m = Deck::parse("", "x.deck", hf::model_overrides(c, "config.json")).config().model;
  EXPECT_EQ(m.rope_factor, 40);
  EXPECT_EQ(m.original_seq_len, 4096);
  EXPECT_EQ(m.max_seq_len, 163840);
  EXPECT_EQ(m.mscale, 1.0);
  EXPECT_EQ(m.mtp_depth, 1);

  c["rope_scaling"]["mscale_all_dim"] = 0.707;
  EXPECT_NE(error_of([&] { hf::model_overrides(c, "cfg/config.json"); })
                .find("cfg/config.json: rope_scaling: mscale_all_dim: is 0.70699999999999996 but mscale is 1: r1hpc has one YaRN mscale"),
            std::string::npos);
}

TEST(HfImport, YarnWithMscaleZeroKeepsCosSinUnscaled) {
  // transformers scales cos/sin by attention_factor, which defaults to 0.1 ln(factor) + 1 when mscale is 0;
  // r1hpc never scales them, so export_hf states attention_factor = 1 and import_hf refuses any other value.
  ModelConfig m;
  m.max_seq_len = 64;
  m.original_seq_len = 32;
  m.mscale = 0;
  nlohmann::json c = hf::config_json(m, "float32", false);
  EXPECT_EQ(c.at("rope_scaling").at("attention_factor"), 1.0);
  EXPECT_EQ(Deck::parse("", "x.deck", hf::model_overrides(c, "config.json")).config().model.mscale, 0.0);
  c["rope_scaling"].erase("attention_factor");
  EXPECT_NE(error_of([&] { hf::model_overrides(c, "cfg/config.json"); })
                .find("cfg/config.json: rope_scaling: attention_factor: is unset with mscale 0, so transformers uses 0.1 ln(factor) + 1"),
            std::string::npos);
  c["rope_scaling"]["attention_factor"] = 1.2;
  EXPECT_NE(error_of([&] { hf::model_overrides(c, "cfg/config.json"); }).find("attention_factor: is 1.2: transformers scales cos/sin"),
            std::string::npos);
}

TEST(HfImport, WhatR1hpcCannotHoldIsRefusedByKey) {
  const nlohmann::json base = read_json(fixture("moe_sigmoid_groups") / "config.json");
  const auto refused = [&](const char* key, const nlohmann::json& value, const std::string& want) {
    nlohmann::json c = base;
    c[key] = value;
    const std::string e = error_of([&] { hf::model_overrides(c, "m/config.json"); });
    EXPECT_NE(e.find(want), std::string::npos) << key << ": " << e;
  };
  refused("model_type", "mistral", "m/config.json: model_type: \"mistral\": import_hf reads deepseek_v3, deepseek_v2, llama");
  refused("model_type", "gpt2", "import_hf reads deepseek_v3, deepseek_v2, llama, qwen2 and qwen3 models");
  refused("rope_interleave", false, "m/config.json: rope_interleave: false rotates half-split pairs");
  refused("norm_topk_prob", false, "norm_topk_prob: false with sigmoid scores");
  refused("hidden_act", "gelu", "hidden_act: r1hpc's FFNs are SwiGLU");
  refused("hidden_size", "32", "hidden_size: expected an integer, got \"32\"");
}

TEST(HfImport, Fp8BlocksAreDequantisedAsFp8TimesScaleInv) {
  const fs::path dir = fixture("moe_sigmoid_groups_fp8");
  const st::Reader raw(dir);
  const test::HfFixture fx = test::load_hf_fixture(test::hf_fixture_path("moe_sigmoid_groups"));
  ModelConfig c;
  const auto imported = hf::read_hf_tensors(dir, c);
  int fp8 = 0;
  for (const auto& [name, t] : imported) {
    ASSERT_FALSE(name.ends_with("_scale_inv")) << name;
    if (raw.entry(name).dtype != st::Dtype::f8_e4m3) continue;
    ++fp8;
    const Tensor q = raw.read(name), s = raw.read_f32(name + "_scale_inv");
    ASSERT_EQ(s.shape(), (Shape{(t.dim(0) + 127) / 128, (t.dim(1) + 127) / 128})) << name;
    for (std::int64_t i = 0; i < t.numel(); ++i) {
      const std::int64_t r = i / t.dim(1), col = i % t.dim(1);
      const float want = to_float(q.data<f8e4m3>()[i]) * s.data<float>()[(r / 128) * s.dim(1) + col / 128];
      ASSERT_EQ(t.data<float>()[i], want) << name << " element " << i;
    }
  }
  EXPECT_GT(fp8, 20);
  // ... and within FP8's half step (2^-4 relative to the block max) of the original weights.
  const auto original = test::mapped_weights(fx);
  for (const auto& [name, t] : hf::map_hf_tensors(imported))
    EXPECT_LE(test::diff(t, original.at(name)).max_rel, 1.0 / 16) << name;
}

TEST(HfImport, Fp8DequantisationOfPartialBlocksMatchesTheKernel) {
  // 300 x 200: 3 x 2 blocks, the last ones partial.
  const kernels::Context cpu = kernels::Context::cpu();
  Tensor w = Tensor::host({300, 200}, DType::f32);
  for (std::int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = std::sin(0.37f * static_cast<float>(i)) * (1 + i % 7);
  kernels::Fp8Tensor q = kernels::make_fp8(cpu, 300, 200, 128, 128);
  kernels::quantize_fp8(cpu, w, q);
  Tensor want = Tensor::host({300, 200}, DType::f32);
  kernels::dequantize_fp8(cpu, q, want);

  const fs::path dir = fresh_dir("partial");
  st::write_checkpoint(dir, {{"model.layers.0.self_attn.o_proj.weight", q.data},
                             {"model.layers.0.self_attn.o_proj.weight_scale_inv", q.scale_inv}});
  std::ofstream(dir / "config.json") << R"({"quantization_config": {"weight_block_size": [128, 128]}})";
  const auto got = hf::read_hf_tensors(dir, ModelConfig{});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(bit_equal(got.at("model.layers.0.self_attn.o_proj.weight"), want));

  // A scale of the wrong block count names both tensors.
  st::write_checkpoint(dir, {{"model.layers.0.self_attn.o_proj.weight", q.data},
                             {"model.layers.0.self_attn.o_proj.weight_scale_inv", Tensor::host_zeros({2, 2}, DType::f32)}});
  EXPECT_NE(error_of([&] { hf::read_hf_tensors(dir, ModelConfig{}); })
                .find("tensor model.layers.0.self_attn.o_proj.weight_scale_inv has shape [2, 2]; 128x128 blocks of "
                      "model.layers.0.self_attn.o_proj.weight [300, 200] need [3, 2]"),
            std::string::npos);
  st::write_checkpoint(dir, {{"model.layers.0.self_attn.o_proj.weight", q.data}});
  EXPECT_NE(error_of([&] { hf::read_hf_tensors(dir, ModelConfig{}); })
                .find("tensor model.layers.0.self_attn.o_proj.weight is F8_E4M3 but the checkpoint has no "
                      "model.layers.0.self_attn.o_proj.weight_scale_inv"),
            std::string::npos);
}

TEST(HfImport, MtpLayerRoundTripsThroughHfNames) {
  ModelConfig c;
  c.mtp_depth = 1;
  ParamStore params(kernels::Context::cpu(), DType::f32);
  Model model(c, params);
  params.initialize(7, 0.05);
  std::map<std::string, Tensor> r1;
  for (const auto& p : params.all()) r1.emplace(p->name, p->master);
  const auto hf = hf::to_hf_tensors(r1, c.n_layers);
  const std::string mtp = "model.layers." + std::to_string(c.n_layers) + ".";
  ASSERT_TRUE(hf.count(mtp + "eh_proj.weight"));
  EXPECT_EQ(hf.at(mtp + "eh_proj.weight").shape(), (Shape{c.dim, 2 * c.dim}));
  EXPECT_EQ(hf.at(mtp + "eh_proj.weight").data<float>()[c.dim], params.get("mtp.0.proj_h").master.data<float>()[0]);
  EXPECT_TRUE(hf.count(mtp + "shared_head.norm.weight") && hf.count(mtp + "enorm.weight") && hf.count(mtp + "hnorm.weight"));
  EXPECT_TRUE(hf.count(mtp + "mlp.experts.3.down_proj.weight") && hf.count(mtp + "self_attn.kv_b_proj.weight"));
  EXPECT_TRUE(bit_equal(hf.at(mtp + "embed_tokens.weight"), params.get("embed").master));

  const auto back = hf::map_hf_tensors(hf, c.n_layers);
  ASSERT_EQ(back.size(), r1.size());
  for (const auto& [name, t] : r1) EXPECT_TRUE(bit_equal(back.at(name), t)) << name;

  auto changed = hf;
  changed.at(mtp + "shared_head.head.weight") = Tensor::host_zeros(changed.at("lm_head.weight").shape(), DType::f32);
  EXPECT_NE(error_of([&] { hf::map_hf_tensors(changed, c.n_layers); })
                .find("HF tensor " + mtp + "shared_head.head.weight differs from lm_head.weight"),
            std::string::npos);
}

TEST(HfStages, ImportGivesTheFixtureLogitsAndExportWritesTheSameTensors) {
  const test::HfFixture fx = test::load_hf_fixture(test::hf_fixture_path("moe_sigmoid_groups"));
  const fs::path out = fresh_dir("stages");
  const std::string run_section = "[run]\noutput_dir = " + out.string() + "/";
  run(run_section + "import\nstage = import_hf\n[hf]\npath = " + fixture("moe_sigmoid_groups").string() + "\n");
  const auto checkpoint = ckpt::latest(out / "import" / "checkpoints");
  ASSERT_TRUE(checkpoint);
  const ckpt::Meta meta = ckpt::read_meta(*checkpoint);
  EXPECT_EQ(meta.stage, "import_hf");
  EXPECT_EQ(meta.step, 0);
  EXPECT_EQ(meta.parent, fs::absolute(fixture("moe_sigmoid_groups")).lexically_normal().string());
  EXPECT_TRUE(fs::exists(out / "import" / "model.deck"));

  const Tensor logits = logits_of(*checkpoint, fx);
  EXPECT_LE(test::diff(logits, fx.logits.view(logits.shape())).max_rel, 1e-5);

  // F32 export in 64 KB shards: the tensors transformers wrote, bit for bit, under the same names.
  run(run_section + "export\nstage = export_hf\n[checkpoint]\nload = " + checkpoint->string() +
      "\n[hf]\ndtype = fp32\nmax_shard_bytes = 65536\npath = " + (out / "hf").string() + "\n");
  const st::Reader want(fixture("moe_sigmoid_groups")), got(out / "hf");
  EXPECT_GT(got.files().size(), 1u);
  ASSERT_EQ(got.names(), want.names());
  for (const std::string& n : want.names()) EXPECT_TRUE(bit_equal(got.read(n), want.read(n))) << n;
  const auto config = read_json(out / "hf" / "config.json");
  EXPECT_EQ(config.at("model_type"), "deepseek_v3");
  EXPECT_EQ(config.at("first_k_dense_replace"), 1);

  // A non-empty target is refused unless overwrite is set.
  const std::string again = run_section + "export2\nstage = export_hf\n[checkpoint]\nload = " + checkpoint->string() +
                            "\n[hf]\ndtype = fp8\npath = " + (out / "hf").string() + "\n";
  EXPECT_NE(error_of([&] { run(again); }).find("is not an empty directory; set [hf] overwrite = true"), std::string::npos);

  // FP8 export (single file; the stale shards are removed), imported again: the dequantised weights.
  run(again + "overwrite = true\n");
  EXPECT_FALSE(fs::exists(out / "hf" / "model.safetensors.index.json"));
  const st::Reader fp8(out / "hf");
  EXPECT_EQ(fp8.entry("model.layers.1.mlp.experts.0.gate_proj.weight").dtype, st::Dtype::f8_e4m3);
  EXPECT_EQ(fp8.entry("model.layers.1.mlp.gate.weight").dtype, st::Dtype::bf16);
  EXPECT_EQ(read_json(out / "hf" / "config.json").at("quantization_config").at("weight_block_size"), nlohmann::json({128, 128}));
  const auto reread = hf::read_hf_tensors(out / "hf", ModelConfig{});
  const Tensor& w = fx.weights.at("model.layers.0.self_attn.o_proj.weight");
  const kernels::Context cpu = kernels::Context::cpu();
  kernels::Fp8Tensor q = kernels::make_fp8(cpu, w.dim(0), w.dim(1), 128, 128);
  kernels::quantize_fp8(cpu, w, q);
  Tensor dq = Tensor::host(w.shape(), DType::f32);
  kernels::dequantize_fp8(cpu, q, dq);
  EXPECT_TRUE(bit_equal(reread.at("model.layers.0.self_attn.o_proj.weight"), dq));
}

TEST(HfStages, Fp8CheckpointImportsThroughTheStage) {
  const test::HfFixture fx = test::load_hf_fixture(test::hf_fixture_path("moe_sigmoid_groups"));
  const fs::path out = fresh_dir("fp8stage");
  run("[run]\nstage = import_hf\noutput_dir = " + out.string() + "\n[hf]\npath = " +
      fixture("moe_sigmoid_groups_fp8").string() + "\n");
  const auto checkpoint = ckpt::latest(out / "checkpoints");
  ASSERT_TRUE(checkpoint);
  // FP8 weights change the logits by a few percent at most, not more.
  const Tensor logits = logits_of(*checkpoint, fx);
  const double rel = test::diff(logits, fx.logits.view(logits.shape())).max_rel;
  EXPECT_GT(rel, 1e-6);
  EXPECT_LT(rel, 0.1);
}

TEST(HfStages, MtpLayersNamedButNotSavedAreDroppedOrStartedFresh) {
  // transformers saves a DeepSeek-V3 model without the MTP layers its config.json names.
  const test::HfFixture fx = test::load_hf_fixture(test::hf_fixture_path("moe_sigmoid_groups"));
  const fs::path out = fresh_dir("mtp_absent"), model = out / "model";
  fs::create_directories(model);
  fs::copy(fixture("moe_sigmoid_groups"), model, fs::copy_options::recursive);
  nlohmann::json config = read_json(model / "config.json");
  config["num_nextn_predict_layers"] = 1;
  std::ofstream(model / "config.json") << config.dump(2);
  EXPECT_EQ(hf::absent_mtp_layers(model, config), 1);
  EXPECT_EQ(hf::absent_mtp_layers(fixture("moe_sigmoid_groups"), read_json(fixture("moe_sigmoid_groups") / "config.json")), 0);

  const auto import = [&](const std::string& name, const std::string& choice) {
    run("[run]\nstage = import_hf\noutput_dir = " + (out / name).string() + "\n[hf]\npath = " + model.string() +
        "\nmissing_mtp = " + choice + "\n");
    const auto checkpoint = ckpt::latest(out / name / "checkpoints");
    EXPECT_TRUE(checkpoint);
    return *checkpoint;
  };
  const fs::path dropped = import("drop", "drop");
  EXPECT_EQ(Deck::parse(ckpt::read_meta(dropped).deck, "index.h5").config().model.mtp_depth, 0);
  EXPECT_LE(test::diff(logits_of(dropped, fx), fx.logits.view(logits_of(dropped, fx).shape())).max_rel, 1e-5);

  const fs::path fresh = import("init", "init");
  EXPECT_EQ(Deck::parse(ckpt::read_meta(fresh).deck, "index.h5").config().model.mtp_depth, 1);
  const Tensor logits = logits_of(fresh, fx);  // the trunk and head are the imported ones
  EXPECT_LE(test::diff(logits, fx.logits.view(logits.shape())).max_rel, 1e-5);
  int mtp_tensors = 0;
  for (const auto& t : ckpt::list_tensors(fresh)) mtp_tensors += t.name.starts_with("model/mtp.0.") ? 1 : 0;
  EXPECT_GT(mtp_tensors, 0) << "no MTP tensors were initialised";
}
