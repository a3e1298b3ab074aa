#include "deck/validate.hpp"

#include <fstream>
#include <map>
#include <sstream>

#include "core/error.hpp"
#include "deck/ini.hpp"
#include "parallel/expert_reach.hpp"
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

std::int64_t data_parallel(const Deck& d, int world) {
  return world / (d.get_int("parallel.tensor") * d.get_int("parallel.pipeline"));
}

void check_layout(const Deck& d, int world) {
  const std::int64_t tp = d.get_int("parallel.tensor"), pp = d.get_int("parallel.pipeline");
  const std::int64_t vs = d.get_int("parallel.virtual_stages"), data = d.get_int("parallel.data");
  if (world % (tp * pp) != 0)
    fail_rule(d, "parallel.tensor", "parallel.pipeline", concat("tensor x pipeline = ", tp * pp, " must divide the world size ", world));
  const std::int64_t dp = data_parallel(d, world);
  if (data != 0 && data != dp)
    d.fail("parallel.data", concat("must be world size ", world, " / (tensor x pipeline = ", tp * pp, ") = ", dp, ", or 0 for auto"));
  const std::string& schedule = d.get_string("parallel.schedule");
  if (schedule == "interleaved" && vs < 2)
    fail_rule(d, "parallel.schedule", "parallel.virtual_stages", "the interleaved schedule needs virtual_stages > 1");
  if (schedule != "interleaved" && vs > 1)
    fail_rule(d, "parallel.virtual_stages", "parallel.schedule", "virtual_stages > 1 needs schedule = interleaved");
  if (schedule == "dualpipe" && pp % 2 != 0)
    fail_rule(d, "parallel.schedule", "parallel.pipeline", "dualpipe needs an even number of pipeline stages");
  const std::int64_t layers = d.get_int("model.n_layers"), mtp = d.get_int("model.mtp_depth");
  if (parallel::split_layers(layers, mtp, pp * vs).empty()) {
    const std::string rule = concat("pipeline x virtual_stages = ", pp * vs, " must divide n_layers, or n_layers + 2 + mtp_depth = ",
                                    layers + 2 + mtp, " (embedding, head and MTP counted as layers) leaving each stage a layer");
    if (d.is_default("parallel.pipeline") && !d.is_default("parallel.virtual_stages"))
      fail_rule(d, "parallel.virtual_stages", "model.n_layers", rule);
    fail_rule(d, "parallel.pipeline", "model.n_layers", rule);
  }
  if (d.get_int("model.n_heads") % tp != 0) fail_rule(d, "parallel.tensor", "model.n_heads", "tensor must divide n_heads");
  // The other cuts of tensor parallelism: the vocabulary and the FFN hidden columns, into equal shares.
  const bool dense = d.get_bool("model.dense");
  const std::pair<const char*, std::int64_t> cuts[] = {
      {"model.vocab_size", d.get_int("model.vocab_size")},
      {"model.dense_inter_dim", dense || d.get_int("model.n_dense_layers") > 0 ? d.get_int("model.dense_inter_dim") : 0},
      {"model.moe_inter_dim", dense ? 0 : d.get_int("model.moe_inter_dim") * d.get_int("model.n_shared_experts")}};
  for (const auto& [key, n] : cuts)
    if (n % tp != 0)
      fail_rule(d, "parallel.tensor", key, concat("tensor = ", tp, " does not divide ", key, " (", n,
                                                  std::string_view(key) == "model.moe_inter_dim" ? " x n_shared_experts" : "",
                                                  "): tensor parallelism splits it into equal shares"));
  if (tp > 1 && d.get_bool("parallel.sequence_parallel")) {
    const std::int64_t tokens = d.get_int("train.micro_batch") * d.get_int("data.seq_len");
    if (tokens % tp != 0)
      fail_rule(d, "parallel.sequence_parallel", "data.seq_len",
                concat("sequence parallelism splits the micro_batch x seq_len = ", tokens,
                       " tokens of a micro-batch over tensor = ", tp, " ranks, so it must be a multiple of ", tp));
  }
  if (d.get_bool("model.dense")) return;  // no experts, so no expert layout
  const std::int64_t ep = d.get_int("parallel.expert");
  if (d.get_int("model.n_routed_experts") % ep != 0)
    fail_rule(d, "parallel.expert", "model.n_routed_experts", "expert must divide n_routed_experts");
  if ((dp * tp) % ep != 0)
    d.fail("parallel.expert", concat("must divide data x tensor = ", dp * tp, ", the ranks MoE layers spread experts over"));
  // Device-limited routing: group-limited routing bounds the EP ranks a token's experts sit on.
  const std::int64_t routed = d.get_int("model.n_routed_experts"), groups = d.get_int("model.n_expert_groups");
  const std::int64_t limited = d.get_int("model.n_limited_groups"), limit = d.get_int("parallel.max_expert_ranks");
  const std::int64_t reach = parallel::expert_ranks_per_token(routed, groups, limited, d.get_int("model.n_activated_experts"), ep);
  if (limit > 0 && routed % groups == 0 && reach > limit)
    d.fail("parallel.max_expert_ranks",
           concat("group-limited routing lets a token reach ", reach, " of the ", ep, " EP ranks (", limited, " of ", groups,
                  " expert groups of ", routed / groups, " experts, ", routed / ep, " experts per rank): make [model] n_expert_groups "
                  "a multiple of [parallel] expert and keep n_limited_groups <= ", limit));
}

void check_model(const Deck& d) {
  if (d.get_int("model.qk_rope_head_dim") % 2 != 0) d.fail("model.qk_rope_head_dim", "RoPE rotates pairs (expected an even number)");
  if (d.get_int("data.seq_len") > d.get_int("model.max_seq_len"))
    fail_rule(d, "data.seq_len", "model.max_seq_len", "seq_len must be at most max_seq_len");
  if (d.get_bool("model.dense")) return;  // the MoE keys do not apply
  if (d.get_int("model.n_dense_layers") > d.get_int("model.n_layers"))
    fail_rule(d, "model.n_dense_layers", "model.n_layers", "n_dense_layers must be at most n_layers");
  const std::int64_t routed = d.get_int("model.n_routed_experts"), active = d.get_int("model.n_activated_experts");
  const std::int64_t groups = d.get_int("model.n_expert_groups"), limited = d.get_int("model.n_limited_groups");
  if (active > routed)
    fail_rule(d, "model.n_activated_experts", "model.n_routed_experts", "n_activated_experts must be at most n_routed_experts");
  if (routed % groups != 0)
    fail_rule(d, "model.n_expert_groups", "model.n_routed_experts", "n_expert_groups must divide n_routed_experts");
  if (limited > groups)
    fail_rule(d, "model.n_limited_groups", "model.n_expert_groups", "n_limited_groups must be at most n_expert_groups");
  if (active > limited * (routed / groups))
    fail_rule(d, "model.n_activated_experts", "model.n_limited_groups",
              concat("n_activated_experts must be at most the ", limited * (routed / groups), " experts of the groups a token may use"));
}

void check_training(const Deck& d, int world) {
  const std::int64_t per_step = d.get_int("train.micro_batch") * data_parallel(d, world);
  if (d.get_int("train.global_batch") % per_step != 0)
    fail_rule(d, "train.global_batch", "train.micro_batch", concat("global_batch must be a multiple of micro_batch x data = ", per_step));
  if (d.get_float("optim.min_lr") > d.get_float("optim.lr")) fail_rule(d, "optim.min_lr", "optim.lr", "min_lr must be at most lr");
  const auto& profile = d.get_ints("log.profile_steps");
  if (!profile.empty() && (profile.size() != 2 || profile[0] > profile[1]))
    d.fail("log.profile_steps", "expected two steps, first <= last");
}

// What each stage cannot start without. A missing key the deck never mentions is reported on the
// [run] stage line, the one line that asked for it.
void check_stage(const Deck& d) {
  const std::string& stage = d.get_string("run.stage");
  auto require = [&](std::string_view key, std::string_view what, std::string_view alternative = {}) {
    if (!d.get_string(key).empty()) return;
    const auto dot = key.find('.');
    const std::string problem = concat("the ", stage, " stage needs [", key.substr(0, dot), "] ", key.substr(dot + 1), " (", what, ")",
                                       alternative);
    d.fail(d.is_default(key) ? "run.stage" : key, problem);
  };
  const bool files = d.get_string("data.source") == "files";
  if (files && (stage == "pretrain" || stage == "sft" || stage == "reward_model" || stage == "grpo" || stage == "rejection_sampling"))
    require("data.train_path", "training data", " or [data] source = synthetic");
  if (d.get_float("data.synthetic_worked_share") < 1 && (files || stage != "pretrain"))
    d.fail("data.synthetic_worked_share", concat("the share of worked solutions shapes the synthetic pretraining corpus: it needs [run] stage = "
                                                 "pretrain and [data] source = synthetic (here ", stage, ", ", d.get_string("data.source"), ")"));
  if (files && stage == "evaluate") require("data.eval_path", "evaluation data", " or [data] source = synthetic");
  if (stage == "grpo" || stage == "rejection_sampling" || stage == "evaluate" || stage == "export_hf")
    require("checkpoint.load", "a checkpoint path, or latest");
  if (stage == "import_hf" || stage == "export_hf") require("hf.path", "a Hugging Face model directory");
  if (stage == "evaluate")
    for (std::int64_t k : d.get_ints("evaluate.pass_k"))
      if (k > d.get_int("sampling.samples_per_prompt"))
        fail_rule(d, "evaluate.pass_k", "sampling.samples_per_prompt", concat("pass@", k, " needs samples_per_prompt >= ", k));
}

// GRPO for all scenarios: preference steps need a reward model and general prompts, and neither is read
// without them; the cold start's synthetic additions go with a data file.
void check_rl_all(const Deck& d, int world) {
  const std::string& stage = d.get_string("run.stage");
  if (stage == "sft" && d.get_int("sft.synthetic_examples") > 0 && d.get_string("data.source") != "files")
    fail_rule(d, "sft.synthetic_examples", "data.source",
              "synthetic_examples adds worked solutions to data.train_path's examples (source = files); with source = synthetic "
              "use [data] synthetic_examples");
  if (stage != "grpo") return;
  const std::int64_t steps = d.get_int("grpo.preference_steps"), general = d.get_int("grpo.general_prompts");
  const bool helpful = !d.get_string("reward.helpfulness_model").empty(), harmless = !d.get_string("reward.harmlessness_model").empty();
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
  if (steps > d.get_int("run.max_steps"))
    fail_rule(d, "grpo.preference_steps", "run.max_steps", "preference_steps must be at most max_steps");
  if (general >= d.get_int("grpo.prompts_per_step"))
    fail_rule(d, "grpo.general_prompts", "grpo.prompts_per_step", "general_prompts must leave reasoning prompts (at most prompts_per_step - 1)");
  const std::int64_t dp = data_parallel(d, world);
  if (general % dp != 0)
    d.fail("grpo.general_prompts", concat("must be a multiple of the ", dp, " data-parallel replicas (each rank samples whole groups)"));
}

void check_inputs(const Deck& d) {
  auto require = [&](std::string_view key, const std::string& path) {
    if (!path.empty() && !fs::exists(path)) d.fail(key, "no such file or directory");
  };
  for (const KeyDecl& k : deck_keys())
    if (k.type == KeyType::input_path) require(k.full_name(), d.get_string(k.full_name()));
  if (d.get_string("data.tokenizer") != "byte") require("data.tokenizer", d.get_string("data.tokenizer"));
  if (d.get_string("checkpoint.load") != "latest") require("checkpoint.load", d.get_string("checkpoint.load"));
  if (d.get_string("run.stage") == "import_hf") require("hf.path", d.get_string("hf.path"));
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
void check_output(const Deck& d) {
  const fs::path out = d.get_string("run.output_dir");
  if (fs::exists(out) && !fs::is_directory(out)) d.fail("run.output_dir", "exists and is not a directory");
  const fs::path ckpt = checkpoint_dir(d);
  if (d.get_string("checkpoint.load") == "latest" || !holds_checkpoints(ckpt)) return;
  const std::string_view key = d.get_string("checkpoint.dir").empty() ? "run.output_dir" : "checkpoint.dir";
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

}  // namespace

void validate_deck(const Deck& deck, int world_size) {
  R1_CHECK(world_size >= 1, "world size ", world_size);
  check_layout(deck, world_size);
  check_model(deck);
  check_training(deck, world_size);
  check_stage(deck);
  check_rl_all(deck, world_size);
  check_inputs(deck);
  check_output(deck);
}

}  // namespace r1
