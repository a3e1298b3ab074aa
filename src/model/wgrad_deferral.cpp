#include "model/wgrad_deferral.hpp"

#include "core/error.hpp"

namespace r1 {
namespace {
// Thread-local: a backward and its GEMMs run on the thread that called it, and two model replicas on two
// threads (tests) must not see each other's queue.
thread_local WgradQueue* active = nullptr;
}  // namespace

void WgradQueue::push(std::function<void()> work, std::size_t bytes_held) {
  work_.push_back(std::move(work));
  bytes_ += bytes_held;
}

void WgradQueue::drain() {
  WgradQueue* outer = active;
  active = nullptr;
  for (auto& w : work_) w();
  active = outer;
  work_.clear();
  bytes_ = 0;
}

DeferWgrad::DeferWgrad(WgradQueue& queue) {
  R1_CHECK(active == nullptr, "weight-gradient deferrals cannot nest");
  active = &queue;
}

DeferWgrad::~DeferWgrad() { active = nullptr; }

WgradQueue* deferring_wgrad() { return active; }

}  // namespace r1
