#include "parallel/watched_mpi.hpp"

#include <cstdio>
#include <numeric>
#include <vector>

#include "core/error.hpp"
#include "core/timer.hpp"
#include "parallel/mesh.hpp"

namespace r1::parallel {

namespace {

extern "C" int delete_watch(MPI_Comm, int, void* value, void*) {
  delete static_cast<Watch*>(value);
  return MPI_SUCCESS;
}

// Created once, on first use (the main thread: watched ops are host agreements between steps).
int watch_keyval() {
  static const int keyval = [] {
    int k = MPI_KEYVAL_INVALID;
    MPI_Comm_create_keyval(MPI_COMM_NULL_COPY_FN, delete_watch, &k, nullptr);
    return k;
  }();
  return keyval;
}

std::vector<int> world_ranks(MPI_Comm comm) {
  MPI_Group group = MPI_GROUP_NULL, world = MPI_GROUP_NULL;
  MPI_Comm_group(comm, &group);
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  int n = 0;
  MPI_Group_size(group, &n);
  std::vector<int> local(static_cast<std::size_t>(n)), global(static_cast<std::size_t>(n));
  std::iota(local.begin(), local.end(), 0);
  MPI_Group_translate_ranks(group, n, local.data(), world, global.data());
  MPI_Group_free(&group);
  MPI_Group_free(&world);
  return global;
}

// The largest tag MPI allows (at least 32767): above the [0, 32767] of Communicator's user tags wherever
// the MPI allows more, so an arrival never matches an op's message.
int arrival_tag() {
  void* value = nullptr;
  int flag = 0;
  MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &value, &flag);
  return flag ? *static_cast<int*>(value) : 32767;
}

// One op's arrival exchange through group rank 0: rank 0 receives a word from every other rank and
// sends one to each; the others send theirs and receive rank 0's. Request k of rank 0 is the receive
// from rank k + 1; request 0 of another rank is the receive from rank 0.
class Arrivals {
 public:
  Arrivals(MPI_Comm comm, int rank, int size) : rank_(rank), words_(static_cast<std::size_t>(size), 1) {
    const int tag = arrival_tag();
    if (rank == 0) {
      for (int r = 1; r < size; ++r) recv_.push_back(post(MPI_Irecv, &words_[r], r, tag, comm));
      for (int r = 1; r < size; ++r) send_.push_back(post(MPI_Isend, &words_[0], r, tag, comm));
    } else {
      recv_.push_back(post(MPI_Irecv, &words_[1], 0, tag, comm));
      send_.push_back(post(MPI_Isend, &words_[0], 0, tag, comm));
    }
  }
  Arrivals(const Arrivals&) = delete;
  Arrivals& operator=(const Arrivals&) = delete;
  // A request still open when the op is given up: the receives are withdrawn (no late word lands in
  // freed memory), the sends released to finish on their own.
  ~Arrivals() {
    for (MPI_Request& r : recv_)
      if (r != MPI_REQUEST_NULL) MPI_Cancel(&r), MPI_Wait(&r, MPI_STATUS_IGNORE);
    for (MPI_Request& r : send_)
      if (r != MPI_REQUEST_NULL) MPI_Request_free(&r);
  }

  bool done() {
    bool all = true;
    for (auto* list : {&recv_, &send_})
      for (MPI_Request& r : *list) {
        int flag = 1;
        if (r != MPI_REQUEST_NULL) MPI_Test(&r, &flag, MPI_STATUS_IGNORE);
        all = all && flag;
      }
    return all;
  }

  // The group ranks not heard from: on rank 0 every silent member, elsewhere rank 0 if it is silent.
  std::vector<int> silent() const {
    std::vector<int> ranks;
    for (std::size_t k = 0; k < recv_.size(); ++k)
      if (recv_[k] != MPI_REQUEST_NULL) ranks.push_back(rank_ == 0 ? static_cast<int>(k) + 1 : 0);
    return ranks;
  }

 private:
  template <class Post, class Buf> static MPI_Request post(Post p, Buf* buf, int peer, int tag, MPI_Comm comm) {
    MPI_Request r = MPI_REQUEST_NULL;
    p(buf, 1, MPI_INT, peer, tag, comm, &r);
    return r;
  }

  int rank_;
  std::vector<int> words_;
  std::vector<MPI_Request> recv_, send_;
};

// The end of the timeout message: who did not arrive, as far as this rank can tell.
std::string who_is_missing(const Arrivals& arrivals, int rank, const std::vector<int>& world) {
  const std::vector<int> silent = arrivals.silent();
  if (rank != 0)
    return silent.empty() ? detail::concat("group rank 0 (world rank ", world[0],
                                           ") arrived; its error names the ranks that did not")
                          : detail::concat("group rank 0 (world rank ", world[0], ") did not arrive");
  if (silent.empty()) return "every rank arrived, but the op did not complete (a rank died inside it?)";
  std::vector<int> global;
  for (int r : silent) global.push_back(world[static_cast<std::size_t>(r)]);
  return detail::concat("group rank(s) ", format_ranks(silent), " (world rank(s) ", format_ranks(global),
                        ") did not arrive");
}

// Starts the op (start(&request) returns an MPI error code) beside the arrival exchange and polls both
// until they finish or the limit passes.
template <class Start> void watched(MPI_Comm comm, const char* what, const char* mpi_op, Start&& start) {
  const Watch watch = watch_of(comm);
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  MPI_Request op = MPI_REQUEST_NULL;
  const int rc = start(&op);
  if (rc != MPI_SUCCESS) {
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    R1_FAIL(comm, what, " (", mpi_op, " on ", watch.name, ", rank ", rank, " of ", size, "): ", std::string(text, len));
  }
  if (size == 1 || watch.timeout_s <= 0) {
    MPI_Wait(&op, MPI_STATUS_IGNORE);
    return;
  }
  Arrivals arrivals(comm, rank, size);
  const Stopwatch clock;
  for (;;) {
    int flag = 0;
    if (op != MPI_REQUEST_NULL) MPI_Test(&op, &flag, MPI_STATUS_IGNORE);
    if (arrivals.done() && op == MPI_REQUEST_NULL) return;
    const double waited = clock.seconds();
    if (waited > watch.timeout_s) {
      char secs[32];
      std::snprintf(secs, sizeof secs, "%.1f", waited);
      throw WatchdogTimeout(detail::concat("watchdog: ", what, " (", mpi_op, " on ", watch.name, ", rank ", rank, " of ", size,
              ") did not finish within ", watch.timeout_s, " s (waited ", secs, " s): ",
                                           who_is_missing(arrivals, rank, world_ranks(comm))));
    }
  }
}

}  // namespace

void attach_watch(MPI_Comm comm, const Watch& watch) {
  const int rc = MPI_Comm_set_attr(comm, watch_keyval(), new Watch(watch));
  R1_CHECK(rc == MPI_SUCCESS, "cannot attach the watchdog of ", watch.name, " (MPI code ", rc, ")");
}

Watch watch_of(MPI_Comm comm) {
  void* value = nullptr;
  int flag = 0;
  MPI_Comm_get_attr(comm, watch_keyval(), &value, &flag);
  if (flag) return *static_cast<const Watch*>(value);
  return {detail::concat("MPI communicator [", format_ranks(world_ranks(comm)), "]"), 0};
}

void watched_all_reduce(MPI_Comm comm, const char* what, void* buf, int count, MPI_Datatype type, MPI_Op op) {
  watched(comm, what, "MPI_Iallreduce",
          [&](MPI_Request* r) { return MPI_Iallreduce(MPI_IN_PLACE, buf, count, type, op, comm, r); });
}

void watched_bcast(MPI_Comm comm, const char* what, void* buf, int count, MPI_Datatype type, int root) {
  watched(comm, what, "MPI_Ibcast", [&](MPI_Request* r) { return MPI_Ibcast(buf, count, type, root, comm, r); });
}

void watched_gather(MPI_Comm comm, const char* what, const void* send, int count, MPI_Datatype type, void* recv,
                    int root) {
  watched(comm, what, "MPI_Igather",
          [&](MPI_Request* r) { return MPI_Igather(send, count, type, recv, count, type, root, comm, r); });
}

void watched_gatherv(MPI_Comm comm, const char* what, const void* send, int count, MPI_Datatype type, void* recv,
                     const int* recv_counts, const int* displs, int root) {
  watched(comm, what, "MPI_Igatherv", [&](MPI_Request* r) {
    return MPI_Igatherv(send, count, type, recv, recv_counts, displs, type, root, comm, r);
  });
}

void watched_all_to_all(MPI_Comm comm, const char* what, const void* send, int count, MPI_Datatype type, void* recv) {
  watched(comm, what, "MPI_Ialltoall",
          [&](MPI_Request* r) { return MPI_Ialltoall(send, count, type, recv, count, type, comm, r); });
}

}  // namespace r1::parallel
