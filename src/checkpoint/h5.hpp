// Thin HDF5 helpers for the checkpoint code: owned handles, dtype mapping, attributes, error text.
#pragma once
#include <hdf5.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.hpp"

namespace r1::ckpt::h5 {

// One HDF5 identifier, closed by its own close function when it goes out of scope.
class Id {
 public:
  Id() = default;
  Id(hid_t id, herr_t (*close)(hid_t)) : id_(id), close_(close) {}
  ~Id() { reset(); }
  Id(Id&& o) noexcept : id_(o.id_), close_(o.close_) { o.id_ = -1; }
  Id& operator=(Id&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = o.id_;
      close_ = o.close_;
      o.id_ = -1;
    }
    return *this;
  }
  Id(const Id&) = delete;
  Id& operator=(const Id&) = delete;
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }
  // Closes now and reports whether HDF5 flushed and closed cleanly (a file's close writes its metadata).
  bool close() {
    const bool good = id_ < 0 || close_(id_) >= 0;
    id_ = -1;
    return good;
  }

 private:
  void reset() {
    if (id_ >= 0) close_(id_);
    id_ = -1;
  }
  hid_t id_ = -1;
  herr_t (*close_)(hid_t) = nullptr;
};

// Silences HDF5's own stack printing: its errors become r1::Error messages with error_text() in them.
void quiet();
// The innermost messages of the calling thread's HDF5 error stack ("" when empty), then clears it.
std::string error_text();

// File type and memory type of a dtype. bf16 and fp8 have no HDF5 type: they are stored as their
// raw 16/8-bit patterns, and the "dtype" attribute of every dataset says what the bits mean.
hid_t file_type(DType t);
hid_t mem_type(DType t);
DType parse_dtype(const std::string& name);  // the inverse of dtype_name; a user error otherwise

void write_string_attr(hid_t obj, const char* name, const std::string& value);
void write_i64_attr(hid_t obj, const char* name, const std::vector<std::int64_t>& values);
// Read back; a missing or mistyped attribute throws an io error naming `what` (the file and object).
std::string read_string_attr(hid_t obj, const char* name, const std::string& what);
std::vector<std::int64_t> read_i64_attr(hid_t obj, const char* name, const std::string& what);

}  // namespace r1::ckpt::h5
