// Every deck in tests/deck/bad/ must be rejected with a user error at the place and with the message
// its header states, without writing anything. The header lines (the e2e tests read the same ones):
//   # error: LOCATION: FRAGMENT   LOCATION is a line of this deck, FILE:LINE of a file beside it, or --set ARG
//   # world: N                    ranks to validate for (default 1)
//   # set: section.key=value      a --set override to apply
//   # own-output-dir              the deck names its output directory (a fixture that must stay unchanged)
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <sstream>

#include "deck/validate.hpp"
#include "deck_test_util.hpp"

namespace r1 {
namespace {

namespace fs = std::filesystem;
using test::deck_test_dir;
using test::ScratchDir;

struct BadDeck {
  std::string name;
  std::string path;      // relative to tests/deck, the working directory of these tests
  std::string location;  // the error message starts with it
  std::string fragment;  // and contains this
  int world = 1;
  std::vector<std::string> sets;
  bool own_output_dir = false;
};

void PrintTo(const BadDeck& b, std::ostream* os) { *os << b.path; }

BadDeck read_bad_deck(const fs::path& file) {
  BadDeck b;
  b.name = file.stem().string();
  b.path = "bad/" + file.filename().string();
  std::ifstream in(file);
  for (std::string line; std::getline(in, line) && line.starts_with("#");) {
    if (line.starts_with("# error: ")) {
      const std::string rest = line.substr(9);
      const auto sep = rest.find(": ");
      const std::string loc = rest.substr(0, sep);
      b.fragment = rest.substr(sep + 2);
      if (std::all_of(loc.begin(), loc.end(), [](unsigned char c) { return std::isdigit(c); }))
        b.location = b.path + ":" + loc;
      else if (loc.starts_with("--set"))
        b.location = loc;
      else
        b.location = (fs::path("bad") / loc).lexically_normal().string();
    } else if (line.starts_with("# world: ")) {
      b.world = std::stoi(line.substr(9));
    } else if (line.starts_with("# set: ")) {
      b.sets.push_back(line.substr(7));
    } else if (line == "# own-output-dir") {
      b.own_output_dir = true;
    }
  }
  return b;
}

std::vector<BadDeck> bad_decks() {
  std::vector<BadDeck> decks;
  for (const auto& entry : fs::directory_iterator(deck_test_dir() / "bad"))
    if (entry.path().extension() == ".deck") decks.push_back(read_bad_deck(entry.path()));
  std::sort(decks.begin(), decks.end(), [](const BadDeck& a, const BadDeck& b) { return a.name < b.name; });
  return decks;
}

// Every file under DIR with its size and modification time: equal listings mean nothing was written.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    std::ostringstream item;
    item << e.path().string();
    if (e.is_regular_file()) item << ' ' << e.file_size() << ' ' << e.last_write_time().time_since_epoch().count();
    out.push_back(item.str());
  }
  std::sort(out.begin(), out.end());
  return out;
}

class BadDeckTest : public ::testing::TestWithParam<BadDeck> {
 protected:
  static void SetUpTestSuite() {
    saved_cwd_ = fs::current_path();
    fs::current_path(deck_test_dir());
  }
  static void TearDownTestSuite() { fs::current_path(saved_cwd_); }
  static inline fs::path saved_cwd_;
};

TEST_P(BadDeckTest, IsRejectedAtItsLocationAndWritesNothing) {
  const BadDeck& b = GetParam();
  ASSERT_FALSE(b.location.empty() || b.fragment.empty()) << b.path << " has no '# error: LOCATION: FRAGMENT' line";
  ScratchDir scratch;
  const fs::path out = scratch.path() / "out";
  std::vector<std::string> sets;
  if (!b.own_output_dir) sets.push_back("run.output_dir=" + out.string());
  sets.insert(sets.end(), b.sets.begin(), b.sets.end());
  const auto fixtures_before = listing("fixtures");

  const std::string msg = test::user_error_of([&] { validate_deck(Deck::load(b.path, sets), b.world); });
  EXPECT_TRUE(msg.starts_with(b.location + ": ")) << msg << "\nexpected to start with: " << b.location;
  EXPECT_NE(msg.find(b.fragment), std::string::npos) << msg << "\nexpected to contain: " << b.fragment;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(listing("fixtures"), fixtures_before);
}

INSTANTIATE_TEST_SUITE_P(, BadDeckTest, ::testing::ValuesIn(bad_decks()),
                         [](const ::testing::TestParamInfo<BadDeck>& info) { return info.param.name; });

TEST(BadDecks, CoverAtLeastTwentyFiveMistakes) { EXPECT_GE(bad_decks().size(), 25u); }

}  // namespace
}  // namespace r1
