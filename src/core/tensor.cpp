#include "core/tensor.hpp"

#include <cstring>
#include <sstream>

#if defined(R1HPC_HAVE_CUDA)
#include <cuda_runtime.h>
#endif

namespace r1 {

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::f8e4m3: return "f8e4m3";
    case DType::i32: return "i32";
    case DType::i64: return "i64";
    case DType::u8: return "u8";
    case DType::f64: return "f64";
  }
  return "?";
}

Shape::Shape(std::initializer_list<std::int64_t> dims) {
  for (auto d : dims) push_back(d);
}

void Shape::push_back(std::int64_t d) {
  R1_CHECK(rank_ < kMaxRank, "tensors have at most ", kMaxRank, " dimensions");
  R1_CHECK(d >= 0, "negative dimension ", d);
  dims_[rank_++] = d;
}

std::int64_t Shape::numel() const {
  std::int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << '[';
  for (int i = 0; i < rank_; ++i) os << (i ? ", " : "") << dims_[i];
  os << ']';
  return os.str();
}

Storage::Storage(std::shared_ptr<Allocator> alloc, std::size_t n) : allocator(std::move(alloc)), bytes(n) {
  ptr = allocator->allocate(bytes);
}
Storage::~Storage() { allocator->deallocate(ptr, bytes); }

Tensor Tensor::empty(const Shape& shape, DType dtype, std::shared_ptr<Allocator> alloc) {
  Tensor t;
  t.shape_ = shape;
  t.dtype_ = dtype;
  t.storage_ = std::make_shared<Storage>(std::move(alloc), t.nbytes());
  return t;
}

Tensor Tensor::host(const Shape& shape, DType dtype) { return empty(shape, dtype, host_allocator()); }

Tensor Tensor::host_zeros(const Shape& shape, DType dtype) {
  Tensor t = host(shape, dtype);
  if (t.nbytes()) std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Location Tensor::location() const {
  R1_CHECK(defined(), "location() of an undefined tensor");
  return storage_->allocator->location();
}

int Tensor::device() const { return defined() ? storage_->allocator->device() : -1; }

std::string Tensor::str() const {
  if (!defined()) return "undefined tensor";
  return detail::concat(dtype_name(dtype_), shape_.str(), on_host() ? " on host" : " on cuda:", on_host() ? "" : std::to_string(device()));
}

Tensor Tensor::view(const Shape& shape) const {
  R1_CHECK(shape.numel() == numel(), "view ", shape.str(), " of ", str(), " changes the element count");
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::slice(std::int64_t begin, std::int64_t end) const {
  R1_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= dim(0), "slice [", begin, ", ", end, ") of ", str());
  Tensor t = *this;
  const std::int64_t row = dim(0) ? numel() / dim(0) : 0;
  t.offset_ += static_cast<std::size_t>(begin * row) * dtype_size(dtype_);
  t.shape_[0] = end - begin;
  return t;
}

Tensor Tensor::reinterpret(DType dtype) const {
  R1_CHECK(dtype_size(dtype) == dtype_size(dtype_), "reinterpret ", str(), " as ", dtype_name(dtype), " changes the element size");
  Tensor t = *this;
  t.dtype_ = dtype;
  return t;
}

void copy(const Tensor& dst, const Tensor& src) {
  R1_CHECK(dst.dtype() == src.dtype() && dst.numel() == src.numel(), "copy from ", src.str(), " to ", dst.str());
  if (dst.nbytes() == 0) return;
  if (dst.on_host() && src.on_host()) {
    std::memcpy(dst.raw(), src.raw(), dst.nbytes());
    return;
  }
#if defined(R1HPC_HAVE_CUDA)
  const cudaError_t e = cudaMemcpy(dst.raw(), src.raw(), dst.nbytes(), cudaMemcpyDefault);
  if (e != cudaSuccess) R1_FAIL(cuda, "cudaMemcpy ", src.str(), " -> ", dst.str(), ": ", cudaGetErrorString(e));
#else
  R1_FAIL(internal, "device tensor in a build without CUDA");
#endif
}

}  // namespace r1
