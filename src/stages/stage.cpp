#include "stages/stage.hpp"

#include <algorithm>
#include <cmath>

#include "app/self_check.hpp"
#include "checkpoint/train_state.hpp"
#include "core/log.hpp"
#include "run/signals.hpp"
#include "kernels/elementwise.hpp"
#include "model/model.hpp"
#include "train/optimizer.hpp"

namespace r1 {

namespace {
// What [checkpoint] load names: nothing, this run's newest checkpoint (`latest`: a restart resumes
// everything; a first start finds none and starts fresh), or another checkpoint (a step directory, or a
// checkpoints directory whose newest is taken) loaded as load_mode says.
struct StartPoint {
  std::filesystem::path path;  // empty: from scratch
  ckpt::LoadMode mode = ckpt::LoadMode::weights;
  bool same_run = false;
};
StartPoint start_point(const Deck& deck) {
  const std::string& load = deck.get_string("checkpoint.load");
  StartPoint sp;
  if (load.empty()) return sp;
  if (load == "latest") {
    if (auto l = ckpt::latest(checkpoint_dir(deck))) sp = {*l, ckpt::LoadMode::full, true};
    return sp;
  }
  std::filesystem::path p(load);
  if (!std::filesystem::exists(p / "index.h5")) {
    auto l = ckpt::latest(p);
    if (!l) deck.fail("checkpoint.load", "is neither a checkpoint (no index.h5) nor a directory with a `latest` checkpoint");
    p = *l;
  }
  sp.path = p;
  sp.mode = ckpt::parse_load_mode(deck.get_string("checkpoint.load_mode"));
  return sp;
}
}  // namespace

double host_scalar(const Tensor& t) {
  Tensor h = Tensor::host({1}, DType::f32);
  copy(h, t);
  return h.data<float>()[0];
}

// Sums `values` over the data-parallel group (host doubles through an f64 all-reduce).
void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values) {
  if (comm.size() == 1 || values.empty()) return;
  Tensor h = Tensor::host({static_cast<std::int64_t>(values.size())}, DType::f64);
  std::copy(values.begin(), values.end(), h.data<double>());
  Tensor d = ctx.to_here(h);
  comm.all_reduce(d);
  comm.wait();
  copy(h, d);
  std::copy(h.data<double>(), h.data<double>() + h.numel(), values.begin());
}

Resumed resume_from_deck(const Deck& deck, const std::string& stage, ParamStore& params, AdamW& opt,
                         const std::string& new_prefix) {
  const StartPoint start = start_point(deck);
  Resumed r;
  if (start.path.empty()) return r;
  const ckpt::Meta m = ckpt::load_train_state(start.path, start.mode, params, start.mode == ckpt::LoadMode::full ? &opt : nullptr,
                                              new_prefix);
  r.loaded = start.path;
  r.data_state = m.data_state;
  if (start.same_run) {
    r.first_step = m.step + 1;
    r.parent = m.parent;
  } else {
    r.parent = std::filesystem::absolute(start.path).lexically_normal().string();
    if (start.mode == ckpt::LoadMode::full) r.first_step = m.step + 1;
  }
  log_info(stage, ": ", start.same_run ? "resuming this run from " : "starting from ", start.path.string(), " (step ", m.step,
           ", ", start.mode == ckpt::LoadMode::full ? "weights, optimizer and data position" : "weights only", ")");
  return r;
}

StepSums train_micro_batches(const Model& model, const std::vector<TokenBatch>& batches, float token_weight,
                             float balance_weight, AdamW& opt, parallel::Communicator& dp, const kernels::Context& ctx) {
  const ModelConfig& cfg = model.config();
  Tensor loss_sum = ctx.zeros({1}, DType::f32), mtp_sum = ctx.zeros({1}, DType::f32), balance = ctx.zeros({1}, DType::f32);
  std::vector<std::vector<std::int64_t>> counts(static_cast<std::size_t>(model.moe_layer_count()),
                                                std::vector<std::int64_t>(static_cast<std::size_t>(cfg.n_routed_experts), 0));
  const Stopwatch compute;
  for (const TokenBatch& tb : batches) {
    const DeviceBatch db = model.upload(tb);
    ForwardResult r;
    auto saved = model.forward(db, r);
    model.backward(db, *saved, token_weight, balance_weight);
    kernels::axpy(ctx, 1.0f, r.loss_sum, loss_sum);
    if (r.mtp_loss_sum.defined()) kernels::axpy(ctx, 1.0f, r.mtp_loss_sum, mtp_sum);
    kernels::axpy(ctx, balance_weight, r.balance_loss, balance);
    for (std::size_t l = 0; l < r.expert_counts.size(); ++l) {
      Tensor h = Tensor::host(r.expert_counts[l].shape(), DType::i32);
      copy(h, r.expert_counts[l]);
      for (std::int64_t e = 0; e < h.numel(); ++e) counts[l][static_cast<std::size_t>(e)] += h.data<std::int32_t>()[e];
    }
  }
  ctx.synchronize();
  const double compute_s = compute.seconds();
  const Stopwatch reduce;
  opt.reduce_gradients();
  const double grad_reduce_s = reduce.seconds();
  std::vector<double> sums{host_scalar(loss_sum), host_scalar(mtp_sum), host_scalar(balance)};
  for (const auto& layer : counts) sums.insert(sums.end(), layer.begin(), layer.end());
  sum_over(dp, ctx, sums);
  for (std::size_t l = 0, k = 3; l < counts.size(); ++l)
    for (auto& c : counts[l]) c = static_cast<std::int64_t>(std::llround(sums[k++]));
  return {.loss_sum = sums[0], .mtp_loss_sum = sums[1], .balance_loss = sums[2], .expert_counts = std::move(counts),
          .compute_s = compute_s, .grad_reduce_s = grad_reduce_s};
}

OptimizerGroups optimizer_groups(const StageEnv& env) {
  return {.dp = env.comms->dp.get(), .edp = env.comms->edp.get(), .world = env.comms->world.get(),
          .zero1 = env.deck.get_bool("parallel.zero1")};
}

ExpertLoad expert_load(const std::vector<std::vector<std::int64_t>>& counts) {
  ExpertLoad load;
  for (const auto& layer : counts) {
    const double mx = static_cast<double>(*std::max_element(layer.begin(), layer.end()));
    double mean = 0;
    for (auto c : layer) mean += static_cast<double>(c);
    mean /= static_cast<double>(layer.size());
    load.layers.push_back({{"max_over_mean", mean > 0 ? mx / mean : 0}, {"counts", layer}});
    load.worst = std::max(load.worst, mean > 0 ? mx / mean : 0);
  }
  return load;
}

std::filesystem::path weights_checkpoint(const Deck& deck) { return start_point(deck).path; }

StageEnv make_stage_env(const Deck& deck, int rank, int world) {
  StageEnv env{.deck = deck, .rank = rank, .world = world, .ctx = kernels::Context::cpu(), .comms = nullptr};
  for (const char* k : {"parallel.tensor", "parallel.pipeline"})
    if (deck.get_int(k) != 1)
      deck.fail(k, "this build trains with data and expert parallelism only; tensor and pipeline parallelism "
                   "are the next milestone (set them to 1)");
  const std::string& stage = deck.get_string("run.stage");
  const int expert = deck.get_bool("model.dense") ? 1 : static_cast<int>(deck.get_int("parallel.expert"));
  if (expert != 1 && stage != "pretrain" && stage != "sft")
    deck.fail("parallel.expert", "expert parallelism runs in the pretrain and sft stages; the " + stage +
                                     " stage needs expert = 1 (every rank holding every expert)");
  const std::string& precision = deck.get_string("train.precision");
  if (precision == "fp8") deck.fail("train.precision", "FP8 training is not implemented yet (use bf16 or fp32)");
  const int gpus = kernels::Context::cuda_device_count();
#if defined(R1HPC_HAVE_CUDA)
  if (gpus > 0) {
    env.ctx = kernels::Context::cuda(rank % gpus);
    env.peak_flops = precision == "bf16" ? 989e12 : 67e12;  // H100 SXM dense BF16 / FP32
  }
#endif
  env.compute_dtype = precision == "bf16" ? DType::bf16 : DType::f32;
  std::string backend = deck.get_string("parallel.backend");
  if (backend == "auto") backend = env.ctx.is_cuda() ? "nccl" : "mpi";
  if (backend == "nccl" && !env.ctx.is_cuda())
    deck.fail("parallel.backend", "NCCL needs GPUs and none is visible (use mpi or auto)");
  if (backend == "mpi" && env.ctx.is_cuda())
    deck.fail("parallel.backend", "the MPI backend moves host buffers; on GPUs use nccl or auto");
  parallel::Layout layout;
  layout.world = world;
  layout.data = static_cast<int>(deck.get_int("parallel.data"));
  layout.order = deck.get_string("parallel.order");
  layout.expert = expert;
  const parallel::Mesh mesh(layout, rank);
  env.comms = std::make_unique<parallel::CommBundle>(parallel::make_comm_bundle(
      mesh, parallel::parse_backend(backend), env.ctx, deck.get_float("parallel.collective_timeout_s")));
  if (deck.get_bool("parallel.zero1")) {
    if (stage != "pretrain" && stage != "sft")
      log_info("parallel.zero1: the ", stage, " stage keeps whole AdamW states on every rank (ZeRO-1 runs in pretrain and sft)");
    else if (mesh.size(parallel::GroupKind::dp) == 1)
      log_info("parallel.zero1: data = 1, so there are no replicas to shard AdamW states over (fine: they stay whole)");
  }
  log_info("rank layout: ", world, " rank(s), data parallel",
           expert > 1 ? detail::concat(", routed experts over ", expert, " EP ranks x ", world / expert, " EDP") : std::string(),
           "; compute on ", env.ctx.is_cuda() ? "GPU" : "CPU", " in ",
           dtype_name(env.compute_dtype), "; ", backend, " collectives; ", gpus, " GPU(s) visible");
  return env;
}

BatchPlan BatchPlan::from_deck(const Deck& deck, std::int64_t replicas, std::int64_t max_seq_len) {
  BatchPlan b;
  b.seq = deck.get_int("data.seq_len");
  b.micro = deck.get_int("train.micro_batch");
  b.replicas = replicas;
  b.global = deck.get_int("train.global_batch") > 0 ? deck.get_int("train.global_batch") : b.micro * replicas;
  b.n_micro = b.global / (b.micro * replicas);
  if (b.seq > max_seq_len)
    deck.fail("data.seq_len", detail::concat("rows of ", b.seq, " tokens exceed [model] max_seq_len = ", max_seq_len));
  b.full_recompute = r1::full_recompute(deck);
  return b;
}

bool full_recompute(const Deck& deck) {
  const std::string& recompute = deck.get_string("train.recompute");
  if (recompute == "selective")
    deck.fail("train.recompute", "selective recomputation (attention core only) is not available yet; use none or full");
  return recompute == "full";
}

StageCheckpoints::StageCheckpoints(const Deck& deck, std::string stage, std::string parent, nlohmann::json layout,
                                   ParamStore& params, AdamW& opt)
    : deck_(deck), stage_(std::move(stage)), parent_(std::move(parent)), layout_(std::move(layout)), params_(params), opt_(opt),
      ckpt_(std::make_unique<ckpt::Checkpointer>(checkpoint_dir(deck), MPI_COMM_WORLD, deck.get_int("checkpoint.keep_last"),
                                                 deck.get_bool("checkpoint.async"))),
      every_(deck.get_int("checkpoint.every_steps")),
      time_limit_s_(deck.get_float("run.time_limit_minutes") * 60.0) {
  install_stop_handlers();
}

void StageCheckpoints::save(std::int64_t step, std::int64_t tokens, const nlohmann::json& data_state) {
  ckpt::Meta meta;
  meta.stage = stage_;
  meta.step = step;
  meta.tokens = tokens;
  meta.deck = deck_.resolved_text();
  meta.parent = parent_;
  meta.layout = layout_;
  meta.rng_state = {{"seed", deck_.get_int("run.seed")},
                    {"note", "counter-based: every random draw is a function of (seed, stream, index)"}};
  meta.data_state = data_state;
  const ckpt::SaveReport rep = ckpt::save_train_state(*ckpt_, meta, params_, opt_);
  if (rep.async)  // synchronous saves are reported by the checkpointer when they commit
    log_info("checkpoint: step ", step, " copied to the host in ", static_cast<int>(rep.blocking_s * 1000), " ms; writing ",
             rep.path.string(), " in the background");
}

bool StageCheckpoints::after_step(std::int64_t step, std::int64_t last, std::int64_t tokens, const nlohmann::json& data_state) {
  if (time_limit_s_ > 0 && clock_.seconds() > time_limit_s_) request_stop();
  // Every rank agrees at this step boundary, so all of them save and stop together.
  if (step < last && agree_on_stop(MPI_COMM_WORLD)) {
    save(step, tokens, data_state);
    ckpt_->finish();
    log_info(stage_, ": stopped at step ", step, " on request (signal or [run] time_limit_minutes); checkpointed, exit ",
             kExitRequeue, " asks the job script to requeue");
    return true;
  }
  if (step == last || (every_ > 0 && step % every_ == 0)) save(step, tokens, data_state);
  return false;
}

void StageCheckpoints::finish() { ckpt_->finish(); }

int run_stage(const Deck& deck, int rank, int world) {
  const std::string& stage = deck.get_string("run.stage");
  if (stage == "self_check") return run_self_check(rank, world) ? 0 : 1;
  if (stage == "pretrain" || stage == "grpo") {
    StageEnv env = make_stage_env(deck, rank, world);
    return stage == "pretrain" ? run_pretrain(env) : run_grpo(env);
  }
  if (stage == "sft" || stage == "reward_model") {
    StageEnv env = make_stage_env(deck, rank, world);
    return stage == "sft" ? run_sft(env) : run_reward_model(env);
  }
  if (stage == "evaluate" || stage == "rejection_sampling") {
    StageEnv env = make_stage_env(deck, rank, world);
    return stage == "evaluate" ? run_evaluate(env) : run_rejection_sampling(env);
  }
  if (stage == "import_hf") return run_import_hf(deck, rank, world);
  if (stage == "export_hf") return run_export_hf(deck, rank, world);
  deck.fail("run.stage", "this r1hpc cannot run that stage yet (--dry-run checks a deck without running it)");
}

}  // namespace r1
