// Checkpoints of device tensors on the GPU: an asynchronous save copies them down on its side stream while
// the caller goes on; a tensor overwritten once wait_for_device_copies() returns is written as it was at
// save(), and loads back onto the device; a NaN in a device tensor fails the commit (diverged) and leaves
// `latest` where it was. Also the SideCopy alone: copies ordered after work queued before them.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "checkpoint/checkpoint.hpp"
#include "core/allocator.hpp"
#include "core/error.hpp"
#include "kernels/context.hpp"
#include "kernels/side_copy.hpp"

namespace fs = std::filesystem;
using namespace r1;

namespace {

Tensor iota_host(const Shape& shape, float first) {
  Tensor t = Tensor::host(shape, DType::f32);
  for (std::int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = first + static_cast<float>(i);
  return t;
}

fs::path fresh(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("r1hpc_device_save_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  return dir;
}

}  // namespace

TEST(SideCopy, CopiesWhatTheDeviceHeldWhenQueued) {
  const kernels::Context ctx = kernels::Context::cuda(0);
  const Tensor want = iota_host({1 << 20}, 0.5f);
  const Tensor dev = ctx.to_here(want);
  const Tensor down = Tensor::empty(want.shape(), DType::f32, staging_host_allocator());
  kernels::SideCopy copies;
  copies.add(down, dev);
  copies.wait();
  EXPECT_EQ(std::memcmp(down.raw(), want.raw(), want.nbytes()), 0);
}

TEST(CheckpointGpu, AsyncSaveWritesTheValuesAtSaveAndLoadsBackOnTheDevice) {
  const kernels::Context ctx = kernels::Context::cuda(0);
  const fs::path dir = fresh("async");
  const Tensor at_save = iota_host({1024, 300}, -7.0f), bias = iota_host({77}, 3.0f);
  const Tensor w = ctx.to_here(at_save), b = ctx.to_here(bias);
  {
    ckpt::Checkpointer c(dir, MPI_COMM_WORLD, 0, true);
    ckpt::Meta m;
    m.step = 1;
    m.stage = "test";
    c.save(m, {{"model/w", w.shape(), {0, 0}, w}, {"model/b", b.shape(), {0}, b}});
    c.wait_for_device_copies();
    copy(w, iota_host(w.shape(), 1000.0f));  // the next update, once the copies are down
    c.finish();
  }
  const Tensor w_back = ctx.zeros(w.shape(), DType::f32), b_back = ctx.zeros(b.shape(), DType::f32);
  ckpt::load(ckpt::step_dir(dir, 1), {{"model/w", w.shape(), {0, 0}, w_back}, {"model/b", b.shape(), {0}, b_back}});
  const Tensor w_host = Tensor::host(w.shape(), DType::f32), b_host = Tensor::host(b.shape(), DType::f32);
  copy(w_host, w_back);
  copy(b_host, b_back);
  EXPECT_EQ(std::memcmp(w_host.raw(), at_save.raw(), at_save.nbytes()), 0);
  EXPECT_EQ(std::memcmp(b_host.raw(), bias.raw(), bias.nbytes()), 0);
  fs::remove_all(dir);
}

TEST(CheckpointGpu, ANanOnTheDeviceFailsTheCommitAndKeepsLatest) {
  const kernels::Context ctx = kernels::Context::cuda(0);
  const fs::path dir = fresh("nan");
  Tensor bad = iota_host({64, 64}, 0.0f);
  bad.data<float>()[4000] = std::nanf("");
  const Tensor w = ctx.to_here(bad);
  ckpt::Checkpointer c(dir, MPI_COMM_WORLD, 0, true);
  ckpt::Meta m;
  m.step = 3;
  m.stage = "test";
  c.save(m, {{"model/w", w.shape(), {0, 0}, w}});
  std::string message;
  try {
    c.finish();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::diverged);
    message = e.message();
  }
  EXPECT_NE(message.find("tensor model/w holds NaN (element 4000"), std::string::npos) << message;
  EXPECT_FALSE(ckpt::latest(dir).has_value());
  EXPECT_FALSE(fs::exists(ckpt::step_dir(dir, 3)));
  fs::remove_all(dir);
}
