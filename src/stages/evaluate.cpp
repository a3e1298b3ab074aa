// The evaluate stage: R1's protocol on one checkpoint. k samples per prompt (temperature 0.6 and top-p 0.95
// unless the deck sets them), then pass@1 (mean correctness), unbiased pass@k, cons@k (majority vote),
// answer and format rates, language consistency and response length, per task and overall. Data parallel:
// each rank samples a contiguous share of the prompts; per-prompt sums are added up by global prompt index,
// so the report is the same on any number of ranks. Rank 0 writes <run.output_dir>/eval.json.
#include <cstdio>
#include <map>

#include "core/file_io.hpp"
#include "core/log.hpp"
#include "core/timer.hpp"
#include "data/problem_files.hpp"
#include "rl/evaluation.hpp"
#include "run/host_reduce.hpp"
#include "run/run_dir.hpp"
#include "stages/sampling_stage.hpp"

namespace r1 {

namespace {

struct EvalSet {
  std::string dataset;             // "synthetic-heldout", "gsm8k", "math"
  std::vector<Problem> problems;
  std::vector<std::string> tasks;  // per problem: its kind (synthetic) or the dataset
};

EvalSet eval_set(const RunConfig& cfg) {
  EvalSet s;
  const std::int64_t max_prompts = cfg.evaluate.max_prompts;
  if (cfg.data.source == DataSource::synthetic) {
    std::int64_t n = cfg.evaluate.synthetic_prompts;
    if (max_prompts > 0) n = std::min(n, max_prompts);
    s.dataset = "synthetic-heldout";
    const ProblemMix mix = problem_mix(cfg.data.synthetic_levels);
    s.problems = generate_problems(mix, n, static_cast<std::uint64_t>(cfg.run.seed), Split::heldout);
    for (const Problem& p : s.problems) s.tasks.push_back(task_name(p, mix));
  } else {
    ProblemFile f = load_problem_file(cfg.data.eval_path);
    s.dataset = f.dataset;
    s.problems = std::move(f.problems);
    if (max_prompts > 0 && static_cast<std::int64_t>(s.problems.size()) > max_prompts) s.problems.resize(static_cast<std::size_t>(max_prompts));
    s.tasks.assign(s.problems.size(), s.dataset);
  }
  return s;
}

std::string table_row(const std::string& name, const nlohmann::json& m, const std::vector<std::pair<std::string, std::string>>& columns) {
  char cell[64];
  std::snprintf(cell, sizeof cell, "%-18s %8lld", name.c_str(), static_cast<long long>(m["prompts"].get<std::int64_t>()));
  std::string row = cell;
  for (const auto& c : columns) {
    std::snprintf(cell, sizeof cell, " %9.4f", m[c.first].get<double>());
    row += cell;
  }
  return row;
}

}  // namespace

int run_evaluate(StageEnv& env) {
  const Deck& deck = env.deck;
  parallel::Communicator& dp = *env.comms->dp;
  Policy pol = load_policy(env, "evaluate");
  // R1's evaluation setting where the deck does not choose its own.
  const double temperature = deck.is_default("sampling.temperature") ? 0.6 : env.cfg.sampling.temperature;
  const double top_p = deck.is_default("sampling.top_p") ? 0.95 : env.cfg.sampling.top_p;
  pol.sampling.temperature = static_cast<float>(temperature);
  pol.sampling.top_p = static_cast<float>(top_p);
  validate(pol.sampling);
  const EvalSet set = eval_set(env.cfg);
  const std::int64_t n = pol.samples_per_prompt;
  const std::vector<std::int64_t>& ks = env.cfg.evaluate.pass_k;
  RunDir run = open_run_dir(env, "evaluate");
  log_info("evaluate: ", set.problems.size(), " prompts of ", set.dataset, " x ", n, " samples, temperature ", temperature, ", top-p ",
           top_p, ", at most ", pol.sampling.max_new_tokens, " new tokens");

  const Stopwatch clock;
  const Share share = rank_share(static_cast<std::int64_t>(set.problems.size()), dp.rank(), dp.size());
  std::vector<double> sums(set.problems.size() * PromptResult::kFields, 0.0);
  sample_in_chunks(pol, set.problems, share, "evaluate", [&](std::int64_t first, std::vector<Completion>& comps) {
    std::vector<std::vector<ScoredSample>> per_prompt;
    for (const Completion& c : comps) {
      const auto j = static_cast<std::size_t>(c.prompt_index);
      if (per_prompt.size() <= j) per_prompt.resize(j + 1);
      per_prompt[j].push_back(score_sample(response_text(c, *pol.format), set.problems[static_cast<std::size_t>(first) + j],
                                           static_cast<std::int64_t>(c.tokens.size()), c.finished_by == FinishReason::length));
    }
    for (std::size_t j = 0; j < per_prompt.size(); ++j)
      reduce_prompt(per_prompt[j]).to(&sums[(static_cast<std::size_t>(first) + j) * PromptResult::kFields]);
  });
  // Every prompt's sums come from the one rank that sampled it (the others add zeros), so the merged
  // values do not depend on the layout.
  sum_over(dp, env.ctx, sums);

  if (env.rank == 0) {
    std::vector<PromptResult> all;
    std::map<std::string, std::vector<PromptResult>> by_task;
    for (std::size_t i = 0; i < set.problems.size(); ++i) {
      all.push_back(PromptResult::from(&sums[i * PromptResult::kFields]));
      by_task[set.tasks[i]].push_back(all.back());
    }
    nlohmann::json report = {
        {"stage", "evaluate"},
        {"checkpoint", pol.checkpoint.string()},
        {"checkpoint_step", pol.step},
        {"dataset", set.dataset},
        {"data_path", set.dataset == "synthetic-heldout" ? "" : env.cfg.data.eval_path},
        {"samples_per_prompt", n},
        {"pass_k", ks},
        {"sampling", {{"temperature", temperature}, {"top_p", top_p}, {"top_k", pol.sampling.top_k},
                      {"max_new_tokens", pol.sampling.max_new_tokens}, {"seed", pol.sampling.seed},
                      {"template", std::string(chat_template_name(pol.format->kind()))}}},
        {"overall", summarize(all, n, ks)},
        {"tasks", nlohmann::json::object()}};
    for (const auto& [task, results] : by_task) report["tasks"][task] = summarize(results, n, ks);
    const std::string path = run.path() + "/eval.json";
    write_file_atomic(path, report.dump(2) + "\n");

    // (report key, column title)
    std::vector<std::pair<std::string, std::string>> columns{{"pass@1", "pass@1"}};
    for (std::int64_t k : ks)
      if (k != 1) columns.emplace_back(detail::concat("pass@", k), detail::concat("pass@", k));
    columns.emplace_back(detail::concat("cons@", n), detail::concat("cons@", n));
    columns.insert(columns.end(), {{"answer_rate", "answered"}, {"format_rate", "format"}, {"language_consistency", "language"},
                                   {"response_length_mean", "length"}});
    std::string header = "task                prompts";
    for (const auto& c : columns) {
      char cell[32];
      std::snprintf(cell, sizeof cell, " %9s", c.second.c_str());
      header += cell;
    }
    log_info(header);
    for (const auto& t : report["tasks"].items()) log_info(table_row(t.key(), t.value(), columns));
    log_info(table_row("overall", report["overall"], columns));
    nlohmann::json rec = report["overall"];
    rec["step"] = pol.step;
    rec["evaluate_s"] = clock.seconds();
    run.metrics().write(rec);
    log_info("evaluate: wrote ", path, " in ", format_duration(clock.seconds()));
  }
  return 0;
}

}  // namespace r1
