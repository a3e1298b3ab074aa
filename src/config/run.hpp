// The sections of what a job runs and where: [run], [parallel], [checkpoint], [log] and [hf].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/keys.hpp"
#include "parallel/pipeline_split.hpp"

namespace r1 {

enum class Stage { pretrain, grpo, sft, rejection_sampling, reward_model, evaluate, import_hf, export_hf, self_check };
constexpr auto choice_words(Stage) {
  return std::to_array<ChoiceWord<Stage>>({{"pretrain", Stage::pretrain},
                                           {"grpo", Stage::grpo},
                                           {"sft", Stage::sft},
                                           {"rejection_sampling", Stage::rejection_sampling},
                                           {"reward_model", Stage::reward_model},
                                           {"evaluate", Stage::evaluate},
                                           {"import_hf", Stage::import_hf},
                                           {"export_hf", Stage::export_hf},
                                           {"self_check", Stage::self_check}});
}

#define R1_RUN_KEYS(KEY)                                                                                                   \
  KEY(choice, stage, Stage::self_check, (), "phase of the R1 pipeline this job runs")                                      \
  KEY(path, output_dir, "runs/default", (), "directory for the resolved deck, metrics.jsonl and (by default) checkpoints") \
  KEY(integer, seed, 1234, (0, kNoMax), "seed of every random stream (init, data order, sampling)")                        \
  KEY(integer, max_steps, 0, (0, kNoMax), "optimizer steps to run; 0 runs the stage to its natural end")                   \
  KEY(real, time_limit_minutes, 0, (0, 1e7), "checkpoint and exit for requeue after this wall time; 0: no limit")

struct RunSection {
  R1_CONFIG_MEMBERS(R1_RUN_KEYS)
  bool operator==(const RunSection&) const = default;
};

// dualpipe: the bidirectional schedule; each rank holds two of the pipeline stages, one of them a second copy
// of its mirror rank's (ModelGroups::two_copies), in pretrain and sft.
enum class PipelineSchedule { one_f_one_b, interleaved, dualpipev, dualpipe };
constexpr auto choice_words(PipelineSchedule) {
  return std::to_array<ChoiceWord<PipelineSchedule>>({{"1f1b", PipelineSchedule::one_f_one_b},
                                                      {"interleaved", PipelineSchedule::interleaved},
                                                      {"dualpipev", PipelineSchedule::dualpipev},
                                                      {"dualpipe", PipelineSchedule::dualpipe}});
}

// Model chunks per pipeline rank: virtual_stages under interleaved, the V's two under dualpipev (dualpipe: a
// stage of each direction), else one.
constexpr int pipeline_chunks_per_rank(PipelineSchedule s, std::int64_t virtual_stages) {
  if (s == PipelineSchedule::dualpipev || s == PipelineSchedule::dualpipe) return 2;
  return s == PipelineSchedule::interleaved ? static_cast<int>(virtual_stages) : 1;
}
// dualpipe places its 2 x pipeline chunks (down the stages, then up the reverse copy's) on the V too.
constexpr parallel::ChunkPlacement chunk_placement(PipelineSchedule s) {
  return s == PipelineSchedule::dualpipev || s == PipelineSchedule::dualpipe ? parallel::ChunkPlacement::v_shape
                                                                            : parallel::ChunkPlacement::round_robin;
}
// The chunks one micro-batch passes in order: all of them, but under dualpipe the `stages` of its direction.
constexpr int pipeline_chain_length(PipelineSchedule s, int stages, std::int64_t virtual_stages) {
  return s == PipelineSchedule::dualpipe ? stages : stages * pipeline_chunks_per_rank(s, virtual_stages);
}

#define R1_PARALLEL_KEYS(KEY)                                                                                       \
  KEY(integer, tensor, 1, (1, 4096), "tensor-parallel ranks (attention heads, dense FFN, shared experts, vocab)")   \
  KEY(integer, pipeline, 1, (1, 4096), "pipeline stages")                                                           \
  KEY(integer, expert, 1, (1, 1 << 20), "expert-parallel ranks, folded over data x tensor in MoE layers")           \
  KEY(integer, data, 0, (0, 1 << 24), "data-parallel replicas; 0: world / (tensor x pipeline)")                     \
  KEY(integer, max_expert_ranks, 0, (0, 1 << 20),                                                                   \
      "device-limited routing: refuse a layout where a token's experts can sit on more EP ranks; 0: no limit")      \
  KEY(integer, virtual_stages, 1, (1, 1024), "model chunks per pipeline rank (interleaved schedule)")               \
  KEY(choice, schedule, PipelineSchedule::one_f_one_b, (),                                                          \
      "pipeline schedule; dualpipev cuts the model into 2 x pipeline chunks placed as a V, dualpipe feeds "          \
      "micro-batches from both ends through two copies of the stages")                                              \
  KEY(flag, split_weight_grad, false, (),                                                                           \
      "dualpipev, dualpipe: split each backward into input and weight gradients, the weight GEMMs deferred into "   \
      "the bubbles")                                                                                                \
  KEY(flag, timeline, false, (),                                                                                    \
      "record each rank's executed pipeline schedule in <output_dir>/pipeline_timeline/rank-N.jsonl")               \
  KEY(choice, order, "tp-dp-pp", ("tp-dp-pp", "tp-pp-dp", "dp-tp-pp", "dp-pp-tp", "pp-tp-dp", "pp-dp-tp"),          \
      "nesting of rank groups, innermost first (tp-dp-pp puts tensor groups on adjacent ranks)")                    \
  KEY(flag, sequence_parallel, false, (),                                                                           \
      "split the residual stream (norms, residual adds, pipeline activations) over the tensor group by token rows") \
  KEY(flag, zero1, true, (), "shard AdamW states over the data-parallel group (reduce-scatter + all-gather)")       \
  KEY(flag, overlap_grad_reduce, true, (),                                                                          \
      "start each layer's gradient reduction over data-parallel replicas during the backward (same results)")       \
  KEY(flag, overlap_expert_comm, true, (),                                                                          \
      "run the MoE token all-to-alls beside the shared experts and the router gradient (same results)")             \
  KEY(flag, overlap_chunk_pairs, true, (),                                                                          \
      "dualpipev, dualpipe: run a forward chunk and another micro-batch's backward chunk as one pair, each one's "  \
      "MoE all-to-alls beside the other's compute (same results)")                                                 \
  KEY(choice, backend, "auto", ("auto", "mpi", "nccl"), "communication backend; auto: nccl on GPUs, mpi on CPUs")   \
  KEY(real, collective_timeout_s, 600, (1, 1e6), "a collective taking longer aborts the job instead of hanging")

struct ParallelConfig {
  R1_CONFIG_MEMBERS(R1_PARALLEL_KEYS)
  bool operator==(const ParallelConfig&) const = default;
};

#define R1_CHECKPOINT_KEYS(KEY)                                                                                              \
  KEY(path, dir, "", (), "where step-N/ directories go; empty: <run.output_dir>/checkpoints")                                \
  KEY(integer, every_steps, 0, (0, kNoMax), "steps between checkpoints; 0: only at the end")                                 \
  KEY(integer, keep_last, 3, (0, kNoMax), "checkpoints kept, older ones deleted; 0: keep all")                               \
  KEY(text, load, "", (), "start from: a checkpoint path, 'latest' (resume this run if it has one), or empty")               \
  KEY(choice, load_mode, "weights", ("weights", "full"), "what a path loads: weights only, or also optimizer, step and RNG") \
  KEY(flag, async, false, (), "write in the background; the next update waits only for the copies to the host")            \
  KEY(integer, io_threads, 0, (0, 256),                                                                                     \
      "threads per rank that copy, checksum, write and read checkpoint data; 0: the CPUs this rank may use, 2 to 8")

struct CheckpointConfig {
  R1_CONFIG_MEMBERS(R1_CHECKPOINT_KEYS)
  bool operator==(const CheckpointConfig&) const = default;
};

#define R1_LOG_KEYS(KEY)                                                                                                   \
  KEY(choice, level, "info", ("debug", "info", "warn", "error"), "least severe message printed")                           \
  KEY(integer, metrics_every, 1, (1, kNoMax), "steps between records in metrics.jsonl")                                    \
  KEY(ints, profile_steps, {}, (0, kNoMax),                                                                                \
      "first, last optimizer step of the region profiler (device syncs per model region; breakdown logged and written to " \
      "RUN_DIR/profile.json; pretrain); empty: off")

struct LogConfig {
  R1_CONFIG_MEMBERS(R1_LOG_KEYS)
  bool operator==(const LogConfig&) const = default;
};

#define R1_HF_KEYS(KEY)                                                                                           \
  KEY(path, path, "", (), "Hugging Face model directory: read by import_hf, written by export_hf")                \
  KEY(choice, dtype, "bf16", ("fp32", "bf16", "fp8"), "tensor type export_hf writes (fp8: 128x128 block scales)") \
  KEY(flag, overwrite, false, (), "export_hf may replace the model files of a non-empty path")                    \
  KEY(choice, missing_mtp, "drop", ("drop", "init"),                                                              \
      "import_hf when config.json names MTP layers the files lack: drop them, or initialise them fresh")          \
  KEY(integer, max_shard_bytes, 5000000000, (0, kNoMax),                                                          \
      "export_hf splits the tensors into shards of at most this many bytes (+ index.json); 0: one file")

struct HfConfig {
  R1_CONFIG_MEMBERS(R1_HF_KEYS)
  bool operator==(const HfConfig&) const = default;
};

}  // namespace r1
