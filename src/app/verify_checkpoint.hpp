// `r1hpc --verify-checkpoint PATH`: the independent check of a checkpoint (or of every checkpoint of a
// checkpoints directory) that reads every file, checks every checksum and that every value is finite.
#pragma once
#include <ostream>
#include <string>

namespace r1 {

// Not collective: the caller runs it on one rank. Prints one report per checkpoint to `out`; returns
// kExitOk when every checkpoint is intact, kExitCheckpointDamaged otherwise. A path that is neither a
// checkpoint nor a directory of them is a user error.
int verify_checkpoint_path(const std::string& path, std::ostream& out);

}  // namespace r1
