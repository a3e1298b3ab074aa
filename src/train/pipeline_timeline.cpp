// TimelineLog: a rank's executed pipeline schedule as JSON lines.
#include "train/pipeline_timeline.hpp"

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "run/run_dir.hpp"

namespace r1 {
namespace {

nlohmann::json action_json(const PipelineAction& a) {
  const char* kind = a.kind == PipelineAction::Kind::forward ? "F" : a.kind == PipelineAction::Kind::backward ? "B" : "W";
  return {{"kind", kind}, {"micro", a.micro}, {"chunk", a.chunk}};
}

}  // namespace

TimelineLog::TimelineLog(const std::filesystem::path& path, int pp_rank, int replica)
    : path_(path), job_(utc_timestamp()), pp_rank_(pp_rank), replica_(replica) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  out_.open(path, std::ios::app);
  R1_REQUIRE(out_.good(), "[parallel] timeline: cannot write ", path.string(), ec ? ": " + ec.message() : std::string());
}

void TimelineLog::write(PipelineSchedule s, int stages, int virtual_stages, int micro_batches, const PipelineReport& report) {
  const nlohmann::json run = {{"job", job_},     {"run", runs_++},       {"schedule", choice_word(s)},
                              {"stages", stages}, {"pp_rank", pp_rank_}, {"replica", replica_},
                              {"virtual_stages", virtual_stages},        {"micro_batches", micro_batches},
                              {"split_weight", report.split_weight}};
  for (const TimelineEvent& e : report.timeline) {
    nlohmann::json line = run;
    if (e.step.op == PipelineStep::Op::compute && e.step.partner) {
      // An overlapped pair: a line per pass, each with the pair's interval and naming the other.
      for (const auto& [pass, other] : {std::pair{e.step.action, *e.step.partner}, std::pair{*e.step.partner, e.step.action}}) {
        nlohmann::json half = run;
        half.update(action_json(pass));
        half["paired_with"] = action_json(other);
        half["start_s"] = e.start_s;
        half["end_s"] = e.end_s;
        out_ << half.dump() << '\n';
      }
      continue;
    }
    if (e.step.op == PipelineStep::Op::compute) {
      line.update(action_json(e.step.action));
    } else {
      line["kind"] = "wait";
      line["peer"] = e.step.peer;
      if (e.step.sent) line["sent"] = action_json(*e.step.sent);
      if (e.step.received) line["received"] = action_json(*e.step.received);
    }
    line["start_s"] = e.start_s;
    line["end_s"] = e.end_s;
    out_ << line.dump() << '\n';
  }
  nlohmann::json summary = run;
  summary.update({{"kind", "run"}, {"busy_s", report.busy_s}, {"wall_s", report.wall_s}, {"pairs", report.pairs},
                  {"pair_switches", report.pair_switches},
                  {"bubble_fraction", report.bubble_fraction}, {"ideal_bubble", report.ideal_bubble}});
  out_ << summary.dump() << std::endl;
  R1_REQUIRE(out_.good(), "[parallel] timeline: cannot write ", path_.string());
}

std::filesystem::path timeline_path(const std::string& output_dir, int rank) {
  return std::filesystem::path(output_dir) / "pipeline_timeline" / ("rank-" + std::to_string(rank) + ".jsonl");
}

}  // namespace r1
