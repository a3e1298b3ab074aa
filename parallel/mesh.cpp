#include "parallel/mesh.hpp"

#include <algorithm>
#include <sstream>
#include <utility>

#include "core/error.hpp"

namespace r1::parallel {

namespace {
constexpr std::array<const char*, 3> kDenseDims = {"tp", "dp", "pp"};

// Parses "tp-dp-pp" into the position of each dense dimension (tp, dp, pp) in the order, fastest first.
std::array<int, 3> parse_order(const std::string& order) {
  std::array<int, 3> pos = {-1, -1, -1};
  std::istringstream in(order);
  std::string part;
  int n = 0;
  while (std::getline(in, part, '-')) {
    const auto it = std::find(kDenseDims.begin(), kDenseDims.end(), part);
    R1_REQUIRE(it != kDenseDims.end() && n < 3 && pos[it - kDenseDims.begin()] < 0, "[parallel] order = '", order,
               "' is not an ordering of tp, dp and pp (e.g. tp-dp-pp, fastest-varying first)");
    pos[it - kDenseDims.begin()] = n++;
  }
  R1_REQUIRE(n == 3 && order.size() == 8, "[parallel] order = '", order,
             "' is not an ordering of tp, dp and pp (e.g. tp-dp-pp, fastest-varying first)");
  return pos;
}
}  // namespace

const char* group_kind_name(GroupKind k) {
  switch (k) {
    case GroupKind::world: return "world";
    case GroupKind::tp: return "tp";
    case GroupKind::dp: return "dp";
    case GroupKind::pp: return "pp";
    case GroupKind::ep: return "ep";
    case GroupKind::edp: return "edp";
  }
  return "?";
}

Mesh::Mesh(Layout layout, int rank) : layout_(std::move(layout)), rank_(rank) {
  Layout& l = layout_;
  R1_REQUIRE(l.world >= 1 && l.tensor >= 1 && l.pipeline >= 1 && l.expert >= 1 && l.data >= 0,
             "[parallel] sizes must be positive: world ", l.world, ", tensor ", l.tensor, ", pipeline ", l.pipeline,
             ", data ", l.data, " (0 = auto), expert ", l.expert);
  if (l.data == 0) {
    R1_REQUIRE(l.world % (l.tensor * l.pipeline) == 0, "[parallel] data = auto: world size ", l.world,
               " is not divisible by tensor ", l.tensor, " x pipeline ", l.pipeline);
    l.data = l.world / (l.tensor * l.pipeline);
  }
  R1_REQUIRE(static_cast<long long>(l.tensor) * l.data * l.pipeline == l.world, "[parallel] world size ", l.world,
             " is not tensor ", l.tensor, " x data ", l.data, " x pipeline ", l.pipeline, " = ",
             static_cast<long long>(l.tensor) * l.data * l.pipeline);
  R1_REQUIRE((l.tensor * l.data) % l.expert == 0, "[parallel] expert ", l.expert,
             " does not divide the tensor x data ranks of a pipeline stage (", l.tensor, " x ", l.data, " = ",
             l.tensor * l.data, "): expert groups fold over those ranks");
  R1_REQUIRE(0 <= rank && rank < l.world, "rank ", rank, " is outside the mesh of ", l.world, " ranks");
  const std::array<int, 3> pos = parse_order(l.order);
  const std::array<int, 3> extent = {l.tensor, l.data, l.pipeline};
  for (int d = 0; d < 3; ++d) {
    stride_[d] = 1;
    for (int e = 0; e < 3; ++e)
      if (pos[e] < pos[d]) stride_[d] *= extent[e];
  }
  tp_before_dp_ = pos[0] < pos[1];
}

int Mesh::size(GroupKind k) const {
  switch (k) {
    case GroupKind::world: return layout_.world;
    case GroupKind::tp: return layout_.tensor;
    case GroupKind::dp: return layout_.data;
    case GroupKind::pp: return layout_.pipeline;
    case GroupKind::ep: return layout_.expert;
    case GroupKind::edp: return layout_.tensor * layout_.data / layout_.expert;
  }
  return 0;
}

Coord Mesh::coord_of(int rank) const {
  R1_REQUIRE(0 <= rank && rank < layout_.world, "rank ", rank, " is outside the mesh of ", layout_.world, " ranks");
  Coord c;
  c.tp = rank / stride_[0] % layout_.tensor;
  c.dp = rank / stride_[1] % layout_.data;
  c.pp = rank / stride_[2] % layout_.pipeline;
  const int f = tp_before_dp_ ? c.tp + layout_.tensor * c.dp : c.dp + layout_.data * c.tp;
  c.ep = f % layout_.expert;
  c.edp = f / layout_.expert;
  return c;
}

int Mesh::rank_of(int tp, int dp, int pp) const {
  R1_REQUIRE(0 <= tp && tp < layout_.tensor && 0 <= dp && dp < layout_.data && 0 <= pp && pp < layout_.pipeline,
             "mesh coordinates tp ", tp, ", dp ", dp, ", pp ", pp, " are outside tensor ", layout_.tensor, " x data ",
             layout_.data, " x pipeline ", layout_.pipeline);
  return tp * stride_[0] + dp * stride_[1] + pp * stride_[2];
}

int Mesh::group_rank_of(GroupKind k, int rank) const {
  const Coord c = coord_of(rank);
  switch (k) {
    case GroupKind::world: return rank;
    case GroupKind::tp: return c.tp;
    case GroupKind::dp: return c.dp;
    case GroupKind::pp: return c.pp;
    case GroupKind::ep: return c.ep;
    case GroupKind::edp: return c.edp;
  }
  return 0;
}

std::vector<int> Mesh::group_of(GroupKind k, int rank) const {
  const Coord c = coord_of(rank);
  std::vector<int> g;
  g.reserve(size(k));
  // A folded index back to the global rank, within the stage of `rank`.
  const auto unfold = [&](int f) {
    return tp_before_dp_ ? rank_of(f % layout_.tensor, f / layout_.tensor, c.pp)
                         : rank_of(f / layout_.data, f % layout_.data, c.pp);
  };
  switch (k) {
    case GroupKind::world:
      for (int r = 0; r < layout_.world; ++r) g.push_back(r);
      break;
    case GroupKind::tp:
      for (int i = 0; i < layout_.tensor; ++i) g.push_back(rank_of(i, c.dp, c.pp));
      break;
    case GroupKind::dp:
      for (int i = 0; i < layout_.data; ++i) g.push_back(rank_of(c.tp, i, c.pp));
      break;
    case GroupKind::pp:
      for (int i = 0; i < layout_.pipeline; ++i) g.push_back(rank_of(c.tp, c.dp, i));
      break;
    case GroupKind::ep:
      for (int i = 0; i < layout_.expert; ++i) g.push_back(unfold(c.edp * layout_.expert + i));
      break;
    case GroupKind::edp:
      for (int i = 0; i < size(k); ++i) g.push_back(unfold(i * layout_.expert + c.ep));
      break;
  }
  return g;
}

std::vector<std::vector<int>> Mesh::all_groups(GroupKind k) const {
  std::vector<std::vector<int>> groups;
  for (int r = 0; r < layout_.world; ++r)
    if (group_rank_of(k, r) == 0) groups.push_back(group_of(k, r));
  return groups;
}

std::string Mesh::describe_rank(int rank) const {
  const Coord c = coord_of(rank);
  std::ostringstream os;
  os << "rank " << rank << ": tp " << c.tp << " dp " << c.dp << " pp " << c.pp << " ep " << c.ep << " edp " << c.edp;
  for (GroupKind k : kGroupKinds)
    if (k != GroupKind::world) os << "  " << group_kind_name(k) << "[" << format_ranks(group_of(k, rank)) << "]";
  return os.str();
}

std::string Mesh::summary() const {
  const Layout& l = layout_;
  std::ostringstream os;
  os << "mesh: world " << l.world << " = tp " << l.tensor << " x dp " << l.data << " x pp " << l.pipeline
     << " (order " << l.order << ", fastest first); MoE: ep " << l.expert << " x edp " << size(GroupKind::edp)
     << " per stage\n";
  for (GroupKind k : kGroupKinds) {
    if (k == GroupKind::world) continue;
    const auto groups = all_groups(k);
    os << "  " << group_kind_name(k) << ": " << groups.size() << " group(s) of " << size(k) << ":";
    for (std::size_t i = 0; i < groups.size(); ++i) os << (i % 8 ? " [" : "\n    [") << format_ranks(groups[i]) << "]";
    os << "\n";
  }
  return os.str();
}

std::string format_ranks(const std::vector<int>& ranks) {
  std::ostringstream os;
  const std::size_t n = ranks.size();
  if (n <= 8) {
    for (std::size_t i = 0; i < n; ++i) os << (i ? "," : "") << ranks[i];
    return os.str();
  }
  const int step = ranks[1] - ranks[0];
  bool progression = true;
  for (std::size_t i = 2; i < n && progression; ++i) progression = ranks[i] - ranks[i - 1] == step;
  if (progression && step == 1) {
    os << ranks.front() << ".." << ranks.back();
  } else if (progression) {
    os << ranks[0] << "," << ranks[1] << ".." << ranks.back();
  } else {
    os << ranks[0] << "," << ranks[1] << "," << ranks[2] << ",...," << ranks.back() << " (" << n << " ranks)";
  }
  return os.str();
}

}  // namespace r1::parallel
