// Device-limited routing: how many expert-parallel ranks one token's routed experts can sit on.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>
#include <vector>

namespace r1::parallel {

// `routed` experts split over `ep` ranks in contiguous blocks (rank r: experts [r n/ep, (r+1) n/ep)),
// group-limited routing keeping `limited` of `groups` contiguous expert groups and `top_k` experts: the
// ranks spanned by the `limited` widest groups, at most top_k and ep. Groups aligned with the ranks
// (groups a multiple of ep) make it `limited`: DeepSeek-V3's node limit M. Arguments as the deck checks
// them (ep and groups divide routed).
inline std::int64_t expert_ranks_per_token(std::int64_t routed, std::int64_t groups, std::int64_t limited,
                                           std::int64_t top_k, std::int64_t ep) {
  if (ep <= 1) return 1;
  const std::int64_t per_rank = routed / ep, per_group = routed / groups;
  std::vector<std::int64_t> spans;  // ranks each group's experts sit on
  for (std::int64_t g = 0; g < groups; ++g) spans.push_back(((g + 1) * per_group - 1) / per_rank - g * per_group / per_rank + 1);
  std::sort(spans.begin(), spans.end(), std::greater<>());
  std::int64_t ranks = 0;
  for (std::int64_t g = 0; g < std::min(limited, groups); ++g) ranks += spans[static_cast<std::size_t>(g)];
  return std::min({ranks, top_k, ep});
}

}  // namespace r1::parallel
