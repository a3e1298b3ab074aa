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

// A task that throws stops the other at its next switch (which throws InterleavePartnerFailed there, so the
// survivor issues nothing its peers would not match); run() rethrows the error that came first.
TEST(Interleave, AnErrorStopsTheOtherTaskAtItsNextSwitchAndTheFirstComesBack) {
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
  const auto failing = [&](const char* name, bool at_once = false) {
    return [&log, name, at_once] {
      log.push_back(std::string(name) + "1");
      if (!at_once) interleave_switch();
      throw std::runtime_error(std::string(name) + " failed");
    };
  };
  const auto message = [&](const std::function<void()>& a, const std::function<void()>& b) {
    log.clear();
    try {
      il.run(a, b);
    } catch (const InterleavePartnerFailed& e) {
      return std::string("partner failed");
    } catch (const std::runtime_error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message(steady("a"), failing("b")), "b failed");
  EXPECT_EQ(log, (std::vector<std::string>{"a1", "b1", "a2"}));  // a stops at its second switch
  EXPECT_EQ(message(failing("a"), steady("b")), "a failed");
  EXPECT_EQ(log, (std::vector<std::string>{"a1", "b1"}));  // b stops at its first switch
  EXPECT_EQ(message(failing("a", true), steady("b")), "a failed");
  EXPECT_EQ(log, (std::vector<std::string>{"a1"}));  // a failed before it switched: b never starts
  EXPECT_EQ(message(failing("a"), failing("b")), "a failed");
  EXPECT_EQ(message(steady("a"), failing("b", true)), "b failed");
  EXPECT_EQ(log, (std::vector<std::string>{"a1", "b1"}));
  EXPECT_EQ(message(steady("a"), steady("b")), "no error");  // the errors do not stick
  EXPECT_EQ(log, (std::vector<std::string>{"a1", "b1", "a2", "b2", "a3", "b3"}));
}

// A worker that cannot start (e.g. its device cannot be made current) fails the construction, before any task.
TEST(Interleave, AWorkerThatCannotStartFailsTheConstruction) {
  EXPECT_THROW(Interleave([] { throw std::runtime_error("no device"); }), std::runtime_error);
}
