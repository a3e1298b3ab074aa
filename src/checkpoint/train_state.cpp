#include "checkpoint/train_state.hpp"

#include <set>

#include "core/error.hpp"
#include "core/log.hpp"

namespace r1::ckpt {

namespace {
// A parameter-shaped tensor (master or moment) as the boxes of its global tensor that this rank holds.
void add_slices(std::vector<Slice>& out, const std::string& name, const Param& p, const Tensor& t) {
  for (const ShardPiece& piece : shard_pieces(p)) {
    const bool whole = piece.local_begin == 0 && (t.rank() == 0 || piece.local_end == t.dim(0));
    out.push_back(Slice{name, p.global_shape, piece.offset, whole ? t : t.slice(piece.local_begin, piece.local_end)});
  }
}

// The dtype the checkpoint keeps the moments in (its first exp_avg's; the run's own if it has none), said
// once in the log where it differs from the run's: the load converts them.
DType stored_moment_dtype(const std::filesystem::path& checkpoint, const AdamW& opt) {
  for (const TensorInfo& t : list_tensors(checkpoint)) {
    if (t.name.rfind("optim/exp_avg/", 0) != 0) continue;
    if (t.dtype != opt.moment_dtype())
      log_info("checkpoint: ", checkpoint.string(), " holds the AdamW moments in ", dtype_name(t.dtype),
               "; converted to this run's ", dtype_name(opt.moment_dtype()), " ([optim] moment_precision)");
    return t.dtype;
  }
  return opt.moment_dtype();
}
}  // namespace

LoadMode parse_load_mode(const std::string& s) {
  if (s == "weights") return LoadMode::weights;
  if (s == "full") return LoadMode::full;
  R1_FAIL(user, "checkpoint load mode '", s, "': expected weights or full");
}

std::string model_name(const Param& p) { return "model/" + p.name; }
std::string exp_avg_name(const Param& p) { return "optim/exp_avg/" + p.name; }
std::string exp_avg_sq_name(const Param& p) { return "optim/exp_avg_sq/" + p.name; }

std::vector<Slice> held_slices(const ParamStore& params, const AdamW::Moments* moments,
                               const std::function<bool(const Param&)>& include) {
  std::vector<Slice> out;
  const auto& all = params.all();
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Param& p = *all[i];
    if (include && !include(p)) continue;
    add_slices(out, model_name(p), p, p.master);
    if (moments && p.trainable) {
      add_slices(out, exp_avg_name(p), p, moments->exp_avg[i]);
      add_slices(out, exp_avg_sq_name(p), p, moments->exp_avg_sq[i]);
    }
  }
  return out;
}

void prepare_train_state(Checkpointer& ckpt, const ParamStore& params, const AdamW& opt) {
  const AdamW::Moments moments = opt.gather_moments();
  ckpt.prepare(held_slices(params, &moments, [&](const Param& p) { return opt.first_copy(p); }));
}

SaveReport save_train_state(Checkpointer& ckpt, Meta meta, const ParamStore& params, const AdamW& opt) {
  // Of the ranks holding the same slice of a tensor (its data-parallel, expert-data-parallel and, unless
  // it is split, tensor-parallel replicas), the first writes it: every global tensor is written once.
  meta.optimizer_state["steps_taken"] = opt.steps_taken();
  const AdamW::Moments moments = opt.gather_moments();
  return ckpt.save(meta, held_slices(params, &moments, [&](const Param& p) { return opt.first_copy(p); }));
}

Meta load_train_state(const std::filesystem::path& checkpoint, LoadMode mode, ParamStore& params, AdamW* opt,
                      const std::string& new_prefix) {
  R1_CHECK(mode == LoadMode::weights || opt != nullptr, "a full resume needs the optimizer");
  Meta meta = read_meta(checkpoint);
  AdamW::Moments moments;
  if (mode == LoadMode::full) moments = opt->moments_to_load(stored_moment_dtype(checkpoint, *opt));
  std::vector<Slice> wanted = held_slices(params, mode == LoadMode::full ? &moments : nullptr);
  if (!new_prefix.empty()) {
    std::set<std::string> held;
    for (const TensorInfo& t : list_tensors(checkpoint)) held.insert(t.name);
    std::size_t fresh = 0;
    std::erase_if(wanted, [&](const Slice& s) {
      const std::size_t cut = s.name.rfind('/');  // "model/<name>", "optim/exp_avg/<name>"
      const bool skip = s.name.compare(cut + 1, new_prefix.size(), new_prefix) == 0 && !held.count(s.name);
      fresh += skip;
      return skip;
    });
    if (fresh > 0)
      log_info("checkpoint: ", checkpoint.string(), " lacks ", fresh, " tensor(s) of the new ", new_prefix,
               "* parameters; they keep their initial values");
  }
  load(checkpoint, wanted);
  if (mode == LoadMode::full) opt->keep_loaded(moments);
  params.refresh_compute();
  if (mode == LoadMode::full) {
    const auto it = meta.optimizer_state.find("steps_taken");
    if (it == meta.optimizer_state.end() || !it->is_number_integer())
      R1_FAIL(io, "checkpoint ", checkpoint.string(), " has no optimizer steps_taken in its meta: it cannot be resumed");
    opt->set_steps_taken(it->get<std::int64_t>());
  }
  std::size_t extra = 0;
  for (const TensorInfo& t : list_tensors(checkpoint))
    if (t.name.rfind("model/", 0) == 0 && !params.contains(t.name.substr(6))) ++extra;
  if (extra > 0)
    log_info("checkpoint: ", checkpoint.string(), " holds ", extra, " model tensor(s) this model does not have; ignored");
  log_info("checkpoint: loaded ", mode == LoadMode::full ? "weights and optimizer state" : "weights", " from ",
           checkpoint.string(), " (step ", meta.step, ")");
  return meta;
}

}  // namespace r1::ckpt
