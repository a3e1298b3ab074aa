// The stages of r1hpc and how one starts: the environment every stage runs in (the validated deck, this
// rank's compute context, the mesh and its communicators), built before any compute so bad input fails
// cleanly, and the dispatch on [run] stage.
#pragma once
#include "deck/deck.hpp"
#include "run/stage_env.hpp"

namespace r1 {

// Chooses the device (a GPU per rank when CUDA devices are visible), the compute precision, the
// communication backend, and builds the mesh. Layouts a stage cannot run yet are refused here.
StageEnv make_stage_env(const Deck& deck, const RunConfig& cfg, int rank, int world);

// Runs the deck's [run] stage; returns the process exit code.
int run_stage(const Deck& deck, const RunConfig& cfg, int rank, int world);

int run_pretrain(StageEnv& env);
int run_grpo(StageEnv& env);
int run_sft(StageEnv& env);  // also distillation: the same stage on a dense student deck
int run_evaluate(StageEnv& env);
int run_reward_model(StageEnv& env);  // a scalar head on the policy: pairwise (Bradley-Terry) or pointwise
int run_rejection_sampling(StageEnv& env);
// Hugging Face conversion (stages/hf_convert.cpp): one rank, CPU, no StageEnv needed.
int run_import_hf(const Deck& deck, const RunConfig& cfg, int rank, int world);
int run_export_hf(const Deck& deck, const RunConfig& cfg, int rank, int world);

}  // namespace r1
