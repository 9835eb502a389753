// NumPy broadcasting as index arithmetic, shared by the CPU and CUDA kernels of add_broadcast and sum_to_shape
// (host code: the kernels copy the struct by value).
//
// Shapes are aligned at their last dims; a dim of size 1 repeats along the other operand's dim. Every element o of
// the full shape has coordinates c[d] (row-major over dims[]), and an operand's element is sum_d c[d] * stride[d]
// with stride 0 along the dims it broadcasts over.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "tensor/error.h"
#include "tensor/shape.h"

#ifdef __CUDACC__
#define SL_BCAST_FN __host__ __device__ __forceinline__
#else
#define SL_BCAST_FN inline
#endif

namespace sl::bcast {

constexpr int kMaxRank = 8;

struct Index {
  int rank = 0;
  int64_t dims[kMaxRank] = {};  // the full (broadcast) shape
  int64_t sa[kMaxRank] = {};    // operand strides over it (0: broadcast)
  int64_t sb[kMaxRank] = {};
  // the operands' offsets of the full shape's element o (host and device)
  SL_BCAST_FN void offsets(int64_t o, int64_t& ia, int64_t& ib) const {
    ia = ib = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t c = o % dims[d];
      o /= dims[d];
      ia += c * sa[d];
      ib += c * sb[d];
    }
  }
};

// The strides of `part` (aligned at the end of `full`) over full's dims; ShapeError naming `op` unless part
// broadcasts to full.
inline void strides_over(const Shape& part, const Shape& full, int64_t* out, const char* op, const char* what) {
  const int r = int(full.rank()), pr = int(part.rank());
  SL_CHECK(pr <= r, ShapeError, op, ": ", what, " ", part.str(), " has more dims than ", full.str());
  int64_t s = 1;
  for (int d = r - 1; d >= 0; --d) {
    const int pd = d - (r - pr);
    const int64_t n = pd >= 0 ? part[size_t(pd)] : 1;
    SL_CHECK(n == full[size_t(d)] || n == 1, ShapeError, op, ": ", what, " ", part.str(), " does not broadcast to ",
             full.str());
    out[d] = n == 1 ? 0 : s;
    s *= n;
  }
}

// The broadcast shape of a and b, or ShapeError naming `op`.
inline Shape broadcast_shape(const Shape& a, const Shape& b, const char* op) {
  const size_t r = std::max(a.rank(), b.rank());
  std::vector<int64_t> d(r);
  for (size_t i = 0; i < r; ++i) {
    const int64_t x = i + a.rank() >= r ? a[i + a.rank() - r] : 1, y = i + b.rank() >= r ? b[i + b.rank() - r] : 1;
    SL_CHECK(x == y || x == 1 || y == 1, ShapeError, op, ": shapes ", a.str(), " and ", b.str(), " do not broadcast");
    d[i] = x == 1 ? y : x;
  }
  return Shape(d);
}

inline Index index_of(const Shape& a, const Shape& b, const Shape& out, const char* op) {
  SL_CHECK(out.rank() <= size_t(kMaxRank), ShapeError, op, ": rank ", out.rank(), " > ", kMaxRank);
  Index ix;
  ix.rank = int(out.rank());
  for (int d = 0; d < ix.rank; ++d) ix.dims[d] = out[size_t(d)];
  strides_over(a, out, ix.sa, op, "first operand");
  strides_over(b, out, ix.sb, op, "second operand");
  return ix;
}

// sum_to_shape's view of g: out's elements are the kept dims of g (row-major), each the sum over the reduced dims.
struct Reduce {
  int nk = 0, nr = 0;
  int64_t kdims[kMaxRank] = {}, kstr[kMaxRank] = {};  // kept dims of g and g's strides along them
  int64_t rdims[kMaxRank] = {}, rstr[kMaxRank] = {};  // reduced dims
  int64_t kept = 1, reduced = 1;                      // element counts
  // g's offset of the first element of out's element o (host and device).
  SL_BCAST_FN int64_t kept_offset(int64_t o) const {
    int64_t off = 0;
    for (int d = nk - 1; d >= 0; --d) {
      off += (o % kdims[d]) * kstr[d];
      o /= kdims[d];
    }
    return off;
  }
  // the offset of the r-th element of the reduced dims (row-major) from there
  SL_BCAST_FN int64_t reduced_offset(int64_t r) const {
    int64_t off = 0;
    for (int d = nr - 1; d >= 0; --d) {
      off += (r % rdims[d]) * rstr[d];
      r /= rdims[d];
    }
    return off;
  }
};

inline Reduce reduce_of(const Shape& g, const Shape& out, const char* op) {
  SL_CHECK(g.rank() <= size_t(kMaxRank), ShapeError, op, ": rank ", g.rank(), " > ", kMaxRank);
  int64_t so[kMaxRank];
  strides_over(out, g, so, op, "output");
  Reduce r;
  int64_t s = 1;
  std::vector<int64_t> gs(g.rank());
  for (int d = int(g.rank()) - 1; d >= 0; --d) {
    gs[size_t(d)] = s;
    s *= g[size_t(d)];
  }
  for (int d = 0; d < int(g.rank()); ++d) {
    const int64_t n = g[size_t(d)];
    if (n == 1) continue;
    if (so[d] != 0) {
      r.kdims[r.nk] = n, r.kstr[r.nk++] = gs[size_t(d)], r.kept *= n;
    } else {
      r.rdims[r.nr] = n, r.rstr[r.nr++] = gs[size_t(d)], r.reduced *= n;
    }
  }
  return r;
}

}  // namespace sl::bcast
