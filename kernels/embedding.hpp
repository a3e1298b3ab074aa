// Token embedding lookup and its gradient: out[t] = table[ids[t]]; dtable[ids[t]] += dout[t].
#pragma once
#include "kernels/context.hpp"

namespace r1::kernels {

// table: [V, D] f32|bf16; ids: i32 [T]; out: [T, D] f32|bf16 (converted from the table's dtype when they
// differ, e.g. f32 master table to bf16 activations). Ids must lie in [0, V) or be -1, a row held by
// another rank's shard of a vocabulary-parallel table: its output row is 0 and the backward skips it.
// Checked on the CPU; on the GPU the caller validates them (another out-of-range id gives a NaN row,
// never an out-of-bounds read).
void embedding_forward(const Context& ctx, const Tensor& table, const Tensor& ids, const Tensor& out);
// dout: [T, D] f32|bf16; dtable: f32 [V, D], ACCUMULATED (+=) so that micro-batches add up.
// Deterministic on both backends: the tokens of one id are summed in token order, then added once. On
// the GPU (ids sorted by a stable radix sort) an out-of-range id is skipped.
void embedding_backward(const Context& ctx, const Tensor& dout, const Tensor& ids, const Tensor& dtable);

}  // namespace r1::kernels
