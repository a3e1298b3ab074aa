// The fixture and helpers of the collective tests (collective_tests.hpp), written once over a backend
// traits type B giving B::backend, B::context() (where buffers live), B::foreign(n) (a tensor in memory
// that backend must refuse) and B::bf16_sum_ulps(size) (its stated bf16 summation error).
// Every rank derives every member's input from (global rank, index, salt), so each expected result is a
// serial computation done locally. Checks are non-fatal, so all ranks keep issuing the same ops.
#pragma once
#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <optional>
#include <type_traits>
#include <vector>

#include "core/timer.hpp"
#include "parallel/comm_bundle.hpp"

namespace r1::parallel::test {

// Groups of several sizes on every rank count: strided ones, singletons, and EP/EDP folded over them.
inline Layout test_layout(int world) {
  switch (world) {
    case 1: return Layout{.world = 1};
    case 2: return Layout{.world = 2, .data = 2, .expert = 2};
    case 4: return Layout{.world = 4, .tensor = 2, .data = 2, .expert = 2};
    case 8: return Layout{.world = 8, .tensor = 2, .data = 4, .expert = 4};
    default: return Layout{.world = world};
  }
}

template <class T> T from_double(double v) {
  if constexpr (std::is_same_v<T, bf16>) return to_bf16(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, f8e4m3>) return to_f8e4m3(static_cast<float>(v));
  else return static_cast<T>(v);
}
template <class T> double to_double(T v) {
  if constexpr (std::is_same_v<T, bf16> || std::is_same_v<T, f8e4m3>) return to_float(v);
  else return static_cast<double>(v);
}

// Element i of global rank r's input: a small integer, exact in every dtype (fp8 included), and so are
// its sums over 8 ranks. Unsigned types get [0, 20], the others [-10, 10].
template <class T> double sample(int r, std::int64_t i, int salt) {
  const double v = static_cast<double>((r * 37 + i * 11 + salt * 13) % 21);
  return std::is_unsigned_v<T> ? v : v - 10;
}

template <class T, class F> Tensor host_of(std::int64_t n, F&& f) {
  Tensor t = Tensor::host({n}, dtype_of<T>::value);
  for (std::int64_t i = 0; i < n; ++i) t.data<T>()[i] = from_double<T>(f(i));
  return t;
}

// The elements of `t` (in any memory) after the communicator's queued ops have finished.
template <class T> std::vector<double> values_of(Communicator& c, const Tensor& t) {
  c.wait();
  Tensor h = Tensor::host(t.shape(), t.dtype());
  copy(h, t);
  std::vector<double> v(t.numel());
  for (std::int64_t i = 0; i < t.numel(); ++i) v[i] = to_double(h.data<T>()[i]);
  return v;
}

template <class B> class Collectives : public testing::Test {
 protected:
  // One context and one bundle per suite, made by the first test (so a missing GPU fails every test)
  // and released before MPI_Finalize.
  void SetUp() override {
    if (bundle_) return;
    ctx_.emplace(B::context());
    int rank = 0, size = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    bundle_.emplace(make_comm_bundle(Mesh(test_layout(size), rank), B::backend, *ctx_, 60));
  }
  static void TearDownTestSuite() {
    bundle_.reset();
    ctx_.reset();
  }

  static const kernels::Context& ctx() { return *ctx_; }
  static const CommBundle& bundle() { return *bundle_; }
  static Tensor here(const Tensor& host) { return ctx_->to_here(host); }
  // This rank's n-element input on communicator c: sample<T>(its global rank, i, salt), where ops want it.
  template <class T> static Tensor input(const Communicator& c, std::int64_t n, int salt) {
    return here(host_of<T>(n, [&](std::int64_t i) { return sample<T>(c.members()[c.rank()], i, salt); }));
  }

  // Runs f on the communicator of every group kind.
  template <class F> static void for_each_group(F&& f) {
    for (GroupKind k : kGroupKinds) f(bundle_->group(k));
  }

  // Runs `started` (a start_* op) and finishes it, or `blocking`; the checks after are the same.
  template <class Blocking, class Started>
  static void issue(Communicator& c, bool start, Blocking&& blocking, Started&& started) {
    if (!start) return blocking();
    started();
    EXPECT_TRUE(c.has_started()) << c.name();
    c.finish_started();
    EXPECT_FALSE(c.has_started()) << c.name();
  }

  template <class T> static void check_all_reduce(ReduceOp op, int salt, bool start = false) {
    for_each_group([&](Communicator& c) {
      const std::int64_t n = 37;
      const Tensor buf = input<T>(c, n, salt);
      issue(c, start, [&] { c.all_reduce(buf, op); }, [&] { c.start_all_reduce(buf, op); });
      std::vector<double> expected(n);
      for (std::int64_t i = 0; i < n; ++i) {
        double acc = sample<T>(c.members()[0], i, salt);
        for (int m = 1; m < c.size(); ++m) {
          const double v = sample<T>(c.members()[m], i, salt);
          acc = op == ReduceOp::sum ? acc + v : op == ReduceOp::max ? std::max(acc, v) : std::min(acc, v);
        }
        expected[i] = acc;
      }
      EXPECT_EQ(values_of<T>(c, buf), expected) << "all_reduce " << static_cast<int>(op) << " of "
                                                << dtype_name(dtype_of<T>::value) << " on " << c.name();
    });
  }

  template <class T> static void check_reduce_scatter(int salt, bool start = false) {
    for_each_group([&](Communicator& c) {
      const std::int64_t n = 5;
      const Tensor in = input<T>(c, n * c.size(), salt);
      const Tensor out = ctx().zeros({n}, dtype_of<T>::value);
      issue(c, start, [&] { c.reduce_scatter(in, out); }, [&] { c.start_reduce_scatter(in, out); });
      std::vector<double> expected(n, 0.0);
      for (std::int64_t j = 0; j < n; ++j)
        for (int m : c.members()) expected[j] += sample<T>(m, c.rank() * n + j, salt);
      EXPECT_EQ(values_of<T>(c, out), expected) << "reduce_scatter of " << dtype_name(dtype_of<T>::value) << " on "
                                                << c.name();
    });
  }

  template <class T> static void check_all_gather(int salt) {
    for_each_group([&](Communicator& c) {
      const std::int64_t n = 6;
      const Tensor in = input<T>(c, n, salt);
      const Tensor out = ctx().zeros({n * c.size()}, dtype_of<T>::value);
      c.all_gather(in, out);
      std::vector<double> expected;
      for (int m : c.members())
        for (std::int64_t i = 0; i < n; ++i) expected.push_back(sample<T>(m, i, salt));
      EXPECT_EQ(values_of<T>(c, out), expected) << "all_gather of " << dtype_name(dtype_of<T>::value) << " on "
                                                << c.name();
    });
  }

  // Element j of the block global rank s sends to global rank d.
  static double block_value(int s, int d, std::int64_t j) { return static_cast<double>((s * 7 + d * 3 + j) % 50); }

  template <class T> static void check_all_to_all() {
    for_each_group([&](Communicator& c) {
      const std::int64_t n = 3;
      const int me = c.members()[c.rank()];
      const Tensor in =
          here(host_of<T>(n * c.size(), [&](std::int64_t i) { return block_value(me, c.members()[i / n], i % n); }));
      const Tensor out = ctx().zeros({n * c.size()}, dtype_of<T>::value);
      c.all_to_all(in, out);
      std::vector<double> expected;
      for (int src : c.members())
        for (std::int64_t j = 0; j < n; ++j) expected.push_back(block_value(src, me, j));
      EXPECT_EQ(values_of<T>(c, out), expected) << "all_to_all of " << dtype_name(dtype_of<T>::value) << " on "
                                                << c.name();
    });
  }

  // Uneven counts (zero for some pairs), with gaps between the blocks on both sides: the gaps of the
  // output must keep their sentinel.
  template <class T> static void check_all_to_allv(bool start = false) {
    const auto count = [](int s, int d) { return static_cast<std::int64_t>((s + 2 * d + 1) % 3); };
    for_each_group([&](Communicator& c) {
      const int me = c.members()[c.rank()];
      std::vector<std::int64_t> sc, sd, rc, rd;
      std::int64_t send_total = 0, recv_total = 0;
      for (int p : c.members()) {
        sc.push_back(count(me, p));
        sd.push_back(send_total);
        send_total += sc.back() + 1;
        rc.push_back(count(p, me));
        rd.push_back(recv_total);
        recv_total += rc.back() + 2;
      }
      std::vector<double> input(send_total, -1.0), expected(recv_total, -1.0);
      for (int p = 0; p < c.size(); ++p) {
        for (std::int64_t j = 0; j < sc[p]; ++j) input[sd[p] + j] = block_value(me, c.members()[p], j);
        for (std::int64_t j = 0; j < rc[p]; ++j) expected[rd[p] + j] = block_value(c.members()[p], me, j);
      }
      const Tensor in = here(host_of<T>(send_total, [&](std::int64_t i) { return input[i]; }));
      const Tensor out = here(host_of<T>(recv_total, [](std::int64_t) { return -1.0; }));
      issue(c, start, [&] { c.all_to_allv(in, sc, sd, out, rc, rd); },
            [&] { c.start_all_to_allv(in, sc, sd, out, rc, rd); });
      EXPECT_EQ(values_of<T>(c, out), expected) << "all_to_allv of " << dtype_name(dtype_of<T>::value) << " on "
                                                << c.name();
    });
  }

  template <class T> static void check_broadcast(int salt) {
    for_each_group([&](Communicator& c) {
      const std::int64_t n = 11;
      const int root = c.size() - 1;
      const Tensor buf = input<T>(c, n, salt);
      c.broadcast(buf, root);
      std::vector<double> expected(n);
      for (std::int64_t i = 0; i < n; ++i) expected[i] = sample<T>(c.members()[root], i, salt);
      EXPECT_EQ(values_of<T>(c, buf), expected) << "broadcast of " << dtype_name(dtype_of<T>::value) << " from rank "
                                                << root << " of " << c.name();
    });
  }

 private:
  inline static std::optional<kernels::Context> ctx_;
  inline static std::optional<CommBundle> bundle_;
};

// Runs `f` and expects a user error whose message contains every one of `parts`.
template <class F> void expect_user_error(F&& f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::user) << e.what();
    for (const std::string& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}

}  // namespace r1::parallel::test
