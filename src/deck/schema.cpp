#include "deck/schema.hpp"

#include <charconv>

namespace r1 {

namespace {

constexpr std::int64_t kNoMax = std::numeric_limits<std::int64_t>::max();

// Adds the keys of one section; the table below reads as one line per key.
class SectionKeys {
 public:
  SectionKeys(std::vector<KeyDecl>& out, std::string_view section) : out_(out), section_(section) {}

  void integer(std::string_view key, std::string_view def, std::int64_t lo, std::int64_t hi, std::string_view doc) {
    KeyDecl& d = add(key, KeyType::integer, def, doc);
    d.imin = lo;
    d.imax = hi;
  }
  void real(std::string_view key, std::string_view def, double lo, double hi, std::string_view doc) {
    KeyDecl& d = add(key, KeyType::real, def, doc);
    d.fmin = lo;
    d.fmax = hi;
  }
  void flag(std::string_view key, std::string_view def, std::string_view doc) { add(key, KeyType::boolean, def, doc); }
  void text(std::string_view key, std::string_view def, std::string_view doc) { add(key, KeyType::string, def, doc); }
  void path(std::string_view key, std::string_view def, std::string_view doc) { add(key, KeyType::path, def, doc); }
  void input(std::string_view key, std::string_view doc) { add(key, KeyType::input_path, "", doc); }
  void choice(std::string_view key, std::string_view def, std::vector<std::string_view> choices, std::string_view doc) {
    add(key, KeyType::choice, def, doc).choices = std::move(choices);
  }
  void ints(std::string_view key, std::string_view def, std::int64_t lo, std::int64_t hi, std::string_view doc) {
    KeyDecl& d = add(key, KeyType::int_list, def, doc);
    d.imin = lo;
    d.imax = hi;
  }

 private:
  KeyDecl& add(std::string_view key, KeyType type, std::string_view def, std::string_view doc) {
    KeyDecl& d = out_.emplace_back();
    d.section = section_;
    d.key = key;
    d.type = type;
    d.default_text = def;
    d.doc = doc;
    return d;
  }
  std::vector<KeyDecl>& out_;
  std::string_view section_;
};

std::vector<KeyDecl> build_keys() {
  std::vector<KeyDecl> k;

  SectionKeys run(k, "run");
  run.choice("stage", "self_check",
             {"pretrain", "grpo", "sft", "rejection_sampling", "reward_model", "evaluate", "import_hf", "export_hf",
              "self_check"},
             "phase of the R1 pipeline this job runs");
  run.path("output_dir", "runs/default", "directory for the resolved deck, metrics.jsonl and (by default) checkpoints");
  run.integer("seed", "1234", 0, kNoMax, "seed of every random stream (init, data order, sampling)");
  run.integer("max_steps", "0", 0, kNoMax, "optimizer steps to run; 0 runs the stage to its natural end");
  run.real("time_limit_minutes", "0", 0, 1e7, "checkpoint and exit for requeue after this wall time; 0: no limit");

  SectionKeys model(k, "model");
  model.text("preset", "", "name in inputs/models/ or path to a .deck of [model] keys; this deck's [model] keys override it");
  model.integer("vocab_size", "512", 2, 1 << 24, "vocabulary size (embedding and output head rows)");
  model.integer("dim", "128", 1, 1 << 17, "hidden size");
  model.integer("n_layers", "2", 1, 4096, "transformer blocks (MTP modules not counted)");
  model.integer("n_dense_layers", "1", 0, 4096, "first blocks with a dense FFN instead of MoE");
  model.integer("n_heads", "4", 1, 4096, "attention heads");
  model.integer("dense_inter_dim", "256", 1, 1 << 20, "hidden size of the dense SwiGLU FFN");
  model.integer("moe_inter_dim", "64", 1, 1 << 20, "hidden size of each routed and shared expert");
  model.integer("n_routed_experts", "8", 1, 1 << 16, "routed experts per MoE layer");
  model.integer("n_shared_experts", "1", 0, 1024, "shared experts per MoE layer, applied to every token");
  model.integer("n_activated_experts", "2", 1, 1 << 16, "routed experts chosen per token (top-k)");
  model.integer("n_expert_groups", "2", 1, 1 << 16, "groups the routed experts are split into for group-limited routing");
  model.integer("n_limited_groups", "1", 1, 1 << 16, "groups a token may route to (top groups by their top-2 score sum)");
  model.choice("score_func", "sigmoid", {"softmax", "sigmoid"}, "expert affinity function of the router");
  model.real("route_scale", "1.0", 1e-3, 1e3, "factor on the normalised routing weights");
  model.integer("q_lora_rank", "0", 0, 1 << 17, "query latent rank; 0 projects queries straight from the hidden state");
  model.integer("kv_lora_rank", "64", 1, 1 << 17, "key/value latent rank (the cached latent)");
  model.integer("qk_nope_head_dim", "32", 1, 4096, "per-head query/key dimension without RoPE");
  model.integer("qk_rope_head_dim", "16", 2, 4096, "per-head decoupled RoPE dimension (even; the key part is shared)");
  model.integer("v_head_dim", "32", 1, 4096, "per-head value dimension");
  model.real("rope_theta", "10000", 1, 1e12, "RoPE base");
  model.real("rope_factor", "40", 1, 1e4, "YaRN scale factor, used when max_seq_len > original_seq_len");
  model.integer("original_seq_len", "4096", 1, 1 << 24, "context length the RoPE was trained for (YaRN)");
  model.real("beta_fast", "32", 0, 1e4, "YaRN ramp: rotations above which frequencies are kept");
  model.real("beta_slow", "1", 0, 1e4, "YaRN ramp: rotations below which frequencies are fully interpolated");
  model.real("mscale", "1.0", 0, 100, "YaRN attention scale coefficient (0.1 mscale ln(factor) + 1)");
  model.integer("max_seq_len", "256", 1, 1 << 24, "longest sequence the model supports (RoPE tables, KV cache)");
  model.real("norm_eps", "1e-6", 1e-12, 1e-2, "RMSNorm epsilon");
  model.real("init_std", "0.006", 1e-6, 1, "standard deviation of the normal weight init");
  model.integer("mtp_depth", "0", 0, 1, "multi-token-prediction modules (0 or 1)");
  model.real("mtp_lambda", "0.3", 0, 10, "weight of the MTP loss");
  model.real("bias_update_gamma", "0.001", 0, 1, "step of the auxiliary-loss-free balancing bias; 0 freezes it");
  model.real("seq_aux_alpha", "0.0001", 0, 1, "weight of the sequence-wise balance loss");
  model.flag("dense", "false", "plain dense decoder without MoE (distillation students); MoE keys are ignored");
  model.flag("tie_embeddings", "false", "share the embedding and output head weights");

  SectionKeys par(k, "parallel");
  par.integer("tensor", "1", 1, 4096, "tensor-parallel ranks (attention heads, dense FFN, shared experts, vocab)");
  par.integer("pipeline", "1", 1, 4096, "pipeline stages");
  par.integer("expert", "1", 1, 1 << 20, "expert-parallel ranks, folded over data x tensor in MoE layers");
  par.integer("data", "0", 0, 1 << 24, "data-parallel replicas; 0: world / (tensor x pipeline)");
  par.integer("max_expert_ranks", "0", 0, 1 << 20,
              "device-limited routing: refuse a layout where a token's experts can sit on more EP ranks; 0: no limit");
  par.integer("virtual_stages", "1", 1, 1024, "model chunks per pipeline rank (interleaved schedule)");
  par.choice("schedule", "1f1b", {"1f1b", "interleaved", "dualpipe"}, "pipeline schedule");
  par.choice("order", "tp-dp-pp", {"tp-dp-pp", "tp-pp-dp", "dp-tp-pp", "dp-pp-tp", "pp-tp-dp", "pp-dp-tp"},
             "nesting of rank groups, innermost first (tp-dp-pp puts tensor groups on adjacent ranks)");
  par.flag("sequence_parallel", "false", "split the residual stream (norms, residual adds, pipeline activations) over the tensor group by token rows");
  par.flag("zero1", "true", "shard AdamW states over the data-parallel group (reduce-scatter + all-gather)");
  par.flag("overlap_grad_reduce", "true",
           "start each layer's gradient reduction over data-parallel replicas during the backward (same results)");
  par.flag("overlap_expert_comm", "true",
           "run the MoE token all-to-alls beside the shared experts and the router gradient (same results)");
  par.choice("backend", "auto", {"auto", "mpi", "nccl"}, "communication backend; auto: nccl on GPUs, mpi on CPUs");
  par.real("collective_timeout_s", "600", 1, 1e6, "a collective taking longer aborts the job instead of hanging");

  SectionKeys data(k, "data");
  data.choice("source", "files", {"files", "synthetic"}, "train on train_path/eval_path, or on the built-in reasoning tasks");
  data.input("train_path", "training data: JSONL or HDF5 token shards (source = files)");
  data.input("eval_path", "evaluation data: JSONL prompts with answers, or held-out token shards");
  data.integer("seq_len", "256", 1, 1 << 24, "tokens per training sequence (examples are packed)");
  data.text("tokenizer", "byte", "Hugging Face tokenizer.json, or 'byte' for the byte-level tokenizer");
  data.integer("synthetic_examples", "20000", 1, kNoMax, "examples the synthetic generator makes (source = synthetic)");
  data.real("synthetic_worked_share", "1", 0, 1,
            "share of the synthetic problems shown with their worked solution; the others show the answer alone "
            "(<think></think><answer>X</answer>): below 1, a base that mostly answers without reasoning (R1-Zero's start)");
  data.flag("shuffle", "true", "shuffle example order each epoch (seeded by run.seed)");

  SectionKeys optim(k, "optim");
  optim.real("lr", "3e-4", 0, 1, "peak learning rate");
  optim.real("min_lr", "3e-5", 0, 1, "learning rate at the end of the decay");
  optim.real("beta1", "0.9", 0, 0.999999, "AdamW first-moment decay");
  optim.real("beta2", "0.95", 0, 0.999999, "AdamW second-moment decay");
  optim.real("eps", "1e-8", 1e-30, 1, "AdamW epsilon");
  optim.real("weight_decay", "0.1", 0, 10, "decoupled weight decay (not on norms, biases and embeddings)");
  optim.real("grad_clip", "1.0", 0, 1e6, "global gradient-norm clip; 0: none");
  optim.choice("schedule", "cosine", {"cosine", "wsd", "constant"}, "learning-rate shape after warmup");
  optim.integer("warmup_steps", "100", 0, kNoMax, "linear warmup steps from 0 to lr");
  optim.integer("decay_steps", "0", 0, kNoMax, "length of the decay to min_lr (wsd: the final one); 0: to run.max_steps");
  optim.choice("moment_precision", "fp32", {"fp32", "bf16"}, "storage type of the AdamW moments");

  SectionKeys train(k, "train");
  train.integer("micro_batch", "1", 1, 1 << 20, "sequences per rank per forward/backward pass");
  train.integer("global_batch", "0", 0, kNoMax, "sequences per optimizer step (multiple of micro_batch x data); 0: one micro-batch per replica");
  train.choice("recompute", "none", {"none", "selective", "full"}, "activation recomputation in the backward pass");
  train.choice("precision", "fp32", {"fp32", "bf16", "fp8"}, "compute precision of the GEMMs (master weights stay fp32)");
  train.integer("log_every", "10", 1, kNoMax, "steps between progress lines");
  train.integer("eval_every", "0", 0, kNoMax, "steps between evaluations on data.eval_path; 0: never");

  SectionKeys sft(k, "sft");
  sft.integer("epochs", "2", 1, 10000, "passes over the training data");
  sft.choice("template", "chat", {"chat", "r1-zero", "raw"}, "how prompt and response are laid out");
  sft.flag("loss_on_prompt", "false", "also train on prompt tokens (default: response tokens only)");
  sft.flag("pack", "true", "pack several examples per sequence, attention kept within each");
  sft.integer("synthetic_examples", "0", 0, kNoMax,
              "with data.source = files: add this many synthetic worked solutions (cold start's other sources)");

  SectionKeys grpo(k, "grpo");
  grpo.integer("group_size", "16", 2, 4096, "completions sampled per prompt (G)");
  grpo.integer("prompts_per_step", "32", 1, 1 << 24, "prompts per optimizer step");
  grpo.real("epsilon_low", "0.2", 0, 1, "lower clip of the ratio: 1 - epsilon_low");
  grpo.real("epsilon_high", "0.2", 0, 10, "upper clip of the ratio: 1 + epsilon_high (DAPO: 0.28)");
  grpo.real("beta_kl", "0.001", 0, 10, "weight of the KL penalty to the reference policy; 0: no reference model");
  grpo.choice("kl_estimator", "k3", {"k1", "k2", "k3"}, "per-token KL estimator (k3: r - log r - 1)");
  grpo.integer("inner_epochs", "1", 1, 64, "optimizer passes over each batch of rollouts (mu)");
  grpo.choice("loss_agg", "seq-mean-token-mean", {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"},
              "how per-token losses are averaged (seq-mean-token-sum-norm: Dr. GRPO)");
  grpo.flag("adv_std_scale", "true", "divide advantages by a reward std (adv_std_scope says whose; false: Dr. GRPO)");
  grpo.choice("adv_std_scope", "group", {"group", "batch"},
              "whose reward std divides the advantages: the completion's group, or the whole batch");
  grpo.flag("dynamic_sampling", "false", "drop groups whose rewards are all equal and sample more (DAPO)");
  grpo.flag("mask_truncated", "false", "leave completions cut at sampling.max_new_tokens out of the loss");
  grpo.integer("ref_refresh_steps", "400", 0, kNoMax, "steps between copies of the policy into the reference; 0: never");
  grpo.choice("template", "r1-zero", {"r1-zero", "chat"}, "prompt template of the rollouts");
  grpo.integer("preference_steps", "0", 0, kNoMax,
               "the last steps that add general prompts scored by the [reward] models (R1: the last 400 of 1700); 0: none");
  grpo.integer("general_prompts", "0", 0, 1 << 24, "of prompts_per_step, the general (non-reasoning) prompts of a preference step");

  SectionKeys reward(k, "reward");
  reward.real("accuracy_weight", "1.0", 0, 1e3, "weight of the rule-based answer check");
  reward.real("format_weight", "1.0", 0, 1e3, "weight of the <think>/<answer> format check");
  reward.real("language_weight", "0.0", 0, 1e3, "weight of the share of target-language words in the reasoning");
  reward.choice("target_language", "en", {"en", "zh"}, "language the reasoning should be written in");
  reward.real("overlong_penalty", "0.0", 0, 1e3, "subtracted from completions cut at sampling.max_new_tokens");
  reward.input("helpfulness_model", "reward_model checkpoint (pairwise) scoring the final summary of general prompts' responses; empty: none");
  reward.input("harmlessness_model", "reward_model checkpoint (pointwise) scoring the whole response of general prompts; empty: none");
  reward.real("helpfulness_weight", "1.0", 0, 1e3, "weight of the helpfulness model's score");
  reward.real("harmlessness_weight", "1.0", 0, 1e3, "weight of the harmlessness model's score");

  SectionKeys rm(k, "reward_model");
  rm.choice("objective", "pairwise", {"pairwise", "pointwise"}, "Bradley-Terry on preference pairs, or regression on labels");
  rm.integer("epochs", "1", 1, 10000, "passes over the preference data");

  SectionKeys sampling(k, "sampling");
  sampling.real("temperature", "1.0", 0, 100, "softmax temperature; 0: greedy");
  sampling.real("top_p", "1.0", 0, 1, "nucleus sampling mass; 1: off");
  sampling.integer("top_k", "0", 0, 1 << 24, "keep the k most likely tokens; 0: off");
  sampling.integer("max_new_tokens", "256", 1, 1 << 24, "longest completion");
  sampling.integer("samples_per_prompt", "1", 1, 4096, "completions per prompt in evaluate and rejection_sampling");
  sampling.integer("max_batch", "64", 1, 1 << 20, "sequences decoded together on each rank");
  sampling.flag("cuda_graphs", "true",
                "on one GPU, run each decode step of a batch small enough for the device-side MoE path "
                "(batch x n_activated_experts <= n_routed_experts) as one CUDA graph launch");
  sampling.choice("template", "chat", {"chat", "r1-zero"},
                  "prompt template of evaluate and rejection_sampling (grpo has its own grpo.template)");

  SectionKeys rejection(k, "rejection");
  rejection.path("output_path", "", "JSONL of accepted samples; empty: <run.output_dir>/sft.jsonl");
  rejection.integer("keep_per_prompt", "1", 1, 4096, "most accepted completions kept per prompt");
  rejection.flag("drop_mixed_language", "true", "reject completions whose reasoning mixes languages");
  rejection.real("min_language_consistency", "0.9", 0, 1,
                 "target-language share of the reasoning's classified words below which it is mixed-language");
  rejection.integer("max_tokens", "0", 0, kNoMax, "reject longer completions as overlong; 0: only those cut at sampling.max_new_tokens");
  rejection.integer("repeat_ngram", "4", 1, 1024, "word n-gram length of the repetition check");
  rejection.real("max_repeat_fraction", "0.5", 0, 1, "reject completions whose share of repeated word n-grams exceeds this");
  rejection.real("non_reasoning_fraction", "0.25", 0, 0.99,
                 "share of non-reasoning rows (no chain of thought) in the written dataset (R1: 200k of 800k)");

  SectionKeys evaluate(k, "evaluate");
  evaluate.ints("pass_k", "1", 1, 4096, "k values reported as pass@k (each <= sampling.samples_per_prompt)");
  evaluate.integer("max_prompts", "0", 0, kNoMax, "evaluate only the first prompts; 0: all");
  evaluate.integer("synthetic_prompts", "1000", 1, kNoMax, "held-out problems evaluated when data.source = synthetic");

  SectionKeys hf(k, "hf");
  hf.path("path", "", "Hugging Face model directory: read by import_hf, written by export_hf");
  hf.choice("dtype", "bf16", {"fp32", "bf16", "fp8"}, "tensor type export_hf writes (fp8: 128x128 block scales)");
  hf.flag("overwrite", "false", "export_hf may replace the model files of a non-empty path");
  hf.integer("max_shard_bytes", "5000000000", 0, kNoMax,
             "export_hf splits the tensors into shards of at most this many bytes (+ index.json); 0: one file");

  SectionKeys ckpt(k, "checkpoint");
  ckpt.path("dir", "", "where step-N/ directories go; empty: <run.output_dir>/checkpoints");
  ckpt.integer("every_steps", "0", 0, kNoMax, "steps between checkpoints; 0: only at the end");
  ckpt.integer("keep_last", "3", 0, kNoMax, "checkpoints kept, older ones deleted; 0: keep all");
  ckpt.text("load", "", "start from: a checkpoint path, 'latest' (resume this run if it has one), or empty");
  ckpt.choice("load_mode", "weights", {"weights", "full"}, "what a path loads: weights only, or also optimizer, step and RNG");
  ckpt.flag("async", "false", "write in the background; training waits only for a host copy");

  SectionKeys log(k, "log");
  log.choice("level", "info", {"debug", "info", "warn", "error"}, "least severe message printed");
  log.integer("metrics_every", "1", 1, kNoMax, "steps between records in metrics.jsonl");
  log.ints("profile_steps", "", 0, kNoMax,
           "first, last optimizer step of the region profiler (device syncs per model region; breakdown logged and written to RUN_DIR/profile.json; pretrain); empty: off");
  return k;
}

std::string number_text(double v) {
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

}  // namespace

std::string_view key_type_name(KeyType t) {
  switch (t) {
    case KeyType::integer: return "int";
    case KeyType::real: return "float";
    case KeyType::boolean: return "bool";
    case KeyType::string: return "string";
    case KeyType::path: return "path";
    case KeyType::input_path: return "input path";
    case KeyType::choice: return "enum";
    case KeyType::int_list: return "int list";
  }
  return "?";
}

std::string KeyDecl::full_name() const { return std::string(section) + "." + std::string(key); }

std::string KeyDecl::range_text() const {
  std::string lo, hi;
  if (type == KeyType::integer || type == KeyType::int_list) {
    if (imin != std::numeric_limits<std::int64_t>::min()) lo = std::to_string(imin);
    if (imax != kNoMax) hi = std::to_string(imax);
  } else if (type == KeyType::real) {
    if (fmin != -std::numeric_limits<double>::infinity()) lo = number_text(fmin);
    if (fmax != std::numeric_limits<double>::infinity()) hi = number_text(fmax);
  }
  if (!lo.empty() && !hi.empty()) return lo + " .. " + hi;
  if (!lo.empty()) return ">= " + lo;
  if (!hi.empty()) return "<= " + hi;
  return {};
}

const std::vector<SectionDecl>& deck_sections() {
  static const std::vector<SectionDecl> sections = {
      {"run", "what this job runs and where its outputs go"},
      {"model", "model architecture (DeepSeek-V3 family), usually from a preset"},
      {"parallel", "layout of the ranks: world = pipeline x data x tensor; MoE layers fold expert over data x tensor"},
      {"data", "training and evaluation data"},
      {"optim", "AdamW and the learning-rate schedule"},
      {"train", "batching, precision and cadence of the training stages"},
      {"sft", "supervised fine-tuning (cold start, reasoning SFT, distillation)"},
      {"grpo", "GRPO reinforcement learning"},
      {"reward", "rewards of grpo: rule-based checks and an optional reward model"},
      {"reward_model", "the reward_model stage"},
      {"sampling", "generation for rollouts, rejection sampling and evaluation"},
      {"rejection", "the rejection_sampling stage, which writes an SFT dataset"},
      {"evaluate", "the evaluate stage"},
      {"hf", "the import_hf and export_hf stages"},
      {"checkpoint", "where checkpoints go and which one the run starts from"},
      {"log", "logging, metrics and profiling"},
  };
  return sections;
}

const std::vector<KeyDecl>& deck_keys() {
  static const std::vector<KeyDecl> keys = build_keys();
  return keys;
}

const SectionDecl* find_section(std::string_view section) {
  for (const auto& s : deck_sections())
    if (s.name == section) return &s;
  return nullptr;
}

const KeyDecl* find_key(std::string_view section, std::string_view key) {
  for (const auto& d : deck_keys())
    if (d.section == section && d.key == key) return &d;
  return nullptr;
}

const KeyDecl* find_key(std::string_view full_name) {
  const auto dot = full_name.find('.');
  if (dot == std::string_view::npos) return nullptr;
  return find_key(full_name.substr(0, dot), full_name.substr(dot + 1));
}

}  // namespace r1
