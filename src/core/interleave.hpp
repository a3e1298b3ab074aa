// Two tasks interleaved at the points where one of them waits: DualPipe's overlapped forward/backward pair.
//
// Interleave::run(a, b) runs a on the calling thread and b on the Interleave's worker thread, never both at
// once: a runs until it calls interleave_switch() (or ends), then b runs until it calls it (or ends), then a
// resumes, and so on. A task calls interleave_switch() right after it has started work that completes
// elsewhere (an all-to-all on the communicator's stream or in MPI's background): the other task's compute is
// then issued while that transfer moves, and the first task finishes the transfer when it resumes. Only one
// task runs at a time and the hand-overs are the same every run, so the result is the same bits as a then b,
// and code that is not thread-safe stays correct (each hand-over is a mutex hand-off, which orders memory).
// Outside run(), and once the partner task has ended, interleave_switch() returns at once.
//
// Errors: when a task throws, the other stops at its next switch (throwing InterleavePartnerFailed there), so
// that it issues no collective its peers do not match, and run() rethrows the error that came first.
//
// What follows a thread: the worker runs `on_worker_start` once (e.g. to make a CUDA device current); if that
// throws, the constructor rethrows it.
// Thread-local state of the calling thread (a DeferWgrad scope, the profiler's open regions) is not the
// worker's: a task sets up what it needs inside itself. MPI must allow calls from either thread one at a
// time (MPI_THREAD_SERIALIZED; main asks for it).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace r1 {

// Thrown by interleave_switch() in a task whose partner has failed.
class InterleavePartnerFailed : public std::runtime_error {
 public:
  InterleavePartnerFailed();
};

class Interleave {
 public:
  explicit Interleave(std::function<void()> on_worker_start = {});
  ~Interleave();  // joins the worker
  Interleave(const Interleave&) = delete;
  Interleave& operator=(const Interleave&) = delete;

  // Runs both tasks to their ends as described above; a starts. If a task throws, the other runs until its
  // next switch (or its end), and the first exception in time is rethrown. Returns how many times control
  // passed from one task to the other while both were unfinished.
  std::int64_t run(const std::function<void()>& a, const std::function<void()>& b);

 private:
  friend void interleave_switch();
  void worker();
  void hand_over(int from);  // task `from` (0: a, 1: b) gives control to the other and waits for its turn back
  void finish(int side, std::exception_ptr error);  // task `side` has ended (with error): the other goes on

  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void()>* task_ = nullptr;  // b, while a run is in progress
  int turn_ = 0;                                 // the task that may run
  bool done_[2] = {true, true};
  bool quit_ = false;
  std::int64_t switches_ = 0;
  std::exception_ptr error_[2];
  int first_error_ = -1;            // the task whose error came first
  bool started_ = false;            // the worker ran on_worker_start
  std::exception_ptr start_error_;  // and it threw
  std::function<void()> on_worker_start_;
  std::thread thread_;
};

// Inside a task of Interleave::run whose partner is unfinished: hands control to the partner and returns
// when it is this task's turn again. Anywhere else: returns at once.
void interleave_switch();

// Hand-overs over the process's life (every Interleave's), for tests and logs.
std::int64_t interleave_switches_total();

}  // namespace r1
