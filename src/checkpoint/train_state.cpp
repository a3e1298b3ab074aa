#include "checkpoint/train_state.hpp"

#include <set>

#include "core/error.hpp"
#include "core/log.hpp"

namespace r1::ckpt {

namespace {
Slice whole(std::string name, const Tensor& t) {
  return Slice{std::move(name), t.shape(), std::vector<std::int64_t>(static_cast<std::size_t>(t.rank()), 0), t};
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

std::vector<Slice> replicated_slices(const ParamStore& params, const AdamW* opt) {
  std::vector<Slice> out;
  const auto& all = params.all();
  for (std::size_t i = 0; i < all.size(); ++i) {
    const Param& p = *all[i];
    out.push_back(whole(model_name(p), p.master));
    if (opt && p.trainable) {
      out.push_back(whole(exp_avg_name(p), opt->exp_avg()[i]));
      out.push_back(whole(exp_avg_sq_name(p), opt->exp_avg_sq()[i]));
    }
  }
  return out;
}

SaveReport save_train_state(Checkpointer& ckpt, Meta meta, const ParamStore& params, const AdamW& opt) {
  // Data parallel: every rank holds a full copy, so the lowest (rank 0) writes and the others only take
  // part in the collective.
  MPI_Comm comm = ckpt.comm();
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  const int writer = lowest_full_copy_rank(comm, true);
  meta.optimizer_state["steps_taken"] = opt.steps_taken();
  return ckpt.save(meta, rank == writer ? replicated_slices(params, &opt) : std::vector<Slice>{});
}

Meta load_train_state(const std::filesystem::path& checkpoint, LoadMode mode, ParamStore& params, AdamW* opt,
                      const std::string& new_prefix) {
  R1_CHECK(mode == LoadMode::weights || opt != nullptr, "a full resume needs the optimizer");
  Meta meta = read_meta(checkpoint);
  std::vector<Slice> wanted = replicated_slices(params, mode == LoadMode::full ? opt : nullptr);
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
