#include "checkpoint/verify.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>

#include "checkpoint/checkpoint.hpp"
#include "checkpoint/h5.hpp"
#include "checkpoint/index_file.hpp"
#include "checkpoint/integrity.hpp"
#include "checkpoint/isolate.hpp"
#include "checkpoint/meta_checksums.hpp"
#include "core/error.hpp"
#include "core/log.hpp"

namespace fs = std::filesystem;

namespace r1::ckpt {

namespace {

const std::regex kShardFile{R"(shard-\d{5}\.h5)"};

struct Walk {
  const fs::path& checkpoint;
  VerifyDepth depth;
  const Progress& progress;
  std::map<std::string, h5::Id> shards;
  std::string tensor_map;
  VerifyResult result;
};

hid_t open_shard(Walk& w, const std::string& file, const std::string& where) {
  if (!std::regex_match(file, kShardFile)) R1_FAIL(io, where, ": its map names '", file, "', not a shard file (damaged)");
  auto it = w.shards.find(file);
  if (it != w.shards.end()) return it->second.get();
  const fs::path shard = w.checkpoint / file;
  if (!fs::exists(shard)) R1_FAIL(io, where, ": its shard ", shard.string(), " is missing");
  w.progress(shard.string());
  h5::Id f(H5Fopen(shard.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  if (!f.ok()) R1_FAIL(io, where, ": shard ", shard.string(), " cannot be opened (truncated or not HDF5): ", h5::error_text());
  return w.shards.emplace(file, std::move(f)).first->second.get();
}

// One box's source dataset: its shape and type agree with the map, its chunk index can be walked, and in
// full its data reads back (Fletcher32) and is finite.
void check_box(Walk& w, const index_file::Box& box, DType dtype, const std::string& where) {
  const fs::path shard = w.checkpoint / box.file;
  const hid_t file = open_shard(w, box.file, where);
  h5::Id src(H5Dopen2(file, box.dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!src.ok()) R1_FAIL(io, where, ": shard ", shard.string(), " has no dataset ", box.dataset, ": ", h5::error_text());
  const Shape shape = index_file::dataset_shape(src.get());
  if (!(shape == Shape(box.count.begin(), box.count.end())))
    R1_FAIL(io, where, ": dataset ", box.dataset, " of shard ", shard.string(), " is ", shape.str(), ", the map says ",
            nlohmann::json(box.count).dump());
  h5::Id type(H5Dget_type(src.get()), H5Tclose);
  if (!type.ok() || H5Tget_size(type.get()) != dtype_size(dtype))
    R1_FAIL(io, where, ": dataset ", box.dataset, " of shard ", shard.string(), " does not hold ", dtype_name(dtype));
  if (w.depth == VerifyDepth::structure) {
    hsize_t chunks = 0;
    const h5::Id space(H5Dget_space(src.get()), H5Sclose);
    if (H5Dget_num_chunks(src.get(), space.get(), &chunks) < 0)
      R1_FAIL(io, where, ": the chunk index of ", box.dataset, " in shard ", shard.string(), " is damaged: ", h5::error_text());
    return;
  }
  Tensor data = Tensor::host(shape, dtype);
  if (H5Dread(src.get(), h5::mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.raw()) < 0)
    R1_FAIL(io, where, ": reading shard ", shard.string(), " failed (Fletcher32 checksum mismatch or I/O error): ", h5::error_text());
  w.result.bytes += static_cast<std::int64_t>(data.nbytes());
  const std::int64_t bad = first_non_finite(data);
  if (bad >= 0)
    R1_FAIL(io, where, ": dataset ", box.dataset, " of shard ", shard.string(), " holds ", non_finite_kind(data, bad),
            " (element ", bad, ")");
}

void check_tensor(Walk& w, hid_t index, const std::string& name) {
  const std::string where = detail::concat((w.checkpoint / "index.h5").string(), ": tensor ", name);
  h5::Id ds(H5Dopen2(index, name.c_str(), H5P_DEFAULT), H5Dclose);
  if (!ds.ok()) R1_FAIL(io, where, ": cannot open: ", h5::error_text());
  const Shape global = index_file::dataset_shape(ds.get());
  const std::string dtype_text = h5::read_string_attr(ds.get(), "dtype", where);
  DType dtype = DType::f32;
  try {
    dtype = h5::parse_dtype(dtype_text);
  } catch (const Error&) {
    R1_FAIL(io, where, ": its dtype attribute '", dtype_text, "' names no dtype (damaged)");
  }
  std::vector<std::int64_t> dims;
  for (int d = 0; d < global.rank(); ++d) dims.push_back(global[d]);
  std::int64_t covered = 0;
  for (const index_file::Box& box : index_file::boxes(ds.get(), where)) {
    std::int64_t n = 1;
    bool inside = box.start.size() == dims.size();
    for (std::size_t d = 0; inside && d < dims.size(); ++d) {
      inside = box.start[d] >= 0 && box.count[d] > 0 && box.start[d] + box.count[d] <= dims[d];
      n *= box.count[d];
    }
    if (!inside) R1_FAIL(io, where, ": a box of its map lies outside ", global.str(), " (damaged)");
    covered += n;
    w.tensor_map += map_line(name, dtype_name(dtype), dims, box.file, box.dataset, box.start, box.count);
    check_box(w, box, dtype, where);
  }
  if (covered != global.numel()) R1_FAIL(io, where, ": its map covers ", covered, " of its ", global.numel(), " elements");
  ++w.result.tensors;
}

VerifyResult inspect(const fs::path& checkpoint, VerifyDepth depth, const Progress& progress) {
  h5::quiet();
  Walk w{checkpoint, depth, progress, {}, {}, {}};
  const fs::path index = checkpoint / "index.h5";
  if (!fs::is_directory(checkpoint)) R1_FAIL(io, "checkpoint ", checkpoint.string(), " is not a directory");
  if (!fs::exists(index)) R1_FAIL(io, "checkpoint ", checkpoint.string(), " is incomplete: ", index.string(), " is missing");
  progress(index.string());
  const h5::Id file = index_file::open(index);
  bool map_complete = true;
  for (const std::string& name : index_file::tensor_names(file.get(), index)) {
    try {
      check_tensor(w, file.get(), name);
    } catch (const Error& e) {
      w.result.problems.push_back(e.message());
      map_complete = false;
    }
  }
  progress(index.string());
  const Meta meta = index_file::read_meta(file.get(), index, map_complete ? &w.tensor_map : nullptr);
  w.result.stage = meta.stage;
  w.result.step = meta.step;
  w.result.shards = static_cast<std::int64_t>(w.shards.size());
  w.result.checksummed = H5Aexists_by_name(file.get(), "meta", "checksums", H5P_DEFAULT) > 0;
  return w.result;
}

nlohmann::json to_json(const VerifyResult& r) {
  return {{"problems", r.problems}, {"stage", r.stage}, {"step", r.step}, {"tensors", r.tensors},
          {"shards", r.shards}, {"bytes", r.bytes}, {"checksummed", r.checksummed}};
}

VerifyResult from_json(const nlohmann::json& j) {
  VerifyResult r;
  r.problems = j.at("problems").get<std::vector<std::string>>();
  r.stage = j.at("stage").get<std::string>();
  r.step = j.at("step").get<std::int64_t>();
  r.tensors = j.at("tensors").get<std::int64_t>();
  r.shards = j.at("shards").get<std::int64_t>();
  r.bytes = j.at("bytes").get<std::int64_t>();
  r.checksummed = j.at("checksummed").get<bool>();
  return r;
}

// Names, sizes and modification times of a step directory's files: a vetted checkpoint stays vetted
// while this is unchanged.
std::string signature(const fs::path& checkpoint) {
  std::vector<std::string> parts;
  for (const auto& e : fs::directory_iterator(checkpoint))
    if (e.is_regular_file())
      parts.push_back(detail::concat(e.path().filename().string(), ":", e.file_size(), ":",
                                     e.last_write_time().time_since_epoch().count()));
  std::sort(parts.begin(), parts.end());
  std::string s;
  for (const auto& p : parts) s += p + ";";
  return s;
}

}  // namespace

VerifyResult verify_checkpoint(const fs::path& checkpoint, VerifyDepth depth) {
  // A structure check reads metadata only; a full one reads every byte of every shard.
  // A structure check reads metadata only (1 GiB of memory is plenty); a full one reads every byte of
  // every shard, one source dataset at a time.
  const bool structure = depth == VerifyDepth::structure;
  const Isolated run = run_isolated(
      [&](const Progress& progress) {
        return to_json(inspect(checkpoint, depth, progress)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      },
      structure ? 600 : 24 * 3600, structure ? std::size_t{1} << 30 : 0);
  VerifyResult r;
  switch (run.outcome) {
    case Isolated::Outcome::returned: return from_json(nlohmann::json::parse(run.text));
    case Isolated::Outcome::threw: r.problems.push_back(run.text); break;
    case Isolated::Outcome::crashed:
      r.problems.push_back(detail::concat(run.progress.empty() ? checkpoint.string() : run.progress,
                                          " is damaged: the HDF5 library reading it ", run.text, " (in a checking process)"));
      break;
    case Isolated::Outcome::timed_out:
      r.problems.push_back(detail::concat("reading ", run.progress.empty() ? checkpoint.string() : run.progress, " ", run.text,
                                          " (damaged, or a hung file system)"));
      break;
  }
  return r;
}

void vet(const fs::path& checkpoint) {
  static std::mutex mutex;
  static std::map<std::string, std::string> vetted;  // checkpoint path -> signature when it passed
  const std::string key = fs::absolute(checkpoint).lexically_normal().string();
  const std::string sig = signature(checkpoint);
  {
    const std::lock_guard<std::mutex> lock(mutex);
    const auto it = vetted.find(key);
    if (it != vetted.end() && it->second == sig) return;
  }
  const VerifyResult r = verify_checkpoint(checkpoint, VerifyDepth::structure);
  if (!r.ok()) {  // each problem names its file
    constexpr std::size_t kShown = 4;
    std::string text;
    for (std::size_t i = 0; i < r.problems.size() && i < kShown; ++i) text += (i ? "; " : "") + r.problems[i];
    if (r.problems.size() > kShown)
      text += detail::concat(" (and ", r.problems.size() - kShown, " more problem(s): r1hpc --verify-checkpoint ", checkpoint.string(),
                             " lists them)");
    R1_FAIL(io, text);
  }
  const std::lock_guard<std::mutex> lock(mutex);
  vetted[key] = sig;
}

std::optional<fs::path> latest_intact(const fs::path& dir) {
  const std::optional<fs::path> newest = latest(dir);
  if (!newest) return newest;
  try {
    vet(*newest);
    return newest;
  } catch (const Error& damaged) {
    const std::regex step_dir{R"(step-\d{8})"};
    std::vector<fs::path> older;
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string name = e.path().filename().string();
      if (e.is_directory() && std::regex_match(name, step_dir) && name < newest->filename().string()) older.push_back(e.path());
    }
    std::sort(older.rbegin(), older.rend());
    for (const fs::path& candidate : older) {
      try {
        vet(candidate);
      } catch (const Error& e) {
        log_warn("checkpoint: ", e.message());
        continue;
      }
      log_warn("checkpoint: the newest checkpoint ", newest->string(), " is damaged (", damaged.message(),
               "); resuming from the newest intact one, ", candidate.string(), ", instead (the same run, some steps earlier)");
      return candidate;
    }
    throw;
  }
}

}  // namespace r1::ckpt
