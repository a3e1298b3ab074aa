// The map between Hugging Face DeepSeek-V3/V2 and Llama/Qwen2/Qwen3 tensor names and layouts and r1hpc's
// parameters (docs/model.md), in both directions: gate/up row blocks <-> one gate_up, the per-head feature
// order of RoPE'd q/k tensors, per-expert tensors <-> one stacked [E, ...] tensor,
// the MTP layer model.layers.{n_layers + k}.* <-> mtp.k.*, eh_proj's column halves <-> proj_e / proj_h.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "core/tensor.hpp"
#include "model/params.hpp"

namespace r1::hf {

// Where one HF tensor goes in r1hpc.
struct HfTarget {
  enum class Kind {
    param,       // `name` is a parameter, or the slot `expert` of a stacked [E, ...] one, or the row block `part`
    mtp_eh_proj, // `name` is "mtp.K": the [D, 2D] eh_proj whose column halves are mtp.K.proj_e and mtp.K.proj_h
    mtp_shared,  // `name` is "embed" or "head": an MTP layer's copy of a main tensor, which it must equal
  };
  std::string name;
  int expert = -1;  // slot of a stacked [E, ...] parameter; -1: not stacked
  int part = -1;    // row block of a concatenated gate_up: 0 gate rows, 1 up rows; -1 the whole tensor
  Kind kind = Kind::param;
};

// The target of an HF tensor name, or an r1::Error (user) naming it when r1hpc has no counterpart. Knows
// transformers' fused expert tensors (mlp.experts.gate_up_proj [E, 2I, D], mlp.experts.down_proj [E, D, I])
// and checkpoints' per-expert ones (mlp.experts.N.{gate,up,down}_proj.weight). `mtp_layer`: the HF index of
// the first MTP layer (num_hidden_layers), -1 when the checkpoint has none.
HfTarget hf_target(const std::string& hf_name, std::int64_t mtp_layer = -1);

// HF tensors (host f32, by HF name) assembled into r1hpc tensors (by r1hpc name) in r1hpc layout. MTP copies of
// the embedding and head are checked against the main ones and dropped. Errors name the HF tensor: no r1hpc
// counterpart, two tensors for one place, a missing gate/up half or expert, inconsistent shapes, an MTP copy
// that differs.
std::map<std::string, Tensor> map_hf_tensors(const std::map<std::string, Tensor>& hf, std::int64_t mtp_layer = -1);

// Copies every mapped HF tensor into the store's masters and refreshes the compute copies. Errors start with
// `source` and name the HF tensor whose r1hpc parameter is absent or of another shape, and any trainable
// parameter no HF tensor fills; buffers that no HF tensor fills (a V2 model's router_bias) are set to zero.
// Parameters whose names start with `keep_prefix` (when not empty) may stay unfilled and keep their values.
void load_hf_tensors(const std::map<std::string, Tensor>& hf, ParamStore& params, const std::string& source,
                     std::int64_t mtp_layer = -1, const std::string& keep_prefix = "");

// Llama/Qwen rotate half-split pairs (i, i + d/2) of each head, r1hpc interleaved pairs (2i, 2i+1)
// (model/gqa.hpp): reorders in place each head's features (rows) of the HF tensors that RoPE reads,
// self_attn.{q,k}_proj.{weight,bias} and self_attn.{q,k}_norm.weight, host f32, into r1hpc's order (to_r1hpc)
// or back. q.k is unchanged. Errors name a tensor whose rows are not whole heads.
void permute_rope_pairs(std::map<std::string, Tensor>& hf, std::int64_t head_dim, bool to_r1hpc);

// The inverse: r1hpc tensors (host f32, by r1hpc name) as HF checkpoint tensors with per-expert names, as
// save_pretrained and the DeepSeek-V3 release write them. The MTP layer gets its copies of the embedding and
// of the head (`embed` when `head` is absent: tied embeddings). An r1hpc name without an HF counterpart is an
// internal error.
std::map<std::string, Tensor> to_hf_tensors(const std::map<std::string, Tensor>& r1, std::int64_t n_layers);

}  // namespace r1::hf
