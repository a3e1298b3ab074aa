#include "checkpoint/isolate.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "core/error.hpp"

namespace r1::ckpt {

namespace {

void write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<std::size_t>(n);
  }
}

// A message from the child: its kind (P progress, R returned, T threw), 8 hex digits of length, the text.
void send(int fd, char kind, const std::string& text) {
  char head[10];
  std::snprintf(head, sizeof head, "%c%08zx", kind, text.size());
  write_all(fd, std::string(head, 9) + text);
}

void limit_memory(std::size_t extra) {
  unsigned long pages = 0;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%lu", &pages) != 1) pages = 0;
    std::fclose(f);
  }
  const rlim_t cap = static_cast<rlim_t>(pages) * static_cast<rlim_t>(::sysconf(_SC_PAGESIZE)) + extra;
  const rlimit lim{cap, cap};
  ::setrlimit(RLIMIT_AS, &lim);
}

[[noreturn]] void child(int fd, const std::function<std::string(const Progress&)>& fn, std::size_t extra_memory) {
  // A crash ends the child quietly: the parent reports it (MPI's handlers would print a backtrace).
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) ::signal(sig, SIG_DFL);
  if (extra_memory > 0) limit_memory(extra_memory);
  const Progress progress = [fd](const std::string& note) { send(fd, 'P', note); };
  try {
    send(fd, 'R', fn(progress));
  } catch (const Error& e) {
    send(fd, 'T', e.message());  // the parent reports it as its own error, without this file's location
  } catch (const std::exception& e) {
    send(fd, 'T', e.what());
  }
  ::close(fd);
  ::_exit(0);  // no atexit handlers, no flush of the parent's stdio buffers, no MPI
}

// Reads the child's message until it closes the pipe or the deadline passes.
bool read_until_eof(int fd, std::string& out, std::chrono::steady_clock::time_point deadline) {
  char buf[65536];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return r == 0 ? false : true;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// Splits the child's messages; false when the stream ends inside a message or holds no result.
bool parse(const std::string& stream, Isolated& r) {
  std::size_t at = 0;
  bool result = false;
  while (at + 9 <= stream.size()) {
    const char kind = stream[at];
    const std::size_t len = std::stoul(stream.substr(at + 1, 8), nullptr, 16);
    if (at + 9 + len > stream.size()) return false;
    std::string text = stream.substr(at + 9, len);
    at += 9 + len;
    if (kind == 'P') {
      r.progress = std::move(text);
    } else {
      r.outcome = kind == 'R' ? Isolated::Outcome::returned : Isolated::Outcome::threw;
      r.text = std::move(text);
      result = true;
    }
  }
  return result;
}

}  // namespace

Isolated run_isolated(const std::function<std::string(const Progress&)>& fn, double timeout_s, std::size_t extra_memory_bytes) {
  int fds[2];
  if (::pipe(fds) != 0) R1_FAIL(io, "cannot create a pipe for the checkpoint check: ", std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    ::close(fds[0]);
    ::close(fds[1]);
    R1_FAIL(io, "cannot fork the checkpoint check: ", std::strerror(e));
  }
  if (pid == 0) {
    ::close(fds[0]);
    child(fds[1], fn, extra_memory_bytes);
  }
  ::close(fds[1]);
  std::string msg;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  const bool finished = read_until_eof(fds[0], msg, std::chrono::time_point_cast<std::chrono::steady_clock::duration>(deadline));
  ::close(fds[0]);
  if (!finished) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  Isolated r;
  const bool complete = parse(msg, r);
  if (!finished) {
    r.outcome = Isolated::Outcome::timed_out;
    r.text = detail::concat("did not finish within ", timeout_s, " s");
  } else if (WIFSIGNALED(status) || !WIFEXITED(status) || WEXITSTATUS(status) != 0 || !complete) {
    r.outcome = Isolated::Outcome::crashed;
    r.text = WIFSIGNALED(status) ? detail::concat("crashed with signal ", WTERMSIG(status), " (", strsignal(WTERMSIG(status)), ")")
                                 : detail::concat("ended with status ", WIFEXITED(status) ? WEXITSTATUS(status) : -1, " and no result");
  }
  return r;
}

}  // namespace r1::ckpt
