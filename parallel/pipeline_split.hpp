// How a model's layers are split over pipeline chunks (pipeline stages x virtual stages).
#pragma once
#include <cstdint>
#include <vector>

namespace r1::parallel {

// The transformer layers of one chunk: layers [first, first + count). Chunk 0 also holds the embedding,
// the last chunk the final norm, the output head and the MTP modules; chunk_rank says which pipeline rank
// runs a chunk.
struct ChunkLayers {
  std::int64_t first = 0, count = 0;
};

// Evenly when `chunks` divides n_layers. Otherwise the embedding, the output head and each MTP module
// count as one layer each (Megatron's account_for_embedding/loss_in_pipeline_split), so the first chunk
// takes one layer less and the last 1 + mtp_depth less: DeepSeek-V3's 61 layers + embedding + head +
// MTP = 64 = 16 stages x 4. Empty when neither split leaves every chunk at least one layer.
inline std::vector<ChunkLayers> split_layers(std::int64_t n_layers, std::int64_t mtp_depth, std::int64_t chunks) {
  std::vector<std::int64_t> counts;
  if (chunks >= 1 && n_layers % chunks == 0) {
    counts.assign(static_cast<std::size_t>(chunks), n_layers / chunks);
  } else if (chunks >= 2 && (n_layers + 2 + mtp_depth) % chunks == 0) {
    const std::int64_t units = (n_layers + 2 + mtp_depth) / chunks;
    counts.assign(static_cast<std::size_t>(chunks), units);
    counts.front() -= 1;
    counts.back() -= 1 + mtp_depth;
  }
  std::vector<ChunkLayers> out;
  std::int64_t first = 0;
  for (std::int64_t n : counts) {
    if (n < 1) return {};
    out.push_back({first, n});
    first += n;
  }
  return out;
}

// How chunks are placed on the pipeline ranks. Round robin: chunk c on rank c % stages (one chunk per
// rank, or Megatron's interleaving with several). V-shaped (DualPipeV): 2 x stages chunks, rank r holds
// chunks r and 2 stages - 1 - r, so the model goes down the ranks and back up; rank 0 holds both the
// embedding and the loss, the last rank the two middle chunks (the turn needs no message).
enum class ChunkPlacement { round_robin, v_shape };

inline int chunk_rank(ChunkPlacement placement, int chunk, int stages) {
  if (placement == ChunkPlacement::v_shape && chunk >= stages) return 2 * stages - 1 - chunk;
  return chunk % stages;
}

// The chunks of `chunks` that rank `rank` runs, in model order. Either placement gives a rank its chunks
// in the order chunk / stages, so that is a chunk's index among its rank's.
inline std::vector<int> rank_chunks(ChunkPlacement placement, int rank, int stages, int chunks) {
  std::vector<int> out;
  for (int c = 0; c < chunks; ++c)
    if (chunk_rank(placement, c, stages) == rank) out.push_back(c);
  return out;
}

}  // namespace r1::parallel
