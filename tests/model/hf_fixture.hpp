// Hugging Face reference fixtures (tests/fixtures/*.h5, made by tools/hf_fixtures.py): tiny random
// DeepseekV3/V2ForCausalLM models with one batch, their logits, loss and gradients, read with the HDF5 C API,
// and the map from HF tensor names and layouts to r1hpc's parameters (docs/model.md).
//
// How a full-model comparison uses it (the reference is float64, so differences are r1hpc's f32 rounding):
//
//   const HfFixture fx = load_hf_fixture(hf_fixture_path("moe_sigmoid_groups"));
//   const ModelConfig cfg = model_config(fx);      // from the deck text stored in the fixture
//   ParamStore params(kernels::Context::cpu(), DType::f32);
//   Model model(cfg, params);                      // registers every parameter
//   load_into(fx, params);                         // HF weights -> masters (+ compute copies)
//   const TokenBatch tb = token_batch(fx);         // HF labels shifted to r1hpc targets (-1: no loss)
//   ... forward: Model::logits(saved) viewed [B*S, V] against fx.logits (same row order, t = b * S + s);
//       loss_sum / tb.counted() against fx.loss;
//   params.zero_grads(); backward with token_weight 1 / tb.counted() and balance_weight 0 (HF's loss has no
//       balance term; the fixture decks also set seq_aux_alpha = 0 and bias_update_gamma = 0);
//   for (const auto& [name, g] : mapped_grads(fx)) diff(params.get(name).grad, g) ...
//
// Layout notes: HF's q/k rope rows are used as they are (no permutation): HF DeepseekV3 with rope_interleave
// rotates DeepSeek's interleaved pairs and only reorders the rotated features, identically for q and k, which
// leaves q.k unchanged (tools/hf_fixtures.py checks this before writing). The router's selection bias
// (e_score_correction_bias) is a weight but has no gradient; V2 (softmax) models have none, which is a zero
// bias in r1hpc.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/hf_names.hpp"
#include "core/tensor.hpp"
#include "model/batch.hpp"
#include "model/config.hpp"
#include "model/params.hpp"

namespace r1::test {

struct HfFixture {
  std::string name;                 // file stem, e.g. "moe_qlora_yarn"
  std::string arch;                 // "deepseek_v3" | "deepseek_v2"
  std::string config_json;          // the HF config
  std::string deck_text;            // the same model as an r1hpc [model] section
  std::string torch_version, transformers_version;
  std::int64_t batch = 0, seq = 0, vocab = 0;
  std::vector<std::int32_t> input_ids;  // [B * S], row-major
  std::vector<std::int32_t> labels;     // [B * S], HF convention: logits[b, s] predicts labels[b, s + 1]; -100 ignored
  Tensor logits;                        // host f32 [B, S, V]
  double loss = 0;                      // mean cross entropy over the counted targets
  std::map<std::string, Tensor> weights;  // HF name -> host f32, HF layout (every parameter and buffer)
  std::map<std::string, Tensor> grads;    // HF name -> host f32, HF layout (trainable parameters only)
};

// The committed fixtures' directory (tests/fixtures of the source tree), a path in it, and their names.
std::filesystem::path hf_fixture_dir();
std::filesystem::path hf_fixture_path(const std::string& name);
std::vector<std::string> hf_fixture_names();

// Reads every part of a fixture; an r1::Error (io) names the file and the object that could not be read.
HfFixture load_hf_fixture(const std::filesystem::path& file);

// The fixture's model configuration, parsed from its deck text.
ModelConfig model_config(const HfFixture& fx);
// input_ids and the shifted targets (targets[b*S+s] = labels[b, s+1], -1 where ignored or past the end).
TokenBatch token_batch(const HfFixture& fx);
// The loss recomputed from the stored logits and labels in double: HF's shifted mean cross entropy.
double reference_loss(const HfFixture& fx);

// The HF <-> r1hpc name map is the importer's (checkpoint/hf_names.hpp): one copy for the tests and import_hf.
using hf::HfTarget;
using hf::hf_target;
using hf::map_hf_tensors;
std::map<std::string, Tensor> mapped_weights(const HfFixture& fx);
std::map<std::string, Tensor> mapped_grads(const HfFixture& fx);

// hf::load_hf_tensors of the fixture's weights (errors start with the fixture's name).
void load_into(const HfFixture& fx, ParamStore& params);

// Largest absolute difference, and that relative to the largest |want| (host f32 tensors of equal size).
struct TensorDiff {
  double max_abs = 0, max_rel = 0;
};
TensorDiff diff(const Tensor& got, const Tensor& want);

}  // namespace r1::test
