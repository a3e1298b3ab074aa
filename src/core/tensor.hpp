// Tensor: an owned (shared) host or device buffer with a shape and a dtype; contiguous row-major.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "core/allocator.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"

namespace r1 {

class Shape {
 public:
  static constexpr int kMaxRank = 6;
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims);
  template <class It> Shape(It first, It last) {
    for (; first != last; ++first) push_back(static_cast<std::int64_t>(*first));
  }
  int rank() const { return rank_; }
  std::int64_t operator[](int i) const { return dims_[i < 0 ? i + rank_ : i]; }
  std::int64_t& operator[](int i) { return dims_[i < 0 ? i + rank_ : i]; }
  std::int64_t numel() const;
  void push_back(std::int64_t d);
  bool operator==(const Shape& o) const;
  std::string str() const;  // "[2, 3, 4]"

 private:
  std::array<std::int64_t, kMaxRank> dims_{};
  int rank_ = 0;
};

// The memory a tensor views. It keeps its allocator alive, so a tensor may outlive the context that made it.
struct Storage {
  Storage(std::shared_ptr<Allocator> alloc, std::size_t bytes);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  std::shared_ptr<Allocator> allocator;
  void* ptr = nullptr;
  std::size_t bytes = 0;
};

class Tensor {
 public:
  Tensor() = default;
  static Tensor empty(const Shape& shape, DType dtype, std::shared_ptr<Allocator> alloc);
  static Tensor host(const Shape& shape, DType dtype);  // uninitialised host tensor
  static Tensor host_zeros(const Shape& shape, DType dtype);

  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  std::int64_t dim(int i) const { return shape_[i]; }
  int rank() const { return shape_.rank(); }
  std::int64_t numel() const { return shape_.numel(); }
  DType dtype() const { return dtype_; }
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype_); }
  Location location() const;
  bool on_host() const { return location() == Location::host; }
  int device() const;  // CUDA ordinal; -1 on host
  std::string str() const;  // "f32[2, 3] on host"

  void* raw() const { return static_cast<char*>(storage_->ptr) + offset_; }
  template <class T> T* data() const {
    R1_CHECK(defined(), "data() of an undefined tensor");
    R1_CHECK(dtype_of<T>::value == dtype_, "tensor is ", dtype_name(dtype_), ", accessed as ",
             dtype_name(dtype_of<T>::value));
    return static_cast<T*>(raw());
  }

  // Same storage, new shape with the same number of elements.
  Tensor view(const Shape& shape) const;
  // Rows [begin, end) along dimension 0 (a view).
  Tensor slice(std::int64_t begin, std::int64_t end) const;
  // Same bytes read as another dtype of the same size (f32 <-> i32 bits, bf16 <-> i16).
  Tensor reinterpret(DType dtype) const;

 private:
  std::shared_ptr<Storage> storage_;
  std::size_t offset_ = 0;  // bytes
  Shape shape_;
  DType dtype_ = DType::f32;
};

// Copies src into dst (same dtype and element count; any host/device combination). Synchronous.
void copy(const Tensor& dst, const Tensor& src);

}  // namespace r1
