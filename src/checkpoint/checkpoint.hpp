// Sharded HDF5 checkpoints (docs/checkpoint.md): each rank writes the slices of global tensors it owns,
// index.h5 stitches them into one virtual dataset per tensor, and any layout reads any checkpoint.
#pragma once
#include <mpi.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace r1::kernels {
class SideCopy;
}

namespace r1::ckpt {

inline constexpr std::int64_t kFormatVersion = 1;

// A box of a global tensor: `data` holds global[offset, offset + data.shape()). Writers pass the slices
// they own; readers pass the slices they want, with `data` the destination (host or device, any dtype
// the checkpoint stores; f32 for parameters, f32 or bf16 for moments).
struct Slice {
  std::string name;  // "model/<param>", "optim/exp_avg/<param>", "optim/exp_avg_sq/<param>"
  Shape global_shape;
  std::vector<std::int64_t> offset;  // one per dimension
  Tensor data;
};

// What a checkpoint says about itself (index.h5's meta group).
struct Meta {
  std::int64_t format_version = kFormatVersion;
  std::string stage;   // "pretrain", "sft", ...
  std::int64_t step = 0;
  std::int64_t tokens = 0;
  std::string deck;    // the resolved deck text of the run that wrote it
  std::string parent;  // the checkpoint this run started from, "" for none: the lineage
  nlohmann::json layout = nlohmann::json::object();           // the parallel layout that wrote it
  nlohmann::json rng_state = nlohmann::json::object();
  nlohmann::json data_state = nlohmann::json::object();       // data-loader position
  nlohmann::json optimizer_state = nlohmann::json::object();  // e.g. AdamW's steps taken
  std::vector<std::int64_t> writers;  // ranks that wrote a shard; filled by save
};

struct SaveReport {
  std::int64_t step = 0;
  std::filesystem::path path;  // the final step directory
  bool async = false;
  double blocking_s = 0;  // how long save() held the caller (previous commit, checks, host copy)
  double write_s = 0;     // the slowest rank's file writing plus the commit (async: known at commit)
  std::int64_t bytes = 0; // tensor bytes written by all ranks together
};

// "<dir>/step-00000100"
std::filesystem::path step_dir(const std::filesystem::path& dir, std::int64_t step);

// Writes checkpoints of one run into one directory. Every method except the destructor is collective
// over `comm`; an error on any rank is raised on every rank (the message of the lowest failing rank).
// With async, save() returns after the host copy and a background thread writes the files; the commit
// (barrier, rename of step-N.tmp, `latest`, retention) needs MPI and so runs on the calling thread at the
// next save() or at finish().
class Checkpointer {
 public:
  Checkpointer(std::filesystem::path dir, MPI_Comm comm, std::int64_t keep_last, bool async);
  // Joins a background write but does not commit it (no collectives while unwinding): its step-N.tmp
  // stays and is removed by the next successful save.
  ~Checkpointer();
  Checkpointer(const Checkpointer&) = delete;
  Checkpointer& operator=(const Checkpointer&) = delete;

  // Each global tensor must be covered exactly once by the union of all ranks' slices; a replicated
  // tensor is passed by one rank only (lowest_full_copy_rank). A rank may pass several slices of a tensor.
  // A NaN or Inf in any float slice fails the save (ErrorKind::diverged, naming the tensor and rank)
  // before anything is written: here, or for a device slice of an asynchronous save (checked once its copy
  // is down, on the writer thread) at the commit.
  SaveReport save(const Meta& meta, const std::vector<Slice>& slices);
  // Allocates (pins, where a GPU is used) and touches the host copies saves of these slices will need, so
  // that the first save does not pay for them; later saves of the same shapes reuse them. Not collective.
  void prepare(const std::vector<Slice>& slices);
  // Commits the save in flight, if any, and returns its report.
  std::optional<SaveReport> finish();
  // An asynchronous save copies device tensors down on a stream of its own while training goes on: this
  // blocks until they are on the host, and must be called before anything overwrites them (the next
  // optimizer update). The wait counts into the save's blocking time.
  void wait_for_device_copies();
  bool in_flight() const { return job_ != nullptr; }
  const std::filesystem::path& dir() const { return dir_; }
  MPI_Comm comm() const { return comm_; }
  // Called on this rank's writer thread once its shard is on disk, before the commit: where the crash
  // tests (tests/checkpoint/ckpt_fixture.cpp) kill a rank, as a node lost in the middle of a save.
  std::function<void()> after_shard_written;

 private:
  struct Job;
  void stage(Job& job, const std::vector<Slice>& slices);
  Tensor staging_for(std::size_t i, const Slice& s);
  SaveReport commit();

  std::filesystem::path dir_;
  MPI_Comm comm_;
  int rank_ = 0;
  std::int64_t keep_last_;
  bool async_;
  std::unique_ptr<Job> job_;
  // Host copies kept from save to save: slice i's, and whether it is pinned staging for a device tensor.
  std::vector<Tensor> staging_;
  std::vector<bool> staging_pinned_;
  std::unique_ptr<kernels::SideCopy> copies_;  // declared after staging_: destroyed (waited for) first
};

// Collective: the lowest rank of `comm` whose `holds_full_copy` is true (the one writer of a replicated
// tensor), the same on every rank; -1 when no rank holds one.
int lowest_full_copy_rank(MPI_Comm comm, bool holds_full_copy);

// The checkpoint `<dir>/latest` names; nullopt when there is none yet. An io error when it names a
// directory that does not exist.
std::optional<std::filesystem::path> latest(const std::filesystem::path& dir);

// The meta group of a checkpoint (a step directory), every field checked against meta/checksums. Errors
// name the file (and the field). read_meta, list_tensors and load vet the checkpoint in a forked child
// first (verify.hpp), so a damaged file is an error, never a crash of this process.
Meta read_meta(const std::filesystem::path& checkpoint);

struct TensorInfo {
  std::string name;
  Shape shape;
  DType dtype = DType::f32;
};
// Every global tensor of a checkpoint, sorted by name.
std::vector<TensorInfo> list_tensors(const std::filesystem::path& checkpoint);

// Not collective: fills each wanted slice's `data` from the checkpoint, whatever layout wrote it. A
// missing tensor, a shape or dtype that differs, a missing shard or a failed Fletcher32 checksum is an
// r1::Error naming the tensor and the file. Must not overlap a background save of the same process.
void load(const std::filesystem::path& checkpoint, const std::vector<Slice>& wanted);

}  // namespace r1::ckpt
