#include "stages/stage.hpp"

#include "app/self_check.hpp"
#include "core/log.hpp"

namespace r1 {

StageEnv make_stage_env(const Deck& deck, int rank, int world) {
  StageEnv env{.deck = deck, .rank = rank, .world = world, .ctx = kernels::Context::cpu(), .comms = nullptr};
  for (const char* k : {"parallel.tensor", "parallel.pipeline", "parallel.expert"})
    if (deck.get_int(k) != 1)
      deck.fail(k, "this build trains with data parallelism only; tensor, pipeline and expert parallelism "
                   "are the next milestone (set them to 1)");
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
  const parallel::Mesh mesh(layout, rank);
  env.comms = std::make_unique<parallel::CommBundle>(parallel::make_comm_bundle(
      mesh, parallel::parse_backend(backend), env.ctx, deck.get_float("parallel.collective_timeout_s")));
  log_info("rank layout: ", world, " rank(s), data parallel; compute on ", env.ctx.is_cuda() ? "GPU" : "CPU", " in ",
           dtype_name(env.compute_dtype), "; ", backend, " collectives; ", gpus, " GPU(s) visible");
  return env;
}

int run_stage(const Deck& deck, int rank, int world) {
  const std::string& stage = deck.get_string("run.stage");
  if (stage == "self_check") return run_self_check(rank, world) ? 0 : 1;
  if (stage == "pretrain") {
    StageEnv env = make_stage_env(deck, rank, world);
    return run_pretrain(env);
  }
  deck.fail("run.stage", "this r1hpc cannot run that stage yet (--dry-run checks a deck without running it)");
}

}  // namespace r1
