// Error type with context (what went wrong, where: deck line, tensor, rank), and check macros.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace r1 {

// What kind of failure this is decides how main reports it and which exit code it uses.
enum class ErrorKind {
  user,      // bad deck, bad file, bad argument: exit code 2, printed once, no MPI_Abort
  internal,  // a broken invariant in r1hpc itself
  io,        // a file could not be read or written
  cuda,      // a CUDA / cuBLAS / NCCL call failed
  comm,      // an MPI / NCCL collective failed or timed out
  diverged,  // training state not finite or diverging (train/divergence_guard.hpp, a checkpoint being saved):
             // every rank stops before committing it, exit 4
};

const char* error_kind_name(ErrorKind k);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, std::string message, std::string where = {});
  ErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  const std::string& where() const { return where_; }

 private:
  ErrorKind kind_;
  std::string message_;
  std::string where_;
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
[[noreturn]] void throw_error(ErrorKind kind, const char* file, int line, std::string message);
}  // namespace detail

}  // namespace r1

// R1_CHECK(cond, parts...): an internal invariant; R1_REQUIRE(cond, parts...): a user-facing
// precondition (bad argument or input). Both throw r1::Error with the message parts concatenated.
#define R1_CHECK(cond, ...)                                                                  \
  do {                                                                                       \
    if (!(cond))                                                                             \
      ::r1::detail::throw_error(::r1::ErrorKind::internal, __FILE__, __LINE__,               \
                                ::r1::detail::concat("check failed: " #cond ": ", __VA_ARGS__)); \
  } while (0)
#define R1_REQUIRE(cond, ...)                                                                \
  do {                                                                                       \
    if (!(cond))                                                                             \
      ::r1::detail::throw_error(::r1::ErrorKind::user, __FILE__, __LINE__,                   \
                                ::r1::detail::concat(__VA_ARGS__));                          \
  } while (0)
#define R1_FAIL(kind, ...) \
  ::r1::detail::throw_error(::r1::ErrorKind::kind, __FILE__, __LINE__, ::r1::detail::concat(__VA_ARGS__))
