#include "deck/validate.hpp"

#include <algorithm>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "core/error.hpp"
#include "data/reasoning_world.hpp"
#include "deck/ini.hpp"
#include "parallel/pipeline_split.hpp"

namespace r1 {

namespace fs = std::filesystem;
using detail::concat;

namespace {

// A rule between two keys fails on the line of the one the user set (A when both or neither were
// set), and mentions the other with its value and origin.
[[noreturn]] void fail_rule(const Deck& d, std::string_view a, std::string_view b, const std::string& rule) {
  const bool swap = d.is_default(a) && !d.is_default(b);
  d.fail(swap ? b : a, rule + "; " + d.mention(swap ? a : b));
}

std::int64_t data_parallel(const RunConfig& c, int world) { return world / (c.parallel.tensor * c.parallel.pipeline); }

void check_layout(const Deck& d, const RunConfig& c, int world) {
  const std::int64_t tp = c.parallel.tensor, pp = c.parallel.pipeline;
  const std::int64_t vs = c.parallel.virtual_stages, data = c.parallel.data;
  if (world % (tp * pp) != 0)
    fail_rule(d, "parallel.tensor", "parallel.pipeline", concat("tensor x pipeline = ", tp * pp, " must divide the world size ", world));
  const std::int64_t dp = data_parallel(c, world);
  if (data != 0 && data != dp)
    d.fail("parallel.data", concat("must be world size ", world, " / (tensor x pipeline = ", tp * pp, ") = ", dp, ", or 0 for auto"));
  const PipelineSchedule schedule = c.parallel.schedule;
  const bool dual = schedule == PipelineSchedule::dualpipev || schedule == PipelineSchedule::dualpipe;
  if (c.parallel.split_weight_grad && (!dual || pp < 2))
    fail_rule(d, "parallel.split_weight_grad", "parallel.schedule", "split_weight_grad = true needs schedule = dualpipev or "
                                                                    "dualpipe over pipeline > 1 (the schedules that place the W passes)");
  if (schedule == PipelineSchedule::dualpipe && pp > 1 && pp % 2 != 0)
    fail_rule(d, "parallel.pipeline", "parallel.schedule", "schedule = dualpipe feeds micro-batches from both ends and pairs "
                                                           "rank r with rank pipeline - 1 - r: it needs an even pipeline");
  const bool interleaved = schedule == PipelineSchedule::interleaved;
  if (interleaved && vs < 2)
    fail_rule(d, "parallel.schedule", "parallel.virtual_stages", "the interleaved schedule needs virtual_stages > 1");
  if (!interleaved && vs > 1)
    fail_rule(d, "parallel.virtual_stages", "parallel.schedule", "virtual_stages > 1 needs schedule = interleaved (dualpipev "
                                                                 "and dualpipe always run two chunks per rank)");
  const std::int64_t layers = c.model.n_layers, mtp = c.model.mtp_depth;
  // The model's chunks: dualpipe cuts it into pipeline stages (each rank holds two, one of them a copy).
  const std::int64_t chunks = pp > 1 ? pipeline_chain_length(schedule, static_cast<int>(pp), vs) : pp * vs;
  if (parallel::split_layers(layers, mtp, chunks).empty()) {
    const std::string rule = concat(schedule == PipelineSchedule::dualpipev  ? "2 x pipeline = "
                                    : schedule == PipelineSchedule::dualpipe ? "pipeline = "
                                                                             : "pipeline x virtual_stages = ",
                                    chunks, " must divide n_layers, or n_layers + 2 + mtp_depth = ",
                                    layers + 2 + mtp, " (embedding, head and MTP counted as layers) leaving each stage a layer");
    if (d.is_default("parallel.pipeline") && !d.is_default("parallel.virtual_stages"))
      fail_rule(d, "parallel.virtual_stages", "model.n_layers", rule);
    fail_rule(d, "parallel.pipeline", "model.n_layers", rule);
  }
  if (c.model.n_heads % tp != 0) fail_rule(d, "parallel.tensor", "model.n_heads", "tensor must divide n_heads");
  if (c.model.gqa() && c.model.kv_heads() % tp != 0 && tp % c.model.kv_heads() != 0)
    fail_rule(d, "parallel.tensor", "model.n_kv_heads",
              concat("tensor must divide the ", c.model.kv_heads(), " K/V heads or be a multiple of them (ranks then "
                     "share a K/V head)"));
  // The other cuts of tensor parallelism: the vocabulary and the FFN hidden columns, into equal shares.
  const ModelConfig& m = c.model;
  const std::pair<const char*, std::int64_t> cuts[] = {
      {"model.vocab_size", m.vocab_size},
      {"model.dense_inter_dim", m.dense || m.n_dense_layers > 0 ? m.dense_inter_dim : 0},
      {"model.moe_inter_dim", m.dense ? 0 : m.moe_inter_dim * m.n_shared_experts}};
  for (const auto& [key, n] : cuts)
    if (n % tp != 0)
      fail_rule(d, "parallel.tensor", key, concat("tensor = ", tp, " does not divide ", key, " (", n,
                                                  std::string_view(key) == "model.moe_inter_dim" ? " x n_shared_experts" : "",
                                                  "): tensor parallelism splits it into equal shares"));
  if (tp > 1 && c.parallel.sequence_parallel) {
    const std::int64_t tokens = c.train.micro_batch * c.data.seq_len;
    if (tokens % tp != 0)
      fail_rule(d, "parallel.sequence_parallel", "data.seq_len",
                concat("sequence parallelism splits the micro_batch x seq_len = ", tokens,
                       " tokens of a micro-batch over tensor = ", tp, " ranks, so it must be a multiple of ", tp));
  }
  if (m.dense) return;  // no experts, so no expert layout
  const std::int64_t ep = c.parallel.expert;
  if (m.n_routed_experts % ep != 0)
    fail_rule(d, "parallel.expert", "model.n_routed_experts", "expert must divide n_routed_experts");
  if ((dp * tp) % ep != 0)
    d.fail("parallel.expert", concat("must divide data x tensor = ", dp * tp, ", the ranks MoE layers spread experts over"));
  // Device-limited routing: group-limited routing bounds the EP ranks a token's experts sit on.
  const std::int64_t routed = m.n_routed_experts, groups = m.n_expert_groups, limited = m.n_limited_groups;
  const std::int64_t limit = c.parallel.max_expert_ranks, reach = m.max_expert_ranks_per_token(ep);
  if (limit > 0 && routed % groups == 0 && reach > limit)
    d.fail("parallel.max_expert_ranks",
           concat("group-limited routing lets a token reach ", reach, " of the ", ep, " EP ranks (", limited, " of ", groups,
                  " expert groups of ", routed / groups, " experts, ", routed / ep, " experts per rank): make [model] n_expert_groups "
                  "a multiple of [parallel] expert and keep n_limited_groups <= ", limit));
}

void check_model(const Deck& d, const RunConfig& c) {
  if (c.data.seq_len > c.model.max_seq_len) fail_rule(d, "data.seq_len", "model.max_seq_len", "seq_len must be at most max_seq_len");
  validate_model(d);
}

// The grouped-query-attention families: dense, no MTP, heads that group and rotate.
void validate_gqa(const Deck& d, const ModelConfig& m) {
  const std::string arch(choice_word(m.arch));
  if (!m.gqa()) {
    if (m.rope_type != RopeType::default_)
      fail_rule(d, "model.rope_type", "model.arch", "llama3 RoPE scaling is for grouped-query-attention models (MLA uses YaRN)");
    return;
  }
  if (!m.dense) fail_rule(d, "model.dense", "model.arch", concat("arch = ", arch, " is a dense decoder: set dense = true"));
  if (m.mtp_depth != 0) fail_rule(d, "model.mtp_depth", "model.arch", concat("arch = ", arch, " has no MTP module: set mtp_depth = 0"));
  if (m.n_heads % m.kv_heads() != 0)
    fail_rule(d, "model.n_kv_heads", "model.n_heads", "n_kv_heads must divide n_heads (groups of query heads share a K/V head)");
  if (m.head_dim == 0 && m.dim % m.n_heads != 0)
    fail_rule(d, "model.head_dim", "model.dim", "head_dim = 0 takes dim / n_heads, which must be whole: set head_dim");
  const std::int64_t hd = m.gqa_head_dim();
  if (hd % 2 != 0 || hd > 256)
    d.fail(d.is_default("model.head_dim") ? "model.dim" : "model.head_dim",
           concat("head_dim ", hd, ": RoPE rotates pairs and the attention kernels take at most 256 (expected an even number <= 256)"));
  if (m.rope_type == RopeType::llama3 && m.high_freq_factor <= m.low_freq_factor)
    fail_rule(d, "model.high_freq_factor", "model.low_freq_factor", "llama3 RoPE needs high_freq_factor > low_freq_factor");
}
}  // namespace

ModelConfig validate_model(const Deck& d) {
  const ModelConfig m = d.config().model;
  if (m.qk_rope_head_dim % 2 != 0) d.fail("model.qk_rope_head_dim", "RoPE rotates pairs (expected an even number)");
  validate_gqa(d, m);
  if (m.dense) return m;  // the MoE keys do not apply
  if (m.n_dense_layers > m.n_layers)
    fail_rule(d, "model.n_dense_layers", "model.n_layers", "n_dense_layers must be at most n_layers");
  const std::int64_t routed = m.n_routed_experts, active = m.n_activated_experts;
  const std::int64_t groups = m.n_expert_groups, limited = m.n_limited_groups;
  if (active > routed)
    fail_rule(d, "model.n_activated_experts", "model.n_routed_experts", "n_activated_experts must be at most n_routed_experts");
  if (routed % groups != 0)
    fail_rule(d, "model.n_expert_groups", "model.n_routed_experts", "n_expert_groups must divide n_routed_experts");
  if (limited > groups)
    fail_rule(d, "model.n_limited_groups", "model.n_expert_groups", "n_limited_groups must be at most n_expert_groups");
  if (active > limited * (routed / groups))
    fail_rule(d, "model.n_activated_experts", "model.n_limited_groups",
              concat("n_activated_experts must be at most the ", limited * (routed / groups), " experts of the groups a token may use"));
  return m;
}

namespace {

void check_training(const Deck& d, const RunConfig& c, int world) {
  const std::int64_t per_step = c.train.micro_batch * data_parallel(c, world);
  if (c.train.global_batch % per_step != 0)
    fail_rule(d, "train.global_batch", "train.micro_batch", concat("global_batch must be a multiple of micro_batch x data = ", per_step));
  const std::int64_t pp = c.parallel.pipeline, micro_batches = c.train.global_batch > 0 ? c.train.global_batch / per_step : 1;
  const PipelineSchedule schedule = c.parallel.schedule;
  const bool dual = schedule == PipelineSchedule::dualpipev || schedule == PipelineSchedule::dualpipe;
  const std::string name(choice_word(schedule));
  const bool trains = c.run.stage == Stage::pretrain || c.run.stage == Stage::sft;
  if (pp > 1 && dual && trains && micro_batches < 2 * pp)
    fail_rule(d, "train.global_batch", "parallel.schedule",
              concat("schedule = ", name, " needs at least 2 x pipeline = ", 2 * pp, " micro-batches per step; global_batch / "
                     "(micro_batch x data = ", per_step, ") gives ", micro_batches));
  if (pp > 1 && schedule == PipelineSchedule::dualpipe && trains && micro_batches % 2 != 0)
    fail_rule(d, "train.global_batch", "parallel.schedule",
              concat("schedule = dualpipe feeds half the micro-batches from each end: it needs an even number per step; "
                     "global_batch / (micro_batch x data = ", per_step, ") gives ", micro_batches));
  if (pp > 1 && dual && c.run.stage == Stage::grpo)
    d.fail("parallel.schedule", name + " runs in the pretrain and sft stages; grpo's micro-batches per step vary (use 1f1b "
                                       "or interleaved)");
  if (pp > 1 && schedule == PipelineSchedule::dualpipe &&
      (c.run.stage == Stage::evaluate || c.run.stage == Stage::rejection_sampling))
    d.fail("parallel.schedule", "dualpipe trains in the pretrain and sft stages (its second parameter copy is a training "
                                "matter); the " + std::string(choice_word(c.run.stage)) + " stage generates chunk by chunk: "
                                "use dualpipev or 1f1b");
  if (c.optim.min_lr > c.optim.lr) fail_rule(d, "optim.min_lr", "optim.lr", "min_lr must be at most lr");
  for (const auto& [key, factor] : {std::pair{"train.loss_spike_factor", c.train.loss_spike_factor},
                                     std::pair{"train.max_weight_norm_growth", c.train.max_weight_norm_growth}})
    if (factor != 0 && factor <= 1) d.fail(key, concat("must be 0 (off) or above 1 (a factor of growth); got ", factor));
  if (c.train.precision == Precision::fp8 && c.model.gqa())
    fail_rule(d, "train.precision", "model.arch", "fp8 trains the MLA family only (arch = mla); the grouped-query-attention "
              "students train in bf16");
  const auto& profile = c.log.profile_steps;
  if (!profile.empty() && (profile.size() != 2 || profile[0] > profile[1]))
    d.fail("log.profile_steps", "expected two steps, first <= last");
  const auto& levels = c.data.synthetic_levels;
  if (levels.empty() || levels.size() > static_cast<std::size_t>(kWorldLevels) ||
      std::all_of(levels.begin(), levels.end(), [](std::int64_t w) { return w == 0; }))
    d.fail("data.synthetic_levels", concat("expected 1 to ", kWorldLevels, " weights (levels 1..", kWorldLevels,
                                           "), at least one above 0; got ", levels.size(), " weights"));
}

// What each stage cannot start without. A missing key the deck never mentions is reported on the
// [run] stage line, the one line that asked for it.
void check_stage(const Deck& d, const RunConfig& c) {
  const Stage stage = c.run.stage;
  const std::string_view name = choice_word(stage);
  auto require = [&](std::string_view key, const std::string& value, std::string_view what, std::string_view alternative = {}) {
    if (!value.empty()) return;
    const auto dot = key.find('.');
    const std::string problem =
        concat("the ", name, " stage needs [", key.substr(0, dot), "] ", key.substr(dot + 1), " (", what, ")", alternative);
    d.fail(d.is_default(key) ? "run.stage" : key, problem);
  };
  const bool files = c.data.source == DataSource::files;
  if (files && (stage == Stage::pretrain || stage == Stage::sft || stage == Stage::reward_model || stage == Stage::grpo ||
                stage == Stage::rejection_sampling))
    require("data.train_path", c.data.train_path, "training data", " or [data] source = synthetic");
  if (c.data.synthetic_worked_share < 1 && (files || stage != Stage::pretrain))
    d.fail("data.synthetic_worked_share", concat("the share of worked solutions shapes the synthetic pretraining corpus: it needs [run] stage = "
                                                 "pretrain and [data] source = synthetic (here ", name, ", ",
                                                 choice_word(c.data.source), ")"));
  if (files && stage == Stage::evaluate)
    require("data.eval_path", c.data.eval_path, "evaluation data", " or [data] source = synthetic");
  if (c.train.eval_every > 0) {
    if (stage != Stage::pretrain)
      d.fail("train.eval_every", concat("held-out losses are the pretrain stage's; the ", name, " stage has its own evaluation"));
    require("data.eval_path", c.data.eval_path, "held-out text for [train] eval_every");
  }
  if (stage == Stage::grpo || stage == Stage::rejection_sampling || stage == Stage::evaluate || stage == Stage::export_hf)
    require("checkpoint.load", c.checkpoint.load, "a checkpoint path, or latest");
  if (stage == Stage::import_hf || stage == Stage::export_hf) require("hf.path", c.hf.path, "a Hugging Face model directory");
  if (stage == Stage::evaluate)
    for (std::int64_t k : c.evaluate.pass_k)
      if (k > c.sampling.samples_per_prompt)
        fail_rule(d, "evaluate.pass_k", "sampling.samples_per_prompt", concat("pass@", k, " needs samples_per_prompt >= ", k));
}

// GRPO for all scenarios: preference steps need a reward model and general prompts, and neither is read
// without them; the cold start's synthetic additions go with a data file; a batch std needs std scaling.
void check_rl_all(const Deck& d, const RunConfig& c, int world) {
  const Stage stage = c.run.stage;
  if (stage == Stage::sft && c.sft.synthetic_examples > 0 && c.data.source != DataSource::files)
    fail_rule(d, "sft.synthetic_examples", "data.source",
              "synthetic_examples adds worked solutions to data.train_path's examples (source = files); with source = synthetic "
              "use [data] synthetic_examples");
  if (!c.grpo.adv_std_scale && c.grpo.adv_std_scope == AdvStdScope::batch)
    d.fail("grpo.adv_std_scope", "no std divides the advantages with " + d.describe("grpo.adv_std_scale") +
                                     "; set adv_std_scale = true or leave adv_std_scope = group");
  if (c.grpo.ratio == PolicyRatio::sequence && c.grpo.loss_agg != LossAgg::seq_mean_token_mean)
    fail_rule(d, "grpo.ratio", "grpo.loss_agg",
              "the sequence ratio (GSPO) averages each completion's objective over the completions: loss_agg = seq-mean-token-mean");
  if (c.grpo.routing_replay && c.model.dense)
    fail_rule(d, "grpo.routing_replay", "model.dense", "routing replay replays the experts of MoE layers: a dense model has none");
  if (stage != Stage::grpo) return;
  const std::int64_t steps = c.grpo.preference_steps, general = c.grpo.general_prompts;
  const bool helpful = !c.reward.helpfulness_model.empty(), harmless = !c.reward.harmlessness_model.empty();
  if (steps > 0 && !helpful && !harmless)
    d.fail("grpo.preference_steps",
           "preference steps need [reward] helpfulness_model or harmlessness_model (a reward_model stage checkpoint)");
  if (steps == 0 && (helpful || harmless))
    d.fail(helpful ? "reward.helpfulness_model" : "reward.harmlessness_model",
           "a reward model scores general prompts only in the last [grpo] preference_steps steps: set preference_steps > 0");
  if (steps > 0 && general == 0)
    fail_rule(d, "grpo.general_prompts", "grpo.preference_steps", "preference steps need general prompts (general_prompts > 0)");
  if (steps == 0 && general > 0)
    fail_rule(d, "grpo.general_prompts", "grpo.preference_steps", "general prompts are drawn only in preference steps (preference_steps > 0)");
  if (steps > c.run.max_steps)
    fail_rule(d, "grpo.preference_steps", "run.max_steps", "preference_steps must be at most max_steps");
  if (general >= c.grpo.prompts_per_step)
    fail_rule(d, "grpo.general_prompts", "grpo.prompts_per_step", "general_prompts must leave reasoning prompts (at most prompts_per_step - 1)");
  const std::int64_t dp = data_parallel(c, world);
  if (general % dp != 0)
    d.fail("grpo.general_prompts", concat("must be a multiple of the ", dp, " data-parallel replicas (each rank samples whole groups)"));
}

void check_inputs(const Deck& d, const RunConfig& c) {
  auto require = [&](std::string_view key, const std::string& path) {
    if (!path.empty() && !fs::exists(path)) d.fail(key, "no such file or directory");
  };
  for (const KeyDecl& k : deck_keys())
    if (k.type == KeyType::input_path) require(k.full_name(), d.get_string(k.full_name()));
  if (c.data.tokenizer != "byte") require("data.tokenizer", c.data.tokenizer);
  if (c.checkpoint.load != "latest") require("checkpoint.load", c.checkpoint.load);
  if (c.run.stage == Stage::import_hf) require("hf.path", c.hf.path);
}

bool holds_checkpoints(const fs::path& dir) {
  std::error_code ec;
  if (fs::exists(dir / "latest", ec)) return true;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename().string().starts_with("step-")) return true;
  return false;
}

// A run's identity: its stage and model. Anything else may change between a run and its restart.
bool is_identity_key(const KeyDecl& k) {
  return k.full_name() == "run.stage" || (k.section == "model" && k.key != "preset");
}

// Checkpoints already in the checkpoint directory must be this run's, unless the deck resumes them.
void check_output(const Deck& d, const RunConfig& c) {
  const fs::path out = c.run.output_dir;
  if (fs::exists(out) && !fs::is_directory(out)) d.fail("run.output_dir", "exists and is not a directory");
  const fs::path ckpt = checkpoint_dir(c);
  if (c.checkpoint.load == "latest" || !holds_checkpoints(ckpt)) return;
  const std::string_view key = c.checkpoint.dir.empty() ? "run.output_dir" : "checkpoint.dir";
  const std::string advice = " (expected a new directory, or [checkpoint] load = latest to resume that run)";
  const fs::path recorded = out / kResolvedDeckName;
  std::ifstream in(recorded);
  if (!in) d.fail(key, "holds checkpoints in " + ckpt.string() + " of another run, as no " + recorded.string() + " says otherwise" + advice);
  std::ostringstream text;
  text << in.rdbuf();
  std::map<std::string, std::string, std::less<>> theirs;
  for (const IniEntry& e : read_ini(text.str(), recorded.string()).entries) theirs[e.section + "." + e.key] = e.value;
  for (const KeyDecl& k : deck_keys()) {
    if (!is_identity_key(k)) continue;
    const auto it = theirs.find(k.full_name());
    const std::string mine = d.value_text(k.full_name());
    if (it == theirs.end() || it->second != mine)
      d.fail(key, concat("holds checkpoints in ", ckpt.string(), " of another run: its ", recorded.string(), " has [", k.section, "] ",
                         k.key, " = ", it == theirs.end() ? "(nothing)" : it->second, ", this deck ", mine, advice));
  }
}

// The layouts each stage runs. The Hugging Face conversions work on one rank (collectives over several
// would only repeat the work); the others split the model over a mesh, except reward_model, which scores
// with whole models.
void check_stage_layout(const Deck& d, const RunConfig& c, int world) {
  const Stage stage = c.run.stage;
  const std::string name(choice_word(stage));
  if ((stage == Stage::import_hf || stage == Stage::export_hf) && world != 1)
    d.fail("run.stage",
           "converts files on one rank; run it with a single rank (it was started on " + std::to_string(world) + ")");
  if (stage == Stage::self_check || stage == Stage::import_hf || stage == Stage::export_hf) return;  // no mesh
  const bool splits = stage != Stage::reward_model;
  if (c.parallel.pipeline > 1) {
    if (!splits)
      d.fail("parallel.pipeline", "pipeline parallelism runs in the pretrain, sft, grpo, evaluate and rejection_sampling "
                                  "stages; the " + name + " stage needs pipeline = 1");
    if (c.model.mtp_depth > 0) d.fail("model.mtp_depth", "pipeline parallelism needs mtp_depth = 0 (the MTP module "
                                                         "would need the first stage's embedding on the last stage)");
    if (c.model.tie_embeddings) d.fail("model.tie_embeddings", "pipeline parallelism keeps the embedding (first stage) and "
                                                               "the head (last stage) apart: set it to false");
  }
  if (!c.model.dense && c.parallel.expert != 1 && !splits)
    d.fail("parallel.expert", "expert parallelism runs in the pretrain, sft, grpo, evaluate and rejection_sampling "
                              "stages; the " + name + " stage needs expert = 1 (every rank holding every expert)");
  if (c.parallel.tensor != 1 && !splits)
    d.fail("parallel.tensor", "tensor parallelism runs in the pretrain, sft, grpo, evaluate and rejection_sampling "
                              "stages; the " + name + " stage scores with whole models and needs tensor = 1");
}

// What a stage's own settings need: a step count to train for, GRPO prompts in whole shares per
// replica, the reward model's pairs and data.
void check_stage_settings(const Deck& d, const RunConfig& c, int world) {
  const Stage stage = c.run.stage;
  if ((stage == Stage::pretrain || stage == Stage::grpo) && c.run.max_steps <= 0)
    d.fail("run.max_steps", concat(choice_word(stage), " needs a number of optimizer steps (> 0)"));
  const std::int64_t dp = data_parallel(c, world);
  if (stage == Stage::grpo && c.grpo.prompts_per_step % dp != 0)
    d.fail("grpo.prompts_per_step", concat("must be a multiple of the ", dp, " data-parallel replicas"));
  if (stage != Stage::reward_model) return;
  if (c.train.micro_batch % 2 != 0)
    d.fail("train.micro_batch",
           "the reward_model stage puts both sequences of a pair in one micro-batch: use an even number of rows");
  if (c.data.source != DataSource::synthetic)
    d.fail("data.source", "the reward_model stage trains on the synthetic world's preference pairs (use synthetic)");
}

}  // namespace

RunConfig validate_deck(const Deck& deck, int world_size) {
  R1_CHECK(world_size >= 1, "world size ", world_size);
  const RunConfig config = deck.config();
  check_layout(deck, config, world_size);
  check_model(deck, config);
  check_training(deck, config, world_size);
  check_stage(deck, config);
  check_rl_all(deck, config, world_size);
  check_inputs(deck, config);
  check_output(deck, config);
  check_stage_layout(deck, config, world_size);
  check_stage_settings(deck, config, world_size);
  return config;
}

}  // namespace r1
