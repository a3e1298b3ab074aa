#include "app/plan.hpp"

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <sstream>

#include "app/time_model.hpp"
#include "core/error.hpp"
#include "kernels/context.hpp"
#include "deck/deck.hpp"
#include "parallel/pipeline_split.hpp"

namespace r1 {

namespace {
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

std::string fmt(const char* format, double a, double b = 0, double c = 0) { return numbers_text(format, a, b, c); }
std::string gib(double bytes) { return fmt("%.2f", bytes / kGiB); }
std::string in_unit(double bytes, double unit) { return fmt(unit == kGiB ? "%.2f" : "%.3g", bytes / unit); }
std::string billions(double n) { return n >= 1e8 ? fmt("%.2fB", n / 1e9) : fmt("%.3gM", n / 1e6); }

bool dual(const TrainSettings& s) {
  return s.schedule == PipelineSchedule::dualpipev || s.schedule == PipelineSchedule::dualpipe;
}

// The model's pipeline chunks (dualpipe: its stages, each held twice).
int chunk_count(const parallel::Layout& l, const TrainSettings& s) {
  if (dual(s) && l.pipeline == 1) return 1;  // no pipeline, no V
  return pipeline_chain_length(s.schedule, l.pipeline, s.virtual_stages);
}

// The chunks pipeline rank `stage` runs (parallel::chunk_rank: c % pp, or the V of dualpipev; dualpipe: stage
// `stage` and a second copy of stage pp - 1 - stage).
std::vector<int> chunks_of(const parallel::Layout& l, const TrainSettings& s, int stage) {
  if (s.schedule == PipelineSchedule::dualpipe && l.pipeline > 1) return {stage, l.pipeline - 1 - stage};
  return parallel::rank_chunks(chunk_placement(s.schedule), stage, l.pipeline, chunk_count(l, s));
}

// Parameters of one transformer block on one rank: TP splits the per-head projections (q/q_b, kv_b,
// o), the dense FFN and the shared experts; the latent down-projections (q_a, kv_a), the norms and the
// router are replicated over TP; EP splits the routed experts.
struct BlockParams {
  double dense = 0, expert = 0;
  double linear = 0;  // of which the linear layers' weights (all but norms and router): FP8 under precision fp8
};
BlockParams block_params(const ModelConfig& c, const parallel::Layout& l, bool moe) {
  const double d = static_cast<double>(c.dim), h = static_cast<double>(c.n_heads), t = l.tensor;
  const double rq = static_cast<double>(c.q_lora_rank), rkv = static_cast<double>(c.kv_lora_rank);
  BlockParams b;
  if (c.gqa()) {  // projections and biases split by heads (k/v whole when TP > K/V heads); norms replicated
    const double hd = static_cast<double>(c.gqa_head_dim()), q = h * hd, kv = static_cast<double>(c.kv_heads()) * hd;
    const double kv_t = t > static_cast<double>(c.kv_heads()) ? 1.0 : t, bias = c.arch == Arch::qwen2 ? 1.0 : 0.0;
    b.dense = 2 * d + (c.arch == Arch::qwen3 ? 2 * hd : 0) + 3 * d * static_cast<double>(c.dense_inter_dim) / t;
    b.dense += (2 * d * q + bias * q) / t + (2 * d * kv + bias * 2 * kv) / kv_t;
    return b;
  }
  const double norms = 2 * d + (rq > 0 ? rq : 0) + rkv, router = moe ? d * static_cast<double>(c.n_routed_experts) : 0;
  b.dense = 2 * d + (rq > 0 ? d * rq + rq : 0) + d * (rkv + static_cast<double>(c.qk_rope_head_dim)) + rkv;
  b.dense += ((rq > 0 ? rq : d) * h * static_cast<double>(c.qk_head_dim()) +
              rkv * h * static_cast<double>(c.qk_nope_head_dim + c.v_head_dim) + h * static_cast<double>(c.v_head_dim) * d) / t;
  if (!moe) {
    b.dense += 3 * d * static_cast<double>(c.dense_inter_dim) / t;
    b.linear = b.dense - norms;
    return b;
  }
  const double expert = 3 * d * static_cast<double>(c.moe_inter_dim);
  b.dense += d * static_cast<double>(c.n_routed_experts) + static_cast<double>(c.n_shared_experts) * expert / t;
  b.expert = static_cast<double>(c.n_routed_experts) / l.expert * expert;
  b.linear = b.dense + b.expert - norms - router;
  return b;
}
}  // namespace

std::string numbers_text(const char* format, double a, double b, double c, double d) {
  char buf[256];
  std::snprintf(buf, sizeof buf, format, a, b, c, d);
  return buf;
}

TrainSettings train_settings(const RunConfig& cfg, std::int64_t data) {
  TrainSettings s;
  s.compute_copy = cfg.train.precision != Precision::fp32;
  s.compute_bytes = s.compute_copy ? 2 : 4;
  s.fp8 = cfg.train.precision == Precision::fp8;
  s.fp8_pow2 = cfg.train.fp8_scale == Fp8Scale::pow2;
  s.fp8_cache_swiglu = cfg.train.fp8_cache_swiglu_input;
  s.zero1 = cfg.parallel.zero1;
  s.moment_bytes = cfg.optim.moment_precision == "bf16" ? 2 : 4;
  s.sequence_parallel = cfg.parallel.sequence_parallel;
  s.micro_batch = cfg.train.micro_batch;
  s.seq_len = cfg.data.seq_len;
  const std::int64_t global = cfg.train.global_batch;
  s.micro_batches = global == 0 ? 1 : global / (s.micro_batch * data);
  s.recompute = cfg.train.recompute;
  s.schedule = cfg.parallel.schedule;
  s.virtual_stages = static_cast<int>(cfg.parallel.virtual_stages);
  s.split_weight = cfg.parallel.split_weight_grad;
  s.overlap_pairs = cfg.parallel.overlap_chunk_pairs && cfg.parallel.overlap_expert_comm;  // pairs hand over at EP exchanges
  s.cudnn_dp_workspace = kernels::cudnn_attention_built() && s.compute_bytes == 2 &&
                         (cfg.train.attention == AttentionImpl::automatic || cfg.train.attention == AttentionImpl::cudnn);
  return s;
}

// Saved per token per block, in elements of the compute dtype unless marked fp32 (D dim, H/t heads of
// this rank, k top-k; D-wide tensors are /t only with sequence parallel):
//   none: attention: block input D, attn_norm out D, [q_a out R_q, q_a_norm out R_q], kv_a out R_kv + d_rope,
//         kv_a_norm out R_kv, q and k (H/t) d_qk each, v and attention out (H/t) d_v each, lse (H/t) fp32;
//         FFN: its input D, ffn_norm out D; dense: gate_up out 2 I/t, SwiGLU out I/t; MoE: router scores
//         E fp32, top-k ids + weights 2k x 4 B, per routed copy (k/t copies per token: tokens split over TP,
//         balanced routing) the dispatched input D, gate_up out 2 I_e, SwiGLU out I_e, expert out D; shared
//         experts gate_up 2 n_s I_e/t, SwiGLU n_s I_e/t.
//   selective (DeepSeek-V3: RMSNorm outputs, MLA up-projections and SwiGLU recomputed): none minus the
//         norm outputs (attn, q_a, kv_a, ffn), q, k, v and every SwiGLU output.
//   full: the block input D only (one block's `none` set is rebuilt at a time: counted as transient).
//   GQA (d = head_dim, K/t K/V heads): attention keeps q (H/t) d, k and v (K/t) d each, its out (H/t) d, lse
//         (H/t) fp32, and for qwen3 the pre-norm q and k with their 1/rms (fp32 per head); selective drops the
//         norm outputs, q, k and v as above.
//   fp8 (MLA): the routed copies' dispatched input is saved in E4M3 with an f32 scale per 1 x 128 tile
//         (fp8_activation_elements) instead of the compute dtype; with fp8_cache_swiglu their gate_up out too,
//         and no SwiGLU out (recomputed in the backward).
double fp8_activation_elements(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s, bool moe,
                               Recompute r) {
  if (!s.fp8 || c.gqa() || !moe || r == Recompute::full) return 0;
  const double per_copy = static_cast<double>(c.dim) + (s.fp8_cache_swiglu ? 2.0 * static_cast<double>(c.moe_inter_dim) : 0);
  return static_cast<double>(c.n_activated_experts) / l.tensor * per_copy;
}

double block_activation_bytes(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s, bool moe,
                              Recompute r) {
  const double a = s.compute_bytes, t = l.tensor, sp = s.sequence_parallel ? t : 1.0;
  const double d = static_cast<double>(c.dim), hl = static_cast<double>(c.n_heads) / t;
  const double rq = static_cast<double>(c.q_lora_rank), rkv = static_cast<double>(c.kv_lora_rank);
  const double dqk = static_cast<double>(c.qk_head_dim()), dv = static_cast<double>(c.v_head_dim);
  const double k = static_cast<double>(c.n_activated_experts), ie = static_cast<double>(c.moe_inter_dim);
  const double ns = static_cast<double>(c.n_shared_experts), id = static_cast<double>(c.dense_inter_dim);
  if (r == Recompute::full) return a * d / sp;
  const bool keep = r == Recompute::none;  // what selective recomputes
  double elems = d / sp + (keep ? d / sp : 0) + (rq > 0 ? rq + (keep ? rq : 0) : 0) + rkv + c.qk_rope_head_dim +
                 (keep ? rkv : 0) + (keep ? hl * (2 * dqk + dv) : 0) + hl * dv;  // attention
  double fp32 = 4 * hl;                                                              // attention lse
  if (c.gqa()) {
    const double hd = static_cast<double>(c.gqa_head_dim()), kl = static_cast<double>(c.kv_heads()) / t;
    const bool qk_norm = c.arch == Arch::qwen3;
    elems = d / sp + (keep ? d / sp : 0) + (keep ? (hl + 2 * kl) * hd : 0) + hl * hd + (qk_norm ? (hl + kl) * hd : 0);
    fp32 += qk_norm ? 4 * (hl + kl) : 0;
  }
  elems += d / sp + (keep ? d / sp : 0);  // FFN input, ffn_norm out
  if (!moe) {
    elems += (2 + (keep ? 1 : 0)) * id / t;
  } else {
    const bool swiglu_out = keep && !(s.fp8 && s.fp8_cache_swiglu);  // else recomputed in the backward
    elems += k / t * (2 * d + (2 + (swiglu_out ? 1 : 0)) * ie) + (2 + (keep ? 1 : 0)) * ns * ie / t;
    fp32 += 4 * static_cast<double>(c.n_routed_experts) + 8 * k;
  }
  const double fp8 = fp8_activation_elements(c, l, s, moe, r);
  return a * (elems - fp8) + kFp8Bytes * fp8 + fp32;
}

MemoryPlan plan_stage_memory(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s, int stage) {
  R1_CHECK(l.data >= 1 && 0 <= stage && stage < l.pipeline, "plan of stage ", stage, " with data ", l.data);
  const int n_chunks = chunk_count(l, s);
  const auto split = parallel::split_layers(c.n_layers, c.mtp_depth, n_chunks);
  R1_CHECK(static_cast<int>(split.size()) == n_chunks, "no pipeline split of ", c.n_layers, " layers over ", n_chunks, " chunks");
  MemoryPlan p;
  p.stage = stage;
  p.chunks = chunks_of(l, s, stage);
  const double d = static_cast<double>(c.dim), v_local = static_cast<double>(c.vocab_size) / l.tensor;
  const double tokens = static_cast<double>(s.micro_batch * s.seq_len);
  const double sp = s.sequence_parallel ? l.tensor : 1.0;
  double act = 0, largest_block = 0;  // per token, over all chunks of this rank
  const auto add_block = [&](bool moe) {
    const BlockParams b = block_params(c, l, moe);
    p.dense_params += b.dense;
    p.expert_params += b.expert;
    p.fp8_params += s.fp8 ? b.linear : 0;
    act += block_activation_bytes(c, l, s, moe, s.recompute);
    largest_block = std::max(largest_block, block_activation_bytes(c, l, s, moe, Recompute::none));
  };
  for (int chunk : p.chunks) {
    const parallel::ChunkLayers& cl = split[static_cast<std::size_t>(chunk)];
    for (std::int64_t layer = cl.first; layer < cl.first + cl.count; ++layer) {
      ++p.layers;
      p.moe_layers += c.is_moe_layer(layer) ? 1 : 0;
      add_block(c.is_moe_layer(layer));
    }
    p.embedding = p.embedding || chunk == 0;
    p.head = p.head || chunk == n_chunks - 1;
  }
  // Vocabulary-parallel embedding and head. The last stage keeps its own copy of the embedding when
  // the head is tied to it or MTP embeds the next tokens, and the first stage is another rank.
  const bool embedding_copy = p.head && !p.embedding && (c.tie_embeddings || c.mtp_depth > 0);
  p.dense_params += (p.embedding || embedding_copy ? v_local * d : 0) + (p.head && !c.tie_embeddings ? v_local * d : 0);
  if (p.head) {
    p.dense_params += d;  // final norm
    act += s.compute_bytes * (s.recompute == Recompute::full ? 1 : 2) * d / sp;  // final norm input (and output)
    p.transient += tokens * (s.compute_bytes * v_local + 8);  // logits of one micro-batch (grad in place), lse, loss
    for (std::int64_t m = 0; m < c.mtp_depth; ++m) {
      p.mtp = true;
      p.dense_params += 3 * d + 2 * d * d;  // enorm, hnorm, the [2d -> d] projection, the output norm
      add_block(!c.dense);
      act += s.compute_bytes * 3 * d / sp;  // the two normed inputs, concatenated, and the projection's output
    }
  }
  if (s.recompute == Recompute::full) p.transient += tokens * largest_block;
  if (s.cudnn_dp_workspace)  // cuDNN's deterministic attention backward: dP of one layer, B H/t S^2 bf16
    p.transient = std::max(p.transient, static_cast<double>(s.micro_batch) * static_cast<double>(c.n_heads) / l.tensor *
                                             static_cast<double>(s.seq_len) * static_cast<double>(s.seq_len) * 2);
  p.activations_per_microbatch = tokens * act / static_cast<double>(p.chunks.size());

  // Chunk micro-batches in flight at the peak: 1F1B stage s holds pp - s; interleaved (Megatron)
  // 2 (pp - s - 1) + (v - 1) pp + 1 chunks; never more than a step has.
  const double pp = l.pipeline, m = static_cast<double>(s.micro_batches);
  if (s.schedule == PipelineSchedule::interleaved)
    p.in_flight = std::min(2 * (pp - stage - 1) + (s.virtual_stages - 1) * pp + 1, m * s.virtual_stages);
  else if (s.schedule == PipelineSchedule::dualpipev && l.pipeline > 1)  // DualPipeV: 2 pp + 1 on every rank
    p.in_flight = std::min(2 * pp + 1, 2 * m);
  else if (s.schedule == PipelineSchedule::dualpipe && l.pipeline > 1)  // DualPipeV's order over pp / 2 stages
    p.in_flight = std::min(pp + 1, m);
  else
    p.in_flight = std::min(pp - stage, m);
  // Deferred Ws (pipeline_weight_split_test): rank r of the V holds r + 1; dualpipe's rank r is rank
  // min(r, pp - 1 - r) of a V over pp / 2 stages.
  const bool two_copies = s.schedule == PipelineSchedule::dualpipe;
  const double v_rank = two_copies ? std::min(stage, l.pipeline - 1 - stage) : stage;
  if (s.split_weight && dual(s) && l.pipeline > 1) p.deferred_w = std::min(v_rank + 1, two_copies ? m : 2 * m);
  p.activations = p.activations_per_microbatch * (p.in_flight + p.deferred_w) + p.transient;

  const double edp = static_cast<double>(l.tensor) * l.data / l.expert;
  // Precision fp8: each linear weight also holds E4M3 copies of W and W^T (1 B each) with one f32 scale per
  // 128 x 128 block of each (model/linear.hpp), made once per optimizer step.
  p.weights = p.params() * (4 + (s.compute_copy ? s.compute_bytes : 0)) + p.fp8_params * (2 + 8.0 / (128 * 128));
  p.grads = p.params() * 4;
  p.optimizer = 2.0 * s.moment_bytes * (p.dense_params / (s.zero1 ? l.data : 1) + p.expert_params / (s.zero1 ? edp : 1));
  return p;
}

RolloutSettings rollout_settings(const RunConfig& cfg) {
  if (cfg.run.stage != Stage::grpo) return {};
  return {.max_batch = cfg.sampling.max_batch, .rows = std::min(cfg.sampling.max_new_tokens, cfg.model.max_seq_len),
          .reference = cfg.grpo.beta_kl > 0, .tensor = cfg.parallel.tensor};
}

void apply_rollout_settings(const RunConfig& cfg, const RolloutSettings& r, std::int64_t data, TrainSettings& s) {
  if (r.max_batch == 0) return;
  s.zero1 = false;
  s.sequence_parallel = false;
  const std::int64_t per_replica = cfg.grpo.prompts_per_step * cfg.grpo.group_size / data;
  std::int64_t tokens = per_replica;  // padded: one sequence per row
  s.seq_len = r.rows;
  if (cfg.grpo.micro_tokens > 0) {  // packed: rows of min(micro_tokens, max_seq_len), micro_tokens per micro-batch
    s.seq_len = std::min(cfg.grpo.micro_tokens, cfg.model.max_seq_len);
    s.micro_batch = std::max<std::int64_t>(1, cfg.grpo.micro_tokens / s.seq_len);
    tokens = (per_replica * r.rows + s.seq_len - 1) / s.seq_len;  // rows the sequences fill
  }
  s.micro_batches = std::max<std::int64_t>(1, (tokens + s.micro_batch - 1) / s.micro_batch);
}

void add_rollout_memory(const ModelConfig& c, const TrainSettings& s, const RolloutSettings& r, MemoryPlan& p) {
  if (r.max_batch == 0) return;
  const std::int64_t width = c.gqa() ? 2 * std::max<std::int64_t>(c.kv_heads() / r.tensor, 1) * c.gqa_head_dim()
                                     : c.kv_lora_rank + c.qk_rope_head_dim;
  const double row = static_cast<double>(width) * s.compute_bytes;
  p.kv_cache = static_cast<double>(p.layers) * static_cast<double>(r.max_batch * r.rows) * row;
  p.reference = r.reference ? p.weights : 0;
}

std::string format_memory_table(const std::vector<MemoryPlan>& plans) {
  std::size_t worst = 0;
  for (std::size_t i = 0; i < plans.size(); ++i)
    if (plans[i].total() > plans[worst].total()) worst = i;
  const double unit = plans[worst].total() < kGiB ? 1024.0 * 1024.0 : kGiB;
  std::ostringstream os;
  os << "memory per rank (" << (unit == kGiB ? "GiB = 2^30" : "MiB = 2^20")
     << " B; every rank of a stage holds the same; params = dense + routed experts):\n";
  char line[256];
  std::snprintf(line, sizeof line, "  %-6s %-22s %-18s %8s %8s %9s %12s %6s %8s\n", "stage", "holds", "params/rank",
                "weights", "grads", "optimizer", "activations", "(mbs)", "total");
  os << line;
  for (std::size_t i = 0; i < plans.size(); ++i) {
    const MemoryPlan& p = plans[i];
    std::string holds = (p.embedding ? "emb+" : "") + std::to_string(p.layers) + " layers" + (p.mtp ? "+mtp" : "") +
                        (p.head ? "+head" : "");
    std::snprintf(line, sizeof line, "  %-6d %-22s %-18s %8s %8s %9s %12s %6.3g %8s%s\n", p.stage, holds.c_str(),
                  (billions(p.dense_params) + "+" + billions(p.expert_params)).c_str(), in_unit(p.weights, unit).c_str(),
                  in_unit(p.grads, unit).c_str(), in_unit(p.optimizer, unit).c_str(), in_unit(p.activations, unit).c_str(),
                  p.in_flight, in_unit(p.total(), unit).c_str(), i == worst ? "  <- worst" : "");
    os << line;
  }
  return os.str();
}

namespace {
// What precision fp8 saves in FP8 instead of BF16 (DeepSeek-V3 section 3.3) and what the EP dispatch sends.
std::string fp8_activation_note(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s) {
  const double tokens = static_cast<double>(s.micro_batch * s.seq_len), cb = s.compute_bytes;
  const double moe = fp8_activation_elements(c, l, s, true, s.recompute);
  std::string n = "precision fp8: no activation saved in FP8 (recompute = full keeps the block input only)";
  if (moe > 0)
    n = std::string("precision fp8: the routed experts' dispatched input") +
        (s.fp8_cache_swiglu ? " and SwiGLU input (its output recomputed in the backward, fp8_cache_swiglu_input)" : "") +
        " is saved in E4M3 with an f32 scale per 1x128 tile (" +
        fmt("%.3f", kFp8Bytes) + " B an element; " + fmt("%.1f KiB", moe * kFp8Bytes / 1024) + " per token of a MoE "
        "block, " + fmt("%.1f KiB", moe * (cb - kFp8Bytes) / 1024) + " less than in " + (cb == 2 ? "BF16" : "FP32") +
        "); the rest in the compute dtype (o_proj's input too: the attention backward reads it, and E4M3 is too "
        "coarse there, V3 uses E5M6; the shared experts' input is the router's, kept anyway)";
  if (l.expert > 1 && !c.dense) {
    const double ep = l.expert;
    const double copies = tokens / l.tensor * static_cast<double>(c.n_activated_experts) * (ep - 1) / ep;
    n += "; the EP dispatch sends E4M3 tokens: " + fmt("%.1f MiB", copies * static_cast<double>(c.dim) * kFp8Bytes / (1 << 20)) +
         " per MoE layer and micro-batch to other ranks (BF16: " + fmt("%.1f MiB", copies * static_cast<double>(c.dim) * 2 / (1 << 20)) +
         "; balanced routing), " + (s.fp8_pow2 ? "the backward's output gradients so too (fp8_scale = pow2), " : "") +
         "combine" + (s.fp8_pow2 ? "s" : " and gradients") + " in BF16";
  }
  return n;
}
}  // namespace

std::vector<std::string> memory_assumptions(const ModelConfig& c, const parallel::Layout& l, const TrainSettings& s,
                                            const MemoryPlan& worst) {
  const char* compute = s.compute_copy ? "a BF16 compute copy (2 B)"
                                       : "no compute copy (precision fp32: the layers read the master)";
  const char* moments = s.moment_bytes == 2 ? "BF16" : "FP32";
  const double edp = static_cast<double>(l.tensor) * l.data / l.expert;
  std::vector<std::string> a;
  a.push_back(std::string("weights: FP32 master (4 B) + ") + compute + " per parameter the rank holds; the master is not "
              "sharded (sharding it too, as Megatron's distributed optimizer does, would save " +
              gib(worst.params() * 4 - 4 * (worst.dense_params / l.data + worst.expert_params / edp)) +
              " GiB on the worst rank)");
  if (s.fp8)
    a.push_back("precision fp8: the " + billions(worst.fp8_params) + " linear-layer parameters of the worst rank (attention "
                "projections, dense MLP, shared and routed experts; not the embedding, head, router or norms) also hold E4M3 "
                "copies of W and W^T (2 B, one f32 scale per 128x128 block of each), made once per step");
  if (s.fp8) a.push_back(fp8_activation_note(c, l, s));
  a.push_back("gradients: FP32 (4 B) per held parameter, full size on every rank (ZeRO-1 shards optimizer states only)");
  a.push_back(std::string("optimizer: AdamW m and v in ") + moments + (s.zero1 ? "" : ", not sharded (zero1 = false)") +
              (s.zero1 ? ", sharded by ZeRO-1 over the " + std::to_string(l.data) + " DP ranks for dense parameters and the " +
                             fmt("%.0f", edp) + " EDP ranks for routed experts"
                       : ""));
  a.push_back("placement: routed experts split over EP (" + std::to_string(c.n_routed_experts / l.expert) +
              " of each MoE layer per rank); per-head attention projections, dense FFN, shared experts and the vocabulary "
              "split over TP " + std::to_string(l.tensor) + "; norms, router and MLA down-projections replicated over TP");
  a.push_back("pipeline split: evenly, or with the embedding, head and each MTP module counted as a layer; embedding "
              "on the first stage, final norm + head + MTP on the last (which keeps its own embedding copy for MTP "
              "or tied weights); router selection bias and RoPE tables left out (< 0.01%)");
  a.push_back("activations per micro-batch: " + std::to_string(s.micro_batch) + " x " + std::to_string(s.seq_len) +
              " tokens, " + (s.compute_bytes == 2 ? "BF16" : "FP32") + ", saved per token per block for recompute = " +
              (s.recompute == Recompute::full ? "full: the block input D" :
               s.recompute == Recompute::selective ? "selective (RMSNorm outputs, MLA q/k/v up-projections and SwiGLU "
                                                     "outputs recomputed, as DeepSeek-V3)" : "none") +
              fmt(": %.1f KiB for a dense block, %.1f KiB for a MoE block (formula in docs/running.md)",
                  block_activation_bytes(c, l, s, false, s.recompute) / 1024,
                  block_activation_bytes(c, l, s, true, s.recompute) / 1024));
  a.push_back("MoE: each rank's experts receive top-k x tokens / TP = " +
              fmt("%.0f", static_cast<double>(c.n_activated_experts) * s.micro_batch * s.seq_len / l.tensor) +
              " token copies per micro-batch (perfectly balanced routing; imbalance adds to this)");
  std::string sched = s.schedule == PipelineSchedule::interleaved
                          ? "interleaved: stage s holds 2 (pp - s - 1) + (v - 1) pp + 1 chunk micro-batches"
                      : s.schedule == PipelineSchedule::dualpipev
                          ? std::string("DualPipeV: every stage holds 2 pp + 1 chunk micro-batches") +
                                (s.split_weight ? ", and stage s the weight-gradient inputs of s + 1 more (deferred W, "
                                                  "counted as saved activations)" : "")
                      : s.schedule == PipelineSchedule::dualpipe
                          ? std::string("DualPipe: every stage holds its own stage and a second copy of stage pp - 1 - s "
                                        "(parameters, gradients and optimizer states of both counted), and pp + 1 chunk "
                                        "micro-batches") +
                                (s.split_weight ? ", and stage s the weight-gradient inputs of min(s, pp - 1 - s) + 1 more "
                                                  "(deferred W, counted as saved activations)" : "")
                                                                  : "1F1B: stage s holds pp - s micro-batches";
  a.push_back("pipeline: " + sched + ", at most the " + std::to_string(s.micro_batches) +
              " micro-batch(es) of a step per replica ([train] global_batch / (micro_batch x data)); the head's stage "
              "(the last; stage 0 under dualpipev, stages 0 and pp - 1 under dualpipe) adds one micro-batch's logits (vocab / TP, gradient in place)" +
              (s.recompute == Recompute::full ? " and full recompute one rebuilt block" : ""));
  if (s.cudnn_dp_workspace)
    a.push_back("attention: cuDNN's deterministic backward ([train] attention = auto or cudnn in a build with cuDNN, on GPUs) holds dP of one layer, micro_batch x heads / TP x seq_len^2 bf16, in its "
                "workspace (the transient is at least that; past a quarter of the GPU's memory the call runs r1hpc's own kernel)");
  a.push_back("not counted: CUDA context, NCCL and all-to-all buffers, GEMM workspaces, allocator fragmentation (a few "
              "GiB); an 80 GB H800/H100 holds 74.5 GiB");
  return a;
}

namespace {
void print_mesh(const parallel::Mesh& mesh, std::ostream& out) {
  if (mesh.world() <= 64) {
    out << mesh.summary();
    return;
  }
  const parallel::Layout& l = mesh.layout();
  out << "mesh: world " << l.world << " = tp " << l.tensor << " x dp " << l.data << " x pp " << l.pipeline << " (order "
      << l.order << ", fastest first); MoE: ep " << l.expert << " x edp " << mesh.size(parallel::GroupKind::edp)
      << " per stage\n  groups:";
  for (parallel::GroupKind k : parallel::kGroupKinds)
    if (k != parallel::GroupKind::world)
      out << " " << parallel::group_kind_name(k) << " " << l.world / mesh.size(k) << " x " << mesh.size(k);
  out << " (count x size)\n  " << mesh.describe_rank(0) << "\n  " << mesh.describe_rank(l.world - 1) << "\n";
}
// A grpo deck's terms per stage, each with the deck keys that drive it.
void print_rollout_memory(const Deck& deck, const ModelConfig& c, const TrainSettings& s, const RolloutSettings& r,
                          const std::vector<MemoryPlan>& plans, std::ostream& out) {
  out << "grpo memory per rank (MiB = 2^20 B): rollout KV cache = layers x " << deck.mention("sampling.max_batch") << " x "
      << r.rows << " rows (" << deck.mention("sampling.max_new_tokens") << ", at most " << deck.mention("model.max_seq_len")
      << "; prompts add their length) x ";
  if (c.gqa())
    out << "(2 x head_dim " << c.gqa_head_dim() << " x " << std::max<std::int64_t>(c.kv_heads() / r.tensor, 1)
        << " K/V heads per rank)";
  else
    out << "(kv_lora_rank " << c.kv_lora_rank << " + qk_rope_head_dim " << c.qk_rope_head_dim << ")";
  out << " x " << s.compute_bytes << " B (" << deck.mention("train.precision") << "); learner activations for "
      << s.micro_batch << " rows of " << s.seq_len << " tokens (" << deck.mention("train.micro_batch") << ", "
      << deck.mention("grpo.micro_tokens") << "); reference weights when "
      << deck.mention("grpo.beta_kl") << " > 0\n";
  for (const MemoryPlan& p : plans)
    out << "  stage " << p.stage << ": KV cache " << fmt("%.3f", p.kv_cache / (1024.0 * 1024.0)) << " (" << p.layers
        << " layers), learner activations " << fmt("%.3f", p.activations / (1024.0 * 1024.0)) << ", reference "
        << fmt("%.3f", p.reference / (1024.0 * 1024.0)) << ", peak " << fmt("%.3f", p.total() / (1024.0 * 1024.0))
        << (p.kv_cache > p.activations ? " (in the rollout)" : " (in the update)") << "\n";
}
}  // namespace

void print_dry_run(const Deck& deck, const RunConfig& cfg, int world_size, const Machine& machine, std::ostream& out) {
  const ModelConfig& c = cfg.model;
  parallel::Layout layout;
  layout.world = world_size;
  layout.tensor = static_cast<int>(cfg.parallel.tensor);
  layout.pipeline = static_cast<int>(cfg.parallel.pipeline);
  layout.data = static_cast<int>(cfg.parallel.data);
  layout.expert = c.dense ? 1 : static_cast<int>(cfg.parallel.expert);
  layout.order = cfg.parallel.order;
  const parallel::Mesh mesh(layout, 0);
  const parallel::Layout& l = mesh.layout();
  const RolloutSettings r = rollout_settings(cfg);
  TrainSettings s = train_settings(cfg, l.data);
  apply_rollout_settings(cfg, r, l.data, s);
  const ParamCount pc = count_params(c);

  out << "\n# ---- plan (--dry-run: nothing is computed or written) ----\n";
  if (r.max_batch > 0)
    out << "grpo: planned from [model] alone (no checkpoint is read): weights, grads, optimizer, the reference, and one "
           "phase at a time: the rollout's KV cache or the learner's activations (memory handover, docs/grpo.md)\n";
  out << "model: " << describe_model(c) << "\n";
  out << "parameters: " << billions(pc.total) << " total, " << billions(pc.activated) << " activated per token"
      << (c.mtp_depth > 0 ? ", MTP " + billions(pc.mtp) + " more" : "")
      << fmt("; %.3g GFLOP/token to train at seq_len %.0f (6 x activated + attention)\n",
             train_flops_per_token(c, s.seq_len) / 1e9, static_cast<double>(s.seq_len));
  out << "layout: world " << l.world << " = tensor " << l.tensor << " x data " << l.data << " x pipeline " << l.pipeline;
  if (!c.dense) out << "; MoE layers: expert " << l.expert << " x expert-data " << mesh.size(parallel::GroupKind::edp);
  out << "; schedule " << choice_word(s.schedule) << ", ZeRO-1 " << (s.zero1 ? "on" : "off") << "\n";
  const auto split = parallel::split_layers(c.n_layers, c.mtp_depth, chunk_count(l, s));
  out << "pipeline split (layers per chunk):";
  for (std::size_t i = 0; i < split.size(); ++i) out << (i ? "," : " ") << split[i].count;
  out << "\n";
  print_mesh(mesh, out);

  std::vector<MemoryPlan> plans;
  for (int stage = 0; stage < l.pipeline; ++stage) {
    plans.push_back(plan_stage_memory(c, l, s, stage));
    add_rollout_memory(c, s, r, plans.back());
  }
  const MemoryPlan& worst = *std::max_element(plans.begin(), plans.end(),
                                              [](const MemoryPlan& a, const MemoryPlan& b) { return a.total() < b.total(); });
  if (plans.size() <= 32) {
    out << format_memory_table(plans);
  } else {
    out << format_memory_table({plans.front(), worst, plans.back()});
  }
  if (r.max_batch > 0)
    print_rollout_memory(deck, c, s, r, plans.size() <= 32 ? plans : std::vector<MemoryPlan>{plans.front(), worst, plans.back()}, out);
  out << fmt("worst rank: stage %.0f, %.3g GiB (%.3g GB) per GPU\n", worst.stage, worst.total() / kGiB, worst.total() / 1e9);
  out << "settings: " << deck.mention("train.precision") << ", " << deck.mention("optim.moment_precision") << ", "
      << deck.mention("train.micro_batch") << ", " << deck.mention("data.seq_len") << ", " << deck.mention("train.recompute")
      << ", " << deck.mention("train.global_batch") << "\n";
  out << "assumptions:\n";
  for (const std::string& line : memory_assumptions(c, l, s, worst)) out << "  - " << line << "\n";
  out << "time (--machine; predicted, docs/performance.md \"Predicting time\"):\n";
  for (const std::string& line : time_report(c, l, s, worst, machine, cfg.run.max_steps)) out << "  " << line << "\n";
}

}  // namespace r1
