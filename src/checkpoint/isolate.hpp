// Running a reader of untrusted files in a forked child, so that a crash inside a library (HDF5 on a
// damaged file) ends the child, not the job.
#pragma once
#include <cstddef>
#include <functional>
#include <string>

namespace r1::ckpt {

struct Isolated {
  enum class Outcome { returned, threw, crashed, timed_out };
  Outcome outcome = Outcome::returned;
  std::string text;      // what `fn` returned, the message it threw, or how the child ended
  std::string progress;  // the last progress note the child sent (e.g. the file it was reading)
};

// Called by the child to say what it is about to do; sent at once, so it survives a crash.
using Progress = std::function<void(const std::string&)>;

// Forks; the child runs `fn` (HDF5 and plain file reads only: no MPI, no CUDA, no threads) and sends its
// string back through a pipe; the parent waits at most `timeout_s`, then kills it. Not to be called
// while another thread of this process is inside HDF5 (the child would inherit its lock).
// `extra_memory_bytes` (0: no limit) caps the child's address space at what it inherits plus this, so a
// damaged size field that makes a library allocate gigabytes fails at once instead of swapping.
Isolated run_isolated(const std::function<std::string(const Progress&)>& fn, double timeout_s,
                      std::size_t extra_memory_bytes = 0);

}  // namespace r1::ckpt
