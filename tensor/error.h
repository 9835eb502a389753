// Typed errors with messages a user can act on (what, where, expected vs got).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sl {

// Base of every error splitleak throws on purpose; the CLI prints what() on one line and exits non-zero.
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
struct ShapeError : Error {
  using Error::Error;
};  // tensor shapes that do not fit an op
struct ValueError : Error {
  using Error::Error;
};  // a bad argument value (NaN, negative rate, unknown name)
struct IoError : Error {
  using Error::Error;
};  // a file that is missing, truncated or corrupt
struct DeviceError : Error {
  using Error::Error;
};  // a device that is absent or failed

namespace detail {
inline void cat(std::ostringstream&) {}
template <class T, class... R>
void cat(std::ostringstream& os, const T& v, const R&... r) {
  os << v;
  cat(os, r...);
}
}  // namespace detail

// str("expected ", a, ", got ", b) -> one string.
template <class... A>
std::string str(const A&... a) {
  std::ostringstream os;
  detail::cat(os, a...);
  return os.str();
}

}  // namespace sl

// Throws ErrType with the concatenated message when cond is false.
#define SL_CHECK(cond, ErrType, ...)                    \
  do {                                                  \
    if (!(cond)) throw ErrType(::sl::str(__VA_ARGS__)); \
  } while (0)
