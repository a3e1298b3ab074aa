// The trainer's state as checkpoint slices: parameters (f32 masters, buffers included) and AdamW
// moments, saved and loaded for the current layout; other layouts only change which slices a rank owns.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.hpp"
#include "model/params.hpp"
#include "train/optimizer.hpp"

namespace r1::ckpt {

enum class LoadMode {
  weights,  // a new phase from a parent checkpoint: parameters only
  full,     // resume: parameters, AdamW moments and steps taken (the caller restores RNG and data position)
};
LoadMode parse_load_mode(const std::string& s);  // "weights" | "full"

// Checkpoint names of a parameter's tensors.
std::string model_name(const Param& p);        // "model/<name>"
std::string exp_avg_name(const Param& p);      // "optim/exp_avg/<name>"
std::string exp_avg_sq_name(const Param& p);   // "optim/exp_avg_sq/<name>"

// Every tensor of the trainer this rank holds, as slices of the global tensors: whole tensors, and the
// expert- and tensor-parallel shards at their global offsets (a fused [gate | up] shard is two slices).
// `moments` (whole, parameter-shaped: AdamW::gather_moments or moments_to_load) null: parameters only.
// `include` (null: every parameter) selects the parameters.
std::vector<Slice> held_slices(const ParamStore& params, const AdamW::Moments* moments,
                               const std::function<bool(const Param&)>& include = nullptr);

// Collective over the checkpointer's communicator and the optimizer's replica groups: the first copy of
// every slice (AdamW::first_copy) is written, so every global tensor is written exactly once. ZeRO-1
// moment parts are gathered first. meta.optimizer_state gets AdamW's steps taken.
SaveReport save_train_state(Checkpointer& ckpt, Meta meta, const ParamStore& params, const AdamW& opt);
// Collective like save_train_state: Checkpointer::prepare for the slices it will save.
void prepare_train_state(Checkpointer& ckpt, const ParamStore& params, const AdamW& opt);

// Not collective: every rank reads every tensor it holds. weights: the masters (then the compute copies
// are refreshed); full also the moments and AdamW's steps taken (`opt` required). Returns the
// checkpoint's metadata (step, tokens, RNG and data state for the caller to restore).
// Parameters named `new_prefix`... (e.g. "rm." for the reward model's head on a policy checkpoint) may be
// absent from the checkpoint: they keep their current values (and moments); every other tensor is required.
Meta load_train_state(const std::filesystem::path& checkpoint, LoadMode mode, ParamStore& params, AdamW* opt,
                      const std::string& new_prefix = {});

}  // namespace r1::ckpt
