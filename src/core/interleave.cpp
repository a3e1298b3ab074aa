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

Interleave::Interleave(std::function<void()> on_worker_start)
    : on_worker_start_(std::move(on_worker_start)), thread_([this] { worker(); }) {}

Interleave::~Interleave() {
  {
    const std::lock_guard lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Interleave::worker() {
  if (on_worker_start_) {
    try {
      on_worker_start_();
    } catch (...) {
      start_error_ = std::current_exception();  // every run reports it
    }
  }
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return quit_ || (task_ != nullptr && !done_[1] && turn_ == 1); });
    if (quit_) return;
    if (start_error_) {
      error_[1] = start_error_;
    } else {
      lock.unlock();
      current = {this, 1};
      try {
        (*task_)();
      } catch (...) {
        error_[1] = std::current_exception();
      }
      current = {};
      lock.lock();
    }
    lock.unlock();
    finish(1);
    lock.lock();
  }
}

void Interleave::hand_over(int from) {
  std::unique_lock lock(mu_);
  if (done_[1 - from]) return;
  turn_ = 1 - from;
  ++switches_;
  total_switches.fetch_add(1, std::memory_order_relaxed);
  cv_.notify_all();
  cv_.wait(lock, [&] { return turn_ == from; });
}

void Interleave::finish(int side) {
  std::unique_lock lock(mu_);
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
    error_[0] = nullptr;
  }
  const Current outer = current;
  current = {this, 0};
  try {
    a();
  } catch (...) {
    error_[0] = std::current_exception();
  }
  current = outer;
  finish(0);  // returns once b has ended too
  std::exception_ptr error;
  std::int64_t switches = 0;
  {
    const std::lock_guard lock(mu_);
    task_ = nullptr;
    error = error_[0] ? error_[0] : error_[1];
    error_[1] = nullptr;
    switches = switches_;
  }
  if (error) std::rethrow_exception(error);
  return switches;
}

void interleave_switch() {
  if (current.owner != nullptr) current.owner->hand_over(current.side);
}

std::int64_t interleave_switches_total() { return total_switches.load(std::memory_order_relaxed); }

}  // namespace r1
