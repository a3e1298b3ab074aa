// The mesh against hand-computed group tables for several layouts and orders, and the layouts it rejects.
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "parallel/mesh.hpp"

using namespace r1::parallel;
using Groups = std::vector<std::vector<int>>;

namespace {
Layout layout(int world, int tp, int pp, int dp, int ep, const char* order = "tp-dp-pp") {
  return Layout{.world = world, .tensor = tp, .pipeline = pp, .data = dp, .expert = ep, .order = order};
}

// The groups seen from each rank must be exactly the mesh-wide table: every member of a group sees the
// same group, and its rank in it is its position.
void expect_consistent(const Layout& l) {
  for (GroupKind k : kGroupKinds) {
    for (const auto& g : Mesh(l, 0).all_groups(k)) {
      for (std::size_t i = 0; i < g.size(); ++i) {
        const Mesh m(l, g[i]);
        EXPECT_EQ(m.group(k), g) << group_kind_name(k) << " group seen from rank " << g[i];
        EXPECT_EQ(m.group_rank(k), static_cast<int>(i)) << group_kind_name(k) << " rank of " << g[i];
      }
    }
  }
}

std::string message_of(const Layout& l) {
  try {
    Mesh m(l, 0);
  } catch (const r1::Error& e) {
    EXPECT_EQ(e.kind(), r1::ErrorKind::user);
    return e.what();
  }
  ADD_FAILURE() << "layout accepted";
  return {};
}
}  // namespace

// world 8 = tp 2 x dp 2 x pp 2, TP fastest: rank = tp + 2 dp + 4 pp.
TEST(Mesh, Tp2Dp2Pp2TensorFastest) {
  const Layout l = layout(8, 2, 2, 2, 4);
  const Mesh m(l, 0);
  EXPECT_EQ(m.all_groups(GroupKind::tp), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::dp), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::pp), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::ep), (Groups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::edp), (Groups{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}}));
  EXPECT_EQ(m.all_groups(GroupKind::world), (Groups{{0, 1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(Mesh(l, 6).coord(), (Coord{.tp = 0, .dp = 1, .pp = 1, .ep = 2, .edp = 0}));
  EXPECT_EQ(Mesh(l, 3).coord(), (Coord{.tp = 1, .dp = 1, .pp = 0, .ep = 3, .edp = 0}));
  EXPECT_EQ(m.rank_of(1, 0, 1), 5);
  expect_consistent(l);
}

TEST(Mesh, Expert2FoldsIntoTensorPairsAndDataParallelReplicas) {
  const Layout l = layout(8, 2, 2, 2, 2);
  const Mesh m(l, 0);
  EXPECT_EQ(m.all_groups(GroupKind::ep), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::edp), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(m.size(GroupKind::edp), 2);
  expect_consistent(l);
}

// Same sizes, DP fastest: rank = dp + 2 tp + 4 pp; the folded order follows (dp before tp).
TEST(Mesh, Tp2Dp2Pp2DataFastest) {
  const Layout l = layout(8, 2, 2, 2, 2, "dp-tp-pp");
  const Mesh m(l, 0);
  EXPECT_EQ(m.all_groups(GroupKind::tp), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::dp), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::pp), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::ep), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::edp), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(Mesh(l, 1).coord(), (Coord{.tp = 0, .dp = 1, .pp = 0, .ep = 1, .edp = 0}));
  EXPECT_EQ(Mesh(l, 6).coord(), (Coord{.tp = 1, .dp = 0, .pp = 1, .ep = 0, .edp = 1}));
  expect_consistent(l);
}

// PP fastest: rank = pp + 2 dp + 4 tp; a stage's ranks are not contiguous, yet EP folds within the stage.
TEST(Mesh, PipelineFastestFoldsWithinEachStage) {
  const Layout l = layout(8, 2, 2, 2, 2, "pp-dp-tp");
  const Mesh m(l, 0);
  EXPECT_EQ(m.all_groups(GroupKind::tp), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::dp), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::pp), (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::ep), (Groups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(m.all_groups(GroupKind::edp), (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  expect_consistent(l);
}

// world 16 = tp 2 x dp 4 x pp 2, expert 4: rank = tp + 2 dp + 8 pp; a stage's 8 ranks form two EP
// groups of 4, and each EP rank has one replica in the other EP group of its stage.
TEST(Mesh, World16Tp2Pp2Dp4Ep4) {
  const Layout l = layout(16, 2, 2, 4, 4);
  const Mesh m(l, 13);
  EXPECT_EQ(m.all_groups(GroupKind::tp),
            (Groups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}));
  EXPECT_EQ(m.all_groups(GroupKind::dp), (Groups{{0, 2, 4, 6}, {1, 3, 5, 7}, {8, 10, 12, 14}, {9, 11, 13, 15}}));
  EXPECT_EQ(m.all_groups(GroupKind::pp),
            (Groups{{0, 8}, {1, 9}, {2, 10}, {3, 11}, {4, 12}, {5, 13}, {6, 14}, {7, 15}}));
  EXPECT_EQ(m.all_groups(GroupKind::ep), (Groups{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}, {12, 13, 14, 15}}));
  EXPECT_EQ(m.all_groups(GroupKind::edp),
            (Groups{{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}}));
  EXPECT_EQ(m.coord(), (Coord{.tp = 1, .dp = 2, .pp = 1, .ep = 1, .edp = 1}));
  EXPECT_EQ(m.group(GroupKind::tp), (std::vector<int>{12, 13}));
  EXPECT_EQ(m.group(GroupKind::dp), (std::vector<int>{9, 11, 13, 15}));
  EXPECT_EQ(m.group(GroupKind::pp), (std::vector<int>{5, 13}));
  EXPECT_EQ(m.group(GroupKind::ep), (std::vector<int>{12, 13, 14, 15}));
  EXPECT_EQ(m.group(GroupKind::edp), (std::vector<int>{9, 13}));
  expect_consistent(l);
}

TEST(Mesh, OneRankIsItsOwnGroupOfEveryKind) {
  const Mesh m(layout(1, 1, 1, 1, 1), 0);
  for (GroupKind k : kGroupKinds) EXPECT_EQ(m.all_groups(k), (Groups{{0}})) << group_kind_name(k);
  EXPECT_EQ(m.coord(), Coord{});
}

TEST(Mesh, DataZeroMeansWhatTheOtherSizesLeave) {
  const Mesh m(layout(24, 2, 3, 0, 2), 5);
  EXPECT_EQ(m.layout().data, 4);
  EXPECT_EQ(m.size(GroupKind::edp), 4);
}

TEST(Mesh, PlansAHugeMeshWithoutMpi) {
  const Mesh m(layout(2048, 8, 16, 0, 64), 2047);
  EXPECT_EQ(m.layout().data, 16);
  EXPECT_EQ(m.coord(), (Coord{.tp = 7, .dp = 15, .pp = 15, .ep = 63, .edp = 1}));
  EXPECT_EQ(m.all_groups(GroupKind::tp).size(), 256u);
  EXPECT_EQ(m.all_groups(GroupKind::ep).size(), 32u);
  EXPECT_EQ(format_ranks(m.group(GroupKind::dp)), "1927,1935..2047");
  EXPECT_EQ(format_ranks(m.group(GroupKind::ep)), "1984..2047");
}

TEST(Mesh, SummaryAndRankLineNameEveryGroup) {
  const Layout l = layout(8, 2, 2, 2, 2);
  const Mesh m(l, 0);
  const std::string s = m.summary();
  EXPECT_NE(s.find("world 8 = tp 2 x dp 2 x pp 2"), std::string::npos) << s;
  EXPECT_NE(s.find("tp: 4 group(s) of 2:"), std::string::npos) << s;
  EXPECT_NE(s.find("[0,2] [1,3] [4,6] [5,7]"), std::string::npos) << s;
  EXPECT_EQ(m.describe_rank(5), "rank 5: tp 1 dp 0 pp 1 ep 1 edp 0  tp[4,5]  dp[5,7]  pp[1,5]  ep[4,5]  edp[5,7]");
}

TEST(Mesh, RejectsSizesThatDoNotMultiplyToTheWorld) {
  const std::string m = message_of(layout(8, 3, 1, 2, 1));
  EXPECT_NE(m.find("world size 8 is not tensor 3 x data 2 x pipeline 1 = 6"), std::string::npos) << m;
  EXPECT_NE(message_of(layout(8, 3, 1, 0, 1)).find("not divisible by tensor 3 x pipeline 1"), std::string::npos);
}

TEST(Mesh, RejectsAnExpertSizeThatDoesNotDivideAStage) {
  const std::string m = message_of(layout(8, 2, 2, 2, 3));
  EXPECT_NE(m.find("expert 3 does not divide the tensor x data ranks of a pipeline stage (2 x 2 = 4)"),
            std::string::npos)
      << m;
}

TEST(Mesh, RejectsOrdersThatAreNotAPermutation) {
  for (const char* bad : {"tp-tp-pp", "tp-dp", "tp-ep-pp", "tp-dp-pp-", "TP-DP-PP", ""}) {
    const std::string m = message_of(layout(8, 2, 2, 2, 1, bad));
    EXPECT_NE(m.find("order = '" + std::string(bad) + "' is not an ordering of tp, dp and pp"), std::string::npos) << m;
  }
}

TEST(Mesh, RejectsNonPositiveSizesAndRanksOutsideTheWorld) {
  EXPECT_NE(message_of(layout(8, 0, 2, 2, 1)).find("sizes must be positive"), std::string::npos);
  EXPECT_THROW(Mesh(layout(4, 2, 1, 2, 1), 4), r1::Error);
  EXPECT_THROW(Mesh(layout(4, 2, 1, 2, 1), 0).coord_of(-1), r1::Error);
}
