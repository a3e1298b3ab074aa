// How a model's layers are split over pipeline chunks (pipeline stages x virtual stages).
#pragma once
#include <cstdint>
#include <vector>

namespace r1::parallel {

// The transformer layers of one chunk: layers [first, first + count). Chunk c runs on pipeline rank
// c % pipeline (Megatron's interleaving); chunk 0 also holds the embedding, the last chunk the final
// norm, the output head and the MTP modules.
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

}  // namespace r1::parallel
