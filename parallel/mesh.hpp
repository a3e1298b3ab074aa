// Mesh: the parallel layout (world = PP x DP x TP, MoE layers folding DP x TP into EP x EDP) and every rank's groups.
#pragma once
#include <array>
#include <string>
#include <vector>

namespace r1::parallel {

// The deck's `[parallel]` sizes. `data` 0 means "auto": world / (tensor x pipeline).
// `order` names the dense dimensions fastest-varying first: "tp-dp-pp" (Megatron's default) puts the
// ranks of a TP group next to each other, so TP, the chattiest group, stays inside a node.
struct Layout {
  int world = 1;
  int tensor = 1;
  int pipeline = 1;
  int data = 0;
  int expert = 1;
  std::string order = "tp-dp-pp";
};

// The kinds of groups a rank belongs to. world is the whole mesh; ep/edp exist for MoE layers only.
enum class GroupKind { world, tp, dp, pp, ep, edp };
inline constexpr std::array<GroupKind, 6> kGroupKinds = {GroupKind::world, GroupKind::tp, GroupKind::dp,
                                                        GroupKind::pp,    GroupKind::ep, GroupKind::edp};
const char* group_kind_name(GroupKind k);  // "world", "tp", "dp", "pp", "ep", "edp"

// A rank's position in every group kind (its rank within that group).
struct Coord {
  int tp = 0, dp = 0, pp = 0, ep = 0, edp = 0;
  bool operator==(const Coord&) const = default;
};

// The mesh seen from one rank. Pure arithmetic on (layout, rank): no MPI, so a planning run
// (`--dry-run --world-size 2048`) can build and print the mesh of any rank on one process.
//
// MoE folding (expert-tensor-parallel 1): the tp x dp ranks of one pipeline stage are numbered
// f = 0 .. tp*dp-1 in the order's relative order of tp and dp (f = tp + TP*dp for "tp-dp-pp"),
// then cut into EP groups of `expert` consecutive f (ep rank = f % expert) and EDP groups of the
// ranks with equal f % expert (edp rank = f / expert), so a stage holds tp*dp/expert EP groups.
class Mesh {
 public:
  // Validates the layout (user errors naming the offending values) and resolves data = auto.
  Mesh(Layout layout, int rank);

  const Layout& layout() const { return layout_; }  // with `data` resolved
  int rank() const { return rank_; }
  int world() const { return layout_.world; }
  int size(GroupKind k) const;  // members of one group of this kind

  Coord coord() const { return coord_of(rank_); }
  Coord coord_of(int rank) const;
  int rank_of(int tp, int dp, int pp) const;  // global rank at the given dense coordinates
  int group_rank(GroupKind k) const { return group_rank_of(k, rank_); }
  int group_rank_of(GroupKind k, int rank) const;

  // Global ranks of a group, ordered by rank within the group.
  std::vector<int> group(GroupKind k) const { return group_of(k, rank_); }
  std::vector<int> group_of(GroupKind k, int rank) const;
  // Every group of a kind, ordered by the global rank of each group's rank 0.
  std::vector<std::vector<int>> all_groups(GroupKind k) const;

  std::string describe_rank(int rank) const;  // one line: coordinates and the group of every kind
  std::string summary() const;                // the layout and every group of every kind

 private:
  Layout layout_;
  int rank_;
  std::array<int, 3> stride_{};  // rank = tp*stride_[0] + dp*stride_[1] + pp*stride_[2]
  bool tp_before_dp_ = true;     // order lists tp before dp: tp varies fastest inside a stage
};

// "0,1,2,3" for short lists, "0,8..2040" for long arithmetic progressions, else head ... tail.
std::string format_ranks(const std::vector<int>& ranks);

}  // namespace r1::parallel
