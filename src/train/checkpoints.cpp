#include "train/checkpoints.hpp"

#include "checkpoint/train_state.hpp"
#include "checkpoint/verify.hpp"
#include "core/log.hpp"
#include "run/signals.hpp"

namespace r1 {

namespace {
// What [checkpoint] load names: nothing, this run's newest checkpoint (`latest`: a restart resumes
// everything; a first start finds none and starts fresh), or another checkpoint (a step directory, or a
// checkpoints directory whose newest is taken) loaded as load_mode says.
struct StartPoint {
  std::filesystem::path path;  // empty: from scratch
  ckpt::LoadMode mode = ckpt::LoadMode::weights;
  bool same_run = false;
};
StartPoint start_point(const Deck& deck, const RunConfig& cfg) {
  const std::string& load = cfg.checkpoint.load;
  StartPoint sp;
  if (load.empty()) return sp;
  if (load == "latest") {
    // This run's own newest checkpoint; a damaged one (a power cut after its commit) is passed over for
    // the previous one, which continues the same run bit-identically, only from an earlier step.
    if (auto l = ckpt::latest_intact(checkpoint_dir(cfg))) sp = {*l, ckpt::LoadMode::full, true};
    return sp;
  }
  std::filesystem::path p(load);
  if (!std::filesystem::exists(p / "index.h5")) {
    auto l = ckpt::latest(p);
    if (!l) deck.fail("checkpoint.load", "is neither a checkpoint (no index.h5) nor a directory with a `latest` checkpoint");
    p = *l;
  }
  sp.path = p;
  sp.mode = ckpt::parse_load_mode(cfg.checkpoint.load_mode);
  return sp;
}
}  // namespace

Resumed resume_from_deck(const Deck& deck, const RunConfig& cfg, const std::string& stage, ParamStore& params, AdamW& opt,
                         const std::string& new_prefix) {
  const StartPoint start = start_point(deck, cfg);
  Resumed r;
  if (start.path.empty()) return r;
  const ckpt::Meta m = ckpt::load_train_state(start.path, start.mode, params, start.mode == ckpt::LoadMode::full ? &opt : nullptr,
                                              new_prefix);
  r.loaded = start.path;
  r.data_state = m.data_state;
  if (start.same_run) {
    r.first_step = m.step + 1;
    r.parent = m.parent;
  } else {
    r.parent = std::filesystem::absolute(start.path).lexically_normal().string();
    if (start.mode == ckpt::LoadMode::full) r.first_step = m.step + 1;
  }
  log_info(stage, ": ", start.same_run ? "resuming this run from " : "starting from ", start.path.string(), " (step ", m.step,
           ", ", start.mode == ckpt::LoadMode::full ? "weights, optimizer and data position" : "weights only", ")");
  return r;
}

std::int64_t Resumed::tokens_consumed() const {
  return first_step > 1 && data_state.is_object() ? data_state.value("tokens_consumed", std::int64_t{0}) : 0;
}

std::filesystem::path weights_checkpoint(const Deck& deck, const RunConfig& cfg) { return start_point(deck, cfg).path; }

StageCheckpoints::StageCheckpoints(const Deck& deck, const RunConfig& cfg, parallel::Communicator& world, std::string stage, std::string parent,
                                   nlohmann::json layout, ParamStore& params, AdamW& opt)
    : world_(world.host_comm()), params_(params), opt_(opt),
      ckpt_(std::make_unique<ckpt::Checkpointer>(checkpoint_dir(cfg), world_, cfg.checkpoint.keep_last,
                                                 cfg.checkpoint.async)),
      every_(cfg.checkpoint.every_steps),
      time_limit_s_(cfg.run.time_limit_minutes * 60.0) {
  meta_.stage = std::move(stage);
  meta_.deck = deck.resolved_text();
  meta_.parent = std::move(parent);
  meta_.layout = std::move(layout);
  meta_.rng_state = {{"seed", cfg.run.seed},
                     {"note", "counter-based: every random draw is a function of (seed, stream, index)"}};
  install_stop_handlers();
  // Host copies for saves made now, not at the first save: an asynchronous save blocks training only for
  // its copy, and on a GPU pinning the staging memory costs seconds per 10 GB.
  if (cfg.checkpoint.async || params.context().is_cuda()) ckpt::prepare_train_state(*ckpt_, params, opt);
}

void StageCheckpoints::save(std::int64_t step, std::int64_t tokens, const nlohmann::json& data_state) {
  ckpt::Meta meta = meta_;
  meta.step = step;
  meta.tokens = tokens;
  meta.data_state = data_state;
  const ckpt::SaveReport rep = ckpt::save_train_state(*ckpt_, meta, params_, opt_);
  if (rep.async)  // synchronous saves are reported by the checkpointer when they commit
    log_info("checkpoint: step ", step, " copied to the host in ", static_cast<int>(rep.blocking_s * 1000), " ms; writing ",
             rep.path.string(), " in the background");
}

bool StageCheckpoints::after_step(std::int64_t step, std::int64_t last, std::int64_t tokens, const nlohmann::json& data_state) {
  if (time_limit_s_ > 0 && clock_.seconds() > time_limit_s_) request_stop();
  // Every rank agrees at this step boundary, so all of them save and stop together.
  if (step < last && agree_on_stop(world_)) {
    save(step, tokens, data_state);
    ckpt_->finish();
    log_info(meta_.stage, ": stopped at step ", step, " on request (signal or [run] time_limit_minutes); checkpointed, exit ",
             kExitRequeue, " asks the job script to requeue");
    return true;
  }
  if (step == last || (every_ > 0 && step % every_ == 0)) save(step, tokens, data_state);
  return false;
}

void StageCheckpoints::finish() { ckpt_->finish(); }

void StageCheckpoints::before_update() { ckpt_->wait_for_device_copies(); }

}  // namespace r1
