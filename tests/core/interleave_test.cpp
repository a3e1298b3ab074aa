// Interleave: two tasks take turns at their switch points, on two threads, one at a time; errors of either
// come back from run() after both ended.
#include "core/interleave.hpp"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace r1;

TEST(Interleave, TasksTakeTurnsAtTheirSwitchesOnTwoThreads) {
  std::thread::id worker_start, a_thread, b_thread;
  Interleave il([&] { worker_start = std::this_thread::get_id(); });
  std::vector<std::string> log;
  const auto a = [&] {
    a_thread = std::this_thread::get_id();
    log.push_back("a1");
    interleave_switch();
    log.push_back("a2");
    interleave_switch();
    log.push_back("a3");
    interleave_switch();  // b has ended: returns at once
    log.push_back("a4");
  };
  const auto b = [&] {
    b_thread = std::this_thread::get_id();
    log.push_back("b1");
    interleave_switch();
    log.push_back("b2");
  };
  const std::int64_t before = interleave_switches_total();
  for (int run = 0; run < 3; ++run) {  // the worker is reused
    log.clear();
    EXPECT_EQ(il.run(a, b), 3);
    EXPECT_EQ(log, (std::vector<std::string>{"a1", "b1", "a2", "b2", "a3", "a4"}));
    EXPECT_EQ(a_thread, std::this_thread::get_id());
    EXPECT_NE(b_thread, a_thread);
    EXPECT_EQ(b_thread, worker_start);
  }
  EXPECT_EQ(interleave_switches_total() - before, 9);
}

TEST(Interleave, ATaskWithoutSwitchesRunsWholeBeforeTheOther) {
  Interleave il;
  std::vector<std::string> log;
  EXPECT_EQ(il.run([&] { log.push_back("a"); },
                   [&] {
                     log.push_back("b1");
                     interleave_switch();  // a has ended
                     log.push_back("b2");
                   }),
            0);
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b1", "b2"}));
}

TEST(Interleave, SwitchOutsideARunReturnsAtOnce) {
  interleave_switch();
  Interleave il;
  std::vector<std::string> log;
  il.run([&] { log.push_back("a"); }, [&] { log.push_back("b"); });
  interleave_switch();
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b"}));
}

TEST(Interleave, AnErrorInEitherTaskLetsTheOtherFinishThenComesBack) {
  Interleave il;
  std::vector<std::string> log;
  const auto steady = [&](const char* name) {
    return [&log, name] {
      log.push_back(std::string(name) + "1");
      interleave_switch();
      log.push_back(std::string(name) + "2");
      interleave_switch();
      log.push_back(std::string(name) + "3");
    };
  };
  const auto failing = [&](const char* name) {
    return [&log, name] {
      log.push_back(std::string(name) + "1");
      interleave_switch();
      throw std::runtime_error(std::string(name) + " failed");
    };
  };
  const auto message = [&](const std::function<void()>& a, const std::function<void()>& b) {
    log.clear();
    try {
      il.run(a, b);
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(steady("a"), failing("b")), "b failed");
  EXPECT_EQ(log, (std::vector<std::string>{"a1", "b1", "a2", "a3"}));
  EXPECT_EQ(message(failing("a"), steady("b")), "a failed");
  EXPECT_EQ(log, (std::vector<std::string>{"a1", "b1", "b2", "b3"}));
  EXPECT_EQ(message(failing("a"), failing("b")), "a failed");
  EXPECT_EQ(message(steady("a"), steady("b")), "no error");  // the errors do not stick
  EXPECT_EQ(log, (std::vector<std::string>{"a1", "b1", "a2", "b2", "a3", "b3"}));
}

TEST(Interleave, AWorkerThatCannotStartFailsEveryRunWithoutRunningB) {
  Interleave il([] { throw std::runtime_error("no device"); });
  for (int run = 0; run < 2; ++run) {
    bool a_ran = false, b_ran = false;
    EXPECT_THROW(il.run([&] { a_ran = true; }, [&] { b_ran = true; }), std::runtime_error);
    EXPECT_TRUE(a_ran);
    EXPECT_FALSE(b_ran);
  }
}
