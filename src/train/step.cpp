#include "train/step.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "kernels/elementwise.hpp"
#include "model/wgrad_deferral.hpp"
#include "run/host_reduce.hpp"
#include "run/stage_env.hpp"

namespace r1 {

BatchPlan BatchPlan::from_config(const RunConfig& cfg, std::int64_t replicas) {
  BatchPlan b;
  b.seq = cfg.data.seq_len;  // within [model] max_seq_len: deck/validate.cpp
  b.micro = cfg.train.micro_batch;
  b.replicas = replicas;
  b.global = cfg.train.global_batch > 0 ? cfg.train.global_batch : b.micro * replicas;
  b.n_micro = b.global / (b.micro * replicas);
  b.full_recompute = cfg.train.recompute == Recompute::full;
  return b;
}

PipelinePlan PipelinePlan::from_env(const StageEnv& env) {
  PipelinePlan plan{.pp = env.comms->pp.get(), .schedule = env.cfg.parallel.schedule,
                    .virtual_stages = static_cast<int>(env.cfg.parallel.virtual_stages),
                    .split_weight = env.cfg.parallel.split_weight_grad,
                    .overlap_pairs = env.cfg.parallel.overlap_chunk_pairs, .timeline = nullptr};
  const bool dual = plan.schedule == PipelineSchedule::dualpipev || plan.schedule == PipelineSchedule::dualpipe;
  if (dual && plan.overlap_pairs && plan.pp != nullptr && plan.pp->size() > 1 && parallel::mpi_threads_take_turns())
    plan.pair_thread = std::make_shared<Interleave>([ctx = env.ctx] { ctx.use_on_this_thread(); });
  if (env.cfg.parallel.timeline && plan.pp != nullptr && plan.pp->size() > 1)
    plan.timeline = std::make_shared<TimelineLog>(timeline_path(env.cfg.run.output_dir, env.rank), plan.pp->rank(),
                                                  env.comms->dp->rank());
  return plan;
}

ExpertCounts zero_expert_counts(const Model& model) {
  return ExpertCounts(static_cast<std::size_t>(model.moe_layer_count()),
                      std::vector<std::int64_t>(static_cast<std::size_t>(model.config().n_routed_experts), 0));
}

void add_expert_counts(ExpertCounts& counts, const std::vector<Tensor>& forward_counts, std::size_t first_moe) {
  for (std::size_t l = 0; l < forward_counts.size(); ++l) {
    Tensor h = Tensor::host(forward_counts[l].shape(), DType::i32);
    copy(h, forward_counts[l]);
    for (std::int64_t e = 0; e < h.numel(); ++e) counts[first_moe + l][static_cast<std::size_t>(e)] += h.data<std::int32_t>()[e];
  }
}

void sum_with_counts(parallel::Communicator& comm, const kernels::Context& ctx, std::vector<double>& values,
                     ExpertCounts& counts) {
  const std::size_t n = values.size();
  for (const auto& layer : counts) values.insert(values.end(), layer.begin(), layer.end());
  sum_over(comm, ctx, values);
  for (std::size_t l = 0, k = n; l < counts.size(); ++l)
    for (auto& c : counts[l]) c = static_cast<std::int64_t>(std::llround(values[k++]));
  values.resize(n);
}

void finish_passes(const kernels::Context& ctx, GradReducer& grads, const Stopwatch& compute, StepSums& sums) {
  ctx.synchronize();
  sums.compute_s = compute.seconds();
  const Stopwatch reduce;
  grads.reduce();
  sums.grad_reduce_s = reduce.seconds();
}

namespace {

// What this rank's forward passes of a step add up to: loss sums on the device, expert counts on the host.
struct PassTotals {
  Tensor loss_sum, mtp_sum, balance;
  ExpertCounts counts;
  PassTotals(const Model& model, const kernels::Context& ctx)
      : loss_sum(ctx.zeros({1}, DType::f32)), mtp_sum(ctx.zeros({1}, DType::f32)), balance(ctx.zeros({1}, DType::f32)),
        counts(zero_expert_counts(model)) {}
  // A forward's sums; its MoE layers are this rank's from `first_moe` on (a chunk's, or all of them).
  void add(const kernels::Context& ctx, const ForwardResult& r, std::size_t first_moe, float balance_weight) {
    kernels::axpy(ctx, 1.0f, r.loss_sum, loss_sum);
    if (r.mtp_loss_sum.defined()) kernels::axpy(ctx, 1.0f, r.mtp_loss_sum, mtp_sum);
    kernels::axpy(ctx, balance_weight, r.balance_loss, balance);
    add_expert_counts(counts, r.expert_counts, first_moe);
  }
};

// The step's inputs as train_micro_batches received them.
struct Passes {
  Model& model;
  const std::vector<TokenBatch>& batches;
  float token_weight, balance_weight;
  GradReducer& grads;
  const kernels::Context& ctx;
  const TokenWeights& weights;
  // The last micro-batch's backward completes each block's gradients in turn: their reduction over the
  // replicas starts there (GradReducer::start) and runs beside the rest of the backward.
  GradsReady last_backward() const {
    return [&grads = grads](std::span<Param* const> ps) { grads.start(ps); };
  }
};

void run_whole_model(const Passes& in, PassTotals& totals) {
  Model& model = in.model;
  const GradsReady start_reduction = in.last_backward(), no_hook;
  for (std::size_t i = 0; i < in.batches.size(); ++i) {
    const DeviceBatch db = model.upload(in.batches[i]);
    ForwardResult r;
    auto saved = model.forward(db, r);
    const GradsReady& ready = i + 1 == in.batches.size() ? start_reduction : no_hook;
    if (in.weights) model.backward(db, *saved, in.weights(i, Model::token_losses(*saved)), in.token_weight, in.balance_weight, ready);
    else model.backward(db, *saved, in.token_weight, in.balance_weight, ready);
    totals.add(in.ctx, r, 0, in.balance_weight);
  }
}

// The passes through the pipeline schedule, which calls back per (micro-batch, chunk); chunk c is this
// rank's local chunk c / stages (parallel::rank_chunks). Returns the measured bubble.
double run_pipelined(const Passes& in, const PipelinePlan& pipe, PassTotals& totals) {
  Model& model = in.model;
  const ModelConfig& cfg = model.config();
  const int stages = pipe.pp->size();
  std::vector<std::size_t> first_moe;  // per local chunk: its first MoE layer among this rank's
  for (std::size_t k = 0, n = 0; k < model.chunks().size(); ++k) {
    first_moe.push_back(n);
    for (std::int64_t l = model.chunks()[k].first_layer; l < model.chunks()[k].first_layer + model.chunks()[k].layers; ++l)
      n += cfg.is_moe_layer(l);
  }
  std::vector<DeviceBatch> device(in.batches.size());
  std::map<std::pair<int, int>, Model::SavedPtr> saved;
  std::map<int, Tensor> head_weights;  // per micro-batch, from the last chunk's forward to its backward
  const auto batch = [&](int micro) -> const DeviceBatch& {
    DeviceBatch& d = device[static_cast<std::size_t>(micro)];
    if (!d.ids.defined()) d = model.upload(in.batches[static_cast<std::size_t>(micro)]);
    return d;
  };
  const GradsReady start_reduction = in.last_backward(), no_hook;
  // Split backwards defer their weight GEMMs per (micro-batch, chunk), and with them the gradient
  // reductions those GEMMs complete: W runs both in the order the backward issued them.
  std::map<std::pair<int, int>, WgradQueue> deferred;
  const GradsReady deferred_reduction = [&](std::span<Param* const> group) {
    deferring_wgrad()->push([&start_reduction, params = std::vector<Param*>(group.begin(), group.end())] {
      start_reduction(params);
    }, 0);
  };
  PipelineHooks hooks;
  hooks.forward = [&](int micro, int chunk, const Tensor& input) {
    ForwardResult r;
    auto s = model.forward_chunk(chunk / stages, batch(micro), input, r);
    totals.add(in.ctx, r, first_moe[static_cast<std::size_t>(chunk / stages)], in.balance_weight);
    if (in.weights && model.chunks()[static_cast<std::size_t>(chunk / stages)].head)
      head_weights[micro] = in.weights(static_cast<std::size_t>(micro), Model::token_losses(*s));
    const Tensor out = Model::chunk_output(*s);
    saved[{micro, chunk}] = std::move(s);
    return out;
  };
  hooks.backward = [&](int micro, int chunk, const Tensor& dout) {
    auto it = saved.find({micro, chunk});
    const int local = chunk / stages;
    const bool weighed = in.weights && model.chunks()[static_cast<std::size_t>(local)].head;
    const DeviceBatch& db = batch(micro);
    const bool last = micro + 1 == static_cast<int>(in.batches.size());  // each chunk's last
    const GradsReady& ready = !last ? no_hook : pipe.split_weight ? deferred_reduction : start_reduction;
    std::optional<DeferWgrad> split;
    if (pipe.split_weight) split.emplace(deferred[{micro, chunk}]);
    const Tensor din = weighed ? model.backward_chunk(local, db, *it->second, dout, head_weights.at(micro), in.token_weight,
                                                      in.balance_weight, ready)
                               : model.backward_chunk(local, db, *it->second, dout, in.token_weight, in.balance_weight, ready);
    if (weighed) head_weights.erase(micro);
    saved.erase(it);
    if (model.chunks()[static_cast<std::size_t>(local)].index == 0) device[static_cast<std::size_t>(micro)] = {};
    return din;
  };
  if (pipe.split_weight)
    hooks.weight = [&](int micro, int chunk) {
      auto node = deferred.extract({micro, chunk});
      R1_CHECK(!node.empty(), "pipeline: the W of micro-batch ", micro, ", chunk ", chunk, " before its backward");
      node.mapped().drain();
    };
  const TokenBatch& b0 = in.batches.at(0);
  hooks.activation_shape = {model.residual_rows(b0.batch * b0.seq), cfg.dim};
  hooks.activation_dtype = model.params().compute_dtype();
  const int micro_batches = static_cast<int>(in.batches.size());
  const PipelineReport report =
      run_pipeline(pipe.schedule, *pipe.pp, in.ctx, pipe.virtual_stages, micro_batches, hooks, pipe.timeline != nullptr,
                   pipe.overlap_pairs, pipe.pair_thread.get());
  if (pipe.timeline) pipe.timeline->write(pipe.schedule, pipe.pp->size(), pipe.virtual_stages, micro_batches, report);
  return report.bubble_fraction;
}

// Over the pipeline: the loss lives on the last stage, each stage's balance losses and expert counts on
// it. `sums` (loss, MTP loss, balance) become the pipeline's; returns the counts of every MoE layer of
// the model.
ExpertCounts sum_over_pipeline(const Model& model, parallel::Communicator& pp, const kernels::Context& ctx,
                               std::vector<double>& sums, const ExpertCounts& counts) {
  const ModelConfig& cfg = model.config();
  const std::size_t experts = static_cast<std::size_t>(cfg.n_routed_experts);
  const std::vector<int> ids = model.moe_layer_ids();
  const std::size_t n_moe = static_cast<std::size_t>(cfg.dense ? 0 : cfg.n_layers - cfg.n_dense_layers);
  std::vector<double> all(3 + n_moe * experts, 0.0);
  std::copy(sums.begin(), sums.begin() + 3, all.begin());
  for (std::size_t l = 0; l < ids.size(); ++l)
    for (std::size_t e = 0; e < experts; ++e) all[3 + static_cast<std::size_t>(ids[l]) * experts + e] = static_cast<double>(counts[l][e]);
  sum_over(pp, ctx, all);
  std::copy(all.begin(), all.begin() + 3, sums.begin());
  ExpertCounts model_counts(n_moe, std::vector<std::int64_t>(experts, 0));
  for (std::size_t l = 0; l < n_moe; ++l)
    for (std::size_t e = 0; e < experts; ++e) model_counts[l][e] = std::llround(all[3 + l * experts + e]);
  return model_counts;
}

}  // namespace

StepSums train_micro_batches(Model& model, const std::vector<TokenBatch>& batches, float token_weight,
                             float balance_weight, GradReducer& grads, parallel::Communicator& dp, const kernels::Context& ctx,
                             const PipelinePlan& pipe, const TokenWeights& weights) {
  PassTotals totals(model, ctx);
  const Passes in{model, batches, token_weight, balance_weight, grads, ctx, weights};
  const Stopwatch compute;
  StepSums out;
  const bool pipelined = pipe.pp != nullptr && pipe.pp->size() > 1;
  if (batches.empty())  // nothing to run here (e.g. GRPO's dynamic sampling): start in the others' order
    for (std::span<Param* const> group : model.grads_complete_order()) grads.start(group);
  if (!pipelined) run_whole_model(in, totals);
  else out.bubble = run_pipelined(in, pipe, totals);
  finish_passes(ctx, grads, compute, out);
  std::vector<double> sums{host_scalar(totals.loss_sum), host_scalar(totals.mtp_sum), host_scalar(totals.balance)};
  sum_with_counts(dp, ctx, sums, totals.counts);
  out.model_expert_counts = pipelined ? sum_over_pipeline(model, *pipe.pp, ctx, sums, totals.counts) : totals.counts;
  out.loss_sum = sums[0];
  out.mtp_loss_sum = sums[1];
  out.balance_loss = sums[2];
  out.expert_counts = std::move(totals.counts);
  // Under DualPipe a layer's two copies each routed half the micro-batches: both take the whole step's counts.
  if (pipelined && !model.second_copy_params().empty()) {
    const std::vector<int> ids = model.moe_layer_ids();
    for (std::size_t l = 0; l < ids.size(); ++l) out.expert_counts[l] = out.model_expert_counts[static_cast<std::size_t>(ids[l])];
  }
  return out;
}

ExpertLoad expert_load(const ExpertCounts& counts) {
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

}  // namespace r1
