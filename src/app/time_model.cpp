#include "app/time_model.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/error.hpp"

namespace r1 {

namespace {

Machine preset(const std::string& name) {
  // Published dense peaks (H100/H800/H200 SXM: BF16 989.4, FP8 1978.9 TFLOP/s), HBM bandwidth, NVLink per
  // direction (H800: 400 GB/s both ways) and one 400 Gb/s NIC per GPU.
  Machine m;
  m.name = name;
  m.peak_bf16 = 989.4e12;
  m.peak_fp8 = 1978.9e12;
  m.hbm = 3.35e12;
  m.nvlink = 450e9;
  m.network = 50e9;
  if (name == "h100") return m;
  if (name == "h800") {
    m.nvlink = 200e9;
    return m;
  }
  if (name == "h200") {
    m.hbm = 4.8e12;
    return m;
  }
  R1_FAIL(user, "--machine ", name, ": not h100, h800, h200 or a site file (jobscripts/sites/*.env)");
}

// KEY=VALUE lines of a shell site file, quotes and trailing comments dropped.
std::map<std::string, std::string> site_values(const std::filesystem::path& path) {
  std::ifstream in(path);
  R1_REQUIRE(in.good(), "--machine ", path.string(), ": cannot read the site file");
  std::map<std::string, std::string> out;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("R1HPC_GPU", 0) != 0) continue;
    const auto eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string v = line.substr(eq + 1);
    v = v.substr(0, v.find('#'));
    std::erase_if(v, [](char ch) { return ch == '"' || ch == '\'' || ch == ' ' || ch == '\t'; });
    out[line.substr(0, eq)] = v;
  }
  return out;
}

double positive(const std::map<std::string, std::string>& site, const std::string& key, const std::string& file, double unit,
                double fallback) {
  const auto it = site.find(key);
  if (it == site.end()) return fallback;
  double v = 0;
  try {
    std::size_t used = 0;
    v = std::stod(it->second, &used);
    if (used != it->second.size()) v = -1;
  } catch (const std::exception&) {
    v = -1;
  }
  R1_REQUIRE(v > 0, file, ": ", key, "=", it->second, " is not a positive number");
  return v * unit;
}

// Ring collectives move 2 (n-1)/n of the buffer per GPU (all-reduce, or reduce-scatter + all-gather).
double ring(double bytes, int n, double bw) { return n <= 1 ? 0 : 2.0 * (n - 1) / n * bytes / bw; }

const char* schedule_word(Schedule s) {
  switch (s) {
    case Schedule::one_f_one_b: return "1f1b";
    case Schedule::interleaved: return "interleaved";
    case Schedule::dualpipev: return "dualpipev";
    case Schedule::dualpipev_w: return "dualpipev+W";
    case Schedule::dualpipe: return "dualpipe";
    case Schedule::dualpipe_w: return "dualpipe+W";
    case Schedule::dualpipe_overlap: return "dualpipe+overlap";
  }
  return "?";
}

std::string ms(double s) { return s >= 10 ? numbers_text("%.1f s", s) : numbers_text("%.1f ms", s * 1e3); }

}  // namespace

Machine machine_named(const std::string& name) {
  if (!std::filesystem::exists(name)) return preset(name);
  const auto site = site_values(name);
  const auto gpu = site.find("R1HPC_GPU");
  Machine m = preset(gpu == site.end() ? "h100" : gpu->second);
  m.name = name;
  m.peak_bf16 = positive(site, "R1HPC_GPU_PEAK_BF16_TFLOPS", name, 1e12, m.peak_bf16);
  m.peak_fp8 = positive(site, "R1HPC_GPU_PEAK_FP8_TFLOPS", name, 1e12, m.peak_fp8);
  m.hbm = positive(site, "R1HPC_GPU_HBM_GBPS", name, 1e9, m.hbm);
  m.nvlink = positive(site, "R1HPC_GPU_NVLINK_GBPS", name, 1e9, m.nvlink);
  m.network = positive(site, "R1HPC_GPU_NETWORK_GBPS", name, 1e9, m.network);
  m.gpus_per_node = static_cast<int>(positive(site, "R1HPC_GPUS_PER_NODE", name, 1, m.gpus_per_node));
  m.compute_eff = positive(site, "R1HPC_GPU_COMPUTE_EFF", name, 1, m.compute_eff);
  m.memory_eff = positive(site, "R1HPC_GPU_MEMORY_EFF", name, 1, m.memory_eff);
  m.comm_eff = positive(site, "R1HPC_GPU_COMM_EFF", name, 1, m.comm_eff);
  return m;
}

double paired_share(Schedule schedule, int stages, std::int64_t micro_batches) {
  const bool dualpipe = schedule == Schedule::dualpipe || schedule == Schedule::dualpipe_w ||
                        schedule == Schedule::dualpipe_overlap;
  const bool dualpipev = schedule == Schedule::dualpipev || schedule == Schedule::dualpipev_w;
  if ((!dualpipe && !dualpipev) || stages < 2) return 0;
  // Per DualPipeV rank r of q stages with n micro-batches a phase (DualPipe: rank min(r, p - 1 - r) of p/2
  // with m/2): 2 (n - 2q + r + 1) steady-state pairs, one fewer on the last rank, and q - r - 1 in the
  // cool-down (train/pipeline_schedule.hpp), of 4n passes.
  const std::int64_t q = dualpipe ? stages / 2 : stages, n = dualpipe ? micro_batches / 2 : micro_batches;
  if (q < 1 || n < 1) return 0;
  double worst = 1;
  for (std::int64_t r = 0; r < q; ++r) {
    const std::int64_t steady = std::max<std::int64_t>(0, n - 2 * q + r + 1);
    const std::int64_t pairs = 2 * steady - (r == q - 1 && steady > 0 ? 1 : 0) + (q - r - 1);
    worst = std::min(worst, std::clamp(2.0 * static_cast<double>(pairs) / (4.0 * static_cast<double>(n)), 0.0, 1.0));
  }
  return worst;
}

StepTime predict_step(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s, const MemoryPlan& worst,
                      const Machine& m, Schedule schedule, bool fp8) {
  StepTime t;
  t.schedule = schedule;
  t.fp8 = fp8;
  const double g = m.gpus_per_node, cb = s.compute_bytes;
  const double tokens = static_cast<double>(s.micro_batch * s.seq_len);  // one micro-batch of one replica
  const double M = static_cast<double>(s.micro_batches), pp = l.pipeline, tp = l.tensor, ep = l.expert;
  const double edp = static_cast<double>(l.tensor) * l.data / l.expert;
  const double link_tp = tp <= g ? m.nvlink : m.network;
  const double link_pp = tp * l.data >= g ? m.network : m.nvlink;
  const double link_dp = tp * l.data > g ? m.network : m.nvlink;

  // Compute of one micro-batch on one GPU: the GEMMs (6 x activated) at FP8 or BF16 rate, attention at
  // BF16 (FP32 decks at the FP32 rate of one sixteenth of BF16's, as measured for exact FP32 GEMMs).
  const double flops = train_flops_per_token(c, s.seq_len), gemm = 6.0 * count_params(c).activated;
  const double rate = m.peak_bf16 * m.compute_eff * (cb == 4 ? 1.0 / 16 : 1.0);
  const double per_gpu = tokens / (tp * pp);
  const double compute = per_gpu * ((flops - gemm) / rate + gemm / (fp8 ? rate * m.peak_fp8 / m.peak_bf16 : rate));
  const double fwd = compute / 3, bwd = 2 * compute / 3 + (s.recompute == Recompute::full ? compute / 3 : 0);

  // TP: four all-reduces (or reduce-scatter + all-gather pairs) of [tokens, dim] per layer and micro-batch.
  const double layers = c.n_layers / pp, moe_layers = c.dense ? 0 : (c.n_layers - c.n_dense_layers) / pp;
  const double tp_mb = layers * 4 * ring(tokens * c.dim * cb, l.tensor, link_tp * m.comm_eff);
  // EP: dispatch and combine forward, their gradients backward, per MoE layer. Each of a rank's
  // tokens / TP tokens goes to top-k experts spread evenly over the EP group; copies to other nodes are
  // capped, with group-limited routing, at one per kept group (V3 sends one copy per node over the
  // network and fans it out over NVLink).
  double ep_mb = 0;
  if (moe_layers > 0 && ep > 1) {
    const double copies = tokens / tp * c.n_activated_experts, local = std::min(ep, g);
    const double off_node = ep > local ? copies * (ep - local) / ep : 0;
    const double capped = c.n_expert_groups > 1 ? std::min(off_node, tokens / tp * c.n_limited_groups * (ep - local) / ep)
                                                : off_node;
    const double intra = copies * (local - 1) / ep;
    // The forward's dispatch in FP8 (an E4M3 byte and an f32 scale per 128-element tile), the backward's too
    // with power-of-two scales (MoeFfn::backward), both combines in BF16.
    const double fp8_copy = 1.0 + 4.0 / 128;
    const double bytes_per_copy = c.dim * (fp8 ? fp8_copy + (s.fp8_pow2 ? fp8_copy : cb) + 2 * cb : 4 * cb);
    ep_mb = moe_layers * std::max(capped * bytes_per_copy / m.network, intra * bytes_per_copy / m.nvlink) / m.comm_eff;
  }
  // PP: one micro-batch's activations forward and their gradient backward across a stage boundary.
  const double pp_mb = pp > 1 ? 2 * tokens * c.dim * cb / (link_pp * m.comm_eff) : 0;

  // DualPipe's overlapped pairs run one micro-batch's all-to-alls beside another's compute: in the share of the
  // worst rank's passes that run paired, the exchanges are hidden up to the compute beside them.
  const bool pairs = schedule == Schedule::dualpipe_overlap ||
                     (s.overlap_pairs && (schedule == Schedule::dualpipev || schedule == Schedule::dualpipev_w ||
                                          schedule == Schedule::dualpipe || schedule == Schedule::dualpipe_w));
  const double share = pairs ? paired_share(schedule, l.pipeline, s.micro_batches) : 0;
  const double ep_exposed = (1 - share) * ep_mb + share * std::max(0.0, ep_mb - (fwd + bwd));
  const double unit = fwd + bwd + tp_mb + ep_exposed + pp_mb;
  t.forward = M * fwd;
  t.backward = M * bwd;
  t.tp = M * tp_mb;
  t.ep = M * ep_exposed;
  t.ep_total = M * ep_mb;
  t.pp = M * pp_mb;
  if (pp > 1) {
    if (schedule == Schedule::one_f_one_b) t.bubble = (pp - 1) * unit;
    if (schedule == Schedule::interleaved) t.bubble = (pp - 1) / std::max(1, s.virtual_stages) * unit;
    // DualPipe as train/pipeline_schedule orders it (W split off, every chunk a whole stage of one direction):
    // (PP/2 - 1) F idle with B = W = half the backward (pipeline_dualpipe_test's simulation); the DualPipe
    // README's (PP/2 - 1)(F&B + B - 3W) counts an overlapped pair F&B as one unit, a time the pair reaches only
    // when one pass's compute hides all of the other's communication.
    if (schedule == Schedule::dualpipe_w || schedule == Schedule::dualpipe_overlap) t.bubble = std::max(0.0, pp / 2 - 1) * fwd;
    // With W inside B the same simulation (ideal_bubble) leaves (2 PP - 5) F at B = 2F, scaled here with F + B.
    if (schedule == Schedule::dualpipe) t.bubble = std::max(0.0, 2 * pp - 5) * (fwd + bwd) / 3;
    // DualPipeV as r1hpc orders it, W inside B (docs/parallel.md, an event simulation of its order at B = 2F):
    // (2 PP - 3) F + (PP - 1) B idle with F, B one of the rank's two chunks, i.e. half of fwd, bwd here.
    if (schedule == Schedule::dualpipev) t.bubble = 0.5 * ((2 * pp - 3) * fwd + (pp - 1) * bwd);
    // With W split off, as pipeline_weight_split_test simulates its order: (PP - 1) F idle on every rank
    // whenever a chunk's B takes at most its W (here B = W = half the backward).
    if (schedule == Schedule::dualpipev_w) t.bubble = 0.5 * (pp - 1) * fwd;
  }
  // DP: gradients reduced (fp32) and updated weights gathered, dense over DP and experts over EDP,
  // overlapped with the last micro-batch's backward.
  // DualPipe's ranks hold two stages (the worst plan has both when the deck runs it, else one) and first
  // exchange every gradient with their mirror rank (one way each, over the pipeline link, not overlapped).
  const bool two_copies = schedule == Schedule::dualpipe || schedule == Schedule::dualpipe_w ||
                          schedule == Schedule::dualpipe_overlap;
  const bool planned_two = s.schedule == PipelineSchedule::dualpipe;
  const double held = pp == 1 || two_copies == planned_two ? 1 : two_copies ? 2 : 0.5;
  const double dense = held * worst.dense_params, expert = held * worst.expert_params;
  const double dp_time = ring(dense * 4, l.data, link_dp * m.comm_eff) +
                         ring(expert * 4, static_cast<int>(edp), link_dp * m.comm_eff);
  const double mirror = two_copies && pp > 1 ? (dense + expert) * 4 / (link_pp * m.comm_eff) : 0;
  t.dp = std::max(0.0, dp_time - bwd) + mirror;
  // AdamW streams each parameter it updates (gradient 4 B, master 4+4, moments read and written, the
  // compute copy written) and reads every held gradient once more for the global norm.
  const double updated = s.zero1 ? dense / l.data + expert / edp : dense + expert;
  const double bytes = (dense + expert) * 4 + updated * (12 + 4.0 * s.moment_bytes + (s.compute_copy ? cb : 0));
  t.optimizer = bytes / (m.hbm * m.memory_eff);

  t.step = t.forward + t.backward + t.tp + t.ep + t.pp + t.bubble + t.dp + t.optimizer;
  const double step_tokens = M * tokens * l.data;
  t.tokens_per_s_per_gpu = step_tokens / t.step / l.world;
  t.mfu = flops * step_tokens / t.step / l.world / m.peak_bf16;
  return t;
}

std::vector<std::string> time_report(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s,
                                     const MemoryPlan& worst, const Machine& m, std::int64_t steps) {
  const Schedule deck_schedule = s.schedule == PipelineSchedule::interleaved ? Schedule::interleaved
                                 : s.schedule == PipelineSchedule::dualpipev
                                     ? (s.split_weight ? Schedule::dualpipev_w : Schedule::dualpipev)
                                 : s.schedule == PipelineSchedule::dualpipe
                                     ? (s.split_weight ? (s.overlap_pairs ? Schedule::dualpipe_overlap : Schedule::dualpipe_w)
                                                       : Schedule::dualpipe)
                                     : Schedule::one_f_one_b;
  const StepTime t = predict_step(c, l, s, worst, m, deck_schedule, s.fp8);  // [train] precision fp8: the primary line
  std::vector<std::string> out;
  out.push_back("machine " + m.name +
                numbers_text(": BF16 %.0f / FP8 %.0f TFLOP/s, HBM %.2f TB/s", m.peak_bf16 / 1e12, m.peak_fp8 / 1e12,
                             m.hbm / 1e12) +
                numbers_text(", NVLink %.0f GB/s and network %.0f GB/s per GPU per direction, ", m.nvlink / 1e9,
                             m.network / 1e9) +
                numbers_text("%.0f GPUs per node; calibrated: compute %.1f%%, memory %.0f%%, collectives %.0f%% of peak",
                             m.gpus_per_node, m.compute_eff * 100, m.memory_eff * 100, m.comm_eff * 100));
  out.push_back("step (worst stage, " + std::string(schedule_word(t.schedule)) + (t.fp8 ? "+fp8" : "") + "): " + ms(t.step) + " = forward " +
                ms(t.forward) + " + backward " + ms(t.backward) + " + exposed TP " + ms(t.tp) + ", EP " + ms(t.ep) +
                ", PP " + ms(t.pp) + " + bubble " + ms(t.bubble) + " + DP " + ms(t.dp) + " + optimizer " + ms(t.optimizer));
  const double hours = t.step * static_cast<double>(steps) * l.world / 3600;
  out.push_back(numbers_text("%.0f tokens/s per GPU, MFU %.1f%%; ", t.tokens_per_s_per_gpu, t.mfu * 100) +
                (steps > 0 ? numbers_text("%.4g GPU-hours (%.3g hours wall) for [run] max_steps = %.0f; ", hours, hours / l.world,
                                 static_cast<double>(steps))
                           : std::string()) +
                numbers_text("%.4g GPU-hours per trillion tokens", 1e12 / t.tokens_per_s_per_gpu / 3600));
  std::string alt = "alternatives (step, tokens/s per GPU):";
  for (const Schedule sch :
       {Schedule::one_f_one_b, Schedule::interleaved, Schedule::dualpipev, Schedule::dualpipev_w, Schedule::dualpipe,
        Schedule::dualpipe_w, Schedule::dualpipe_overlap})
    for (const bool fp8 : {false, true}) {
      if (sch == Schedule::interleaved && s.virtual_stages < 2) continue;
      const StepTime a = predict_step(c, l, s, worst, m, sch, fp8);
      alt += std::string(" ") + schedule_word(sch) + (fp8 ? "+fp8 " : " ") + ms(a.step) + numbers_text(" %.0f;", a.tokens_per_s_per_gpu);
    }
  out.push_back(alt + " (+W is the schedule with [parallel] split_weight_grad; dualpipe holds a second copy of a stage on "
                      "every rank; dualpipe+overlap is DeepSeek-V3's: W split off and EP hidden by the overlapped forward/"
                      "backward pairs, which the other dual schedules get too with [parallel] overlap_chunk_pairs (" +
                      std::string(s.overlap_pairs ? "on" : "off") + " here); +fp8 counts V3's FP8 GEMMs and FP8 dispatch (the backward's too with fp8_scale = pow2), both of "
                      "which r1hpc runs: E4M3 tokens with their 1x128 scales, combine and gradients in BF16)");
  out.push_back("model: per micro-batch, GEMM FLOPs (6 x activated) and attention FLOPs at the calibrated share of peak, "
                "backward twice forward (plus a forward with full recompute); TP 4 ring all-reduces of [tokens, dim] per "
                "layer; EP 4 all-to-alls of top-k copies per MoE layer (off-node copies capped by group-limited routing), "
                "hidden behind the other pass's compute by overlapped pairs (dualpipe+overlap, and the dual schedules "
                "with [parallel] overlap_chunk_pairs); PP one activation each way per micro-batch; bubble (PP-1)(F+B) "
                "for 1f1b, divided by virtual stages for interleaved, (2PP-3)F + (PP-1)B for dualpipev, (PP-1)F for dualpipev+W "
                "(F, B of one of a rank's two chunks), (2PP-5)(F+B)/3 for dualpipe and (PP/2-1)F for dualpipe+W and "
                "dualpipe+overlap (F, B of a stage); DP ring "
                "reduce-scatter + all-gather of fp32 gradients and weights overlapped with one backward (dualpipe: two "
                "stages' worth, after an exchange of every gradient with the mirror rank); AdamW streaming "
                "its bytes at the calibrated HBM share. Not modelled: MTP modules, expert imbalance, the head's stage "
                "imbalance, kernel launch gaps (docs/performance.md, \"Predicting time\")");
  return out;
}

}  // namespace r1
