// Whole-file reads and crash-safe writes (temp file, fsync, rename): a reader sees the old or the new
// content, never a torn file.
#pragma once
#include <string>

namespace r1 {

std::string read_file(const std::string& path);  // throws an io error naming the path
void write_file_atomic(const std::string& path, const std::string& content);
// fsync of a directory, so that a rename inside it survives a power loss.
void sync_directory(const std::string& dir);

}  // namespace r1
