// Checks the generation tests share: relative errors and argmaxes of logit rows, the training forward's logits,
// and two walks over KV caches (slots dropped and reordered midway): decode against the full forward, and a
// parallel layout's decode against one rank's.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "kernels/test_util.hpp"
#include "model/model.hpp"

namespace r1::test {

// max |a[ra] - b[rb]| / max |b[rb]| over rows of f32 [*, V] host tensors.
inline double rel_error(const Tensor& a, std::int64_t ra, const Tensor& b, std::int64_t rb) {
  const std::int64_t V = b.dim(1);
  double d = 0, m = 0;
  for (std::int64_t i = 0; i < V; ++i) {
    d = std::max(d, std::fabs(double(a.data<float>()[ra * V + i]) - b.data<float>()[rb * V + i]));
    m = std::max(m, std::fabs(double(b.data<float>()[rb * V + i])));
  }
  return d / m;
}

// max |a - b| / max |b| over whole f32 host tensors of one shape (0 when bit-identical).
inline double rel_error(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  double d = 0, m = 0;
  for (std::int64_t i = 0; i < b.numel(); ++i) {
    d = std::max(d, std::fabs(double(a.data<float>()[i]) - b.data<float>()[i]));
    m = std::max(m, std::fabs(double(b.data<float>()[i])));
  }
  return d / m;
}

// The first maximum of a row of f32 [*, V] host logits: the lowest id on ties, as greedy sampling.
inline std::int32_t argmax_row(const Tensor& logits, std::int64_t row) {
  const float* p = logits.data<float>() + row * logits.dim(1);
  return static_cast<std::int32_t>(std::max_element(p, p + logits.dim(1)) - p);
}

// argmax_row of every row.
inline std::vector<std::int32_t> argmax_rows(const Tensor& logits) {
  std::vector<std::int32_t> out;
  for (std::int64_t r = 0; r < logits.dim(0); ++r) out.push_back(argmax_row(logits, r));
  return out;
}

// The training forward's logits [S, V] over one sequence, as f32 on the host (from any compute dtype).
inline Tensor full_forward_logits(const Model& m, const std::vector<std::int32_t>& seq) {
  TokenBatch tb;
  tb.seq = static_cast<std::int64_t>(seq.size());
  tb.ids = seq;
  tb.targets.assign(seq.size(), -1);
  ForwardResult r;
  const auto saved = m.forward(m.upload(tb), r);
  const Tensor full = to_host(Model::logits(*saved));
  Tensor full32 = Tensor::host(full.shape(), DType::f32);
  for (std::int64_t j = 0; j < full.numel(); ++j) full32.data<float>()[j] = static_cast<float>(value(full, j));
  return full32;
}

// Prefills `prompts` (3) into the one-rank model `ref` and the layout's model `m` (caches of 3 slots made by
// the caller), then decodes 8 greedy steps of ref's argmax, dropping slot 1 and reordering the others after
// step 4: every pass must give m the logits of ref within `tol` relative, and the same lengths.
inline void expect_decode_equals_one_rank(const Model& ref, KvCache& ref_cache, const Model& m, KvCache& cache,
                                          const std::vector<std::vector<std::int32_t>>& prompts, double tol) {
  Tensor want = to_host(ref.prefill(ref_cache, prompts));
  EXPECT_LE(rel_error(to_host(m.prefill(cache, prompts)), want), tol) << "prefill";
  for (int step = 0; step < 8; ++step) {
    std::vector<std::int32_t> next = argmax_rows(want);  // greedy continuation
    if (step == 4) {  // drop a sequence and reorder the others: the caches follow their slots
      ref.keep_slots(ref_cache, {2, 0});
      m.keep_slots(cache, {2, 0});
      next = {next[2], next[0]};
    }
    want = to_host(ref.decode(ref_cache, next));
    EXPECT_LE(rel_error(to_host(m.decode(cache, next)), want), tol) << "decode step " << step;
    EXPECT_EQ(cache.lengths, ref_cache.lengths);
  }
}

// Prefills `prompts` into a cache of their count of slots and decodes cont[s][step] into each slot's sequence s
// for every step, dropping sequence 1 and reordering the others after step 4; at every step each slot's logits
// must equal `full(sequence)` ([S, V] host logits of the training forward) at the sequence's last row, within
// `tol` relative.
inline void expect_decode_equals_full_forward(const Model& m, const std::vector<std::vector<std::int32_t>>& prompts,
                                              const std::vector<std::vector<std::int32_t>>& cont,
                                              const std::function<Tensor(const std::vector<std::int32_t>&)>& full,
                                              double tol) {
  std::vector<std::vector<std::int32_t>> seqs = prompts;
  std::vector<std::int32_t> slot_of{0, 1, 2};  // which sequence each cache slot holds
  KvCache cache = m.make_kv_cache(3, 20);
  Tensor logits = to_host(m.prefill(cache, prompts));
  for (std::size_t step = 0;; ++step) {
    for (std::size_t i = 0; i < slot_of.size(); ++i) {
      const auto& seq = seqs[static_cast<std::size_t>(slot_of[i])];
      EXPECT_LE(rel_error(logits, static_cast<std::int64_t>(i), full(seq), static_cast<std::int64_t>(seq.size()) - 1), tol)
          << "step " << step << " sequence " << slot_of[i];
    }
    if (step == cont[0].size()) break;
    if (step == 4) {  // drop sequence 1 and reorder: the cache follows its slots
      m.keep_slots(cache, {2, 0});
      slot_of = {2, 0};
    }
    std::vector<std::int32_t> next;
    for (std::int32_t s : slot_of) {
      next.push_back(cont[static_cast<std::size_t>(s)][step]);
      seqs[static_cast<std::size_t>(s)].push_back(next.back());
    }
    logits = to_host(m.decode(cache, next));
  }
}

}  // namespace r1::test
