#include "model/config.hpp"

#include <cstdio>

#include "core/error.hpp"

namespace r1 {

namespace {
// One transformer block's parameters: attention, norms, and its FFN (dense, or MoE: total and activated).
struct BlockCount {
  double attention = 0, ffn_total = 0, ffn_active = 0;
};
// Grouped-query attention: q and o [H d, D], k and v [K d, D]; qwen2's biases, qwen3's q/k norms; the two
// block norms.
double gqa_params(const ModelConfig& c) {
  const double d = static_cast<double>(c.dim), hd = static_cast<double>(c.gqa_head_dim());
  const double q = static_cast<double>(c.n_heads) * hd, kv = static_cast<double>(c.kv_heads()) * hd;
  double n = 2 * d * q + 2 * d * kv + 2 * d;
  if (c.arch == Arch::qwen2) n += q + 2 * kv;
  if (c.arch == Arch::qwen3) n += 2 * hd;
  return n;
}

BlockCount block_params(const ModelConfig& c, bool moe) {
  const double d = static_cast<double>(c.dim), h = static_cast<double>(c.n_heads);
  const double qk = static_cast<double>(c.qk_head_dim());
  BlockCount b;
  if (c.gqa()) {
    b.attention = gqa_params(c);
    b.ffn_total = b.ffn_active = 3 * d * static_cast<double>(c.dense_inter_dim);
    return b;
  }
  b.attention = c.q_lora_rank == 0 ? d * h * qk
                                   : d * c.q_lora_rank + c.q_lora_rank + static_cast<double>(c.q_lora_rank) * h * qk;
  b.attention += d * static_cast<double>(c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank;
  b.attention += static_cast<double>(c.kv_lora_rank) * h * static_cast<double>(c.qk_nope_head_dim + c.v_head_dim);
  b.attention += h * c.v_head_dim * d + 2 * d;  // o_proj and the two block norms
  if (!moe) {
    b.ffn_total = b.ffn_active = 3 * d * static_cast<double>(c.dense_inter_dim);
  } else {
    const double expert = 3 * d * static_cast<double>(c.moe_inter_dim);
    const double router = d * static_cast<double>(c.n_routed_experts);
    b.ffn_total = router + static_cast<double>(c.n_routed_experts + c.n_shared_experts) * expert;
    b.ffn_active = router + static_cast<double>(c.n_activated_experts + c.n_shared_experts) * expert;
  }
  return b;
}
}  // namespace

ParamCount count_params(const ModelConfig& c) {
  ParamCount p;
  const double d = static_cast<double>(c.dim), v = static_cast<double>(c.vocab_size);
  p.total = (c.tie_embeddings ? 1 : 2) * v * d + d;  // embedding, head, final norm
  p.activated = v * d + d;                            // head and final norm: the lookup costs no FLOPs
  for (std::int64_t l = 0; l < c.n_layers; ++l) {
    const BlockCount b = block_params(c, c.is_moe_layer(l));
    p.total += b.attention + b.ffn_total;
    p.activated += b.attention + b.ffn_active;
  }
  // MTP module (DeepSeek-V3): the embedding and hidden-state norms, the [2d -> d] projection, one block
  // and its output norm, sharing the embedding and output head. It trains but is not on the path of the
  // next-token prediction.
  for (std::int64_t k = 0; k < c.mtp_depth; ++k) {
    const BlockCount b = block_params(c, !c.dense);
    p.mtp += 3 * d + 2 * d * d + b.attention + b.ffn_total;
  }
  return p;
}

double train_flops_per_token(const ModelConfig& c, std::int64_t seq_len) {
  const ParamCount p = count_params(c);
  const double head_dims = c.gqa() ? 2.0 * static_cast<double>(c.gqa_head_dim())
                                   : static_cast<double>(c.qk_head_dim() + c.v_head_dim);
  const double attention = 6.0 * static_cast<double>(c.n_layers) * static_cast<double>(seq_len) *
                           static_cast<double>(c.n_heads) * head_dims;
  return 6.0 * p.activated + attention;
}

std::string describe_model(const ModelConfig& c) {
  const ParamCount p = count_params(c);
  char buf[256];
  if (c.gqa())
    std::snprintf(buf, sizeof buf, "%s dense decoder: %.3gB parameters, %lld layers, dim %lld, %lld heads / %lld KV heads of %lld",
                  std::string(choice_word(c.arch)).c_str(), p.total / 1e9, static_cast<long long>(c.n_layers),
                  static_cast<long long>(c.dim), static_cast<long long>(c.n_heads), static_cast<long long>(c.kv_heads()),
                  static_cast<long long>(c.gqa_head_dim()));
  else if (c.dense)
    std::snprintf(buf, sizeof buf, "dense decoder: %.3gB parameters, %lld layers, dim %lld, %lld heads",
                  p.total / 1e9, static_cast<long long>(c.n_layers), static_cast<long long>(c.dim),
                  static_cast<long long>(c.n_heads));
  else
    std::snprintf(buf, sizeof buf,
                  "MoE: %.3gB parameters (%.3gB activated per token), %lld layers (%lld dense), %lld routed experts "
                  "top-%lld + %lld shared, dim %lld, %lld heads",
                  p.total / 1e9, p.activated / 1e9, static_cast<long long>(c.n_layers),
                  static_cast<long long>(c.n_dense_layers), static_cast<long long>(c.n_routed_experts),
                  static_cast<long long>(c.n_activated_experts), static_cast<long long>(c.n_shared_experts),
                  static_cast<long long>(c.dim), static_cast<long long>(c.n_heads));
  return buf;
}

}  // namespace r1
