// ModelConfig: the [model] section, the architecture (DeepSeek-V3 family, dense MLA students, and the
// grouped-query-attention families R1 distilled into: Llama-3, Qwen2/2.5, Qwen3).
#pragma once
#include <cstdint>
#include <string>

#include "config/keys.hpp"
#include "parallel/expert_reach.hpp"

namespace r1 {

enum class RouterScore { sigmoid, softmax };
constexpr auto choice_words(RouterScore) {
  return std::to_array<ChoiceWord<RouterScore>>({{"softmax", RouterScore::softmax}, {"sigmoid", RouterScore::sigmoid}});
}

// The attention and layout of a block. mla: DeepSeek-V3 (MLA attention, MoE or dense FFN, MTP). The others are
// dense decoders with grouped-query attention (docs/model.md): llama (Llama-3), qwen2 (Qwen2/2.5: q/k/v biases),
// qwen3 (per-head q/k RMSNorm before RoPE).
enum class Arch { mla, llama, qwen2, qwen3 };
constexpr auto choice_words(Arch) {
  return std::to_array<ChoiceWord<Arch>>(
      {{"mla", Arch::mla}, {"llama", Arch::llama}, {"qwen2", Arch::qwen2}, {"qwen3", Arch::qwen3}});
}
// RoPE frequency scaling of grouped-query-attention models (transformers' rope_type); MLA uses YaRN from
// rope_factor and original_seq_len. llama3: Llama-3.1's wavelength-banded scaling (kernels/rope.hpp).
enum class RopeType { default_, llama3 };
constexpr auto choice_words(RopeType) {
  return std::to_array<ChoiceWord<RopeType>>({{"default", RopeType::default_}, {"llama3", RopeType::llama3}});
}

#define R1_MODEL_KEYS(KEY)                                                                                                     \
  KEY(text, preset, "", (), "name in inputs/models/ or path to a .deck of [model] keys; this deck's [model] keys override it") \
  KEY(choice, arch, Arch::mla, (), "block architecture: mla (DeepSeek-V3) or a grouped-query-attention family (dense)")  \
  KEY(integer, vocab_size, 512, (2, 1 << 24), "vocabulary size (embedding and output head rows)")                              \
  KEY(integer, dim, 128, (1, 1 << 17), "hidden size")                                                                          \
  KEY(integer, n_layers, 2, (1, 4096), "transformer blocks (MTP modules not counted)")                                         \
  KEY(integer, n_dense_layers, 1, (0, 4096), "first blocks with a dense FFN instead of MoE")                                   \
  KEY(integer, n_heads, 4, (1, 4096), "attention heads")                                                                       \
  KEY(integer, n_kv_heads, 0, (0, 4096), "key/value heads of grouped-query attention (dividing n_heads); 0: n_heads")           \
  KEY(integer, head_dim, 0, (0, 4096), "per-head q/k/v dimension of grouped-query attention (even); 0: dim / n_heads")         \
  KEY(integer, dense_inter_dim, 256, (1, 1 << 20), "hidden size of the dense SwiGLU FFN")                                      \
  KEY(integer, moe_inter_dim, 64, (1, 1 << 20), "hidden size of each routed and shared expert")                                \
  KEY(integer, n_routed_experts, 8, (1, 1 << 16), "routed experts per MoE layer")                                              \
  KEY(integer, n_shared_experts, 1, (0, 1024), "shared experts per MoE layer, applied to every token")                         \
  KEY(integer, n_activated_experts, 2, (1, 1 << 16), "routed experts chosen per token (top-k)")                                \
  KEY(integer, n_expert_groups, 2, (1, 1 << 16), "groups the routed experts are split into for group-limited routing")         \
  KEY(integer, n_limited_groups, 1, (1, 1 << 16), "groups a token may route to (top groups by their top-2 score sum)")         \
  KEY(choice, score_func, RouterScore::sigmoid, (), "expert affinity function of the router")                                  \
  KEY(real, route_scale, 1.0, (1e-3, 1e3), "factor on the normalised routing weights")                                         \
  KEY(integer, q_lora_rank, 0, (0, 1 << 17), "query latent rank; 0 projects queries straight from the hidden state")           \
  KEY(integer, kv_lora_rank, 64, (1, 1 << 17), "key/value latent rank (the cached latent)")                                    \
  KEY(integer, qk_nope_head_dim, 32, (1, 4096), "per-head query/key dimension without RoPE")                                   \
  KEY(integer, qk_rope_head_dim, 16, (2, 4096), "per-head decoupled RoPE dimension (even; the key part is shared)")            \
  KEY(integer, v_head_dim, 32, (1, 4096), "per-head value dimension")                                                          \
  KEY(real, rope_theta, 10000, (1, 1e12), "RoPE base")                                                                         \
  KEY(real, rope_factor, 40, (1, 1e4), "YaRN scale factor, used when max_seq_len > original_seq_len")                          \
  KEY(integer, original_seq_len, 4096, (1, 1 << 24), "context length the RoPE was trained for (YaRN)")                         \
  KEY(real, beta_fast, 32, (0, 1e4), "YaRN ramp: rotations above which frequencies are kept")                                  \
  KEY(real, beta_slow, 1, (0, 1e4), "YaRN ramp: rotations below which frequencies are fully interpolated")                     \
  KEY(real, mscale, 1.0, (0, 100), "YaRN attention scale coefficient (0.1 mscale ln(factor) + 1)")                             \
  KEY(choice, rope_type, RopeType::default_, (), "RoPE scaling of GQA models (llama3: rope_factor, original_seq_len)")         \
  KEY(real, low_freq_factor, 1.0, (1e-3, 1e3), "llama3 RoPE: wavelengths above original_seq_len / this are scaled down")     \
  KEY(real, high_freq_factor, 4.0, (1e-3, 1e3), "llama3 RoPE: wavelengths below original_seq_len / this are kept")             \
  KEY(integer, max_seq_len, 256, (1, 1 << 24), "longest sequence the model supports (RoPE tables, KV cache)")                  \
  KEY(real, norm_eps, 1e-6, (1e-12, 1e-2), "RMSNorm epsilon")                                                                  \
  KEY(real, init_std, 0.006, (1e-6, 1), "standard deviation of the normal weight init")                                        \
  KEY(integer, mtp_depth, 0, (0, 1), "multi-token-prediction modules (0 or 1)")                                                \
  KEY(real, mtp_lambda, 0.3, (0, 10), "weight of the MTP loss")                                                                \
  KEY(real, bias_update_gamma, 0.001, (0, 1), "step of the auxiliary-loss-free balancing bias; 0 freezes it")                  \
  KEY(real, seq_aux_alpha, 0.0001, (0, 1), "weight of the sequence-wise balance loss")                                         \
  KEY(flag, dense, false, (), "plain dense decoder without MoE (distillation students); MoE keys are ignored")                 \
  KEY(flag, tie_embeddings, false, (), "share the embedding and output head weights")

struct ModelConfig {
  R1_CONFIG_MEMBERS(R1_MODEL_KEYS)
  // Follows score_func when read from a deck: sigmoid routing always normalises; softmax (V2-Lite) does not.
  bool normalize_gates = true;

  std::int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool gqa() const { return arch != Arch::mla; }  // a grouped-query-attention family
  std::int64_t kv_heads() const { return n_kv_heads > 0 ? n_kv_heads : n_heads; }
  std::int64_t gqa_head_dim() const { return head_dim > 0 ? head_dim : dim / n_heads; }
  bool is_moe_layer(std::int64_t layer) const { return !dense && layer >= n_dense_layers; }
  // Device-limited routing: the most EP ranks one token's routed experts can reach over `ep` ranks
  // (parallel::expert_ranks_per_token).
  std::int64_t max_expert_ranks_per_token(std::int64_t ep) const {
    return parallel::expert_ranks_per_token(n_routed_experts, n_expert_groups, n_limited_groups, n_activated_experts, ep);
  }
  bool operator==(const ModelConfig&) const = default;
};

}  // namespace r1
