// Pipeline-parallel schedules (Megatron's 1F1B and interleaved 1F1B, DeepSeek's DualPipeV): the order of
// each rank's passes, the point-to-point exchanges that carry activations and gradients between them, and
// a runner that executes both over the pipeline group's communicator with model callbacks and can record
// the executed timeline.
#pragma once
#include <compare>
#include <functional>
#include <optional>
#include <vector>

#include "config/run.hpp"
#include "core/interleave.hpp"
#include "core/tensor.hpp"
#include "kernels/context.hpp"
#include "parallel/comm.hpp"

namespace r1 {

// One pass of one micro-batch through one model chunk. Chunks are numbered along the model,
// 0 .. stages x pipeline_chunks_per_rank - 1, and placed by parallel::chunk_rank: chunk c runs on pipeline
// rank c % stages (with interleaving a rank holds chunks rank, rank + stages, ... and the last rank feeds
// rank 0), or under dualpipev on the V (rank r holds chunks r and 2 stages - 1 - r). Under dualpipe the
// same placement holds two chains (pipeline_chain_length): chunks 0 .. stages - 1 are the stages for
// micro-batches 0 .. m/2 - 1, fed from rank 0; chunks stages .. 2 stages - 1 are stages 0 .. stages - 1 again
// (chunk c runs stage c - stages with a second copy of its parameters) for micro-batches m/2 .. m - 1, fed
// from the last rank. Backward passes
// compute both the input and the weight gradients, unless the schedule splits the weight gradient off
// into a W pass of the same micro-batch and chunk ([parallel] split_weight_grad; docs/parallel.md).
struct PipelineAction {
  enum class Kind { forward, backward, weight };
  Kind kind = Kind::forward;
  int micro = 0;
  int chunk = 0;
  auto operator<=>(const PipelineAction&) const = default;
};

// This rank's passes in execution order: warm-up forwards, then one forward one backward, then the
// remaining backwards. 1F1B (virtual_stages 1) warms up with stages - rank - 1 forwards; interleaved
// (virtual_stages >= 2, micro_batches a multiple of stages) walks the chunks in groups of `stages`
// micro-batches and warms up with 2 (stages - rank - 1) + (virtual_stages - 1) stages forwards, at most
// all of them. dualpipev (virtual_stages 1, at least 2 stages micro-batches) follows DualPipeV's steps, and
// dualpipe (an even number of stages, an even number of at least 2 stages micro-batches) DualPipe's
// (pipeline_schedule.cpp); with split_weight (dualpipev, dualpipe) each backward is followed, at once or later
// in the cool-down, by its W. Arguments a deck controls are refused with user errors naming its keys.
std::vector<PipelineAction> pipeline_order(PipelineSchedule s, int stages, int rank, int virtual_stages,
                                           int micro_batches, bool split_weight = false);

// One step of a rank's program: a pass (with `partner`: DualPipe's overlapped pair of two passes), or an
// exchange with one neighbour that moves at most one tensor each way: the output of `sent` (a pass of this
// rank) and the output of `received` (a pass of `peer`).
// A forward's output is the activation its next chunk consumes, a backward's the gradient its previous
// chunk consumes; outputs that stay on the rank (one stage) need no exchange.
struct PipelineStep {
  enum class Op { compute, exchange };
  Op op = Op::compute;
  PipelineAction action;                  // compute
  std::optional<PipelineAction> partner;  // compute: the pass that runs overlapped with `action`
  int peer = -1;                          // exchange: the neighbour's pipeline rank
  std::optional<PipelineAction> sent, received;
};

// pipeline_order's passes with the exchanges placed between them. Deadlock-free when every exchange
// blocks until its peer posts the match, and messages between two ranks are matched in the order they
// were issued (so NCCL, which ignores tags, pairs them right): see pipeline_schedule.cpp.
// overlap_pairs ([parallel] overlap_chunk_pairs; dualpipev and dualpipe only): the forward of one chunk and
// the backward of the rank's other chunk for another micro-batch that DeepSeek's DualPipe overlaps become
// one step with a partner: the steady state's F0 B1 (but the first on the rank where the V turns) and
// F1 B0, and the cool-down's F1 B0. Both passes' inputs are exchanged before the pair and both outputs
// after it.
std::vector<PipelineStep> pipeline_program(PipelineSchedule s, int stages, int rank, int virtual_stages,
                                           int micro_batches, bool split_weight = false, bool overlap_pairs = false);

struct PipelineHooks {
  // The forward of micro-batch `micro` through model chunk `chunk`. `input` is the previous chunk's
  // activation (undefined for the first chunk of its chain); returns the activation for the next chunk
  // (ignored for the last chunk of the chain, which computes the loss itself).
  std::function<Tensor(int micro, int chunk, const Tensor& input)> forward;
  // The backward: `dout` is the gradient from the next chunk (undefined for the chain's last); returns the
  // gradient of the chunk's input (ignored for the chain's first).
  std::function<Tensor(int micro, int chunk, const Tensor& dout)> backward;
  // Set: the schedule splits the weight gradient off (split_weight), `backward` computes the input gradient
  // only and this computes the weight gradients of that micro-batch and chunk, after its backward.
  std::function<void(int micro, int chunk)> weight;
  // What flows between chunks, the same for every micro-batch; receive buffers are allocated from it in
  // the context's memory.
  Shape activation_shape;
  DType activation_dtype = DType::f32;
};

// One step of a rank's program as it ran, in seconds since the schedule started: a pass (inside its
// hook), or an exchange (blocked in it: waiting for the peer and moving the tensors).
struct TimelineEvent {
  PipelineStep step;
  double start_s = 0, end_s = 0;
};

struct PipelineReport {
  double busy_s = 0;           // this rank: time inside the hooks
  double wall_s = 0;           // this rank: the whole schedule
  double bubble_fraction = 0;  // measured idle share, 1 - busy_s / wall_s, the largest over the pipeline
  double ideal_bubble = 0;     // the schedule's formula (ideal_bubble below)
  bool split_weight = false;   // backwards split into B and W passes (PipelineHooks::weight)
  int sends = 0, recvs = 0;    // tensors this rank sent and received
  int pairs = 0;               // overlapped pairs this rank ran
  std::int64_t pair_switches = 0;  // hand-overs between the passes of its pairs (interleave_switch)
  std::vector<TimelineEvent> timeline;  // every step of this rank's program, when recorded
};

// The idle share a schedule leaves when every pass of a kind takes the same time and messages are free:
// (stages - 1) / (virtual_stages x micro_batches + stages - 1) for 1f1b and interleaved; for dualpipev
// (2p - 3)F + (p - 1)B idle beside 2m (F + B) busy per rank with F, B a chunk's forward and backward,
// taken at B = 2F: (4p - 5) / (4p - 5 + 6m); for dualpipev with split_weight, (p - 1)F idle beside
// 2m (F + B + W) with B, W the backward's two halves, at F = B = W: (p - 1) / (p - 1 + 6m). dualpipe
// (m chunk passes per rank): (2p - 5) / (2p - 5 + 3m) at B = 2F (0 at p = 2), with split_weight
// (p/2 - 1) / (p/2 - 1 + 3m) at F = B = W.
double ideal_bubble(PipelineSchedule s, int stages, int virtual_stages, int micro_batches, bool split_weight = false);

// Runs this rank's program: pp is the pipeline group (member i is stage i), ctx the context the hooks'
// tensors and the receive buffers live in. Collective over pp (the report's bubble is a max over it).
// With record_timeline the report holds every step's interval. With hooks.weight the backward is split
// (split_weight: every rank must set it or none). With overlap_pairs (every rank or none) a pair's passes
// run as the two tasks of an Interleave (core/interleave.hpp), the forward first on this thread, the
// backward on a second: each hands over to the other where it has started an exchange of its MoE tokens
// (TokenDispatcher), so one's all-to-all moves while the other computes. Where MPI does not let two
// threads take turns (MPI_THREAD_SERIALIZED) the pair runs one pass after the other, with a warning.
// pair_thread: the Interleave to run the pairs on (its worker thread kept across steps, its device current);
// null: one made for this call.
PipelineReport run_pipeline(PipelineSchedule s, parallel::Communicator& pp, const kernels::Context& ctx,
                            int virtual_stages, int micro_batches, const PipelineHooks& hooks,
                            bool record_timeline = false, bool overlap_pairs = false, Interleave* pair_thread = nullptr);

}  // namespace r1
