// Parameter and FLOP counts of a model configuration (config/model.hpp), used by --dry-run, the MFU
// report and the memory estimate.
#pragma once
#include <string>

#include "config/model.hpp"

namespace r1 {

// Trainable weights, in the convention of the published sizes (DeepSeek-V3: 671B total, 37B activated):
// the main model without MTP modules (counted apart, as the papers do) and without the router's
// selection bias (a balancing buffer, not trained by gradients).
struct ParamCount {
  double total = 0;      // every weight of the main model
  double activated = 0;  // weights a token's FLOPs pass through: top-k + shared experts, LM head; no embedding
  double mtp = 0;        // the MTP modules (embedding and head shared with the main model)
};
ParamCount count_params(const ModelConfig& c);

// Training FLOPs per token (DESIGN §6, PaLM convention): 6 x activated + attention
// 6 x layers x seq x heads x (d_qk + d_v), no causal halving.
double train_flops_per_token(const ModelConfig& c, std::int64_t seq_len);

std::string describe_model(const ModelConfig& c);  // one line: size, layers, experts, attention

}  // namespace r1
