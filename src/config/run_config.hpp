// RunConfig: every section of a deck as typed structs, and the schema their key bindings make.
#pragma once
#include <filesystem>
#include <string_view>
#include <vector>

#include "config/keys.hpp"
#include "config/model.hpp"
#include "config/rl.hpp"
#include "config/run.hpp"
#include "config/training.hpp"

namespace r1 {

// What a job runs, read once from its validated deck (Deck::config, validate_deck) and passed down;
// the deck itself stays beside it for where each value came from.
struct RunConfig {
  RunSection run;
  ModelConfig model;
  ParallelConfig parallel;
  DataConfig data;
  OptimConfig optim;
  TrainConfig train;
  SftConfig sft;
  GrpoConfig grpo;
  RewardConfig reward;
  RewardModelConfig reward_model;
  SamplingConfig sampling;
  RejectionConfig rejection;
  EvaluateConfig evaluate;
  HfConfig hf;
  CheckpointConfig checkpoint;
  LogConfig log;
  bool operator==(const RunConfig&) const = default;
};

// The deck schema: all sections and keys, in the order they are documented and printed, each key bound
// to its member.
const std::vector<SectionDecl>& deck_sections();
const std::vector<KeyDecl>& deck_keys();

// Sets the fields that follow from other keys once every key is assigned: ModelConfig::normalize_gates,
// GrpoConfig::adv_scale and max_completion_tokens.
void derive_fields(RunConfig& config);

// The directory holding the run's step-N/ checkpoints: checkpoint.dir, or <run.output_dir>/checkpoints.
std::filesystem::path checkpoint_dir(const RunConfig& config);

}  // namespace r1
