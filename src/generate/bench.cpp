// r1hpc-bench-generate: decode throughput of the generation engine (new tokens/s) at batch 1, 64 and 256,
// 512 new tokens each, random weights: inputs/models/bench.deck in bf16 on cuda:0 when a GPU is visible
// (anchors, H100, transformers generate(): 17 / 842 / 2.0k tokens/s; HBM limit at batch 1 ~2.8k), else
// inputs/models/tiny.deck in f32 on the CPU. Prints numbers; never passes or fails on time.
// Usage: r1hpc-bench-generate [--cpu] [--new-tokens N] [--batches 1,64,256] [--deck FILE]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <string>

#include "core/timer.hpp"
#include "deck/deck.hpp"
#include "generate/engine.hpp"
#include "kernels/profile.hpp"

using namespace r1;

int main(int argc, char** argv) {
  bool force_cpu = false;
  std::int64_t new_tokens = 512;
  std::vector<std::int64_t> batches{1, 64, 256};
  std::string deck;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--cpu") {
      force_cpu = true;
    } else if (a == "--new-tokens" && has_value) {
      new_tokens = std::atoll(argv[++i]);
    } else if (a == "--batches" && has_value) {
      batches.clear();
      std::stringstream ss(argv[++i]);
      for (std::string item; std::getline(ss, item, ',');) batches.push_back(std::atoll(item.c_str()));
    } else if (a == "--deck" && has_value) {
      deck = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s [--cpu] [--new-tokens N] [--batches 1,64,256] [--deck FILE]\n", argv[0]);
      return 2;
    }
  }
  const bool on_gpu = !force_cpu && kernels::Context::cuda_device_count() > 0;
  kernels::Context ctx = kernels::Context::cpu();
#if defined(R1HPC_HAVE_CUDA)
  if (on_gpu) ctx = kernels::Context::cuda(0);
#endif
  if (deck.empty()) deck = std::string(R1HPC_SOURCE_DIR) + (on_gpu ? "/inputs/models/bench.deck" : "/inputs/models/tiny.deck");
  const std::int64_t prompt_len = 16;
  ModelConfig c = Deck::load(deck).config().model;
  c.max_seq_len = std::max(c.max_seq_len, prompt_len + new_tokens);
  ParamStore params(ctx, on_gpu ? DType::bf16 : DType::f32);
  Model model(c, params);
  params.initialize(1, c.init_std);
  std::printf("generate: %s on %s (%s), prompts of %lld tokens, %lld new tokens, temperature 1\n",
              describe_model(c).c_str(), on_gpu ? "cuda:0" : "cpu", on_gpu ? "bf16" : "f32",
              static_cast<long long>(prompt_len), static_cast<long long>(new_tokens));

  const double weight_bytes = count_params(c).activated * static_cast<double>(dtype_size(params.compute_dtype()));
  SamplingParams sp;
  sp.max_new_tokens = new_tokens;  // no stop ids: every sequence runs to the full length
  for (std::int64_t b : batches) {
    std::vector<std::vector<std::int32_t>> prompts(static_cast<std::size_t>(b));
    for (std::int64_t i = 0; i < b; ++i)
      for (std::int64_t t = 0; t < prompt_len; ++t)
        prompts[static_cast<std::size_t>(i)].push_back(static_cast<std::int32_t>((i * 131 + t * 17 + 1) % c.vocab_size));
    // Small batches decode on the device as CUDA graphs (Model::decodes_on_device); timed with them off as well.
    const bool graphs = model.decodes_on_device(b);
    for (const bool use_graphs : graphs ? std::vector<bool>{true, false} : std::vector<bool>{true}) {
      SamplingParams run = sp;
      run.cuda_graphs = use_graphs;
      SamplingParams warm = run;
      warm.max_new_tokens = 2;
      generate(model, prompts, 1, warm, b);  // allocator warm-up
      ctx.synchronize();
      Stopwatch sw;
      const auto out = generate(model, prompts, 1, run, b);
      ctx.synchronize();
      const double s = sw.seconds();
      std::int64_t tokens = 0;
      for (const auto& comp : out) tokens += static_cast<std::int64_t>(comp.tokens.size());
      std::printf("batch %4lld: %8lld new tokens in %8.3f s = %10.1f tokens/s (%.3f ms per decode step)%s\n",
                  static_cast<long long>(b), static_cast<long long>(tokens), s, tokens / s, 1e3 * s / new_tokens,
                  !graphs ? "" : use_graphs ? ", CUDA graphs" : ", kernels launched one by one");
      // At batch 1 a step reads each activated weight once (top-k and shared experts, attention, head; the
      // KV cache is small beside them): the weight bytes per second against the GPU's HBM bandwidth.
      if (b == 1)
        std::printf("  batch 1 reads %.3f GB of weights per token: %.0f GB/s\n", weight_bytes / 1e9,
                    weight_bytes * static_cast<double>(tokens) / s / 1e9);
    }
    // Where a decode step goes: a shorter run with the region profiler on (it synchronises per region, so
    // it runs without graphs).
    SamplingParams prof = sp;
    prof.max_new_tokens = std::min<std::int64_t>(new_tokens, 64);
    kernels::profile::set_enabled(true);
    Stopwatch psw;
    generate(model, prompts, 1, prof, b);
    const double ps = psw.seconds();
    kernels::profile::set_enabled(false);
    std::printf("  breakdown per new token (profiled run of %lld tokens, %.2f ms per step with region syncs):\n%s",
                static_cast<long long>(prof.max_new_tokens), 1e3 * ps / static_cast<double>(prof.max_new_tokens),
                kernels::profile::table(kernels::profile::take(), ps / static_cast<double>(prof.max_new_tokens),
                                        prof.max_new_tokens).c_str());
  }
  return 0;
}
