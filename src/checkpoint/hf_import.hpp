// Hugging Face DeepSeek-V3/V2 checkpoints (config.json + safetensors, F32/BF16 or FP8 E4M3 with one
// weight_scale_inv per 128x128 block) and Llama / Qwen2 / Qwen3 ones (F32/BF16) to and from r1hpc models.
// Dense MLA students export as DeepseekV3 with every layer dense; [model] arch = llama | qwen2 | qwen3 models
// as LlamaForCausalLM / Qwen2ForCausalLM / Qwen3ForCausalLM.
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "model/config.hpp"
#include "model/params.hpp"

namespace r1::hf {

// The r1hpc [model] keys of the model a config.json describes, as deck overrides ("model.dim=7168"), so the
// deck's own range checks apply. Keys without an HF counterpart (init_std aside: training hyperparameters)
// are left to the deck. Anything r1hpc cannot represent exactly is a user error naming `file` and the key.
std::vector<std::string> model_overrides(const nlohmann::json& config, const std::string& file);

// config.json of a model (architecture keys only; tokens ids are the tokenizer's business). fp8 adds
// DeepSeek-V3's quantization_config. Errors (user) for what the HF classes cannot express.
nlohmann::json config_json(const ModelConfig& c, const std::string& torch_dtype, bool fp8);

// Every tensor of the checkpoint in `dir` (config.json + model.safetensors or an index with shards) as host
// f32 by HF name: F32/BF16/F16 converted, F8_E4M3 weights dequantised with their `<name>_scale_inv` block
// scales (block size from quantization_config.weight_block_size, default 128 x 128). A tied lm_head is checked
// against the embedding and dropped.
std::map<std::string, Tensor> read_hf_tensors(const std::filesystem::path& dir, const ModelConfig& c);

// How many MTP layers config.json names (num_nextn_predict_layers) while the checkpoint in `dir` holds no
// tensor of any of them, as transformers saves DeepSeek-V3; 0 when it holds some (or config.json names none).
std::int64_t absent_mtp_layers(const std::filesystem::path& dir, const nlohmann::json& config);

// read_hf_tensors into the model's parameters (masters and compute copies). fresh_mtp: the checkpoint has no
// MTP tensors and the model's MTP parameters keep the values they hold (a fresh initialisation).
void import_weights(const std::filesystem::path& dir, const ModelConfig& c, ParamStore& params, bool fresh_mtp = false);

struct ExportOptions {
  std::string dtype = "bf16";         // "fp32", "bf16", or "fp8": 128x128-block FP8 linears, BF16 elsewhere
  std::uint64_t max_shard_bytes = 0;  // 0: one model.safetensors
};
// Writes config.json and the safetensors of the store's masters into `dir`; returns the files written.
std::vector<std::filesystem::path> export_weights(const ParamStore& params, const ModelConfig& c,
                                                  const std::filesystem::path& dir, const ExportOptions& options);

}  // namespace r1::hf
