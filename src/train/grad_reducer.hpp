// GradReducer: sums every gradient over the ranks that replicate its parameter (data-parallel replicas,
// expert-data-parallel ones for routed experts, tensor-parallel ones for partial sums), started during
// the backward or all at the step's end, with ZeRO-1's reduce-scatter into parts; and the chunks the
// gradients are cut into, which ZeRO-1's parts and the optimizer's gradient norm share.
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "model/model.hpp"
#include "model/params.hpp"
#include "parallel/comm.hpp"

namespace r1 {

struct StageEnv;

// Where the parameters are replicated (null: nowhere, a one-rank run). Routed-expert tensors
// (Param::expert) are replicated over the expert-data-parallel group, every other parameter over DP, and
// over TP too unless it is split (Param::tp).
struct ReplicaGroups {
  parallel::Communicator* dp = nullptr;
  parallel::Communicator* edp = nullptr;
  parallel::Communicator* tp = nullptr;
  parallel::Communicator* world = nullptr;  // every rank holding some parameter: the gradient norm's sum
  // ZeRO-1: the n replicas of a parameter each keep the AdamW moments of about 1/n of its elements (whole
  // chunks); gradients are reduce-scattered, each rank updates its part of the master, and the parts
  // are all-gathered.
  bool zero1 = false;
  // Overlap: GradReducer::start() starts the reductions during the backward (false: it does nothing and
  // reduce() does them all; the results are the same bits either way).
  bool overlap = true;
  // DualPipe's two copies (ModelGroups::two_copies): pipeline rank r and its mirror p - 1 - r hold the same two
  // stages, each fed half the micro-batches. Every gradient is first summed with the mirror's (one send_recv
  // per parameter over `mirror`, the pipeline group, in name order), so both copies take the same update;
  // the copies this rank holds as its second (`second_copies`) are then left out of the gradient norm and
  // the checkpoints, like a replica that is not the first. The backward starts no reduction then: the sum
  // over the replicas of each parameter starts after the mirror's, beside the next parameters' exchanges.
  parallel::Communicator* mirror = nullptr;
  std::vector<const Param*> second_copies{};
  // The stage's groups; zero1: [parallel] zero1 as the deck says, or false for stages that keep whole
  // AdamW states. overlap: [parallel] overlap_grad_reduce.
  static ReplicaGroups from_env(const StageEnv& env, bool zero1 = true);
  // These groups with `model`'s second copies (Model::second_copy_params; none: unchanged).
  ReplicaGroups with_copies_of(const Model& model) const;
};

// Gradients are cut into chunks fixed by the parameter alone: the gradient norm sums each chunk's squares
// (f32, then f64) and ZeRO-1 parts are whole chunks, so every layout adds the same f32 chunk sums and
// clips by the same factor (a 1-ulp difference in it is enough to make two runs drift apart over many
// steps). A parameter of at most `min_chunk` elements is one chunk; larger ones are cut into at most
// 1024 chunks.
inline constexpr std::int64_t kGradChunk = 1 << 18;
std::int64_t grad_chunk(std::int64_t numel, std::int64_t min_chunk);

class GradReducer {
 public:
  // This rank's part of a parameter under ZeRO-1: elements [lo, hi) of the flattened tensor, in parts of
  // `size` elements (the last one padded) over the `comm` replicas; comm null: the whole parameter.
  struct Part {
    parallel::Communicator* comm = nullptr;
    std::int64_t lo = 0, hi = 0, size = 0;
  };

  // With ZeRO-1 a parameter's gradient moves into a buffer padded to whole parts (Param::grad then views
  // its first numel() elements), so the reduce-scatter reads it in place.
  GradReducer(ParamStore& params, ReplicaGroups groups, std::int64_t min_chunk = kGradChunk);
  // Overlap with the backward: starts summing the gradients of `params` over their replicas, to run
  // while the backward goes on. Call it when no later backward of this step adds to them (after the
  // last micro-batch's backward of their layer), at the same point on every replica. Collective over
  // the replica groups. Parameters whose gradients are first summed over TP (TpRole::partial under TP)
  // are left to reduce(), which then starts the rest and finishes them all.
  void start(std::span<Param* const> params);
  // Sums every gradient over the ranks that replicate its parameter (dp or edp; first over tp for the
  // TpRole::partial ones): collective, call it once per step after the backward passes of every
  // micro-batch. With ZeRO-1 a rank receives only the sum of its own part (reduced_part); Param::grad
  // then holds this rank's unreduced gradient.
  void reduce();
  // Parameters whose reduction start() started during the last step's backward.
  std::int64_t overlapped_last_step() const { return overlapped_; }

  const ReplicaGroups& groups() const { return groups_; }
  // Parameter i's gradient chunk (grad_chunk) and ZeRO-1 part, in ParamStore::all() order.
  std::int64_t chunk(std::size_t i) const;
  const Part& part(std::size_t i) const { return parts_[i]; }
  bool zero1_sharded(std::size_t i) const { return parts_[i].comm != nullptr; }
  // ZeRO-1: the reduced gradient of this rank's part of parameter i ([size] elements, hi - lo of them real).
  const Tensor& reduced_part(std::size_t i) const { return grad_part_[i]; }
  // Whether this rank holds the first copy of p among the ranks that replicate it (dp or edp, and tp
  // unless p is split): the copy a checkpoint writes and the gradient norm counts.
  // Neither holds for a DualPipe second copy (ReplicaGroups::second_copies).
  bool first_copy(const Param& p) const;
  bool first_tp_copy(const Param& p) const;  // p is split over TP, or this is TP rank 0

 private:
  parallel::Communicator* replicas(const Param& p) const { return p.expert ? groups_.edp : groups_.dp; }
  // Starts the reduction of parameter i over its replicas (once per step; nothing for a lone copy):
  // whether an op was started.
  bool start_one(std::size_t i);
  // DualPipe: adds the mirror's gradients to this rank's (ReplicaGroups::mirror), starting each one's reduction.
  void sum_with_mirror();

  ParamStore& params_;
  ReplicaGroups groups_;
  std::int64_t min_chunk_;
  std::vector<Part> parts_;          // per parameter
  std::vector<Tensor> grad_part_;    // ZeRO-1: the reduced gradient of this rank's part ([size] elements)
  std::vector<Tensor> padded_grad_;  // ZeRO-1: the gradient's buffer with its zero tail (Param::grad views it)
  std::unordered_map<const Param*, std::size_t> index_;  // parameter -> its index in params_.all()
  std::vector<Param*> by_name_;      // DualPipe: the trainable parameters in name order (the mirror's order too)
  std::unordered_set<const Param*> second_copies_;
  Tensor mirror_grad_;               // DualPipe: the mirror's gradient of one parameter at a time
  std::vector<char> started_;        // per parameter: its reduction of this step has started
  std::int64_t overlapping_ = 0, overlapped_ = 0;  // started by start(): this step, the last one
};

}  // namespace r1
