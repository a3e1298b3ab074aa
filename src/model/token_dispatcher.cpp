#include "model/token_dispatcher.hpp"

#include "core/interleave.hpp"
#include "kernels/embedding.hpp"
#include "kernels/profile.hpp"
#include "parallel/watched_mpi.hpp"

namespace r1 {

namespace {
std::vector<std::int64_t> times(const std::vector<std::int64_t>& v, std::int64_t w) {
  std::vector<std::int64_t> out(v);
  for (auto& x : out) x *= w;
  return out;
}
Tensor i32_here(const kernels::Context& ctx, const std::vector<std::int32_t>& v) {
  Tensor h = Tensor::host({static_cast<std::int64_t>(v.size())}, DType::i32);
  std::copy(v.begin(), v.end(), h.data<std::int32_t>());
  return ctx.to_here(h);
}
// out[r] = in[idx[r]] for every row: a row gather (embedding_forward copies rows of one dtype exactly).
Tensor gather_rows(const kernels::Context& ctx, const Tensor& in, const Tensor& idx) {
  const Tensor out = ctx.empty({idx.numel(), in.dim(1)}, in.dtype());
  kernels::embedding_forward(ctx, in, idx, out);
  return out;
}
}  // namespace

TokenDispatcher::TokenDispatcher(parallel::Communicator& ep, std::int64_t n_experts, bool overlap)
    : ep_(ep), n_experts_(n_experts), n_local_(n_experts / ep.size()), overlap_(overlap) {
  R1_REQUIRE(n_experts % ep.size() == 0, "expert parallelism: ", n_experts, " routed experts do not split evenly over ",
             ep.name(), " (", ep.size(), " ranks); [parallel] expert must divide [model] n_routed_experts");
}

TokenDispatcher::Route TokenDispatcher::route(const kernels::Context& ctx, const std::vector<std::int64_t>& offsets) const {
  const kernels::ProfileRegion region(ctx, "ep_comm");
  R1_CHECK(static_cast<std::int64_t>(offsets.size()) == n_experts_ + 1, "dispatch: ", offsets.size(),
           " expert offsets for ", n_experts_, " experts");
  const int ranks = ep_.size();
  // Counts per global expert out; per (source rank, local expert) in: got[s E_l + j]. They travel over the
  // group's host communicator (MPI whatever the backend): the host needs them, and on NCCL this neither
  // synchronises the device nor waits behind an exchange the other pass of an overlapped pipeline pair has
  // started on the EP stream.
  std::vector<std::int64_t> mine(static_cast<std::size_t>(n_experts_)), got(mine.size());
  for (std::int64_t e = 0; e < n_experts_; ++e) mine[static_cast<std::size_t>(e)] = offsets[e + 1] - offsets[e];
  parallel::watched_all_to_all(ep_.host_comm(), "expert dispatch row counts", mine.data(), static_cast<int>(n_local_),
                               MPI_INT64_T, got.data());
  const std::int64_t* g = got.data();

  Route r;
  r.send_rows.resize(ranks);
  r.send_at.resize(ranks);
  r.recv_rows.assign(ranks, 0);
  for (int p = 0; p < ranks; ++p) {
    r.send_at[p] = offsets[p * n_local_];
    r.send_rows[p] = offsets[(p + 1) * n_local_] - offsets[p * n_local_];
    for (std::int64_t j = 0; j < n_local_; ++j) r.recv_rows[p] += g[p * n_local_ + j];
  }
  r.recv_at = parallel::packed_displacements(r.recv_rows);
  r.local_offsets.assign(n_local_ + 1, 0);
  for (std::int64_t j = 0; j < n_local_; ++j) {
    r.local_offsets[j + 1] = r.local_offsets[j];
    for (int s = 0; s < ranks; ++s) r.local_offsets[j + 1] += g[s * n_local_ + j];
  }
  // Expert-major order: local expert, then source rank, then the source's own order (token, slot).
  const std::int64_t n = r.local_offsets.back();
  std::vector<std::int32_t> em(static_cast<std::size_t>(n)), sm(static_cast<std::size_t>(n));
  std::vector<std::int64_t> next(r.recv_at);  // per source: its next row of the current local expert
  std::int64_t at = 0;
  for (std::int64_t j = 0; j < n_local_; ++j)
    for (int s = 0; s < ranks; ++s)
      for (std::int64_t i = 0; i < g[s * n_local_ + j]; ++i, ++at) {
        const std::int64_t src = next[s]++;
        em[static_cast<std::size_t>(at)] = static_cast<std::int32_t>(src);
        sm[static_cast<std::size_t>(src)] = static_cast<std::int32_t>(at);
      }
  r.expert_major = i32_here(ctx, em);
  r.source_major = i32_here(ctx, sm);
  return r;
}

// The profile's ep_comm regions hold the exchange's exposed time only: its start and the wait for it
// after `meanwhile` (which is charged to its own regions).
void TokenDispatcher::exchange(const kernels::Context& ctx, const std::vector<Rows>& bufs,
                               const std::vector<std::int64_t>& send_rows, const std::vector<std::int64_t>& send_at,
                               const std::vector<std::int64_t>& recv_rows, const std::vector<std::int64_t>& recv_at,
                               const std::function<void()>& meanwhile, std::int64_t& sent) const {
  {
    const kernels::ProfileRegion region(ctx, "ep_comm");
    for (const Rows& b : bufs) {
      const std::int64_t w = b.in.dim(1);
      const auto sc = times(send_rows, w), sd = times(send_at, w), rc = times(recv_rows, w), rd = times(recv_at, w);
      if (overlap_) ep_.start_all_to_allv(b.in, sc, sd, b.out, rc, rd);
      else ep_.all_to_allv(b.in, sc, sd, b.out, rc, rd);
      for (int p = 0; p < ep_.size(); ++p)
        if (p != ep_.rank()) sent += sc[static_cast<std::size_t>(p)] * static_cast<std::int64_t>(dtype_size(b.in.dtype()));
    }
  }
  // This exchange's last op: an overlapped pair's other pass may start its own exchange meanwhile, which
  // stays in flight while this pass goes on.
  const std::int64_t mine = ep_.ops_started();
  if (meanwhile) meanwhile();
  if (overlap_) interleave_switch();
  const kernels::ProfileRegion region(ctx, "ep_comm");
  ep_.finish_started(mine);
}

Tensor TokenDispatcher::dispatch(const kernels::Context& ctx, const Route& r, const Tensor& rows,
                                 const std::function<void()>& meanwhile) const {
  R1_CHECK(rows.rank() == 2, "dispatch of ", rows.str());
  const Tensor received = ctx.empty({r.received(), rows.dim(1)}, rows.dtype());
  exchange(ctx, {{rows, received}}, r.send_rows, r.send_at, r.recv_rows, r.recv_at, meanwhile, traffic_.dispatch_bytes);
  return gather_rows(ctx, received, r.expert_major);
}

kernels::Fp8Tensor TokenDispatcher::dispatch(const kernels::Context& ctx, const Route& r, const kernels::Fp8Tensor& rows,
                                             const std::function<void()>& meanwhile) const {
  R1_CHECK(rows.block_rows == 1, "FP8 dispatch of ", rows.data.str(), " in ", rows.block_rows, "-row tiles");
  kernels::Fp8Tensor received = kernels::make_fp8(ctx, r.received(), rows.data.dim(1), 1, rows.block_cols);
  received.pow2_scales = rows.pow2_scales;
  exchange(ctx, {{rows.data, received.data}, {rows.scale_inv, received.scale_inv}}, r.send_rows, r.send_at, r.recv_rows,
           r.recv_at, meanwhile, traffic_.dispatch_bytes);
  kernels::Fp8Tensor out = kernels::make_fp8(ctx, r.received(), rows.data.dim(1), 1, rows.block_cols);
  out.pow2_scales = rows.pow2_scales;
  kernels::gather_fp8_rows(ctx, received, r.expert_major, out);
  return out;
}

Tensor TokenDispatcher::combine(const kernels::Context& ctx, const Route& r, const Tensor& rows,
                                const std::function<void()>& meanwhile) const {
  R1_CHECK(rows.rank() == 2 && rows.dim(0) == r.received(), "combine of ", rows.str(), " for ", r.received(), " rows");
  const Tensor back = gather_rows(ctx, rows, r.source_major);
  std::int64_t total = 0;
  for (auto n : r.send_rows) total += n;
  const Tensor out = ctx.empty({total, rows.dim(1)}, rows.dtype());
  exchange(ctx, {{back, out}}, r.recv_rows, r.recv_at, r.send_rows, r.send_at, meanwhile, traffic_.combine_bytes);
  return out;
}

}  // namespace r1
