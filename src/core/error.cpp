#include "core/error.hpp"

#include <cstring>

namespace r1 {

const char* error_kind_name(ErrorKind k) {
  switch (k) {
    case ErrorKind::user: return "error";
    case ErrorKind::internal: return "internal error";
    case ErrorKind::io: return "I/O error";
    case ErrorKind::cuda: return "CUDA error";
    case ErrorKind::comm: return "communication error";
    case ErrorKind::non_finite: return "non-finite value";
  }
  return "error";
}

Error::Error(ErrorKind kind, std::string message, std::string where)
    : std::runtime_error(where.empty() ? message : where + ": " + message),
      kind_(kind),
      message_(std::move(message)),
      where_(std::move(where)) {}

namespace detail {
void throw_error(ErrorKind kind, const char* file, int line, std::string message) {
  // User errors are located by their message (deck line, tensor, file); internal ones by source line.
  std::string where;
  if (kind != ErrorKind::user) {
    const char* base = std::strrchr(file, '/');
    where = concat(base ? base + 1 : file, ":", line);
  }
  throw Error(kind, std::move(message), std::move(where));
}
}  // namespace detail

}  // namespace r1
