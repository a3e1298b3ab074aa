#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/log.hpp"

using r1::Error;
using r1::ErrorKind;

TEST(Error, RequireThrowsAUserErrorWithTheMessageAlone) {
  try {
    R1_REQUIRE(1 + 1 == 3, "deck.ini:12: key ", "'lr'", " out of range");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::user);
    EXPECT_STREQ(e.what(), "deck.ini:12: key 'lr' out of range");
  }
}

TEST(Error, CheckThrowsAnInternalErrorNamingTheSourceLine) {
  try {
    R1_CHECK(false, "value ", 7);
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::internal);
    EXPECT_NE(std::string(e.what()).find("error_test.cpp:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("value 7"), std::string::npos) << e.what();
  }
}

TEST(Log, ParsesLevelsAndRejectsUnknownOnes) {
  EXPECT_EQ(r1::parse_log_level("debug"), r1::LogLevel::debug);
  EXPECT_EQ(r1::parse_log_level("warn"), r1::LogLevel::warn);
  EXPECT_THROW(r1::parse_log_level("loud"), Error);
}

TEST(Log, InfoComesFromRankZeroOnlyAndWarningsNameTheRank) {
  r1::Logger l;
  l.configure(1, 4, r1::LogLevel::info);
  testing::internal::CaptureStdout();
  l.info("progress");
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
  testing::internal::CaptureStderr();
  l.warn("disk slow");
  EXPECT_NE(testing::internal::GetCapturedStderr().find("[rank 1] warning: disk slow"), std::string::npos);
  l.configure(0, 4, r1::LogLevel::warn);
  testing::internal::CaptureStdout();
  l.info("hidden below the level");
  EXPECT_EQ(testing::internal::GetCapturedStdout(), "");
}
