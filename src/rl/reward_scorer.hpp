// A trained reward model (a reward_model stage checkpoint: the policy's trunk + rm.head, rm.bias) that
// scores whole token sequences: the learned rewards of GRPO's "RL for all scenarios".
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "deck/deck.hpp"
#include "model/config.hpp"
#include "model/model.hpp"
#include "model/params.hpp"

namespace r1 {

// A forward's normalised final hidden state at the given flattened positions (b * seq + t), f32 on the
// host, [positions x dim]: gathered on the device (a row gather), so only those rows cross to the host.
std::vector<float> hidden_rows(const kernels::Context& ctx, const Model& model, const Model::Saved& saved,
                               const std::vector<std::int32_t>& positions);
// The scalar reward of one hidden row: head[0..D) . h + head[D] (rm.head, then rm.bias).
double linear_reward(const std::vector<double>& head, const float* h);

class RewardScorer {
 public:
  // Loads the reward model at `path`, the value of the deck's `key` (a step directory, or a checkpoints
  // directory whose `latest` is taken), into a model of `cfg` (the policy's architecture). A path that is
  // neither, or a checkpoint of another stage, fails naming the key; a tensor of another shape names the tensor.
  RewardScorer(const Deck& deck, std::string_view key, const std::string& path, const ModelConfig& cfg,
               const kernels::Context& ctx, DType compute_dtype);
  // The reward of each sequence, rm.head . h + rm.bias with h the normalised final hidden state at the
  // sequence's last token (as the reward_model stage trains it), in batches of `micro` right-padded rows.
  std::vector<double> score(const std::vector<std::vector<std::int32_t>>& seqs, std::int64_t micro, std::int32_t pad) const;
  const std::string& objective() const { return objective_; }  // the checkpoint's [reward_model] objective
  const std::filesystem::path& checkpoint() const { return checkpoint_; }

 private:
  ModelConfig cfg_;
  kernels::Context ctx_;
  ParamStore params_;
  Model model_;
  std::vector<double> head_;  // rm.head then rm.bias, on the host
  std::string objective_;
  std::filesystem::path checkpoint_;
};

}  // namespace r1
