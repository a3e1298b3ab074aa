#include "stages/stage.hpp"

#include "app/self_check.hpp"
#include "core/log.hpp"
#include "model/config.hpp"

namespace r1 {

StageEnv make_stage_env(const Deck& deck, const RunConfig& cfg, int rank, int world) {
  StageEnv env{.deck = deck, .cfg = cfg, .rank = rank, .world = world, .ctx = kernels::Context::cpu(), .comms = nullptr};
  const std::string_view stage = choice_word(cfg.run.stage);
  const int pipeline = static_cast<int>(cfg.parallel.pipeline);
  const std::string_view schedule = choice_word(cfg.parallel.schedule);
  const int chunks_per_rank = pipeline_chunks_per_rank(cfg.parallel.schedule, cfg.parallel.virtual_stages);
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
    env.peak_flops = precision != Precision::fp32 ? 989e12 : 67e12;  // H100 SXM dense BF16 (MFU of fp8 too) / FP32
  }
#endif
  if (cfg.train.attention == AttentionImpl::automatic) {
    if (env.ctx.is_cuda() && kernels::cudnn_attention_built()) env.ctx.set_attention_backend(kernels::AttentionBackend::cudnn);
  } else if (cfg.train.attention != AttentionImpl::own) {
    if (!env.ctx.is_cuda()) {
      log_info("train.attention = ", choice_word(cfg.train.attention), ": no GPU, so the CPU reference runs (no effect)");
    } else {
      try {
        env.ctx.set_attention_backend(cfg.train.attention == AttentionImpl::cudnn ? kernels::AttentionBackend::cudnn
                                                                                  : kernels::AttentionBackend::cudnn_nondeterministic);
      } catch (const Error& e) {
        deck.fail("train.attention", e.what());
      }
    }
  }
  env.compute_dtype = precision == Precision::fp32 ? DType::f32 : DType::bf16;  // fp8: bf16 beside the FP8 GEMMs
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
           pipeline > 1 ? detail::concat(", ", pipeline, " pipeline stages (", schedule, ", ", pipeline * chunks_per_rank,
                                         " chunks)") : std::string(),
           expert > 1 ? detail::concat(", routed experts over ", expert, " EP ranks", routing, " x ", world / (pipeline * expert), " EDP") : std::string(),
           "; compute on ", env.ctx.is_cuda() ? "GPU" : "CPU", " in ",
           dtype_name(env.compute_dtype), env.ctx.is_cuda() ? detail::concat(", attention ", kernels::attention_backend_name(env.ctx.attention_backend())) : std::string(),
           "; ", backend, " collectives; ", gpus, " GPU(s) visible");
  logger().set_computing();
  return env;
}

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
