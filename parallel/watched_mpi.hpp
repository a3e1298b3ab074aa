// Watched MPI host collectives on a bare MPI_Comm (agreements of the checkpointer, the stop signal, the
// self-check): the non-blocking form polled against the communicator's watchdog limit.
#pragma once
#include <mpi.h>

#include <string>

#include "core/error.hpp"

namespace r1::parallel {

// A collective (a Communicator op or a watched host op) outlived its watchdog limit: a member of the
// group is missing, stuck or dead. A comm error, distinct so that main can abort with kExitWatchdog.
class WatchdogTimeout : public Error {
 public:
  explicit WatchdogTimeout(std::string message) : Error(ErrorKind::comm, std::move(message)) {}
};

// The watchdog of an MPI communicator: the name errors call its group ("world[0,1]") and the limit of
// each watched op on it (0 = wait forever). It travels with the communicator as an MPI attribute, so
// code handed a bare MPI_Comm (e.g. Communicator::host_comm()) watches its ops without being told.
struct Watch {
  std::string name;
  double timeout_s = 0;
};

// Attaches (or replaces) the watch of `comm`. make_communicator attaches its group's to the MPI
// communicator it creates.
void attach_watch(MPI_Comm comm, const Watch& watch);
// The watch of `comm`; a communicator without one is named by its world ranks and waits forever.
Watch watch_of(MPI_Comm comm);

// Each call is collective over `comm`, as its blocking MPI namesake, and `what` names the operation for
// the error ("checkpoint commit agreement"). Every member also reports its arrival to group rank 0 and
// rank 0 to every member, so that when the op outlives the limit, rank 0's error names the ranks that did
// not arrive (and another rank's says whether rank 0 did). That error is a WatchdogTimeout: main aborts
// the job with kExitWatchdog. MPI failures are other comm errors.
void watched_all_reduce(MPI_Comm comm, const char* what, void* buf, int count, MPI_Datatype type, MPI_Op op);  // in place
void watched_bcast(MPI_Comm comm, const char* what, void* buf, int count, MPI_Datatype type, int root);
void watched_gather(MPI_Comm comm, const char* what, const void* send, int count, MPI_Datatype type, void* recv,
                    int root);
void watched_gatherv(MPI_Comm comm, const char* what, const void* send, int count, MPI_Datatype type, void* recv,
                     const int* recv_counts, const int* displs, int root);
// Block p (`count` elements) of send goes to member p; block p of recv comes from member p.
void watched_all_to_all(MPI_Comm comm, const char* what, const void* send, int count, MPI_Datatype type, void* recv);

}  // namespace r1::parallel
