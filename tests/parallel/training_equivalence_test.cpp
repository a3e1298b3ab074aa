// Parallel layouts against one rank: 3 optimizer steps of a tiny MoE model (CPU, FP32) at each layout the
// world size allows (expert parallelism EP = 2, 4, EP x EDP, plain DP, each with and without ZeRO-1) give
// the one-rank losses, gradient norms, expert loads and final parameters; checkpoints written by one
// layout load into the other.
//
// Tolerance. Every layout computes the same sums in a different order: the DP/EDP gradient all-reduce
// adds per-rank partial gradients instead of accumulating micro-batches in one buffer, the expert
// weight-gradient GEMMs see the tokens of several ranks in another order, and the gradient norm is a
// sum over ranks. In FP32 each reordering perturbs a sum by a few ulps (~1e-7 relative). Losses are
// sums and agree to ~1e-7. AdamW divides each update by sqrt(v) + eps, so an element's update carries
// the relative round-off of its own gradient, which is large for elements whose gradient is itself at
// round-off level (cancellation): with the default eps = 1e-8, parameters after 3 steps agree to ~1e-5
// in relative L2 norm per tensor for every layout, plain DP included (measured: 1.3e-5 at worst, on the
// MTP projection); with eps = 1e-5, which damps those elements, the same runs agree to 3e-7. So the
// parameter tolerance is 5e-5; a wrong gradient or a lost token shows up at 1e-3 or more.
// The optimizer cuts the gradient norm into chunks of 64 elements here (AdamWConfig::norm_chunk), so that
// ZeRO-1, whose parts are whole chunks, really splits the tiny model's tensors.
// Expert counts are integers: they must agree exactly (a routing decision flipped by round-off would be
// a real divergence here, and the tiny model's scores are far from ties).
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "checkpoint/train_state.hpp"
#include "model/model.hpp"
#include "parallel/comm_bundle.hpp"
#include "stages/stage.hpp"
#include "train/optimizer.hpp"

namespace fs = std::filesystem;
using namespace r1;

namespace {

constexpr double kLossTol = 1e-6;    // relative, per step
constexpr double kNormTol = 1e-5;    // relative, per step
constexpr double kParamTol = 5e-5;   // relative L2 per tensor (see above)
constexpr int kSteps = 3;
constexpr std::int64_t kGlobalRows = 8, kSeq = 16, kMicro = 1;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

ModelConfig tiny_moe() {
  ModelConfig c;
  c.vocab_size = 64;
  c.dim = 32;
  c.n_layers = 2;
  c.n_dense_layers = 1;
  c.n_heads = 2;
  c.dense_inter_dim = 48;
  c.moe_inter_dim = 16;
  c.n_routed_experts = 8;
  c.n_shared_experts = 1;
  c.n_activated_experts = 2;
  c.n_expert_groups = 2;
  c.n_limited_groups = 1;  // group-limited routing
  c.q_lora_rank = 0;
  c.kv_lora_rank = 16;
  c.qk_nope_head_dim = 8;
  c.qk_rope_head_dim = 4;
  c.v_head_dim = 8;
  c.max_seq_len = kSeq;
  c.init_std = 0.05;
  c.seq_aux_alpha = 0.01;
  c.bias_update_gamma = 0.01;
  c.mtp_depth = 1;  // the MTP block is an MoE block too
  c.mtp_lambda = 0.3;
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

// One training run: the stages' own step (train_micro_batches, AdamW, the bias update) on this rank's
// share of the global batch (rows in the order of the ranks of `dp`, as the pretrain stage splits them).
struct TrainingRun {
  ParamStore params{kernels::Context::cpu(), DType::f32};
  std::unique_ptr<Model> model;
  std::unique_ptr<AdamW> opt;
  std::vector<StepRecord> steps;

  TrainingRun(parallel::Communicator* ep, OptimizerGroups groups) {
    const ModelConfig c = tiny_moe();
    model = std::make_unique<Model>(c, params, ep);
    params.initialize(11, c.init_std);
    opt = std::make_unique<AdamW>(params, AdamWConfig{.weight_decay = 0.1, .grad_clip = 0.5, .norm_chunk = 64}, groups);
  }
  void train(parallel::Communicator& dp) {
    const ModelConfig& c = model->config();
    const auto& ctx = params.context();
    const std::int64_t n_micro = kGlobalRows / (kMicro * dp.size());
    for (int step = 1; step <= kSteps; ++step) {
      params.zero_grads();
      std::vector<TokenBatch> batches;
      double counted = 0;
      for (std::int64_t r = 0; r < kGlobalRows; ++r) {
        TokenBatch b = global_row(step, r, c.vocab_size);
        counted += static_cast<double>(b.counted());
        if (r / n_micro == dp.rank()) batches.push_back(std::move(b));
      }
      const StepSums sums = train_micro_batches(*model, batches, static_cast<float>(1.0 / counted),
                                                1.0f / static_cast<float>(kGlobalRows / kMicro), *opt, dp, ctx);
      StepRecord rec;
      rec.loss = sums.loss_sum / counted;
      rec.grad_norm = opt->step(1e-2);
      rec.counts = sums.expert_counts;
      model->update_router_bias(sums.expert_counts, static_cast<float>(c.bias_update_gamma));
      steps.push_back(rec);
    }
  }
};

// The reference: one rank holding everything (its own one-member groups), run on every rank.
const TrainingRun& reference() {
  static std::unique_ptr<TrainingRun> ref;
  if (!ref) {
    auto self = parallel::make_communicator(parallel::Backend::mpi, "self", {world_rank()}, kernels::Context::cpu(), 60);
    ref = std::make_unique<TrainingRun>(nullptr, OptimizerGroups{});
    ref->train(*self);
  }
  return *ref;
}

// rows [row_offset, row_offset + n) of a reference tensor (the shard a rank of the layout holds).
Tensor rows_of(const Param& ref, const Param& mine) {
  return ref.master.slice(mine.row_offset, mine.row_offset + mine.shape[0]);
}

double rel_l2(const Tensor& a, const Tensor& ref) {
  double d = 0, n = 0;
  for (std::int64_t i = 0; i < ref.numel(); ++i) {
    const double x = a.data<float>()[i], y = ref.data<float>()[i];
    d += (x - y) * (x - y);
    n += y * y;
  }
  return n > 0 ? std::sqrt(d / n) : std::sqrt(d);
}

void expect_like_reference(const TrainingRun& run, const std::string& layout) {
  const TrainingRun& ref = reference();
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
    const double e = rel_l2(p->master, rows_of(r, *p));
    EXPECT_LE(e, kParamTol) << layout << ": " << p->name << " (rows " << p->row_offset << "+" << p->shape[0] << ")";
    if (e > worst) worst = e, worst_name = p->name;
  }
  double all = 0;
  MPI_Allreduce(&worst, &all, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (world_rank() == 0) std::printf("  %s: worst parameter relative L2 error %.2e\n", layout.c_str(), all);
}

struct Layout {
  int data, expert;
  bool zero1 = false;
};

std::unique_ptr<parallel::CommBundle> bundle_for(Layout l) {
  const parallel::Mesh mesh({.world = world_size(), .data = l.data, .expert = l.expert}, world_rank());
  return std::make_unique<parallel::CommBundle>(
      parallel::make_comm_bundle(mesh, parallel::Backend::mpi, kernels::Context::cpu(), 120));
}

std::string name_of(Layout l) {
  return "DP" + std::to_string(l.data) + (l.expert > 1 ? " EP" + std::to_string(l.expert) : "") + (l.zero1 ? " ZeRO-1" : "");
}

OptimizerGroups groups_of(const parallel::CommBundle& c, Layout l) {
  return {.dp = c.dp.get(), .edp = c.edp.get(), .world = c.world.get(), .zero1 = l.zero1};
}

std::vector<Layout> layouts() {
  const int n = world_size();
  std::vector<Layout> out{{n, 1}, {n, 1, true}};  // plain data parallelism (the control), with ZeRO-1
  for (int e = 2; e <= n; e *= 2) {  // EP e folded over DP n: EDP = n / e
    out.push_back({n, e});
    out.push_back({n, e, true});  // ZeRO-1: dense parameters over DP, routed experts over EDP (if > 1)
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

}  // namespace

TEST(TrainingEquivalence, EveryLayoutMatchesOneRank) {
  reference();
  for (Layout l : layouts()) {
    auto comms = bundle_for(l);
    TrainingRun run(comms->ep.get(), groups_of(*comms, l));
    const auto& all = run.params.all();
    for (std::size_t i = 0; i < all.size(); ++i) {  // ZeRO-1 splits every parameter with replicas
      const bool replicated = all[i]->expert ? comms->edp->size() > 1 : comms->dp->size() > 1;
      EXPECT_EQ(run.opt->zero1_sharded(i), l.zero1 && all[i]->trainable && replicated) << name_of(l) << ": " << all[i]->name;
    }
    run.train(*comms->dp);
    expect_like_reference(run, name_of(l));
  }
}

TEST(TrainingEquivalence, ExpertShardsHoldTheirRowsOfTheGlobalInit) {
  for (Layout l : layouts()) {
    auto comms = bundle_for(l);
    TrainingRun run(comms->ep.get(), {});
    TrainingRun whole(nullptr, {});
    for (const auto& p : run.params.all()) {
      const Param& r = whole.params.get(p->name);
      EXPECT_EQ(p->sharded(), l.expert > 1 && p->expert) << p->name;
      EXPECT_TRUE(same_bits(p->master, rows_of(r, *p))) << name_of(l) << ": " << p->name;
    }
  }
}

// A checkpoint written at each layout (expert shards by one writer each, ZeRO-1 moments gathered) loads
// bit for bit into one rank's full model; one written by one rank loads into each layout's shards.
TEST(TrainingEquivalence, CheckpointsMoveBetweenExpertLayouts) {
  const TrainingRun& ref = reference();
  for (Layout l : layouts()) {
    if (l.expert == 1 && !l.zero1) continue;
    auto comms = bundle_for(l);
    TrainingRun run(comms->ep.get(), groups_of(*comms, l));
    run.train(*comms->dp);

    const fs::path dir = fresh_dir("ep" + std::to_string(l.expert) + (l.zero1 ? "_zero1" : ""));
    {
      ckpt::Checkpointer c(dir, MPI_COMM_WORLD, 0, false);
      ckpt::Meta meta;
      meta.step = kSteps;
      ckpt::save_train_state(c, meta, run.params, *run.opt);
    }
    TrainingRun one(nullptr, {});
    ckpt::load_train_state(*ckpt::latest(dir), ckpt::LoadMode::full, one.params, one.opt.get());
    EXPECT_EQ(one.opt->steps_taken(), kSteps);
    const auto& mine = run.params.all();
    const AdamW::Moments moments = run.opt->gather_moments();
    for (std::size_t i = 0; i < mine.size(); ++i) {
      const Param& p = *mine[i];
      const Param& q = one.params.get(p.name);
      EXPECT_TRUE(same_bits(p.master, rows_of(q, p))) << name_of(l) << " -> 1 rank: " << p.name;
      if (!p.trainable) continue;
      const std::int64_t lo = p.row_offset, hi = p.row_offset + p.shape[0];
      EXPECT_TRUE(same_bits(moments.exp_avg[i], one.opt->exp_avg()[i].slice(lo, hi))) << p.name;
      EXPECT_TRUE(same_bits(moments.exp_avg_sq[i], one.opt->exp_avg_sq()[i].slice(lo, hi))) << p.name;
    }

    const fs::path dir1 = fresh_dir("one_rank");
    if (world_rank() == 0) {
      ckpt::Checkpointer c(dir1, MPI_COMM_SELF, 0, false);
      ckpt::Meta meta;
      meta.step = kSteps;
      ckpt::save_train_state(c, meta, const_cast<ParamStore&>(ref.params), *ref.opt);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    TrainingRun sharded(comms->ep.get(), groups_of(*comms, l));
    ckpt::load_train_state(*ckpt::latest(dir1), ckpt::LoadMode::full, sharded.params, sharded.opt.get());
    const AdamW::Moments loaded = sharded.opt->gather_moments();
    const auto& all = sharded.params.all();
    for (std::size_t i = 0; i < all.size(); ++i) {
      const Param& p = *all[i];
      EXPECT_TRUE(same_bits(p.master, rows_of(ref.params.get(p.name), p))) << "1 rank -> " << name_of(l) << ": " << p.name;
      if (!p.trainable) continue;
      const std::int64_t lo = p.row_offset, hi = p.row_offset + p.shape[0];
      EXPECT_TRUE(same_bits(loaded.exp_avg[i], ref.opt->exp_avg()[i].slice(lo, hi))) << p.name;
      EXPECT_TRUE(same_bits(loaded.exp_avg_sq[i], ref.opt->exp_avg_sq()[i].slice(lo, hi))) << p.name;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() == 0) fs::remove_all(dir), fs::remove_all(dir1);
  }
}
