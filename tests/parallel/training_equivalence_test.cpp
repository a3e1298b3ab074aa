// Parallel layouts against one rank: 3 optimizer steps of a tiny MoE model (CPU, FP32) at each layout the
// world size allows (expert parallelism EP = 2, 4, EP x EDP, tensor parallelism TP = 2 alone and with DP
// and EP, pipeline parallelism PP = 2, 4 with the 1F1B, interleaved, DualPipeV and DualPipe schedules, mixes up to
// TP2 x PP2 x DP2 x EP2 on 8 ranks, plain DP, with and without ZeRO-1) give the one-rank losses, gradient
// norms, expert loads and final parameters; checkpoints written by one layout load into the other; and
// overlapping communication with compute changes no bit.
// Pipeline layouts run a 4-layer model without MTP (pipeline parallelism refuses MTP; 8 layers for the 8
// chunks of DualPipeV at PP4), against its own one-rank reference. DualPipe's two copies of a stage each sum
// half the micro-batches before GradReducer adds them: one more reassociation of the gradient sums, as DP's
// all-reduce makes, so those layouts are held to the tolerances below (not to the bits), and their mirror
// ranks (r, p - 1 - r) to the same bits as each other. The grouped-query-attention students (llama with llama3 RoPE, qwen2 with q/k/v biases,
// qwen3 with q/k norms; 4 query heads over 2 K/V heads, 4 dense layers) run DP, ZeRO-1, TP2 (query and K/V
// heads split), TP4 (K/V heads replicated), SP, PP and their mixes against their own one-rank references.
//
// Tolerance. Every layout computes the same sums in a different order: the DP/EDP gradient all-reduce
// adds per-rank partial gradients instead of accumulating micro-batches in one buffer, the expert
// weight-gradient GEMMs see the tokens of several ranks in another order, and the gradient norm is a
// sum over ranks; tensor parallelism sums the partial outputs of its row-parallel projections and the
// shards' log-sum-exps over ranks. In FP32 each reordering perturbs a sum by a few ulps (~1e-7 relative). Losses are
// sums and agree to ~1e-7. AdamW divides each update by sqrt(v) + eps, so an element's update carries
// the relative round-off of its own gradient, which is large for elements whose gradient is itself at
// round-off level (cancellation): with the default eps = 1e-8, parameters after 3 steps agree only to
// ~1e-5..6e-5 in relative L2 norm per tensor (plain DP included; the MTP projection is the worst, and the
// figure moves with the CPU's BLAS kernels). These runs use eps = 1e-5, which damps those elements: every
// layout then agrees to 2e-6 at worst (TP2 x PP2 on 8 ranks; 1.2e-7 without TP). So the parameter
// tolerance is 1e-5; a wrong gradient or a lost token shows up at 1e-3 or more.
// The gradients are cut into chunks of 64 elements here (GradReducer's min_chunk), so that ZeRO-1, whose
// parts are whole chunks, really splits the tiny model's tensors.
// Expert counts are integers: they must agree exactly (a routing decision flipped by round-off would be
// a real divergence here, and the tiny model's scores are far from ties).
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "checkpoint/train_state.hpp"
#include "core/interleave.hpp"
#include "kernels/elementwise.hpp"
#include "model/model.hpp"
#include "parallel/comm_bundle.hpp"
#include "support/norms.hpp"
#include "support/tiny_model.hpp"
#include "train/optimizer.hpp"
#include "train/step.hpp"
#include "support/world.hpp"

namespace fs = std::filesystem;
using namespace r1;

namespace {

using test::world_rank;
using test::world_size;

constexpr double kLossTol = 1e-6;    // relative, per step
constexpr double kNormTol = 1e-5;    // relative, per step
constexpr double kParamTol = 1e-5;   // relative L2 per tensor (see above)
// Trainable parameters that start at 0 (Qwen2's q/k/v biases; the router bias is a buffer): their relative
// error is that of their 3 AdamW updates alone, with no initial weights to dilute it (measured up to 9.4e-6,
// layers.0.attn.k_bias at TP2 x PP2); a wrong bias gradient moves them by O(1).
constexpr double kZeroInitTol = 1e-4;
constexpr int kSteps = 3;
constexpr std::int64_t kGlobalRows = 8, kSeq = 16, kMicro = 1;

// deep: for pipeline layouts (`chunks` pipeline chunks).
ModelConfig tiny_moe(bool deep, int chunks = 4) {
  // One of two expert groups per token: group-limited routing.
  ModelConfig c = test::tiny_model({.vocab_size = 64, .dim = 32, .dense_inter_dim = 48, .moe_inter_dim = 16,
                                    .n_routed_experts = 8, .n_limited_groups = 1, .kv_lora_rank = 16,
                                    .max_seq_len = kSeq, .init_std = 0.05});
  c.seq_aux_alpha = 0.01;
  c.bias_update_gamma = 0.01;
  c.mtp_depth = 1;  // the MTP block is an MoE block too
  c.mtp_lambda = 0.3;
  if (deep) {  // chunks of one layer: 4 at PP2 x 2 virtual stages, PP4 or PP2 DualPipeV; 8 at PP4 DualPipeV
    c.n_layers = std::max(4, chunks);
    c.mtp_depth = 0;
  }
  return c;
}

// A grouped-query-attention student of 4 dense layers (pipeline-ready: no MTP, untied embeddings).
ModelConfig tiny_gqa(Arch arch) {
  ModelConfig c = test::tiny_model({.vocab_size = 64, .dim = 32, .n_layers = 4, .n_heads = 4, .dense_inter_dim = 48,
                                    .max_seq_len = kSeq, .init_std = 0.05});
  c.arch = arch;
  c.dense = true;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  if (arch == Arch::llama) {  // scaling bands inside the head at these positions
    c.rope_type = RopeType::llama3;
    c.rope_theta = 500;
    c.rope_factor = 8;
    c.original_seq_len = 8;
  }
  return c;
}

// Row r of the global batch: a fixed pseudo-random sequence (some targets without a loss).
TokenBatch global_row(std::int64_t step, std::int64_t r, std::int64_t vocab) {
  TokenBatch b;
  b.batch = 1;
  b.seq = kSeq;
  std::uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(1 + step * 1000 + r);
  for (std::int64_t s = 0; s < kSeq; ++s) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 29;
    b.ids.push_back(static_cast<std::int32_t>(x % static_cast<std::uint64_t>(vocab)));
    b.targets.push_back(s % 7 == 6 ? -1 : static_cast<std::int32_t>((x >> 17) % static_cast<std::uint64_t>(vocab)));
  }
  return b;
}

struct StepRecord {
  double loss = 0, grad_norm = 0;
  std::vector<std::vector<std::int64_t>> counts;
};

// One training run: the stages' own step (train_micro_batches, GradReducer, AdamW, the bias update) on
// this rank's share of the global batch (rows in the order of the ranks of `dp`, as the pretrain stage
// splits them).
struct TrainingRun {
  ParamStore params{kernels::Context::cpu(), DType::f32};
  std::unique_ptr<Model> model;
  std::unique_ptr<GradReducer> grads;
  std::unique_ptr<AdamW> opt;
  std::vector<StepRecord> steps;

  TrainingRun(const ModelConfig& c, ModelGroups model_groups, ReplicaGroups groups, DType moments = DType::f32) {
    model = std::make_unique<Model>(c, params, model_groups);
    params.initialize(11, c.init_std);
    grads = std::make_unique<GradReducer>(params, groups.with_copies_of(*model), /*min_chunk=*/64);
    opt = std::make_unique<AdamW>(params, AdamWConfig{.eps = 1e-5, .weight_decay = 0.1, .grad_clip = 0.5, .moments = moments}, *grads);
  }
  // all_on_first: every row goes to the first replica, the others run no micro-batch at all.
  void train(parallel::Communicator& dp, const PipelinePlan& pipe = {}, int n_steps = kSteps, bool all_on_first = false) {
    const ModelConfig& c = model->config();
    const auto& ctx = params.context();
    const std::int64_t n_micro = kGlobalRows / (kMicro * dp.size());
    for (int step = 1; step <= n_steps; ++step) {
      params.zero_grads();
      std::vector<TokenBatch> batches;
      double counted = 0;
      for (std::int64_t r = 0; r < kGlobalRows; ++r) {
        TokenBatch b = global_row(step, r, c.vocab_size);
        counted += static_cast<double>(b.counted());
        if (all_on_first ? dp.rank() == 0 : r / n_micro == dp.rank()) batches.push_back(std::move(b));
      }
      const StepSums sums = train_micro_batches(*model, batches, static_cast<float>(1.0 / counted),
                                                1.0f / static_cast<float>(kGlobalRows / kMicro), *grads, dp, ctx, pipe);
      StepRecord rec;
      rec.loss = sums.loss_sum / counted;
      rec.grad_norm = opt->step(1e-2);
      rec.counts = sums.model_expert_counts;
      model->update_router_bias(sums.expert_counts, static_cast<float>(c.bias_update_gamma));
      steps.push_back(rec);
    }
  }
};

// The reference of model `c` (one of 5 `key`s): one rank holding everything (its own one-member groups),
// run on every rank.
const TrainingRun& reference(const ModelConfig& c, int key) {
  static std::unique_ptr<TrainingRun> ref[5];
  std::unique_ptr<TrainingRun>& r = ref[key];
  if (!r) {
    auto self = parallel::make_communicator(parallel::Backend::mpi, "self", {world_rank()}, kernels::Context::cpu(), 60);
    r = std::make_unique<TrainingRun>(c, ModelGroups{}, ReplicaGroups{});
    r->train(*self);
  }
  return *r;
}

// The shard of a whole reference tensor that a rank of the layout holds as `mine`.
Tensor shard_of(const Tensor& whole, const Param& mine) {
  const Tensor out = Tensor::host(mine.shape, DType::f32);
  copy_shard(kernels::Context::cpu(), mine, whole, out);
  return out;
}
Tensor shard_of(const Param& ref, const Param& mine) { return shard_of(ref.master, mine); }

// exact: the layout must give the reference's bits (pipeline-only layouts run the same operations in the
// same order; only the activations move between ranks).
void expect_like_reference(const TrainingRun& run, const TrainingRun& ref, const std::string& layout, bool exact = false) {
  ASSERT_EQ(run.steps.size(), ref.steps.size());
  for (std::size_t s = 0; s < ref.steps.size(); ++s) {
    const StepRecord &a = run.steps[s], &b = ref.steps[s];
    EXPECT_NEAR(a.loss, b.loss, kLossTol * std::abs(b.loss)) << layout << " step " << s + 1;
    EXPECT_NEAR(a.grad_norm, b.grad_norm, kNormTol * b.grad_norm) << layout << " step " << s + 1;
    EXPECT_EQ(a.counts, b.counts) << layout << " step " << s + 1 << ": expert loads differ";
    if (world_rank() == 0)
      std::printf("  %s step %zu: loss %.9g (ref %.9g, rel %.2e), |g| rel %.2e\n", layout.c_str(), s + 1, a.loss, b.loss,
                  std::abs(a.loss - b.loss) / std::abs(b.loss), std::abs(a.grad_norm - b.grad_norm) / b.grad_norm);
  }
  double worst = 0;
  std::string worst_name;
  for (const auto& p : run.params.all()) {
    const Param& r = ref.params.get(p->name);
    ASSERT_TRUE(r.global_shape == p->global_shape) << p->name;
    const double e = test::rel_l2(p->master, shard_of(r, *p));
    EXPECT_LE(e, p->init == Init::zeros && p->trainable ? kZeroInitTol : kParamTol) << layout << ": " << p->name << " (" << p->shape.str() << " at " << p->shard.offset
                            << " of " << p->global_shape.str() << ")";
    if (e > worst) worst = e, worst_name = p->name;
  }
  if (exact) {
    EXPECT_EQ(worst, 0.0) << layout << ": " << worst_name << " differs from one rank";
    for (std::size_t s = 0; s < ref.steps.size(); ++s) EXPECT_EQ(run.steps[s].loss, ref.steps[s].loss) << layout;
  }
  double all = 0;
  MPI_Allreduce(&worst, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (world_rank() == 0) std::printf("  %s: worst parameter relative L2 error %.2e\n", layout.c_str(), all);
}

struct Layout {
  int data, expert;
  bool zero1 = false;
  int tensor = 1;
  int pipeline = 1, virtual_stages = 1;  // virtual_stages > 1: the interleaved schedule
  bool sp = false;                        // sequence parallelism (with tensor > 1)
  Arch arch = Arch::mla;                  // mla: the tiny MoE; else that grouped-query-attention student
  bool dualpipev = false;                 // the V-shaped DualPipeV schedule (2 chunks per rank)
  bool split = false;                     // dualpipev or dualpipe with the weight gradient split off (W passes)
  bool dualpipe = false;                  // the bidirectional DualPipe (two copies of the stages)
  bool deep() const { return pipeline > 1; }
  PipelineSchedule schedule() const {
    if (dualpipev) return PipelineSchedule::dualpipev;
    if (dualpipe) return PipelineSchedule::dualpipe;
    return virtual_stages > 1 ? PipelineSchedule::interleaved : PipelineSchedule::one_f_one_b;
  }
  int chunks() const { return pipeline_chain_length(schedule(), pipeline, virtual_stages); }  // the model's
  // The model this layout trains, and the key of its one-rank reference (the 8-layer model: 10).
  ModelConfig model() const { return arch == Arch::mla ? tiny_moe(deep(), chunks()) : tiny_gqa(arch); }
  int reference_key() const {
    if (arch != Arch::mla) return 1 + static_cast<int>(arch);
    return deep() ? (chunks() > 4 ? 10 : 1) : 0;
  }
  PipelinePlan plan(const parallel::CommBundle& c) const {
    return {.pp = c.pp.get(), .schedule = schedule(), .virtual_stages = virtual_stages, .split_weight = split};
  }
};

const TrainingRun& reference_of(const Layout& l) { return reference(l.model(), l.reference_key()); }

std::unique_ptr<parallel::CommBundle> bundle_for(Layout l) {
  const parallel::Mesh mesh(
      {.world = world_size(), .tensor = l.tensor, .pipeline = l.pipeline, .data = l.data, .expert = l.expert}, world_rank());
  return std::make_unique<parallel::CommBundle>(
      parallel::make_comm_bundle(mesh, parallel::Backend::mpi, kernels::Context::cpu(), 120));
}

std::string name_of(Layout l) {
  return (l.arch != Arch::mla ? std::string(choice_word(l.arch)) + " " : std::string()) + (l.tensor > 1 ? "TP" + std::to_string(l.tensor) + (l.sp ? " SP " : " ") : "") +
         (l.pipeline > 1 ? "PP" + std::to_string(l.pipeline) + (l.dualpipev ? (l.split ? " DualPipeV+W " : " DualPipeV ") : l.dualpipe ? (l.split ? " DualPipe+W " : " DualPipe ") : l.virtual_stages > 1 ? "x" + std::to_string(l.virtual_stages) + " interleaved " : " 1F1B ") : "") +
         "DP" + std::to_string(l.data) + (l.expert > 1 ? " EP" + std::to_string(l.expert) : "") + (l.zero1 ? " ZeRO-1" : "");
}

ReplicaGroups groups_of(const parallel::CommBundle& c, Layout l) {
  return {.dp = c.dp.get(), .edp = c.edp.get(), .tp = c.tp.get(), .world = c.world.get(), .zero1 = l.zero1};
}
ModelGroups model_groups_of(const parallel::CommBundle& c, Layout l) {
  return {.tp = c.tp.get(), .ep = c.ep.get(), .pp = c.pp.get(),
          .virtual_stages = pipeline_chunks_per_rank(l.schedule(), l.virtual_stages),
          .placement = chunk_placement(l.schedule()), .two_copies = l.dualpipe, .sequence_parallel = l.sp};
}

std::vector<Layout> layouts() {
  const int n = world_size();
  if (n == 8)  // the mixes: every kind of parallelism at once
    return {{.data = 2, .expert = 2, .tensor = 2, .pipeline = 2},
            {.data = 2, .expert = 4, .zero1 = true, .tensor = 2, .pipeline = 2, .virtual_stages = 2},
            {.data = 2, .expert = 2, .zero1 = true, .tensor = 2, .pipeline = 2, .virtual_stages = 2, .sp = true},
            {.data = 2, .expert = 4, .zero1 = true, .tensor = 2, .pipeline = 2, .dualpipe = true}};
  std::vector<Layout> out{{n, 1}, {n, 1, true}};  // plain data parallelism (the control), with ZeRO-1
  for (int e = 2; e <= n; e *= 2) {  // EP e folded over DP n: EDP = n / e
    out.push_back({n, e});
    out.push_back({n, e, true});  // ZeRO-1: dense parameters over DP, routed experts over EDP (if > 1)
  }
  // Tensor parallelism over the tiny model's two heads: TP 2 x DP n/2, routed experts over the folded
  // 2 x n/2 ranks (EP 1, 2, n).
  out.push_back({.data = n / 2, .expert = 1, .tensor = 2});
  out.push_back({.data = n / 2, .expert = 2, .zero1 = n > 2, .tensor = 2});
  if (n > 2) out.push_back({.data = n / 2, .expert = n, .tensor = 2});
  // Sequence parallelism: TP2 with the residual stream split by token rows (with DP, EP and ZeRO-1 at 4).
  out.push_back({.data = n / 2, .expert = n / 2, .zero1 = n > 2, .tensor = 2, .sp = true});
  // Pipeline parallelism: PP n (1F1B, DualPipeV and DualPipe without and with the W split, and interleaved over
  // 2 virtual stages where 4 layers allow), and at 4 ranks PP2 with DP, TP and EP (DualPipeV and DualPipe: with
  // DP2 x EP2 and ZeRO-1; DualPipe with plain DP2 too).
  out.push_back({.data = 1, .expert = 1, .pipeline = n});
  out.push_back({.data = 1, .expert = 1, .pipeline = n, .dualpipev = true});
  out.push_back({.data = 1, .expert = 1, .pipeline = n, .dualpipev = true, .split = true});
  out.push_back({.data = 1, .expert = 1, .pipeline = n, .dualpipe = true});
  out.push_back({.data = 1, .expert = 1, .pipeline = n, .split = true, .dualpipe = true});
  if (n == 2) out.push_back({.data = 1, .expert = 1, .pipeline = 2, .virtual_stages = 2});
  if (n == 4) {
    out.push_back({.data = 2, .expert = 2, .zero1 = true, .pipeline = 2, .virtual_stages = 2});
    out.push_back({.data = 2, .expert = 2, .zero1 = true, .pipeline = 2, .dualpipev = true});
    out.push_back({.data = 2, .expert = 2, .zero1 = true, .pipeline = 2, .dualpipev = true, .split = true});
    out.push_back({.data = 2, .expert = 2, .zero1 = true, .pipeline = 2, .dualpipe = true});
    out.push_back({.data = 2, .expert = 2, .zero1 = true, .pipeline = 2, .split = true, .dualpipe = true});
    out.push_back({.data = 2, .expert = 1, .pipeline = 2, .dualpipe = true});  // plain DP2, no ZeRO-1
    out.push_back({.data = 1, .expert = 2, .tensor = 2, .pipeline = 2});
    out.push_back({.data = 1, .expert = 2, .tensor = 2, .pipeline = 2, .sp = true});
  }
  return out;
}

// The grouped-query-attention students on DP (with ZeRO-1), TP2 (2 query and 1 K/V head per rank; with SP),
// PP over every rank, and at 4 and 8 ranks TP2 x PP2 (x DP2 with ZeRO-1) and TP4 (1 query head per rank, each
// K/V head computed by 2 ranks).
std::vector<Layout> gqa_layouts() {
  const int n = world_size();
  std::vector<Layout> out;
  for (Arch arch : {Arch::llama, Arch::qwen2, Arch::qwen3}) {
    out.push_back({.data = n, .expert = 1, .zero1 = true, .arch = arch});
    out.push_back({.data = n / 2, .expert = 1, .tensor = 2, .arch = arch});
    out.push_back({.data = n / 2, .expert = 1, .zero1 = n > 2, .tensor = 2, .sp = true, .arch = arch});
    if (n <= 4) out.push_back({.data = 1, .expert = 1, .pipeline = n, .arch = arch});
    if (n >= 4) out.push_back({.data = n / 4, .expert = 1, .zero1 = n > 4, .tensor = 2, .pipeline = 2, .arch = arch});
    if (n >= 4) out.push_back({.data = n / 4, .expert = 1, .tensor = 4, .arch = arch});  // K/V heads replicated
  }
  return out;
}

fs::path fresh_dir(const std::string& name) {
  int pid = static_cast<int>(::getpid());
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  const fs::path d = fs::temp_directory_path() / ("r1hpc_equiv_" + name + "_" + std::to_string(pid));
  if (world_rank() == 0) fs::remove_all(d);
  MPI_Barrier(MPI_COMM_WORLD);
  return d;
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.numel() == b.numel() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// DualPipe: pipeline ranks r and p - 1 - r hold the same two stages, which must stay the same bits.
void expect_mirror_bits(const ParamStore& params, parallel::Communicator& pp, const std::string& layout) {
  std::vector<const Param*> by_name;
  for (const auto& p : params.all()) by_name.push_back(p.get());
  std::sort(by_name.begin(), by_name.end(), [](const Param* a, const Param* b) { return a->name < b->name; });
  const int peer = pp.size() - 1 - pp.rank();
  for (const Param* p : by_name) {
    const Tensor theirs = Tensor::host(p->shape, DType::f32);
    pp.send_recv(p->master, peer, theirs, peer);
    EXPECT_TRUE(same_bits(p->master, theirs)) << layout << ": " << p->name << " differs from its copy on pipeline rank " << peer;
  }
}

// Parameter p's position in another store (pipeline ranks hold a subset of the parameters).
std::size_t index_of(const ParamStore& params, const std::string& name) {
  const auto& all = params.all();
  for (std::size_t i = 0; i < all.size(); ++i)
    if (all[i]->name == name) return i;
  ADD_FAILURE() << "no parameter " << name;
  return 0;
}

}  // namespace

TEST(TrainingEquivalence, EveryLayoutMatchesOneRank) {
  for (Layout l : layouts()) {
    reference_of(l);
    auto comms = bundle_for(l);
    TrainingRun run(l.model(), model_groups_of(*comms, l), groups_of(*comms, l));
    const auto& all = run.params.all();
    for (std::size_t i = 0; i < all.size(); ++i) {  // ZeRO-1 splits every parameter with replicas
      const bool replicated = all[i]->expert ? comms->edp->size() > 1 : comms->dp->size() > 1;
      EXPECT_EQ(run.grads->zero1_sharded(i), l.zero1 && all[i]->trainable && replicated) << name_of(l) << ": " << all[i]->name;
    }
    run.train(*comms->dp, l.plan(*comms));
    const bool pipeline_only = l.pipeline > 1 && l.data == 1 && l.tensor == 1 && l.expert == 1 && !l.dualpipe;
    expect_like_reference(run, reference_of(l), name_of(l), pipeline_only);
    if (l.dualpipe) expect_mirror_bits(run.params, *comms->pp, name_of(l));
  }
}

TEST(TrainingEquivalence, GqaStudentsMatchOneRank) {
  for (Layout l : gqa_layouts()) {
    reference_of(l);
    auto comms = bundle_for(l);
    TrainingRun run(l.model(), model_groups_of(*comms, l), groups_of(*comms, l));
    run.train(*comms->dp, l.plan(*comms));
    expect_like_reference(run, reference_of(l), name_of(l));
  }
}

// Overlap is scheduling only: with the gradient reductions started during the backward, the token
// exchanges beside the shared experts and DualPipe's forward/backward pairs taking turns at those exchanges,
// every layout computes the same bits as with all three off. The overlapped paths really run: the last
// micro-batch's backward starts the reduction of every parameter with replicas but the embedding (whose
// gradient is complete only at the very end), the EP group started its exchanges, and under dualpipev and
// dualpipe with EP the pairs' passes handed over to each other.
TEST(TrainingEquivalence, OverlapChangesNoBit) {
  for (Layout l : layouts()) {
    auto comms = bundle_for(l);
    const std::int64_t ep_started = comms->ep->ops_started(), switches = interleave_switches_total();
    TrainingRun on(l.model(), model_groups_of(*comms, l), groups_of(*comms, l));
    on.train(*comms->dp, l.plan(*comms));
    if (comms->ep->size() > 1) {
      EXPECT_GT(comms->ep->ops_started(), ep_started) << name_of(l);
    }
    if (comms->ep->size() > 1 && (l.dualpipev || l.dualpipe)) {
      EXPECT_GT(interleave_switches_total(), switches) << name_of(l);
    }
    std::int64_t complete_early = 0;  // every parameter with replicas but the embedding (and TP partials)
    for (const auto& p : on.params.all()) {
      const bool replicated = p->expert ? comms->edp->size() > 1 : comms->dp->size() > 1;
      const bool tp_first = l.tensor > 1 && !p->expert && p->tp == TpRole::partial;
      complete_early += p->trainable && replicated && !tp_first && p->name != "embed";
    }
    // DualPipe sums the copies' gradients first, so the backward starts no reduction over the replicas.
    EXPECT_EQ(on.grads->overlapped_last_step(), l.dualpipe ? 0 : complete_early) << name_of(l);

    ModelGroups mg = model_groups_of(*comms, l);
    mg.overlap_expert_comm = false;
    ReplicaGroups og = groups_of(*comms, l);
    og.overlap = false;
    TrainingRun off(l.model(), mg, og);
    PipelinePlan no_pairs = l.plan(*comms);
    no_pairs.overlap_pairs = false;
    const std::int64_t switches_off = interleave_switches_total();
    off.train(*comms->dp, no_pairs);
    EXPECT_EQ(interleave_switches_total(), switches_off) << name_of(l);
    EXPECT_EQ(off.grads->overlapped_last_step(), 0) << name_of(l);
    for (std::size_t s = 0; s < on.steps.size(); ++s) {
      EXPECT_EQ(on.steps[s].loss, off.steps[s].loss) << name_of(l) << " step " << s + 1;
      EXPECT_EQ(on.steps[s].grad_norm, off.steps[s].grad_norm) << name_of(l) << " step " << s + 1;
    }
    for (const auto& p : on.params.all())
      EXPECT_TRUE(same_bits(p->master, off.params.get(p->name).master)) << name_of(l) << ": " << p->name;
  }
}

// Replicas without a micro-batch (GRPO's dynamic sampling can leave one empty) still issue their
// reductions in the order the others' backward does: plain DP and DP with ZeRO-1 give the one-rank
// result and, bit for bit, the result without overlap. (Issued out of order, MPI fails the collectives.)
TEST(TrainingEquivalence, EmptyReplicasKeepTheReductionOrder) {
  for (bool zero1 : {false, true}) {
    const Layout l{.data = world_size(), .expert = 1, .zero1 = zero1};
    auto comms = bundle_for(l);
    TrainingRun on(l.model(), model_groups_of(*comms, l), groups_of(*comms, l));
    on.train(*comms->dp, {}, kSteps, /*all_on_first=*/true);
    EXPECT_GT(on.grads->overlapped_last_step(), 0) << name_of(l);
    expect_like_reference(on, reference_of(l), name_of(l) + ", every row on the first replica");
    ReplicaGroups og = groups_of(*comms, l);
    og.overlap = false;
    TrainingRun off(l.model(), model_groups_of(*comms, l), og);
    off.train(*comms->dp, {}, kSteps, true);
    for (const auto& p : on.params.all())
      EXPECT_TRUE(same_bits(p->master, off.params.get(p->name).master)) << name_of(l) << ": " << p->name;
  }
}

// Every layout, the students' included: what a rank holds is its part of the one-rank init.
std::vector<Layout> all_layouts() {
  std::vector<Layout> all = layouts();
  for (const Layout& l : gqa_layouts()) all.push_back(l);
  return all;
}

TEST(TrainingEquivalence, ShardsHoldTheirPartOfTheGlobalInit) {
  for (Layout l : all_layouts()) {
    auto comms = bundle_for(l);
    TrainingRun run(l.model(), model_groups_of(*comms, l), {});
    TrainingRun whole(l.model(), ModelGroups{}, {});
    for (const auto& p : run.params.all()) {
      const Param& r = whole.params.get(p->name);
      EXPECT_EQ(p->sharded(), (l.expert > 1 && p->expert) || (l.tensor > 1 && p->tp == TpRole::split)) << p->name;
      EXPECT_TRUE(same_bits(p->master, shard_of(r, *p))) << name_of(l) << ": " << p->name;
    }
  }
}

// A checkpoint written at each layout, the students' included (expert and tensor shards by one writer each,
// ZeRO-1 moments gathered) loads bit for bit into one rank's full model; one written by one rank loads into each
// layout's shards.
TEST(TrainingEquivalence, CheckpointsMoveBetweenLayouts) {
  for (Layout l : all_layouts()) {
    if (l.expert == 1 && l.tensor == 1 && l.pipeline == 1 && !l.zero1) continue;
    const TrainingRun& ref = reference_of(l);
    auto comms = bundle_for(l);
    TrainingRun run(l.model(), model_groups_of(*comms, l), groups_of(*comms, l));
    run.train(*comms->dp, l.plan(*comms), 1);  // moments worth moving

    const fs::path dir = fresh_dir("tp" + std::to_string(l.tensor) + "pp" + std::to_string(l.pipeline) + "ep" +
                                   std::to_string(l.expert) + (l.zero1 ? "_zero1" : ""));
    {
      ckpt::Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
      ckpt::Meta meta;
      meta.step = kSteps;
      ckpt::save_train_state(c, meta, run.params, *run.opt);
    }
    TrainingRun one(l.model(), ModelGroups{}, {});
    ckpt::load_train_state(*ckpt::latest(dir), ckpt::LoadMode::full, one.params, one.opt.get());
    EXPECT_EQ(one.opt->steps_taken(), 1);
    const auto& mine = run.params.all();
    const AdamW::Moments moments = run.opt->gather_moments();
    for (std::size_t i = 0; i < mine.size(); ++i) {
      const Param& p = *mine[i];
      const Param& q = one.params.get(p.name);
      EXPECT_TRUE(same_bits(p.master, shard_of(q, p))) << name_of(l) << " -> 1 rank: " << p.name;
      if (!p.trainable) continue;
      const std::size_t j = index_of(one.params, p.name);
      EXPECT_TRUE(same_bits(moments.exp_avg[i], shard_of(one.opt->exp_avg()[j], p))) << p.name;
      EXPECT_TRUE(same_bits(moments.exp_avg_sq[i], shard_of(one.opt->exp_avg_sq()[j], p))) << p.name;
    }

    const fs::path dir1 = fresh_dir("one_rank");
    if (world_rank() == 0) {
      ckpt::Checkpointer c(dir1, MPI_COMM_SELF, 0, false);
      ckpt::Meta meta;
      meta.step = kSteps;
      ckpt::save_train_state(c, meta, const_cast<ParamStore&>(ref.params), *ref.opt);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    TrainingRun sharded(l.model(), model_groups_of(*comms, l), groups_of(*comms, l));
    ckpt::load_train_state(*ckpt::latest(dir1), ckpt::LoadMode::full, sharded.params, sharded.opt.get());
    const AdamW::Moments loaded = sharded.opt->gather_moments();
    const auto& all = sharded.params.all();
    for (std::size_t i = 0; i < all.size(); ++i) {
      const Param& p = *all[i];
      EXPECT_TRUE(same_bits(p.master, shard_of(ref.params.get(p.name), p))) << "1 rank -> " << name_of(l) << ": " << p.name;
      if (!p.trainable) continue;
      const std::size_t j = index_of(ref.params, p.name);
      EXPECT_TRUE(same_bits(loaded.exp_avg[i], shard_of(ref.opt->exp_avg()[j], p))) << p.name;
      EXPECT_TRUE(same_bits(loaded.exp_avg_sq[i], shard_of(ref.opt->exp_avg_sq()[j], p))) << p.name;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) fs::remove_all(dir), fs::remove_all(dir1);
  }
}

// [optim] moment_precision may differ between the run that wrote a checkpoint and the one that loads it, at
// any layout: one rank's f32 moments load into each layout's bf16 moments (ZeRO-1 parts included) as their
// round-to-nearest-even, and those bf16 moments, saved by the layout, load back into one rank's f32 exactly.
TEST(TrainingEquivalence, MomentsConvertBetweenPrecisionsOnLoadAtEveryLayout) {
  const auto& cpu = kernels::Context::cpu();
  for (Layout l : layouts()) {
    if (l.expert == 1 && l.tensor == 1 && l.pipeline == 1 && !l.zero1) continue;
    const TrainingRun& ref = reference_of(l);
    const fs::path dir1 = fresh_dir("one_rank_f32"), dir = fresh_dir("layout_bf16");
    if (world_rank() == 0) {
      ckpt::Checkpointer c(dir1, MPI_COMM_SELF, 0, false);
      ckpt::save_train_state(c, ckpt::Meta{}, const_cast<ParamStore&>(ref.params), *ref.opt);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    auto comms = bundle_for(l);
    TrainingRun sharded(l.model(), model_groups_of(*comms, l), groups_of(*comms, l), DType::bf16);
    ckpt::load_train_state(*ckpt::latest(dir1), ckpt::LoadMode::full, sharded.params, sharded.opt.get());
    const AdamW::Moments loaded = sharded.opt->gather_moments();
    const auto& all = sharded.params.all();
    for (std::size_t i = 0; i < all.size(); ++i) {
      const Param& p = *all[i];
      if (!p.trainable) continue;
      const std::size_t j = index_of(ref.params, p.name);
      for (auto [got, whole] : {std::pair{&loaded.exp_avg[i], &ref.opt->exp_avg()[j]},
                                std::pair{&loaded.exp_avg_sq[i], &ref.opt->exp_avg_sq()[j]}}) {
        ASSERT_EQ(got->dtype(), DType::bf16) << p.name;
        const Tensor want = Tensor::host(p.shape, DType::bf16);
        kernels::cast(cpu, shard_of(*whole, p), want);
        EXPECT_TRUE(same_bits(*got, want)) << "1 rank f32 -> " << name_of(l) << " bf16: " << p.name;
      }
    }
    {
      ckpt::Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
      ckpt::save_train_state(c, ckpt::Meta{}, sharded.params, *sharded.opt);
    }
    TrainingRun one(l.model(), ModelGroups{}, {});
    ckpt::load_train_state(*ckpt::latest(dir), ckpt::LoadMode::full, one.params, one.opt.get());
    for (std::size_t i = 0; i < all.size(); ++i) {
      const Param& p = *all[i];
      if (!p.trainable) continue;
      const std::size_t j = index_of(one.params, p.name);
      for (auto [got, kept] : {std::pair{&one.opt->exp_avg()[j], &loaded.exp_avg[i]},
                               std::pair{&one.opt->exp_avg_sq()[j], &loaded.exp_avg_sq[i]}}) {
        const Tensor want = Tensor::host(p.shape, DType::f32);
        kernels::cast(cpu, *kept, want);
        EXPECT_TRUE(same_bits(shard_of(*got, p), want)) << name_of(l) << " bf16 -> 1 rank f32: " << p.name;
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) fs::remove_all(dir), fs::remove_all(dir1);
  }
}
