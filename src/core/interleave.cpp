#include "core/interleave.hpp"

#include <atomic>

namespace r1 {
namespace {

// The task this thread runs inside an Interleave::run, if any.
struct Current {
  Interleave* owner = nullptr;
  int side = 0;
};
thread_local Current current;
std::atomic<std::int64_t> total_switches{0};

}  // namespace

InterleavePartnerFailed::InterleavePartnerFailed()
    : std::runtime_error("interleave: the other task of the pair failed; this one stopped at its next switch") {}

Interleave::Interleave(std::function<void()> on_worker_start)
    : on_worker_start_(std::move(on_worker_start)), thread_([this] { worker(); }) {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return started_; });
  if (!start_error_) return;
  const std::exception_ptr error = start_error_;
  quit_ = true;
  lock.unlock();
  cv_.notify_all();
  thread_.join();
  std::rethrow_exception(error);
}

Interleave::~Interleave() {
  if (!thread_.joinable()) return;
  {
    const std::lock_guard lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Interleave::worker() {
  std::exception_ptr start_error;
  if (on_worker_start_) {
    try {
      on_worker_start_();
    } catch (...) {
      start_error = std::current_exception();
    }
  }
  std::unique_lock lock(mu_);
  on_worker_start_ = nullptr;  // what it holds (e.g. a device context) is not kept for the worker's life
  start_error_ = start_error;
  started_ = true;
  cv_.notify_all();
  if (start_error_) return;  // the constructor rethrows it
  for (;;) {
    cv_.wait(lock, [&] { return quit_ || (task_ != nullptr && !done_[1] && turn_ == 1); });
    if (quit_) return;
    const bool skip = error_[0] != nullptr;  // a failed before it ever switched: b does not start
    lock.unlock();
    std::exception_ptr error;
    if (!skip) {
      current = {this, 1};
      try {
        (*task_)();
      } catch (...) {
        error = std::current_exception();
      }
      current = {};
    }
    finish(1, error);
    lock.lock();
  }
}

void Interleave::hand_over(int from) {
  std::unique_lock lock(mu_);
  if (!done_[1 - from]) {
    turn_ = 1 - from;
    ++switches_;
    total_switches.fetch_add(1, std::memory_order_relaxed);
    cv_.notify_all();
    cv_.wait(lock, [&] { return turn_ == from; });
  }
  // A partner that failed stops this task here: it would issue collectives the other ranks do not match.
  if (error_[1 - from]) throw InterleavePartnerFailed();
}

void Interleave::finish(int side, std::exception_ptr error) {
  std::unique_lock lock(mu_);
  error_[side] = error;
  if (error && first_error_ < 0) first_error_ = side;
  done_[side] = true;
  turn_ = 1 - side;
  cv_.notify_all();
  if (side == 0) cv_.wait(lock, [&] { return done_[1]; });
}

std::int64_t Interleave::run(const std::function<void()>& a, const std::function<void()>& b) {
  {
    const std::lock_guard lock(mu_);
    task_ = &b;
    done_[0] = done_[1] = false;
    turn_ = 0;
    switches_ = 0;
    error_[0] = error_[1] = nullptr;
    first_error_ = -1;
  }
  const Current outer = current;
  current = {this, 0};
  std::exception_ptr error;
  try {
    a();
  } catch (...) {
    error = std::current_exception();
  }
  current = outer;
  finish(0, error);  // returns once b has ended too
  std::exception_ptr first;
  std::int64_t switches = 0;
  {
    const std::lock_guard lock(mu_);
    task_ = nullptr;
    if (first_error_ >= 0) first = error_[first_error_];
    switches = switches_;
  }
  if (first) std::rethrow_exception(first);
  return switches;
}

void interleave_switch() {
  if (current.owner != nullptr) current.owner->hand_over(current.side);
}

std::int64_t interleave_switches_total() { return total_switches.load(std::memory_order_relaxed); }

}  // namespace r1
