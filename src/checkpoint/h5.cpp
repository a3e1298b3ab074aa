#include "checkpoint/h5.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace r1::ckpt::h5 {

void quiet() { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); }

namespace {
herr_t collect(unsigned n, const H5E_error2_t* e, void* out) {
  auto& lines = *static_cast<std::vector<std::string>*>(out);
  if (n < 3 && e->desc) lines.emplace_back(e->desc);  // the innermost frames say what actually failed
  return 0;
}
}  // namespace

std::string error_text() {
  std::vector<std::string> lines;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collect, &lines);
  H5Eclear2(H5E_DEFAULT);
  std::string text;
  for (const auto& l : lines) text += (text.empty() ? "" : "; ") + l;
  return text;
}

hid_t file_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_IEEE_F32LE;
    case DType::f64: return H5T_IEEE_F64LE;
    case DType::bf16: return H5T_STD_U16LE;
    case DType::f8e4m3: return H5T_STD_U8LE;
    case DType::i32: return H5T_STD_I32LE;
    case DType::i64: return H5T_STD_I64LE;
    case DType::u8: return H5T_STD_U8LE;
  }
  R1_FAIL(internal, "no HDF5 type for dtype ", static_cast<int>(t));
}

hid_t mem_type(DType t) {
  switch (t) {
    case DType::f32: return H5T_NATIVE_FLOAT;
    case DType::f64: return H5T_NATIVE_DOUBLE;
    case DType::bf16: return H5T_NATIVE_UINT16;
    case DType::f8e4m3: return H5T_NATIVE_UINT8;
    case DType::i32: return H5T_NATIVE_INT32;
    case DType::i64: return H5T_NATIVE_INT64;
    case DType::u8: return H5T_NATIVE_UINT8;
  }
  R1_FAIL(internal, "no HDF5 type for dtype ", static_cast<int>(t));
}

DType parse_dtype(const std::string& name) {
  for (DType t : {DType::f32, DType::bf16, DType::f8e4m3, DType::i32, DType::i64, DType::u8, DType::f64})
    if (name == dtype_name(t)) return t;
  R1_FAIL(user, "unknown dtype '", name, "'");
}

void write_string_attr(hid_t obj, const char* name, const std::string& value) {
  // Variable-length UTF-8, the way h5py stores a str, so tools read a str back.
  Id type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Id space(H5Screate(H5S_SCALAR), H5Sclose);
  Id attr(H5Acreate2(obj, name, type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  const char* p = value.c_str();
  if (!attr.ok() || H5Awrite(attr.get(), type.get(), &p) < 0)
    R1_FAIL(io, "cannot write attribute ", name, ": ", error_text());
}

void write_i64_attr(hid_t obj, const char* name, const std::vector<std::int64_t>& values) {
  const hsize_t n = std::max<std::size_t>(values.size(), 1);
  Id space(values.empty() ? H5Screate(H5S_NULL) : H5Screate_simple(1, &n, nullptr), H5Sclose);
  Id attr(H5Acreate2(obj, name, H5T_STD_I64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT), H5Aclose);
  if (!attr.ok() || (!values.empty() && H5Awrite(attr.get(), H5T_NATIVE_INT64, values.data()) < 0))
    R1_FAIL(io, "cannot write attribute ", name, ": ", error_text());
}

std::string read_string_attr(hid_t obj, const char* name, const std::string& what) {
  Id attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) R1_FAIL(io, what, ": attribute '", name, "' is missing");
  Id type(H5Aget_type(attr.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING || H5Tis_variable_str(type.get()) <= 0)
    R1_FAIL(io, what, ": attribute '", name, "' is not a variable-length string");
  Id mem(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(mem.get(), H5T_VARIABLE);
  H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
  char* p = nullptr;
  if (H5Aread(attr.get(), mem.get(), &p) < 0) R1_FAIL(io, what, ": cannot read attribute '", name, "': ", error_text());
  std::string value = p ? p : "";
  Id space(H5Aget_space(attr.get()), H5Sclose);
  H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, &p);
  return value;
}

std::vector<std::int64_t> read_i64_attr(hid_t obj, const char* name, const std::string& what) {
  Id attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
  if (!attr.ok()) R1_FAIL(io, what, ": attribute '", name, "' is missing");
  Id space(H5Aget_space(attr.get()), H5Sclose);
  const hssize_t n = H5Sget_simple_extent_npoints(space.get());
  std::vector<std::int64_t> values(static_cast<std::size_t>(std::max<hssize_t>(n, 0)));
  if (H5Sget_simple_extent_type(space.get()) == H5S_NULL) return {};
  if (H5Aread(attr.get(), H5T_NATIVE_INT64, values.data()) < 0)
    R1_FAIL(io, what, ": cannot read attribute '", name, "': ", error_text());
  return values;
}

}  // namespace r1::ckpt::h5
