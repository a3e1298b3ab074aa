#include "stages/stage.hpp"

#include <algorithm>
#include <cmath>
#include <map>

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
StartPoint start_point(const Deck& deck, const RunConfig& cfg) {
  const std::string& load = cfg.checkpoint.load;
  StartPoint sp;
  if (load.empty()) return sp;
  if (load == "latest") {
    if (auto l = ckpt::latest(checkpoint_dir(cfg))) sp = {*l, ckpt::LoadMode::full, true};
    return sp;
  }
  std::filesystem::path p(load);
  if (!std::filesystem::exists(p / "index.h5")) {
    auto l = ckpt::latest(p);
    if (!l) deck.fail("checkpoint.load", "is neither a checkpoint (no index.h5) nor a directory with a `latest` checkpoint");
    p = *l;
  }
  sp.path = p;
  sp.mode = ckpt::parse_load_mode(cfg.checkpoint.load_mode);
  return sp;
}
}  // namespace

double host_scalar(const Tensor& t) {
  Tensor h = Tensor::host({1}, DType::f32);
  copy(h, t);
  return h.data<float>()[0];
}

namespace {
void reduce_values(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values, parallel::ReduceOp op) {
  if (comm.size() == 1 || values.empty()) return;
  Tensor h = Tensor::host({static_cast<std::int64_t>(values.size())}, DType::f64);
  std::copy(values.begin(), values.end(), h.data<double>());
  Tensor d = ctx.to_here(h);
  comm.all_reduce(d, op);
  comm.wait();
  copy(h, d);
  std::copy(h.data<double>(), h.data<double>() + h.numel(), values.begin());
}
}  // namespace

void sum_over(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values) {
  reduce_values(comm, ctx, values, parallel::ReduceOp::sum);
}

std::int64_t max_over(parallel::Communicator* comm, const kernels::Context& ctx, std::int64_t value) {
  if (comm == nullptr) return value;
  std::vector<double> v{static_cast<double>(value)};
  reduce_values(*comm, ctx, v, parallel::ReduceOp::max);
  return static_cast<std::int64_t>(v[0]);
}

Resumed resume_from_deck(const Deck& deck, const RunConfig& cfg, const std::string& stage, ParamStore& params, AdamW& opt,
                         const std::string& new_prefix) {
  const StartPoint start = start_point(deck, cfg);
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

PipelinePlan PipelinePlan::from_env(const StageEnv& env) {
  return {.pp = env.comms->pp.get(),
          .schedule = env.cfg.parallel.schedule,
          .virtual_stages = static_cast<int>(env.cfg.parallel.virtual_stages)};
}

StepSums train_micro_batches(Model& model, const std::vector<TokenBatch>& batches, float token_weight,
                             float balance_weight, AdamW& opt, parallel::Communicator& dp, const kernels::Context& ctx,
                             const PipelinePlan& pipe, const TokenWeights& weights) {
  const ModelConfig& cfg = model.config();
  Tensor loss_sum = ctx.zeros({1}, DType::f32), mtp_sum = ctx.zeros({1}, DType::f32), balance = ctx.zeros({1}, DType::f32);
  const std::size_t experts = static_cast<std::size_t>(cfg.n_routed_experts);
  std::vector<std::vector<std::int64_t>> counts(static_cast<std::size_t>(model.moe_layer_count()),
                                                std::vector<std::int64_t>(experts, 0));
  // A forward's sums; its MoE layers are this rank's from `first_moe` on (a chunk's, or all of them).
  const auto add = [&](const ForwardResult& r, std::size_t first_moe) {
    kernels::axpy(ctx, 1.0f, r.loss_sum, loss_sum);
    if (r.mtp_loss_sum.defined()) kernels::axpy(ctx, 1.0f, r.mtp_loss_sum, mtp_sum);
    kernels::axpy(ctx, balance_weight, r.balance_loss, balance);
    for (std::size_t l = 0; l < r.expert_counts.size(); ++l) {
      Tensor h = Tensor::host(r.expert_counts[l].shape(), DType::i32);
      copy(h, r.expert_counts[l]);
      for (std::int64_t e = 0; e < h.numel(); ++e) counts[first_moe + l][static_cast<std::size_t>(e)] += h.data<std::int32_t>()[e];
    }
  };
  // The last micro-batch's backward completes each block's gradients in turn: their reduction over the
  // replicas starts there and runs beside the rest of the backward.
  struct LastBackward {
    Model& model;
    LastBackward(Model& m, AdamW& opt, bool on) : model(m) {
      if (on) model.on_grads_complete = [&opt](std::span<Param* const> ps) { opt.start_reduction(ps); };
    }
    ~LastBackward() { model.on_grads_complete = nullptr; }
  };
  const Stopwatch compute;
  double bubble = 0;
  const bool pipelined = pipe.pp != nullptr && pipe.pp->size() > 1;
  if (batches.empty())  // nothing to run here (e.g. GRPO's dynamic sampling): start in the others' order
    for (std::span<Param* const> group : model.grads_complete_order()) opt.start_reduction(group);
  if (!pipelined) {
    for (std::size_t i = 0; i < batches.size(); ++i) {
      const DeviceBatch db = model.upload(batches[i]);
      ForwardResult r;
      auto saved = model.forward(db, r);
      const LastBackward last(model, opt, i + 1 == batches.size());
      if (weights) model.backward(db, *saved, weights(i, Model::token_losses(*saved)), token_weight, balance_weight);
      else model.backward(db, *saved, token_weight, balance_weight);
      add(r, 0);
    }
  } else {
    // The schedule calls back per (micro-batch, chunk); chunk c is this rank's local chunk c / stages.
    const int stages = pipe.pp->size();
    std::vector<std::size_t> first_moe;  // per local chunk: its first MoE layer among this rank's
    for (std::size_t k = 0, n = 0; k < model.chunks().size(); ++k) {
      first_moe.push_back(n);
      for (std::int64_t l = model.chunks()[k].first_layer; l < model.chunks()[k].first_layer + model.chunks()[k].layers; ++l)
        n += cfg.is_moe_layer(l);
    }
    std::vector<DeviceBatch> device(batches.size());
    std::map<std::pair<int, int>, Model::SavedPtr> saved;
    std::map<int, Tensor> head_weights;  // per micro-batch, from the last chunk's forward to its backward
    const auto batch = [&](int micro) -> const DeviceBatch& {
      DeviceBatch& d = device[static_cast<std::size_t>(micro)];
      if (!d.ids.defined()) d = model.upload(batches[static_cast<std::size_t>(micro)]);
      return d;
    };
    PipelineHooks hooks;
    hooks.forward = [&](int micro, int chunk, const Tensor& input) {
      ForwardResult r;
      auto s = model.forward_chunk(chunk / stages, batch(micro), input, r);
      add(r, first_moe[static_cast<std::size_t>(chunk / stages)]);
      if (weights && model.chunks()[static_cast<std::size_t>(chunk / stages)].head)
        head_weights[micro] = weights(static_cast<std::size_t>(micro), Model::token_losses(*s));
      const Tensor out = Model::chunk_output(*s);
      saved[{micro, chunk}] = std::move(s);
      return out;
    };
    hooks.backward = [&](int micro, int chunk, const Tensor& dout) {
      auto it = saved.find({micro, chunk});
      const int local = chunk / stages;
      const bool weighed = weights && model.chunks()[static_cast<std::size_t>(local)].head;
      const DeviceBatch& db = batch(micro);
      const LastBackward last(model, opt, micro + 1 == static_cast<int>(batches.size()));  // each chunk's last
      const Tensor din = weighed ? model.backward_chunk(local, db, *it->second, dout, head_weights.at(micro), token_weight, balance_weight)
                                 : model.backward_chunk(local, db, *it->second, dout, token_weight, balance_weight);
      if (weighed) head_weights.erase(micro);
      saved.erase(it);
      if (model.chunks()[static_cast<std::size_t>(local)].index == 0) device[static_cast<std::size_t>(micro)] = {};
      return din;
    };
    const TokenBatch& b0 = batches.at(0);
    hooks.activation_shape = {model.residual_rows(b0.batch * b0.seq), cfg.dim};
    hooks.activation_dtype = model.params().compute_dtype();
    bubble = run_pipeline(pipe.schedule, *pipe.pp, ctx, pipe.virtual_stages, static_cast<int>(batches.size()), hooks)
                 .bubble_fraction;
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
  // Over the pipeline: the loss lives on the last stage, each stage's balance losses and expert counts on it.
  std::vector<std::vector<std::int64_t>> model_counts = counts;
  if (pipelined) {
    const std::vector<int> ids = model.moe_layer_ids();
    const std::size_t n_moe = static_cast<std::size_t>(cfg.dense ? 0 : cfg.n_layers - cfg.n_dense_layers);
    std::vector<double> all(3 + n_moe * experts, 0.0);
    std::copy(sums.begin(), sums.begin() + 3, all.begin());
    for (std::size_t l = 0; l < ids.size(); ++l)
      for (std::size_t e = 0; e < experts; ++e) all[3 + static_cast<std::size_t>(ids[l]) * experts + e] = static_cast<double>(counts[l][e]);
    sum_over(*pipe.pp, ctx, all);
    std::copy(all.begin(), all.begin() + 3, sums.begin());
    model_counts.assign(n_moe, std::vector<std::int64_t>(experts, 0));
    for (std::size_t l = 0; l < n_moe; ++l)
      for (std::size_t e = 0; e < experts; ++e) model_counts[l][e] = std::llround(all[3 + l * experts + e]);
  }
  return {.loss_sum = sums[0], .mtp_loss_sum = sums[1], .balance_loss = sums[2], .expert_counts = std::move(counts),
          .model_expert_counts = std::move(model_counts), .bubble = bubble, .compute_s = compute_s,
          .grad_reduce_s = grad_reduce_s};
}

OptimizerGroups optimizer_groups(const StageEnv& env, bool zero1) {
  return {.dp = env.comms->dp.get(), .edp = env.comms->edp.get(), .tp = env.comms->tp.get(), .world = env.comms->world.get(),
          .zero1 = zero1 && env.cfg.parallel.zero1,
          .overlap = env.cfg.parallel.overlap_grad_reduce};
}

ModelGroups model_groups(const StageEnv& env) {
  return {.tp = env.comms->tp.get(), .ep = env.comms->ep.get(), .pp = env.comms->pp.get(),
          .virtual_stages = static_cast<int>(env.cfg.parallel.virtual_stages),
          .sequence_parallel = env.cfg.parallel.sequence_parallel,
          .overlap_expert_comm = env.cfg.parallel.overlap_expert_comm};
}

nlohmann::json layout_json(const StageEnv& env) {
  return {{"data", env.comms->dp->size()}, {"tensor", env.comms->tp->size()}, {"pipeline", env.comms->pp->size()},
          {"expert", env.comms->ep->size()}};
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

std::filesystem::path weights_checkpoint(const Deck& deck, const RunConfig& cfg) { return start_point(deck, cfg).path; }

StageEnv make_stage_env(const Deck& deck, const RunConfig& cfg, int rank, int world) {
  StageEnv env{.deck = deck, .cfg = cfg, .rank = rank, .world = world, .ctx = kernels::Context::cpu(), .comms = nullptr};
  const std::string_view stage = choice_word(cfg.run.stage);
  const int pipeline = static_cast<int>(cfg.parallel.pipeline);
  const std::string_view schedule = choice_word(cfg.parallel.schedule);
  const std::int64_t virtual_stages = cfg.parallel.virtual_stages;
  // Which layouts each stage runs is checked with the deck (deck/validate.cpp).
  const int expert = cfg.model.dense ? 1 : static_cast<int>(cfg.parallel.expert);
  const int tensor = static_cast<int>(cfg.parallel.tensor);
  if (cfg.parallel.sequence_parallel && tensor == 1)
    log_info("parallel.sequence_parallel: tensor = 1, so there is nothing to split (it has no effect)");
  const Precision precision = cfg.train.precision;
  const int gpus = kernels::Context::cuda_device_count();
#if defined(R1HPC_HAVE_CUDA)
  if (gpus > 0) {
    env.ctx = kernels::Context::cuda(rank % gpus);
    env.peak_flops = precision == Precision::bf16 ? 989e12 : 67e12;  // H100 SXM dense BF16 / FP32
  }
#endif
  env.compute_dtype = precision == Precision::bf16 ? DType::bf16 : DType::f32;
  std::string backend = cfg.parallel.backend;
  if (backend == "auto") backend = env.ctx.is_cuda() ? "nccl" : "mpi";
  if (backend == "nccl" && !env.ctx.is_cuda())
    deck.fail("parallel.backend", "NCCL needs GPUs and none is visible (use mpi or auto)");
  if (backend == "mpi" && env.ctx.is_cuda())
    deck.fail("parallel.backend", "the MPI backend moves host buffers; on GPUs use nccl or auto");
  parallel::Layout layout;
  layout.world = world;
  layout.tensor = tensor;
  layout.pipeline = pipeline;
  layout.data = static_cast<int>(cfg.parallel.data);
  layout.order = cfg.parallel.order;
  layout.expert = expert;
  std::string routing;  // device-limited routing: how many EP ranks one token's experts reach (checked with the deck)
  if (expert > 1) routing = detail::concat(" (a token reaches at most ", cfg.model.max_expert_ranks_per_token(expert), " of them)");
  const parallel::Mesh mesh(layout, rank);
  env.comms = std::make_unique<parallel::CommBundle>(parallel::make_comm_bundle(
      mesh, parallel::parse_backend(backend), env.ctx, cfg.parallel.collective_timeout_s));
  if (cfg.parallel.zero1) {
    if (stage != "pretrain" && stage != "sft")
      log_info("parallel.zero1: the ", stage, " stage keeps whole AdamW states on every rank (ZeRO-1 runs in pretrain and sft)");
    else if (mesh.size(parallel::GroupKind::dp) == 1)
      log_info("parallel.zero1: data = 1, so there are no replicas to shard AdamW states over (fine: they stay whole)");
  }
  log_info("rank layout: ", world, " rank(s), data parallel",
           tensor > 1 ? detail::concat(", tensor parallel over ", tensor) : std::string(),
           pipeline > 1 ? detail::concat(", ", pipeline, " pipeline stages (", schedule, ", ", pipeline * (pipeline > 1 ? virtual_stages : 1),
                                         " chunks)") : std::string(),
           expert > 1 ? detail::concat(", routed experts over ", expert, " EP ranks", routing, " x ", world / (pipeline * expert), " EDP") : std::string(),
           "; compute on ", env.ctx.is_cuda() ? "GPU" : "CPU", " in ",
           dtype_name(env.compute_dtype), "; ", backend, " collectives; ", gpus, " GPU(s) visible");
  logger().set_computing();
  return env;
}

BatchPlan BatchPlan::from_config(const RunConfig& cfg, std::int64_t replicas) {
  BatchPlan b;
  b.seq = cfg.data.seq_len;
  b.micro = cfg.train.micro_batch;
  b.replicas = replicas;
  b.global = cfg.train.global_batch > 0 ? cfg.train.global_batch : b.micro * replicas;
  b.n_micro = b.global / (b.micro * replicas);
  b.full_recompute = cfg.train.recompute == Recompute::full;
  return b;
}

StageCheckpoints::StageCheckpoints(const Deck& deck, const RunConfig& cfg, std::string stage, std::string parent,
                                   nlohmann::json layout, ParamStore& params, AdamW& opt)
    : deck_(deck), cfg_(cfg), stage_(std::move(stage)), parent_(std::move(parent)), layout_(std::move(layout)), params_(params),
      opt_(opt),
      ckpt_(std::make_unique<ckpt::Checkpointer>(checkpoint_dir(cfg), MPI_COMM_WORLD, cfg.checkpoint.keep_last,
                                                 cfg.checkpoint.async)),
      every_(cfg.checkpoint.every_steps),
      time_limit_s_(cfg.run.time_limit_minutes * 60.0) {
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
  meta.rng_state = {{"seed", cfg_.run.seed},
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

int run_stage(const Deck& deck, const RunConfig& cfg, int rank, int world) {
  const Stage stage = cfg.run.stage;
  if (stage == Stage::self_check) return run_self_check(rank, world) ? 0 : 1;
  if (stage == Stage::pretrain || stage == Stage::grpo) {
    StageEnv env = make_stage_env(deck, cfg, rank, world);
    return stage == Stage::pretrain ? run_pretrain(env) : run_grpo(env);
  }
  if (stage == Stage::sft || stage == Stage::reward_model) {
    StageEnv env = make_stage_env(deck, cfg, rank, world);
    return stage == Stage::sft ? run_sft(env) : run_reward_model(env);
  }
  if (stage == Stage::evaluate || stage == Stage::rejection_sampling) {
    StageEnv env = make_stage_env(deck, cfg, rank, world);
    return stage == Stage::evaluate ? run_evaluate(env) : run_rejection_sampling(env);
  }
  if (stage == Stage::import_hf) return run_import_hf(deck, cfg, rank, world);
  if (stage == Stage::export_hf) return run_export_hf(deck, cfg, rank, world);
  deck.fail("run.stage", "this r1hpc cannot run that stage yet (--dry-run checks a deck without running it)");
}

}  // namespace r1
