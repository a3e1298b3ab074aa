// r1hpc-bench-generate: the generation engine's throughput, random weights: inputs/models/bench.deck in bf16
// on cuda:0 when a GPU is visible, else inputs/models/tiny.deck in f32 on the CPU. Prints numbers; never
// passes or fails on time. Two modes:
// - decode (default): new tokens/s at batch 1, 64 and 256, 512 new tokens each (anchors, H100, transformers
//   generate(): 17 / 842 / 2.0k tokens/s; HBM limit at batch 1 ~2.8k), with a profiled breakdown;
// - --rollout: an RL rollout, 512 sequences (64 prompts x 8 samples) with long-tailed limits (lognormal,
//   mean 1k, at most 8k new tokens, max_batch 64; on the CPU mean 16, at most 128, max_batch 32, seconds) and
//   with uniform ones, no stop ids so lengths follow the limits, static against continuous batching: new
//   tokens/s, decode steps, mean live slots per decode step (the GPU-busy proxy) and prefill passes; then
//   continuous batching over the paged cache (blocks of --block-size tokens) at --paged-batch slots (default
//   4 max_batch) within --kv-tokens (default: what the contiguous cache takes at max_batch, max_batch
//   (prompt + max_new) tokens; prefills in chunks of --prefill-chunk tokens, 0: whole), with its preemptions
//   and peak blocks.
// Usage: r1hpc-bench-generate [--cpu] [--deck FILE] [--new-tokens N] [--batches 1,64,256]
//        r1hpc-bench-generate --rollout [--cpu] [--deck FILE] [--sequences 512] [--samples 8] [--mean-new N]
//                             [--max-new N] [--max-batch B] [--prompt-len P] [--seed S] [--paged-batch B]
//                             [--block-size 16] [--kv-tokens T] [--prefill-chunk N]
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <utility>

#include "core/timer.hpp"
#include "deck/deck.hpp"
#include "generate/engine.hpp"
#include "kernels/profile.hpp"

using namespace r1;

namespace {
struct Options {
  bool force_cpu = false, rollout = false;
  std::string deck;
  std::int64_t new_tokens = 512;
  std::vector<std::int64_t> batches{1, 64, 256};
  std::int64_t sequences = 512, samples = 8, mean_new = 0, max_new = 0, max_batch = 0, prompt_len = 0, seed = 1;  // 0: by device
  std::int64_t paged_batch = 0, block_size = 16, kv_tokens = 0;  // 0: from max_batch (rollout_bench)
  std::int64_t prefill_chunk = 0;                                 // the paged engine's; 0: whole prefills
};

// Parses argv; false on anything it does not know.
bool parse(int argc, char** argv, Options& o) {
  const std::pair<const char*, std::int64_t*> numbers[] = {
      {"--new-tokens", &o.new_tokens}, {"--sequences", &o.sequences}, {"--samples", &o.samples},
      {"--mean-new", &o.mean_new},     {"--max-new", &o.max_new},     {"--max-batch", &o.max_batch},
      {"--prompt-len", &o.prompt_len}, {"--seed", &o.seed},         {"--paged-batch", &o.paged_batch},
      {"--block-size", &o.block_size}, {"--kv-tokens", &o.kv_tokens},   {"--prefill-chunk", &o.prefill_chunk}};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    const auto number = std::find_if(std::begin(numbers), std::end(numbers), [&](const auto& n) { return a == n.first; });
    if (a == "--cpu") {
      o.force_cpu = true;
    } else if (a == "--rollout") {
      o.rollout = true;
    } else if (a == "--deck" && has_value) {
      o.deck = argv[++i];
    } else if (a == "--batches" && has_value) {
      o.batches.clear();
      std::stringstream ss(argv[++i]);
      for (std::string item; std::getline(ss, item, ',');) o.batches.push_back(std::atoll(item.c_str()));
    } else if (number != std::end(numbers) && has_value) {
      *number->second = std::atoll(argv[++i]);
    } else {
      return false;
    }
  }
  return true;
}

// n prompts of `len` token ids spread over the vocabulary.
std::vector<std::vector<std::int32_t>> make_prompts(std::int64_t n, std::int64_t len, std::int64_t vocab) {
  std::vector<std::vector<std::int32_t>> prompts(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t t = 0; t < len; ++t)
      prompts[static_cast<std::size_t>(i)].push_back(static_cast<std::int32_t>((i * 131 + t * 17 + 1) % vocab));
  return prompts;
}

// Decode throughput at each batch size: CUDA graphs on and off where they apply, then a profiled breakdown.
void decode_bench(const Model& model, const kernels::Context& ctx, const Options& o) {
  const ModelConfig& c = model.config();
  const double weight_bytes = count_params(c).activated * static_cast<double>(dtype_size(model.params().compute_dtype()));
  std::printf("decode: prompts of %lld tokens, %lld new tokens\n", static_cast<long long>(o.prompt_len),
              static_cast<long long>(o.new_tokens));
  SamplingParams sp;
  sp.max_new_tokens = o.new_tokens;  // no stop ids: every sequence runs to the full length
  sp.batching = Batching::static_batch;  // every sequence the same length: one batch at a time
  for (std::int64_t b : o.batches) {
    const auto prompts = make_prompts(b, o.prompt_len, c.vocab_size);
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
                  static_cast<long long>(b), static_cast<long long>(tokens), s, tokens / s, 1e3 * s / o.new_tokens,
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
    prof.max_new_tokens = std::min<std::int64_t>(o.new_tokens, 64);
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
}

// Long-tailed limits: lognormal with sigma 1 and the given mean (Box-Muller over a seeded 64-bit Mersenne
// twister, so every platform draws the same), rounded and clipped to [1, max_new].
std::vector<std::int64_t> lognormal_limits(std::int64_t n, double mean, std::int64_t max_new, std::uint64_t seed) {
  constexpr double kSigma = 1.0, kPi = 3.14159265358979323846;
  const double mu = std::log(mean) - kSigma * kSigma / 2;
  std::mt19937_64 gen(seed);
  const auto uniform = [&] { return (static_cast<double>(gen() >> 11) + 0.5) / 9007199254740992.0; };  // (0, 1)
  std::vector<std::int64_t> limits;
  for (std::int64_t i = 0; i < n; ++i) {
    const double z = std::sqrt(-2 * std::log(uniform())) * std::cos(2 * kPi * uniform());
    limits.push_back(std::clamp<std::int64_t>(std::llround(std::exp(mu + kSigma * z)), 1, max_new));
  }
  return limits;
}

// The engines the rollout compares: static batching, continuous batching over the contiguous cache, and over
// the paged one.
enum class Engine { static_batch, continuous, paged };
const char* engine_name(Engine e) {
  return e == Engine::static_batch ? "static" : e == Engine::continuous ? "continuous" : "paged";
}

// One rollout per length distribution and batching mode, timed after a warm-up.
void rollout_bench(const Model& model, const kernels::Context& ctx, const Options& o) {
  const std::int64_t n_prompts = o.sequences / o.samples;
  const auto prompts = make_prompts(n_prompts, o.prompt_len, model.config().vocab_size);
  const std::int64_t n = n_prompts * o.samples;
  const std::vector<std::int64_t> tail = lognormal_limits(n, static_cast<double>(o.mean_new), o.max_new, static_cast<std::uint64_t>(o.seed));
  std::printf("rollout: %lld prompts x %lld samples, prompts of %lld tokens, max_batch %lld (paged: %lld slots, blocks of "
              "%lld tokens, %lld tokens a layer), no stop ids\n",
              static_cast<long long>(n_prompts), static_cast<long long>(o.samples), static_cast<long long>(o.prompt_len),
              static_cast<long long>(o.max_batch), static_cast<long long>(o.paged_batch),
              static_cast<long long>(o.block_size), static_cast<long long>(o.kv_tokens));
  for (const bool long_tail : {true, false}) {
    SamplingParams sp;
    sp.max_new_tokens = o.max_new;
    sp.seed = static_cast<std::uint64_t>(o.seed);
    sp.sequence_limits = long_tail ? tail : std::vector<std::int64_t>(static_cast<std::size_t>(n), o.mean_new);
    std::int64_t longest = 0, total = 0;
    for (std::int64_t l : sp.sequence_limits) {
      longest = std::max(longest, l);
      total += l;
    }
    std::printf("%s limits: mean %.0f, longest %lld new tokens\n", long_tail ? "long-tailed (lognormal, sigma 1)" : "uniform",
                static_cast<double>(total) / static_cast<double>(n), static_cast<long long>(longest));
    double static_rate = 0;
    for (const Engine engine : {Engine::static_batch, Engine::continuous, Engine::paged}) {
      const bool paged = engine == Engine::paged;
      sp.batching = engine == Engine::static_batch ? Batching::static_batch : Batching::continuous;
      sp.kv_block_size = paged ? o.block_size : 0;
      sp.kv_cache_tokens = paged ? o.kv_tokens : 0;
      sp.prefill_chunk = paged ? o.prefill_chunk : 0;
      const std::int64_t max_batch = paged ? o.paged_batch : o.max_batch;
      SamplingParams warm = sp;
      warm.sequence_limits.assign(static_cast<std::size_t>(n), 2);
      generate(model, prompts, o.samples, warm, max_batch);  // allocator warm-up
      ctx.synchronize();
      GenerateStats st;
      Stopwatch sw;
      const auto out = generate(model, prompts, o.samples, sp, max_batch, 0, &st);
      ctx.synchronize();
      const double s = sw.seconds();
      std::int64_t tokens = 0;
      for (const auto& comp : out) tokens += static_cast<std::int64_t>(comp.tokens.size());
      const double rate = static_cast<double>(tokens) / s;
      if (engine == Engine::static_batch) static_rate = rate;
      char speedup[32] = "";
      if (engine != Engine::static_batch) std::snprintf(speedup, sizeof speedup, " (%.2fx)", rate / static_rate);
      const double steps = static_cast<double>(std::max<std::int64_t>(st.decode_steps, 1));
      const double live = static_cast<double>(st.slot_steps) / steps;
      std::printf("  %-10s %9lld new tokens in %8.2f s = %9.1f tokens/s%-8s, %7lld decode steps, %6.1f mean live slots "
                  "(%5.1f%% of %lld), %5lld prefill passes, %lld graph captures\n",
                  engine_name(engine), static_cast<long long>(tokens), s, rate, speedup,
                  static_cast<long long>(st.decode_steps), live, 100.0 * live / static_cast<double>(max_batch),
                  static_cast<long long>(max_batch), static_cast<long long>(st.prefills),
                  static_cast<long long>(st.graph_captures));
      if (paged)
        std::printf("  %-10s pool of %lld blocks of %lld tokens, peak %lld blocks (%.1f%%), %lld preemptions, %lld decode "
                    "steps with prefill chunks\n", "",
                    static_cast<long long>(st.pool_blocks), static_cast<long long>(st.block_size),
                    static_cast<long long>(st.peak_blocks),
                    100.0 * static_cast<double>(st.peak_blocks) / static_cast<double>(std::max<std::int64_t>(st.pool_blocks, 1)),
                    static_cast<long long>(st.preemptions), static_cast<long long>(st.mixed_steps));
    }
  }
}
}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!parse(argc, argv, o) || o.samples < 1 || o.sequences < o.samples || o.max_batch < 0 || o.mean_new < 0 ||
      o.max_new < 0 || o.prompt_len < 0 || o.paged_batch < 0 || o.block_size < 1 || o.kv_tokens < 0 ||
      o.prefill_chunk < 0) {
    std::fprintf(stderr,
                 "usage: %s [--cpu] [--deck FILE] [--new-tokens N] [--batches 1,64,256]\n"
                 "       %s --rollout [--cpu] [--deck FILE] [--sequences 512] [--samples 8] [--mean-new N] [--max-new N]\n"
                 "          [--max-batch 64] [--prompt-len P] [--seed S] [--paged-batch B] [--block-size 16]\n"
                 "          [--kv-tokens T] [--prefill-chunk N]\n",
                 argv[0], argv[0]);
    return 2;
  }
  const bool on_gpu = !o.force_cpu && kernels::Context::cuda_device_count() > 0;
  kernels::Context ctx = kernels::Context::cpu();
#if defined(R1HPC_HAVE_CUDA)
  if (on_gpu) ctx = kernels::Context::cuda(0);
#endif
  if (o.deck.empty()) o.deck = std::string(R1HPC_SOURCE_DIR) + (on_gpu ? "/inputs/models/bench.deck" : "/inputs/models/tiny.deck");
  if (o.prompt_len == 0) o.prompt_len = o.rollout && on_gpu ? 128 : 16;
  if (o.mean_new == 0) o.mean_new = on_gpu ? 1024 : 16;
  if (o.max_new == 0) o.max_new = on_gpu ? 8192 : 128;
  if (o.max_batch == 0) o.max_batch = on_gpu ? 64 : 32;
  if (o.paged_batch == 0) o.paged_batch = 4 * o.max_batch;
  if (o.kv_tokens == 0) o.kv_tokens = o.max_batch * (o.prompt_len + o.max_new);  // the contiguous cache's
  const std::int64_t longest = o.prompt_len + (o.rollout ? o.max_new : o.new_tokens);
  ModelConfig c = Deck::load(o.deck).config().model;
  c.max_seq_len = std::max(c.max_seq_len, longest);
  ParamStore params(ctx, on_gpu ? DType::bf16 : DType::f32);
  Model model(c, params);
  params.initialize(1, c.init_std);
  std::printf("generate: %s on %s (%s), temperature 1\n", describe_model(c).c_str(), on_gpu ? "cuda:0" : "cpu",
              on_gpu ? "bf16" : "f32");
  if (o.rollout)
    rollout_bench(model, ctx, o);
  else
    decode_bench(model, ctx, o);
  return 0;
}
