#include "run/stage_env.hpp"

namespace r1 {

nlohmann::json layout_json(const StageEnv& env) {
  return {{"data", env.comms->dp->size()}, {"tensor", env.comms->tp->size()}, {"pipeline", env.comms->pp->size()},
          {"expert", env.comms->ep->size()}};
}

RunDir open_run_dir(const StageEnv& env, const std::string& stage) {
  const RunInfo info{.stage = stage, .deck_path = env.deck.file(), .resolved_deck = env.deck.resolved_text(),
                     .world_size = env.world, .layout = layout_json(env)};
  return RunDir(env.cfg.run.output_dir, info, env.rank);
}

}  // namespace r1
