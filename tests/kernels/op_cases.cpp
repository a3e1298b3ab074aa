// The op table's assembly and the comparison every mode shares.
#include "kernels/op_cases.hpp"

#include <cctype>
#include <cmath>
#include <cstring>
#include <ostream>
#include <sstream>

#include "kernels/test_util.hpp"

namespace r1::test {

namespace {
// Element i as a double, for any dtype an output may have (naive references are often f64).
double element(const Tensor& t, std::int64_t i) {
  switch (t.dtype()) {
    case DType::i32: return t.data<std::int32_t>()[i];
    case DType::f64: return t.data<double>()[i];
    default: return value(t, i);
  }
}
}  // namespace

std::vector<OpCase> op_cases() {
  std::vector<OpCase> all;
  add_blas_cases(all);
  add_nn_cases(all);
  add_attention_cases(all);
  add_moe_cases(all);
  return all;
}

std::vector<OpCase> op_cases_where(bool (*keep)(const OpCase&)) {
  std::vector<OpCase> kept;
  for (OpCase& c : op_cases())
    if (keep(c)) kept.push_back(std::move(c));
  return kept;
}

std::string test_name(const OpCase& c) {
  const std::string full = c.name();
  std::string name;
  for (std::size_t i = 0; i < full.size(); ++i) {
    if (std::isalnum(static_cast<unsigned char>(full[i]))) {
      name += full[i];
    } else if (full[i] == '-' && i + 1 < full.size() && std::isdigit(static_cast<unsigned char>(full[i + 1]))) {
      name += "minus";  // a negative number, not a separator
    } else if (!name.empty() && name.back() != '_') {
      name += '_';
    }
  }
  while (!name.empty() && name.back() == '_') name.pop_back();
  return name;
}

void PrintTo(const OpCase& c, std::ostream* os) { *os << c.name(); }

double max_abs(const Tensor& t) { return max_error(t, Tensor::host_zeros(t.shape(), t.dtype())); }

Output output(std::string name, const Tensor& t, Tolerance tol) { return {std::move(name), to_host(t), tol}; }

double bytes_of(std::initializer_list<Tensor> tensors) {
  double n = 0;
  for (const Tensor& t : tensors) n += static_cast<double>(t.nbytes());
  return n;
}

double dot(const Tensor& w, const Tensor& y) {
  double s = 0;
  for (std::int64_t i = 0; i < y.numel(); ++i) s += value(w, i) * value(y, i);
  return s;
}

std::string number(double v) {
  std::ostringstream os;
  os << v;
  return os.str();
}

std::string describe(DType dt, const Shape& shape) { return std::string(dtype_name(dt)) + " " + shape.str(); }

std::string mismatch(const Output& got, const Output& ref) {
  const Tensor &g = got.value, &r = ref.value;
  if (g.shape() != r.shape()) return ref.name + ": shape " + g.shape().str() + ", expected " + r.shape().str();
  if (ref.tol.exact) {
    if (g.dtype() == r.dtype() && std::memcmp(g.raw(), r.raw(), r.nbytes()) == 0) return "";
    return ref.name + ": must be bit-exact";
  }
  std::int64_t bad = 0, first = -1;
  double worst = 0;
  for (std::int64_t i = 0; i < r.numel(); ++i) {
    const double d = std::fabs(element(g, i) - element(r, i));
    if (!(d <= ref.tol.abs + ref.tol.rel * std::fabs(element(r, i)))) {
      if (bad++ == 0) first = i;
      worst = std::max(worst, d);  // NaN differences count as bad but leave `worst` alone
    }
  }
  if (bad == 0) return "";
  std::ostringstream os;
  os << ref.name << ": " << bad << " of " << r.numel() << " elements beyond " << ref.tol.abs << " + " << ref.tol.rel
     << " |ref|; first at " << first << " (" << element(g, first) << " vs " << element(r, first)
     << "), largest difference " << worst;
  return os.str();
}

std::string bits_differ(const Output& again, const Output& first) {
  if (std::memcmp(again.value.raw(), first.value.raw(), first.value.nbytes()) == 0) return "";
  return first.name + ": a second run gives other bits";
}

}  // namespace r1::test
