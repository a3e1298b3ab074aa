// Expert-parallel token dispatch and combine: each rank's (token, slot) rows, sorted by global expert, go by
// all-to-all(v) to the EP rank that holds their expert, and the expert outputs come back the same way.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/context.hpp"
#include "kernels/fp8.hpp"
#include "parallel/comm.hpp"

namespace r1 {

// Three phases, as in Megatron's dispatcher: (1) the local permute by destination is moe_permute itself,
// since EP rank p holds the contiguous experts [p E_l, (p+1) E_l) and rows sorted by global expert are
// therefore sorted by destination rank; (2) the exchange, counts first, then the rows; (3) the received
// rows (source-rank major) are regrouped expert-major so that one grouped GEMM covers each local expert.
// Combine and the backward run the same steps in reverse. Stateless apart from the communicator, so
// several micro-batches may be in flight.
// Overlap: dispatch and combine run `meanwhile` (compute that neither reads nor writes the exchanged
// rows, e.g. the shared experts) while the rows are on the wire (`overlap`; else after the exchange).
// The same kernels run in the same order either way, so the results are the same bits. With `overlap`, an
// exchange inside one pass of DualPipe's overlapped forward/backward pair then hands over to the other
// pass (interleave_switch, core/interleave.hpp) before it waits for the rows: the other pass computes
// while they move.
class TokenDispatcher {
 public:
  // `ep`: the expert-parallel group; `n_experts`: routed experts in all (a multiple of the group size).
  TokenDispatcher(parallel::Communicator& ep, std::int64_t n_experts, bool overlap = true);

  // The routing of one micro-batch over the EP group (all counts in rows).
  struct Route {
    std::vector<std::int64_t> send_rows, send_at;  // per EP rank: rows of the expert-sorted buffer sent there
    std::vector<std::int64_t> recv_rows, recv_at;  // per EP rank: rows received from it (source-major buffer)
    std::vector<std::int64_t> local_offsets;       // E_l + 1: local expert j owns expert-major rows [o_j, o_j+1)
    Tensor expert_major;  // i32 [N]: the source-major row that expert-major row r takes
    Tensor source_major;  // i32 [N]: the inverse permutation
    std::int64_t received() const { return local_offsets.back(); }
  };
  // `offsets`: this rank's E + 1 expert offsets from moe_permute (host). Exchanges the per-expert counts
  // with every EP rank (one all-to-all and one host synchronisation). Collective over the EP group.
  Route route(const kernels::Context& ctx, const std::vector<std::int64_t>& offsets) const;
  // rows [T k, W] in global-expert order -> [N, W] rows for this rank's experts, expert-major. Collective.
  Tensor dispatch(const kernels::Context& ctx, const Route& r, const Tensor& rows,
                  const std::function<void()>& meanwhile = {}) const;
  // The same for rows quantised in 1 x 128 tiles (precision fp8, DeepSeek-V3's FP8 dispatch): their E4M3 bytes
  // and f32 tile scales travel, about half the bytes of BF16 rows. A row's tiles are its own, so the received
  // rows are exactly the quantisation of the rows dispatch() would deliver. Collective.
  kernels::Fp8Tensor dispatch(const kernels::Context& ctx, const Route& r, const kernels::Fp8Tensor& rows,
                              const std::function<void()>& meanwhile = {}) const;
  // The reverse: [N, W] expert-major rows -> the [T k, W] rows of this rank's tokens, in global-expert
  // order again (each row back at the rank and position it was dispatched from). Collective.
  Tensor combine(const kernels::Context& ctx, const Route& r, const Tensor& rows,
                 const std::function<void()>& meanwhile = {}) const;

  // Bytes this rank has sent to the other EP ranks (its own rows stay put) over its life, by direction:
  // dispatch (the forward's tokens and the backward's output gradients) and combine.
  struct Traffic {
    std::int64_t dispatch_bytes = 0, combine_bytes = 0;
  };
  const Traffic& traffic() const { return traffic_; }

  std::int64_t local_experts() const { return n_local_; }
  std::int64_t first_expert() const { return n_local_ * ep_.rank(); }

 private:
  // Rows of `in` sent by send_rows / send_at land in `out` by recv_rows / recv_at.
  struct Rows {
    Tensor in, out;
  };
  // The exchange of every in into its out (all split by the same rows), with `meanwhile` beside it
  // (overlap_) or after it; the bytes sent to other ranks are added to `sent`.
  void exchange(const kernels::Context& ctx, const std::vector<Rows>& bufs, const std::vector<std::int64_t>& send_rows,
                const std::vector<std::int64_t>& send_at, const std::vector<std::int64_t>& recv_rows,
                const std::vector<std::int64_t>& recv_at, const std::function<void()>& meanwhile,
                std::int64_t& sent) const;

  parallel::Communicator& ep_;
  std::int64_t n_experts_, n_local_;
  bool overlap_;
  mutable Traffic traffic_;
};

}  // namespace r1
