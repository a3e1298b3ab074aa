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
// What follows a thread: the worker runs `on_worker_start` once (e.g. to make a CUDA device current).
// Thread-local state of the calling thread (a DeferWgrad scope, the profiler's open regions) is not the
// worker's: a task sets up what it needs inside itself. MPI must allow calls from either thread one at a
// time (MPI_THREAD_SERIALIZED; main asks for it).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace r1 {

class Interleave {
 public:
  explicit Interleave(std::function<void()> on_worker_start = {});
  ~Interleave();  // joins the worker
  Interleave(const Interleave&) = delete;
  Interleave& operator=(const Interleave&) = delete;

  // Runs both tasks to their ends as described above; a starts. If a task throws, the other still runs to
  // its end (its switches return at once), then the first exception (a's if both threw) is rethrown.
  // Returns how many times control passed from one task to the other while both were unfinished.
  std::int64_t run(const std::function<void()>& a, const std::function<void()>& b);

 private:
  friend void interleave_switch();
  void worker();
  void hand_over(int from);  // task `from` (0: a, 1: b) gives control to the other and waits for its turn back
  void finish(int side);     // task `side` has ended: the other runs to its end

  std::mutex mu_;
  std::condition_variable cv_;
  const std::function<void()>* task_ = nullptr;  // b, while a run is in progress
  int turn_ = 0;                                 // the task that may run
  bool done_[2] = {true, true};
  bool quit_ = false;
  std::int64_t switches_ = 0;
  std::exception_ptr error_[2];
  std::exception_ptr start_error_;  // on_worker_start threw: b never runs
  std::function<void()> on_worker_start_;
  std::thread thread_;
};

// Inside a task of Interleave::run whose partner is unfinished: hands control to the partner and returns
// when it is this task's turn again. Anywhere else: returns at once.
void interleave_switch();

// Hand-overs over the process's life (every Interleave's), for tests and logs.
std::int64_t interleave_switches_total();

}  // namespace r1
