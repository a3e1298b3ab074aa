#include "stages/stage.hpp"

#include "app/self_check.hpp"
#include "core/log.hpp"
#include "model/config.hpp"

namespace r1 {

StageEnv make_stage_env(const Deck& deck, int rank, int world) {
  StageEnv env{.deck = deck, .rank = rank, .world = world, .ctx = kernels::Context::cpu(), .comms = nullptr};
  const std::string& stage = deck.get_string("run.stage");
  const bool trains_split = stage == "pretrain" || stage == "sft";
  const bool samples_split = stage == "grpo" || stage == "evaluate" || stage == "rejection_sampling";
  const int pipeline = static_cast<int>(deck.get_int("parallel.pipeline"));
  const std::string& schedule = deck.get_string("parallel.schedule");
  const std::int64_t virtual_stages = deck.get_int("parallel.virtual_stages");
  if (schedule == "dualpipe") deck.fail("parallel.schedule", "DualPipe is not implemented (use 1f1b or interleaved)");
  if (pipeline > 1) {
    if (!trains_split && !samples_split)
      deck.fail("parallel.pipeline", "pipeline parallelism runs in the pretrain, sft, grpo, evaluate and rejection_sampling "
                                     "stages; the " + stage + " stage needs pipeline = 1");
    // The schedule, virtual stages and layer split are checked with the deck (deck/validate.cpp).
    const ModelConfig c = model_config_from_deck(deck);
    if (c.mtp_depth > 0) deck.fail("model.mtp_depth", "pipeline parallelism needs mtp_depth = 0 (the MTP module "
                                                      "would need the first stage's embedding on the last stage)");
    if (c.tie_embeddings) deck.fail("model.tie_embeddings", "pipeline parallelism keeps the embedding (first stage) and "
                                                            "the head (last stage) apart: set it to false");
  }
  const int expert = deck.get_bool("model.dense") ? 1 : static_cast<int>(deck.get_int("parallel.expert"));
  if (expert != 1 && !trains_split && !samples_split)
    deck.fail("parallel.expert", "expert parallelism runs in the pretrain, sft, grpo, evaluate and rejection_sampling "
                                 "stages; the " + stage + " stage needs expert = 1 (every rank holding every expert)");
  const int tensor = static_cast<int>(deck.get_int("parallel.tensor"));
  if (tensor != 1 && !trains_split && !samples_split)  // what it must divide is checked with the deck (deck/validate.cpp)
    deck.fail("parallel.tensor", "tensor parallelism runs in the pretrain, sft, grpo, evaluate and rejection_sampling "
                                 "stages; the " + stage + " stage scores with whole models and needs tensor = 1");
  if (deck.get_bool("parallel.sequence_parallel") && tensor == 1)
    log_info("parallel.sequence_parallel: tensor = 1, so there is nothing to split (it has no effect)");
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
  layout.tensor = tensor;
  layout.pipeline = pipeline;
  layout.data = static_cast<int>(deck.get_int("parallel.data"));
  layout.order = deck.get_string("parallel.order");
  layout.expert = expert;
  std::string routing;  // device-limited routing: how many EP ranks one token's experts reach (checked with the deck)
  if (expert > 1) routing = detail::concat(" (a token reaches at most ", model_config_from_deck(deck).max_expert_ranks_per_token(expert), " of them)");
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
           tensor > 1 ? detail::concat(", tensor parallel over ", tensor) : std::string(),
           pipeline > 1 ? detail::concat(", ", pipeline, " pipeline stages (", schedule, ", ", pipeline * (pipeline > 1 ? virtual_stages : 1),
                                         " chunks)") : std::string(),
           expert > 1 ? detail::concat(", routed experts over ", expert, " EP ranks", routing, " x ", world / (pipeline * expert), " EDP") : std::string(),
           "; compute on ", env.ctx.is_cuda() ? "GPU" : "CPU", " in ",
           dtype_name(env.compute_dtype), "; ", backend, " collectives; ", gpus, " GPU(s) visible");
  logger().set_computing();
  return env;
}

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
