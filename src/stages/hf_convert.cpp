// The import_hf and export_hf stages: Hugging Face checkpoints in and out of r1hpc's sharded checkpoints.
#include <nlohmann/json.hpp>

#include "checkpoint/hf_import.hpp"
#include "checkpoint/train_state.hpp"
#include "core/error.hpp"
#include "core/file_io.hpp"
#include "core/log.hpp"
#include "deck/validate.hpp"
#include "model/model.hpp"
#include "stages/stage.hpp"

namespace r1 {

namespace fs = std::filesystem;

namespace {

// The [model] section of a deck, so a later phase can name it as its [model] preset.
std::string model_section(const Deck& d, const std::string& hf_path) {
  std::string text = "# The model imported by import_hf from " + hf_path + "\n[model]\n";
  for (const KeyDecl& k : deck_keys())
    if (k.section == "model" && k.key != "preset") text += std::string(k.key) + " = " + d.value_text(k.full_name()) + "\n";
  return text;
}

// The checkpoint export_hf reads: a step directory, a checkpoints directory (its newest), or `latest` of this run.
fs::path checkpoint_to_export(const Deck& deck, const RunConfig& run_config) {
  const std::string& load = run_config.checkpoint.load;
  const fs::path dir = load == "latest" ? checkpoint_dir(run_config) : fs::path(load);
  if (fs::exists(dir / "index.h5")) return dir;
  if (auto l = ckpt::latest(dir)) return *l;
  deck.fail("checkpoint.load", "is neither a checkpoint (no index.h5) nor a directory with a `latest` checkpoint (" +
                                   dir.string() + ")");
}

bool is_empty_dir(const fs::path& p) { return !fs::exists(p) || (fs::is_directory(p) && fs::is_empty(p)); }

}  // namespace

// Both stages convert files on the one rank validate_deck allows them.
int run_import_hf(const Deck& deck, const RunConfig& run_config, int rank, int world) {
  const fs::path dir = run_config.hf.path;
  const fs::path config_file = dir / "config.json";
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(read_file(config_file.string()));
  } catch (const nlohmann::json::exception& e) {
    R1_FAIL(user, config_file.string(), ": not valid JSON: ", e.what());
  }
  // The deck with the HF model's [model] keys: range checks and the rules between keys apply (a config.json
  // whose shape r1hpc cannot build is a user error), and the checkpoint records the real model.
  std::vector<std::string> overrides = hf::model_overrides(config, config_file.string());
  // transformers saves DeepSeek-V3 without the MTP layers its config.json names: drop them, or start them fresh.
  const std::int64_t absent = hf::absent_mtp_layers(dir, config);
  const bool fresh_mtp = absent > 0 && run_config.hf.missing_mtp == "init";
  if (absent > 0)
    log_warn("import_hf: ", config_file.string(), " names ", absent, " MTP layer(s) (num_nextn_predict_layers) but ", dir.string(),
             " holds no tensor of them; ", fresh_mtp ? "they are initialised fresh (run.seed, model.init_std)"
                                                    : "importing without MTP (model.mtp_depth = 0; [hf] missing_mtp = init starts them fresh)");
  if (absent > 0 && !fresh_mtp) overrides.push_back("model.mtp_depth=0");
  const Deck imported = Deck::parse(deck.resolved_text(), deck.file(), overrides);
  const ModelConfig cfg = validate_model(imported);
  ParamStore params(kernels::Context::cpu(), DType::f32);
  const Model model(cfg, params);
  if (fresh_mtp) params.initialize(static_cast<std::uint64_t>(run_config.run.seed), cfg.init_std);
  hf::import_weights(dir, cfg, params, fresh_mtp);

  const nlohmann::json layout = {{"data", 1}, {"tensor", 1}, {"pipeline", 1}, {"expert", 1}};
  RunInfo info{.stage = "import_hf", .deck_path = deck.file(), .resolved_deck = imported.resolved_text(), .world_size = world,
               .layout = layout};
  RunDir run(run_config.run.output_dir, info, rank);
  const fs::path model_deck = fs::path(run.path()) / "model.deck";
  write_file_atomic(model_deck.string(), model_section(imported, run_config.hf.path));

  ckpt::Checkpointer checkpointer(checkpoint_dir(run_config), MPI_COMM_SELF, run_config.checkpoint.keep_last, false);
  ckpt::Meta meta;
  meta.stage = "import_hf";
  meta.step = 0;
  meta.deck = imported.resolved_text();
  meta.parent = fs::absolute(dir).lexically_normal().string();
  meta.layout = layout;
  const ckpt::SaveReport report = checkpointer.save(meta, ckpt::held_slices(params, nullptr));
  log_info("import_hf: ", describe_model(cfg), " from ", dir.string(), " -> ", report.path.string(), "; its [model] keys are in ",
           model_deck.string(), " (a later phase can name it as [model] preset)");
  return 0;
}

int run_export_hf(const Deck& deck, const RunConfig& run_config, int rank, int world) {
  const fs::path out = run_config.hf.path;
  const bool replace = !is_empty_dir(out);
  if (replace && !run_config.hf.overwrite)
    deck.fail("hf.path", "is not an empty directory; set [hf] overwrite = true to replace the model files in it");
  const fs::path checkpoint = checkpoint_to_export(deck, run_config);
  const ckpt::Meta meta = ckpt::read_meta(checkpoint);
  // The model is the checkpoint's own (the deck that wrote it), not this deck's [model] section.
  const Deck source = Deck::model_of(meta.deck, (checkpoint / "index.h5").string());
  const ModelConfig cfg = source.config().model;
  ParamStore params(kernels::Context::cpu(), DType::f32);
  const Model model(cfg, params);
  ckpt::load_train_state(checkpoint, ckpt::LoadMode::weights, params, nullptr);

  // Only now that the checkpoint has loaded: stale shards of an earlier export would sit beside the new ones.
  if (replace)
    for (const auto& entry : fs::directory_iterator(out)) {
      const std::string name = entry.path().filename().string();
      if (name == "config.json" || name == "model.safetensors.index.json" ||
          (name.starts_with("model") && name.ends_with(".safetensors")))
        fs::remove(entry.path());
    }
  const nlohmann::json layout = {{"data", 1}, {"tensor", 1}, {"pipeline", 1}, {"expert", 1}};
  RunDir run(run_config.run.output_dir, RunInfo{.stage = "export_hf", .deck_path = deck.file(),
                                                .resolved_deck = deck.resolved_text(), .world_size = world,
                                                .layout = layout},
             rank);
  const hf::ExportOptions options{.dtype = run_config.hf.dtype,
                                  .max_shard_bytes = static_cast<std::uint64_t>(run_config.hf.max_shard_bytes)};
  const auto files = hf::export_weights(params, cfg, out, options);
  log_info("export_hf: ", describe_model(cfg), " from ", checkpoint.string(), " (stage ", meta.stage, ", step ", meta.step,
           ") -> ", out.string(), " as ", options.dtype, ", ", files.size(), " file(s)");
  return 0;
}

}  // namespace r1
