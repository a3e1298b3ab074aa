#include "checkpoint/checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <regex>
#include <thread>

#include "checkpoint/chunk_io.hpp"
#include "checkpoint/h5.hpp"
#include "checkpoint/integrity.hpp"
#include "checkpoint/meta_checksums.hpp"
#include "core/error.hpp"
#include "core/file_io.hpp"
#include "core/log.hpp"
#include "kernels/side_copy.hpp"
#include "parallel/watched_mpi.hpp"

namespace fs = std::filesystem;

namespace r1::ckpt {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string shard_name(int rank) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "shard-%05d.h5", rank);
  return buf;
}

// Runs `fn` on every rank, then agrees on the outcome (`op` names the agreement for the watchdog): when any
// rank threw, every rank throws the error of the lowest failing rank (so no rank goes on to a collective
// its peers will never enter).
template <class Fn> void agreed(MPI_Comm comm, const char* op, const std::string& what, Fn&& fn) {
  std::string message;
  int kind = static_cast<int>(ErrorKind::internal);
  try {
    fn();
  } catch (const Error& e) {
    message = e.message();
    kind = static_cast<int>(e.kind());
  } catch (const std::exception& e) {
    message = e.what();
  }
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  int first = message.empty() ? INT_MAX : rank;
  parallel::watched_all_reduce(comm, op, &first, 1, MPI_INT, MPI_MIN);
  if (first == INT_MAX) return;
  int len = static_cast<int>(message.size());
  parallel::watched_bcast(comm, op, &len, 1, MPI_INT, first);
  parallel::watched_bcast(comm, op, &kind, 1, MPI_INT, first);
  message.resize(static_cast<std::size_t>(len));
  parallel::watched_bcast(comm, op, message.data(), len, MPI_CHAR, first);
  detail::throw_error(static_cast<ErrorKind>(kind), __FILE__, __LINE__,
                      detail::concat(what, " failed on rank ", first, ": ", message));
}

// Every rank's string, on rank 0 (empty elsewhere).
std::vector<std::string> gather_strings(MPI_Comm comm, const std::string& mine) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  const int len = static_cast<int>(mine.size());
  std::vector<int> lens(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  parallel::watched_gather(comm, "checkpoint slice gather", &len, 1, MPI_INT, lens.data(), 0);
  std::string all;
  if (rank == 0) {
    int total = 0;
    for (int r = 0; r < size; ++r) displs[r] = total, total += lens[r];
    all.resize(static_cast<std::size_t>(total));
  }
  parallel::watched_gatherv(comm, "checkpoint slice gather", mine.data(), len, MPI_CHAR, all.data(), lens.data(),
                            displs.data(), 0);
  std::vector<std::string> out;
  if (rank == 0)
    for (int r = 0; r < size; ++r) out.push_back(all.substr(static_cast<std::size_t>(displs[r]), static_cast<std::size_t>(lens[r])));
  return out;
}

// The local checks of one slice; the message names the tensor.
void check_slice(const Slice& s) {
  R1_REQUIRE(!s.name.empty() && s.name.front() != '/' && s.name.back() != '/', "checkpoint: bad tensor name '", s.name, "'");
  R1_REQUIRE(s.data.defined(), "checkpoint: tensor ", s.name, ": slice has no data");
  const int rank = s.global_shape.rank();
  R1_REQUIRE(rank >= 1 && s.data.rank() == rank && static_cast<int>(s.offset.size()) == rank, "checkpoint: tensor ",
             s.name, ": slice ", s.data.shape().str(), " at ", nlohmann::json(s.offset).dump(), " does not match global shape ",
             s.global_shape.str());
  for (int d = 0; d < rank; ++d)
    R1_REQUIRE(s.offset[d] >= 0 && s.offset[d] + s.data.dim(d) <= s.global_shape[d], "checkpoint: tensor ", s.name,
               ": slice ", s.data.shape().str(), " at offset ", nlohmann::json(s.offset).dump(), " lies outside ",
               s.global_shape.str());
}

// The dataset of a slice in its shard: the tensor's name, "@k" appended for a rank's k-th further slice
// of the same tensor.
std::string shard_dataset(const std::string& name, int k) { return k == 0 ? name : detail::concat(name, "@", k); }

nlohmann::json describe(const Slice& s, int rank, const std::string& dataset) {
  std::vector<std::int64_t> global(s.global_shape.rank()), extent(s.global_shape.rank());
  for (int d = 0; d < s.global_shape.rank(); ++d) global[d] = s.global_shape[d], extent[d] = s.data.dim(d);
  return {{"name", s.name}, {"dataset", dataset}, {"global", global}, {"offset", s.offset}, {"extent", extent},
          {"dtype", dtype_name(s.data.dtype())}, {"rank", rank}};
}

// Rank 0: every global tensor must be tiled exactly once by the writers' slices (same global shape and
// dtype everywhere, no overlap, full volume). Returns the slices grouped by tensor name.
std::map<std::string, std::vector<nlohmann::json>> check_coverage(const std::vector<std::string>& per_rank) {
  std::map<std::string, std::vector<nlohmann::json>> tensors;
  for (const auto& text : per_rank)
    for (auto& s : nlohmann::json::parse(text)) tensors[s["name"].get<std::string>()].push_back(std::move(s));
  for (const auto& [name, slices] : tensors) {
    const auto& first = slices.front();
    std::int64_t global = 1, covered = 0;
    for (auto g : first["global"]) global *= g.get<std::int64_t>();
    for (std::size_t i = 0; i < slices.size(); ++i) {
      const auto& a = slices[i];
      R1_REQUIRE(a["global"] == first["global"] && a["dtype"] == first["dtype"], "checkpoint: tensor ", name, ": rank ",
                 a["rank"].get<int>(), " writes ", a["dtype"].get<std::string>(), a["global"].dump(), ", rank ",
                 first["rank"].get<int>(), " ", first["dtype"].get<std::string>(), first["global"].dump());
      std::int64_t n = 1;
      for (auto e : a["extent"]) n *= e.get<std::int64_t>();
      covered += n;
      for (std::size_t j = 0; j < i; ++j) {
        const auto& b = slices[j];
        bool overlap = n > 0;
        for (std::size_t d = 0; d < a["offset"].size() && overlap; ++d) {
          const auto a0 = a["offset"][d].get<std::int64_t>(), a1 = a0 + a["extent"][d].get<std::int64_t>();
          const auto b0 = b["offset"][d].get<std::int64_t>(), b1 = b0 + b["extent"][d].get<std::int64_t>();
          overlap = a0 < b1 && b0 < a1;
        }
        R1_REQUIRE(!overlap, "checkpoint: tensor ", name, ": the slices of ranks ", b["rank"].get<int>(), " and ",
                   a["rank"].get<int>(), " overlap (a replicated tensor must be passed by one rank only)");
      }
    }
    R1_REQUIRE(covered == global, "checkpoint: tensor ", name, ": the writers' slices cover ", covered, " of its ", global,
               " elements");
  }
  return tensors;
}

// HDF5's 1.10 format: its superblock, object headers and chunk indexes carry checksums, so a damaged
// byte of metadata is an HDF5 error instead of a silently different file (the earliest format has none).
h5::Id create_file(const fs::path& path) {
  h5::Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
  H5Pset_libver_bounds(fapl.get(), H5F_LIBVER_V110, H5F_LIBVER_LATEST);
  h5::Id f(H5Fcreate(path.c_str(), H5F_ACC_EXCL, H5P_DEFAULT, fapl.get()), H5Fclose);
  if (!f.ok()) R1_FAIL(io, "cannot create ", path.string(), ": ", h5::error_text());
  return f;
}

h5::Id intermediate_groups() {
  h5::Id lcpl(H5Pcreate(H5P_LINK_CREATE), H5Pclose);
  H5Pset_create_intermediate_group(lcpl.get(), 1);
  return lcpl;
}

void close_and_sync(h5::Id& file, const fs::path& path) {
  if (!file.close()) R1_FAIL(io, "cannot close ", path.string(), ": ", h5::error_text());
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    const int e = errno;
    if (fd >= 0) ::close(fd);
    R1_FAIL(io, "cannot flush ", path.string(), ": ", std::strerror(e));
  }
  ::close(fd);
}

void write_shard(const fs::path& path, const std::vector<Slice>& slices, const std::vector<std::string>& datasets) {
  h5::Id file = create_file(path);
  const h5::Id lcpl = intermediate_groups();
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const Slice& s = slices[i];
    if (s.data.numel() == 0) continue;
    std::vector<hsize_t> dims(static_cast<std::size_t>(s.data.rank()));
    for (int d = 0; d < s.data.rank(); ++d) dims[d] = static_cast<hsize_t>(s.data.dim(d));
    const ChunkGrid grid = ChunkGrid::plan(dims, dtype_size(s.data.dtype()));
    h5::Id space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr), H5Sclose);
    h5::Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(dcpl.get(), static_cast<int>(grid.chunk.size()), grid.chunk.data());
    H5Pset_fletcher32(dcpl.get());
    h5::Id ds(H5Dcreate2(file.get(), datasets[i].c_str(), h5::file_type(s.data.dtype()), space.get(), lcpl.get(), dcpl.get(),
                         H5P_DEFAULT),
              H5Dclose);
    if (!ds.ok()) R1_FAIL(io, "cannot create tensor ", s.name, " in ", path.string(), ": ", h5::error_text());
    write_chunks(ds.get(), grid, static_cast<const char*>(s.data.raw()), detail::concat("tensor ", s.name, " to ", path.string()));
    std::vector<std::int64_t> global(static_cast<std::size_t>(s.global_shape.rank()));
    for (int d = 0; d < s.global_shape.rank(); ++d) global[d] = s.global_shape[d];
    h5::write_i64_attr(ds.get(), "global_shape", global);
    h5::write_i64_attr(ds.get(), "offset", s.offset);
    h5::write_string_attr(ds.get(), "dtype", dtype_name(s.data.dtype()));
  }
  close_and_sync(file, path);
}

void write_index(const fs::path& path, const std::map<std::string, std::vector<nlohmann::json>>& tensors, const Meta& meta) {
  h5::Id file = create_file(path);
  const h5::Id lcpl = intermediate_groups();
  std::string tensor_map;
  for (const auto& [name, slices] : tensors) {
    std::vector<hsize_t> global;
    for (auto g : slices.front()["global"]) global.push_back(g.get<hsize_t>());
    const std::string dtype_text = slices.front()["dtype"].get<std::string>();
    const DType dtype = h5::parse_dtype(dtype_text);
    h5::Id space(H5Screate_simple(static_cast<int>(global.size()), global.data(), nullptr), H5Sclose);
    h5::Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    for (const auto& s : slices) {
      std::vector<hsize_t> start, count;
      for (auto o : s["offset"]) start.push_back(o.get<hsize_t>());
      for (auto e : s["extent"]) count.push_back(e.get<hsize_t>());
      if (std::find(count.begin(), count.end(), 0) != count.end()) continue;
      h5::Id vspace(H5Screate_simple(static_cast<int>(global.size()), global.data(), nullptr), H5Sclose);
      H5Sselect_hyperslab(vspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr);
      h5::Id src(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr), H5Sclose);
      // Relative source names: HDF5 looks for them beside index.h5, so the step directory can be
      // renamed and moved as a whole.
      const std::string shard = shard_name(s["rank"].get<int>()), dataset = s["dataset"].get<std::string>();
      if (H5Pset_virtual(dcpl.get(), vspace.get(), shard.c_str(), dataset.c_str(), src.get()) < 0)
        R1_FAIL(io, "cannot map tensor ", name, " in ", path.string(), ": ", h5::error_text());
      tensor_map += map_line(name, dtype_text, slices.front()["global"], shard, dataset, s["offset"], s["extent"]);
    }
    h5::Id ds(H5Dcreate2(file.get(), name.c_str(), h5::file_type(dtype), space.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT),
              H5Dclose);
    if (!ds.ok()) R1_FAIL(io, "cannot create tensor ", name, " in ", path.string(), ": ", h5::error_text());
    h5::write_string_attr(ds.get(), "dtype", dtype_name(dtype));
  }
  h5::Id group(H5Gcreate2(file.get(), "meta", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
  if (!group.ok()) R1_FAIL(io, "cannot create group meta in ", path.string(), ": ", h5::error_text());
  h5::write_i64_attr(group.get(), "format_version", {meta.format_version});
  h5::write_string_attr(group.get(), "stage", meta.stage);
  h5::write_i64_attr(group.get(), "step", {meta.step});
  h5::write_i64_attr(group.get(), "tokens", {meta.tokens});
  h5::write_string_attr(group.get(), "deck", meta.deck);
  h5::write_string_attr(group.get(), "parent", meta.parent);
  h5::write_string_attr(group.get(), "layout", meta.layout.dump());
  h5::write_string_attr(group.get(), "rng_state", meta.rng_state.dump());
  h5::write_string_attr(group.get(), "data_state", meta.data_state.dump());
  h5::write_string_attr(group.get(), "optimizer_state", meta.optimizer_state.dump());
  h5::write_i64_attr(group.get(), "writers", meta.writers);
  h5::write_string_attr(group.get(), "checksums", meta_checksums(meta_texts(meta), tensor_map));
  group.close();
  close_and_sync(file, path);
}

const std::regex kStepDir{R"(step-(\d{8}))"};
const std::regex kLeftover{R"(step-\d{8}(\.replaced)?\.tmp)"};

// Rank 0 after `latest` was updated: keep the newest `keep_last` complete step directories (and always
// the one `latest` names), and remove what crashed saves left behind.
void retire(const fs::path& dir, std::int64_t keep_last, const std::string& latest_name) {
  std::vector<std::pair<std::int64_t, fs::path>> steps;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    std::smatch m;
    if (!entry.is_directory()) continue;
    if (std::regex_match(name, m, kStepDir) && fs::exists(entry.path() / "index.h5")) {
      steps.emplace_back(std::stoll(m[1].str()), entry.path());
    } else if (std::regex_match(name, kLeftover)) {
      log_info("checkpoint: removing ", entry.path().string(), ", left by a save that did not complete");
      fs::remove_all(entry.path());
    }
  }
  if (keep_last <= 0 || static_cast<std::int64_t>(steps.size()) <= keep_last) return;
  std::sort(steps.begin(), steps.end());
  for (std::size_t i = 0; i + static_cast<std::size_t>(keep_last) < steps.size(); ++i) {
    if (steps[i].second.filename() == latest_name) continue;
    log_info("checkpoint: removing ", steps[i].second.string(), " (keep_last ", keep_last, ")");
    fs::remove_all(steps[i].second);
  }
}

}  // namespace

fs::path step_dir(const fs::path& dir, std::int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step-%08lld", static_cast<long long>(step));
  return dir / buf;
}

int lowest_full_copy_rank(MPI_Comm comm, bool holds_full_copy) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  int lowest = holds_full_copy ? rank : INT_MAX;
  parallel::watched_all_reduce(comm, "lowest full-copy rank agreement", &lowest, 1, MPI_INT, MPI_MIN);
  return lowest == INT_MAX ? -1 : lowest;
}

namespace {

// A piece of one slice for the copy-and-check workers: elements [lo, hi) of slice `slice`.
struct Piece {
  std::size_t slice;
  std::int64_t lo, hi;
};

std::vector<Piece> pieces_of(const std::vector<Slice>& slices) {
  constexpr std::int64_t kPiece = 1 << 22;
  std::vector<Piece> out;
  for (std::size_t i = 0; i < slices.size(); ++i)
    for (std::int64_t lo = 0; lo < slices[i].data.numel(); lo += kPiece)
      out.push_back({i, lo, std::min(lo + kPiece, slices[i].data.numel())});
  return out;
}

// Copies the slices `which` selects from `from` into `to` where their memory differs (host sources) and
// checks them finite, in pieces on the I/O workers: a NaN or Inf fails with ErrorKind::diverged naming the
// tensor, before anything is written.
void copy_and_check(const std::vector<Slice>& from, const std::vector<Slice>& to, const std::vector<bool>& which) {
  std::vector<Piece> pieces;
  for (const Piece& p : pieces_of(to))
    if (which[p.slice]) pieces.push_back(p);
  std::vector<std::int64_t> bad(from.size(), -1);
  std::mutex bad_mutex;
  io_parallel_for(static_cast<std::int64_t>(pieces.size()), [&](std::int64_t k) {
    const Piece& p = pieces[static_cast<std::size_t>(k)];
    const Tensor& src = from[p.slice].data;
    const Tensor& dst = to[p.slice].data;
    const std::size_t es = dtype_size(dst.dtype());
    char* d = static_cast<char*>(dst.raw()) + p.lo * es;
    if (src.on_host() && src.raw() != dst.raw())
      std::memcpy(d, static_cast<const char*>(src.raw()) + p.lo * es, static_cast<std::size_t>(p.hi - p.lo) * es);
    const std::int64_t at = first_non_finite(dst.dtype(), d, p.hi - p.lo);
    if (at < 0) return;
    const std::lock_guard<std::mutex> lock(bad_mutex);
    std::int64_t& first = bad[p.slice];
    if (first < 0 || p.lo + at < first) first = p.lo + at;
  });
  for (std::size_t i = 0; i < from.size(); ++i) {
    const Slice& s = from[i];
    if (bad[i] >= 0)
      R1_FAIL(diverged, "tensor ", s.name, " holds ", non_finite_kind(to[i].data, bad[i]), " (element ", bad[i],
              " of this rank's slice ", s.data.shape().str(), " at offset ", nlohmann::json(s.offset).dump(),
              "); nothing is written and `latest` stays where it was");
  }
}

}  // namespace

// One save between its host copy and its commit.
struct Checkpointer::Job {
  SaveReport report;
  fs::path tmp;
  std::vector<Slice> staged;  // host memory the writer owns
  std::vector<std::string> datasets;  // each staged slice's dataset name in the shard
  std::map<std::string, std::vector<nlohmann::json>> index;  // rank 0 only
  Meta meta;
  std::int64_t local_bytes = 0;
  double write_start = 0;
  double written_s = 0;  // the file writing alone (an async save waits for its commit after that)
  std::thread thread;
  std::exception_ptr error;
  // Device slices of an asynchronous save: on their way down by `copies`, checked finite once there.
  kernels::SideCopy* copies = nullptr;
  std::vector<bool> check_when_down;
  double down_s = -1;  // when they were down, seconds after save() returned (-1: no device slices)

  std::function<void()> after_shard;  // Checkpointer::after_shard_written

  void write(int rank) {
    h5::quiet();  // a thread-safe HDF5 keeps one error stack per thread
    try {
      if (copies) {
        copies->wait();
        down_s = now_s() - write_start;
      }
      copy_and_check(staged, staged, check_when_down);
      if (!staged.empty()) write_shard(tmp / shard_name(rank), staged, datasets);
      staged.clear();  // the host copies are not needed once on disk
      if (after_shard) after_shard();
      if (rank == 0) write_index(tmp / "index.h5", index, meta);
    } catch (...) {
      error = std::current_exception();
    }
    written_s = now_s() - write_start;
  }
};

Checkpointer::Checkpointer(fs::path dir, MPI_Comm comm, std::int64_t keep_last, bool async)
    : dir_(std::move(dir)), comm_(comm), keep_last_(keep_last), async_(async), copies_(std::make_unique<kernels::SideCopy>()) {
  MPI_Comm_rank(comm_, &rank_);
  h5::quiet();
}

Checkpointer::~Checkpointer() {
  if (!job_) return;
  if (job_->thread.joinable()) job_->thread.join();
  log_warn("checkpoint: the save of step ", job_->report.step, " was not committed; ", job_->tmp.string(),
           " is removed by the next save");
}

// Slice i's host copy: the one kept from the last save when its shape and kind match, else a new one.
Tensor Checkpointer::staging_for(std::size_t i, const Slice& s) {
  const bool pinned = !s.data.on_host();
  if (i < staging_.size() && staging_[i].defined() && staging_[i].shape() == s.data.shape() &&
      staging_[i].dtype() == s.data.dtype() && staging_pinned_[i] == pinned)
    return staging_[i];
  if (staging_.size() <= i) {
    staging_.resize(i + 1);
    staging_pinned_.resize(i + 1);
  }
  staging_[i] = Tensor::empty(s.data.shape(), s.data.dtype(), pinned ? staging_host_allocator() : host_allocator());
  staging_pinned_[i] = pinned;
  return staging_[i];
}


void Checkpointer::prepare(const std::vector<Slice>& slices) {
  std::vector<Slice> copies;
  for (std::size_t i = 0; i < slices.size(); ++i)
    if (async_ || !slices[i].data.on_host()) copies.push_back({slices[i].name, {}, {}, staging_for(i, slices[i])});
  const std::vector<Piece> pieces = pieces_of(copies);
  io_parallel_for(static_cast<std::int64_t>(pieces.size()), [&](std::int64_t k) {
    const Piece& p = pieces[static_cast<std::size_t>(k)];
    const std::size_t es = dtype_size(copies[p.slice].data.dtype());
    std::memset(static_cast<char*>(copies[p.slice].data.raw()) + p.lo * es, 0, static_cast<std::size_t>(p.hi - p.lo) * es);
  });
}

// The blocking part: host copies the training step may overwrite as soon as save() returns (a
// synchronous save writes host tensors in place, since the caller waits for it anyway), each checked
// finite right after its copy: a NaN or Inf is never written, so it is never committed. Copies of host
// tensors and the checks run in pieces on io_threads() workers. Device tensors come down on the side
// stream: a synchronous save waits for them here, an asynchronous one returns and its writer checks them
// once they are down (a failure then surfaces at the commit, still before anything is written).
void Checkpointer::stage(Job& job, const std::vector<Slice>& slices) {
  std::vector<Slice> staged;
  std::vector<bool> now(slices.size(), true), later(slices.size(), false);
  for (std::size_t i = 0; i < slices.size(); ++i) {
    const Slice& s = slices[i];
    staged.push_back({s.name, s.global_shape, s.offset, s.data});
    if (async_ || !s.data.on_host()) staged.back().data = staging_for(i, s);
    if (s.data.on_host()) continue;
    copies_->add(staged.back().data, s.data);
    now[i] = !async_;
    later[i] = async_;
  }
  if (!async_) copies_->wait();
  copy_and_check(slices, staged, now);
  for (const Slice& s : slices) job.local_bytes += static_cast<std::int64_t>(s.data.nbytes());
  job.staged = std::move(staged);
  if (std::find(later.begin(), later.end(), true) != later.end()) {
    job.copies = copies_.get();
    job.check_when_down = std::move(later);
  } else {
    job.check_when_down.assign(slices.size(), false);
  }
}

void Checkpointer::wait_for_device_copies() {
  if (job_ && job_->copies) job_->report.blocking_s += job_->copies->wait();
}

SaveReport Checkpointer::save(const Meta& meta, const std::vector<Slice>& slices) {
  const double start = now_s();
  if (job_) commit();
  auto job = std::make_unique<Job>();
  job->report.step = meta.step;
  job->report.path = step_dir(dir_, meta.step);
  job->report.async = async_;
  job->tmp = job->report.path;
  job->tmp += ".tmp";
  job->meta = meta;
  job->after_shard = after_shard_written;

  const std::string what = detail::concat("checkpoint save of step ", meta.step, " to ", dir_.string());
  nlohmann::json mine = nlohmann::json::array();
  agreed(comm_, "checkpoint slice agreement", what, [&] {
    std::map<std::string, int> seen;
    for (const Slice& s : slices) {
      check_slice(s);
      job->datasets.push_back(shard_dataset(s.name, seen[s.name]++));
      mine.push_back(describe(s, rank_, job->datasets.back()));
    }
    stage(*job, slices);
  });
  const std::vector<std::string> per_rank = gather_strings(comm_, mine.dump());
  agreed(comm_, "checkpoint index agreement", what, [&] {
    if (rank_ != 0) return;
    job->index = check_coverage(per_rank);
    for (int r = 0; r < static_cast<int>(per_rank.size()); ++r)
      if (per_rank[r] != "[]") job->meta.writers.push_back(r);
    if (fs::exists(job->tmp)) {
      log_info("checkpoint: removing ", job->tmp.string(), ", left by a save that did not complete");
      fs::remove_all(job->tmp);
    }
    fs::create_directories(job->tmp);
  });

  job->write_start = now_s();
  job_ = std::move(job);
  if (async_) {
    job_->thread = std::thread([j = job_.get(), r = rank_] { j->write(r); });
    job_->report.blocking_s = now_s() - start;
    return job_->report;
  }
  job_->write(rank_);
  SaveReport report = commit();
  report.blocking_s = now_s() - start;
  return report;
}

std::optional<SaveReport> Checkpointer::finish() {
  if (!job_) return std::nullopt;
  return commit();
}

SaveReport Checkpointer::commit() {
  std::unique_ptr<Job> job = std::move(job_);
  if (job->thread.joinable()) job->thread.join();
  const std::string what = detail::concat("checkpoint save of step ", job->report.step, " to ", dir_.string());
  agreed(comm_, "checkpoint write agreement", what, [&] {
    if (job->error) std::rethrow_exception(job->error);
  });
  const double commit_start = now_s();
  std::int64_t bytes = job->local_bytes;
  parallel::watched_all_reduce(comm_, "checkpoint byte total", &bytes, 1, MPI_INT64_T, MPI_SUM);
  double slowest = job->written_s;
  parallel::watched_all_reduce(comm_, "checkpoint write time", &slowest, 1, MPI_DOUBLE, MPI_MAX);
  // Every shard and index.h5 are closed and fsynced on every rank: now the step can become visible.
  agreed(comm_, "checkpoint commit agreement", what, [&] {
    if (rank_ != 0) return;
    const fs::path& final_dir = job->report.path;
    fs::path replaced;
    if (fs::exists(final_dir)) {  // the same step saved again (e.g. a stop right after a resume)
      replaced = final_dir;
      replaced += ".replaced.tmp";
      fs::remove_all(replaced);
      fs::rename(final_dir, replaced);
    }
    sync_directory(job->tmp.string());
    fs::rename(job->tmp, final_dir);
    sync_directory(dir_.string());
    write_file_atomic((dir_ / "latest").string(), final_dir.filename().string() + "\n");
    if (!replaced.empty()) fs::remove_all(replaced);
    retire(dir_, keep_last_, final_dir.filename().string());
  });
  job->report.write_s = slowest + (now_s() - commit_start);
  job->report.bytes = bytes;
  char numbers[256];
  // The device tensors' copies run beside the next step: a step that reads back from the device meanwhile
  // (its loss) may wait for the copy engine, so the copies' duration is reported beside the blocking time.
  double down = job->down_s;
  parallel::watched_all_reduce(comm_, "checkpoint device copy time", &down, 1, MPI_DOUBLE, MPI_MAX);
  char device[96] = "";
  if (down >= 0) std::snprintf(device, sizeof device, ", device tensors on the host %.3f s after", down);
  if (job->report.async)
    std::snprintf(numbers, sizeof numbers, "%.2f MiB by %zu writer(s) in %.3f s in the background; training blocked %.3f s%s",
                  static_cast<double>(bytes) / (1 << 20), job->meta.writers.size(), job->report.write_s,
                  job->report.blocking_s, device);
  else
    std::snprintf(numbers, sizeof numbers, "%.2f MiB by %zu writer(s) in %.3f s, synchronously",
                  static_cast<double>(bytes) / (1 << 20), job->meta.writers.size(), job->report.write_s);
  log_info("checkpoint: ", job->report.path.string(), " committed (", numbers, ")");
  return job->report;
}

}  // namespace r1::ckpt
