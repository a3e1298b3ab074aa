// error_of: the message of the r1::Error a call throws ("no error" when it throws none), for tests that
// check what an error names.
#pragma once
#include <functional>
#include <string>

#include "core/error.hpp"

namespace r1::test {

inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.message();
  }
  return "no error";
}

}  // namespace r1::test
