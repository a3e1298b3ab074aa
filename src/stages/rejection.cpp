// The rejection_sampling stage (R1's ~600k reasoning + ~200k non-reasoning SFT set): k samples per
// train-split prompt from a checkpoint, judged by rl/rejection.hpp (rule-based verifier, format, length,
// language, repetition, duplicates, a per-prompt cap), plus the world's non-reasoning examples (answers
// without a chain of thought) at a deck ratio. Each rank samples a contiguous share of the prompts into its
// own part file; rank 0 concatenates the parts in rank order (= global prompt order), appends the
// non-reasoning rows and writes the JSONL atomically, so the dataset is the same on any number of ranks.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/file_io.hpp"
#include "core/log.hpp"
#include "core/timer.hpp"
#include "data/problem_files.hpp"
#include "data/world_text.hpp"
#include "rl/rejection.hpp"
#include "rl/rewards.hpp"
#include "run/host_reduce.hpp"
#include "run/run_dir.hpp"
#include "stages/sampling_stage.hpp"

namespace r1 {

namespace {

struct PromptSet {
  std::string source;  // "synthetic" or the dataset ("gsm8k", "math")
  std::vector<Problem> problems;
};

PromptSet prompt_set(const RunConfig& cfg) {
  if (cfg.data.source == DataSource::synthetic)
    return {"synthetic", generate_problems(problem_mix(cfg.data.synthetic_levels), cfg.data.synthetic_examples,
                                           static_cast<std::uint64_t>(cfg.run.seed), Split::train)};
  ProblemFile f = load_problem_file(cfg.data.train_path);
  return {f.dataset, std::move(f.problems)};
}

std::string part_path(const std::string& out, int rank) {
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, ".part-%05d", rank);
  return out + suffix;
}

}  // namespace

int run_rejection_sampling(StageEnv& env) {
  parallel::Communicator& dp = *env.comms->dp;
  const Policy pol = load_policy(env, "rejection_sampling");
  validate(pol.sampling);
  const RejectionConfig& rc = env.cfg.rejection;
  const RewardWeights weights{.accuracy = env.cfg.reward.accuracy_weight,
                              .format = env.cfg.reward.format_weight,
                              .language = env.cfg.reward.language_weight};
  const double non_reasoning_fraction = env.cfg.rejection.non_reasoning_fraction;
  const PromptSet set = prompt_set(env.cfg);
  RunDir run = open_run_dir(env, "rejection_sampling");
  const std::string out = env.cfg.rejection.output_path.empty() ? run.path() + "/sft.jsonl" : env.cfg.rejection.output_path;
  if (env.rank == 0) std::filesystem::create_directories(std::filesystem::absolute(out).parent_path());
  dp.barrier();  // the output directory exists before any rank opens its part file there
  log_info("rejection_sampling: ", set.problems.size(), " ", set.source, " train prompts x ", pol.samples_per_prompt,
           " samples, keeping at most ", rc.keep_per_prompt, " per prompt, into ", out);

  const Stopwatch clock;
  const Share share = rank_share(static_cast<std::int64_t>(set.problems.size()), dp.rank(), dp.size());
  const std::string part = part_path(out, dp.rank());
  // Under tensor and pipeline parallelism the TP ranks and the stages of a replica sample the same
  // completions: the first stage's TP rank 0 writes them.
  const bool writes = env.comms->tp->rank() == 0 && env.comms->pp->rank() == 0;
  std::ofstream part_file;
  if (writes) {
    part_file.open(part, std::ios::binary | std::ios::trunc);
    if (!part_file) R1_FAIL(io, part, ": cannot open for writing");
  }
  // Per verdict, then prompts with an accepted sample, then generated tokens.
  std::vector<double> counts(kAllVerdicts.size() + 2, 0.0);
  sample_in_chunks(pol, set.problems, share, "rejection_sampling", [&](std::int64_t first, std::vector<Completion>& comps) {
    std::vector<std::vector<Candidate>> per_prompt;
    for (const Completion& c : comps) {
      const auto j = static_cast<std::size_t>(c.prompt_index);
      if (per_prompt.size() <= j) per_prompt.resize(j + 1);
      per_prompt[j].push_back({response_text(c, *pol.format), static_cast<std::int64_t>(c.tokens.size()), c.finished_by == FinishReason::length});
      counts.back() += static_cast<double>(c.tokens.size());
    }
    for (std::size_t j = 0; j < per_prompt.size(); ++j) {
      const Problem& p = set.problems[static_cast<std::size_t>(first) + j];
      const std::vector<Verdict> verdicts = judge_samples(per_prompt[j], p, rc);
      bool any = false;
      for (std::size_t s = 0; s < verdicts.size(); ++s) {
        counts[static_cast<std::size_t>(verdicts[s])] += 1;
        if (verdicts[s] != Verdict::accepted) continue;
        any = true;
        const Candidate& c = per_prompt[j][s];
        const Rewards r = score_completion(c.response, p, weights, c.tokens, c.truncated);
        const std::string source = set.source == "synthetic" ? detail::concat("synthetic/", problem_kind_name(p.kind)) : set.source;
        if (writes)
          part_file << sft_row(p.prompt, c.response,
                               {{"source", source}, {"prompt_id", p.id}, {"sample", s}, {"checkpoint", pol.checkpoint.string()},
                                {"reward", r.total}, {"answer", p.answer}, {"language", language_name(p.language)}});
      }
      counts[kAllVerdicts.size()] += any;
    }
  });
  if (writes) {
    part_file.close();
    if (!part_file) R1_FAIL(io, part, ": write failed (disk full?)");
  }
  sum_over(dp, env.ctx, counts);
  dp.barrier();  // every part file is complete before rank 0 reads them

  if (env.rank == 0) {
    const auto accepted = static_cast<std::int64_t>(counts[static_cast<std::size_t>(Verdict::accepted)]);
    const std::int64_t non_reasoning = non_reasoning_count(accepted, non_reasoning_fraction);
    std::ostringstream data;
    for (int r = 0; r < dp.size(); ++r) {
      data << read_file(part_path(out, r));
      std::filesystem::remove(part_path(out, r));
    }
    // The world's non-reasoning examples answer directly: no chain of thought for trivial queries.
    const std::vector<TextExample> texts = generate_text_examples(non_reasoning, static_cast<std::uint64_t>(env.cfg.run.seed));
    for (std::size_t i = 0; i < texts.size(); ++i)
      data << sft_row(texts[i].prompt, texts[i].response,
                      {{"source", "synthetic_text/" + texts[i].kind}, {"prompt_id", i}, {"sample", nullptr}, {"checkpoint", nullptr},
                       {"reward", nullptr}, {"language", language_name(texts[i].language)}});
    write_file_atomic(out, data.str());

    double samples = 0;
    for (std::size_t v = 0; v < kAllVerdicts.size(); ++v) samples += counts[v];
    nlohmann::json verdicts = nlohmann::json::object(), rates = nlohmann::json::object();
    for (Verdict v : kAllVerdicts) {
      verdicts[verdict_name(v)] = static_cast<std::int64_t>(counts[static_cast<std::size_t>(v)]);
      rates[verdict_name(v)] = samples > 0 ? counts[static_cast<std::size_t>(v)] / samples : 0.0;
    }
    const nlohmann::json summary = {
        {"stage", "rejection_sampling"},
        {"checkpoint", pol.checkpoint.string()},
        {"checkpoint_step", pol.step},
        {"output_path", std::filesystem::absolute(out).lexically_normal().string()},
        {"source", set.source},
        {"prompts", set.problems.size()},
        {"samples_per_prompt", pol.samples_per_prompt},
        {"samples", static_cast<std::int64_t>(samples)},
        {"prompts_with_accepted", static_cast<std::int64_t>(counts[kAllVerdicts.size()])},
        {"reasoning_rows", accepted},
        {"non_reasoning_rows", non_reasoning},
        {"non_reasoning_fraction", non_reasoning_fraction},
        {"rows", accepted + non_reasoning},
        {"verdicts", verdicts},
        {"rates", rates},
        {"generated_tokens", static_cast<std::int64_t>(counts.back())}};
    write_file_atomic(run.path() + "/rejection.json", summary.dump(2) + "\n");
    nlohmann::json rec = {{"step", pol.step}, {"samples", summary["samples"]}, {"rows", summary["rows"]}, {"rejection_s", clock.seconds()}};
    for (Verdict v : kAllVerdicts) rec[std::string("rate_") + verdict_name(v)] = rates[verdict_name(v)];
    run.metrics().write(rec);
    std::string by_reason;
    for (Verdict v : kAllVerdicts)
      by_reason += detail::concat(by_reason.empty() ? "" : ", ", verdict_name(v), " ", verdicts[verdict_name(v)].get<std::int64_t>());
    log_info("rejection_sampling: ", static_cast<std::int64_t>(samples), " samples: ", by_reason);
    log_info("rejection_sampling: wrote ", accepted, " reasoning + ", non_reasoning, " non-reasoning rows to ", out, " in ",
             format_duration(clock.seconds()));
  }
  return 0;
}

}  // namespace r1
