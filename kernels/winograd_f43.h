// The minimal-filtering transforms of Winograd's F(4x4, 3x3): a 4x4 tile of a 3x3 correlation (stride 1) from a
// 6x6 tile of the input with 36 multiplications instead of 144. In matrix form, for an input tile d (6x6), a
// filter g (3x3) and the output tile y (4x4):
//
//   y = A^T [ (G g G^T) (.) (B^T d B) ] A          (.) the elementwise product
//
// with the interpolation points 0, 1, -1, 2, -2 and infinity:
//
//   B^T = | 4  0 -5  0  1  0 |    G = |  1/4     0     0  |    A^T = | 1  1  1  1  1  0 |
//         | 0 -4 -4  1  1  0 |        | -1/6  -1/6  -1/6  |          | 0  1 -1  2 -2  0 |
//         | 0  4 -4 -1  1  0 |        | -1/6   1/6  -1/6  |          | 0  1  1  4  4  0 |
//         | 0 -2 -1  2  1  0 |        |  1/24  1/12  1/6  |          | 0  1 -1  8 -8  1 |
//         | 0  2 -1 -2  1  0 |        |  1/24 -1/12  1/6  |
//         | 0  4  0 -5  0  1 |        |   0     0     1   |
//
// A layer sums the products over input channels before the output transform, so per transformed position
// k = 0..35 the channel sum is a GEMM (kernels/cuda/conv_winograd.cuh). The gradients follow from linearity:
//   backward data:    the same transform with the filter flipped and its channel roles swapped;
//   backward weight:  dg = G^T [ sum over tiles (A dy A^T) (.) (B^T d B) ] G.
// Each 2-d transform is the 1-d one on the columns, then on the rows. Plain functions of floats: the CUDA
// kernels and the CPU test of the identities call the same code.
#pragma once

#ifdef __CUDACC__
#define SL_WINO_FN __host__ __device__ __forceinline__
#define SL_WINO_UNROLL _Pragma("unroll")
#else
#define SL_WINO_FN inline
#define SL_WINO_UNROLL
#endif

namespace sl::winograd {

constexpr int kTile = 4;   // output tile side
constexpr int kIn = 6;     // input tile side (kTile + 3 - 1)
constexpr int kPoints = 36;

// 1-d transforms: s is the stride between the elements of a line (1: a row, 6: a column of a 6x6 array).
template <class T>
SL_WINO_FN void input_1d(const T* d, int s, T* o, int os) {  // o = B^T d (6 -> 6)
  const T d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
  o[0] = T(4) * d0 - T(5) * d2 + d4;
  o[os] = -T(4) * (d1 + d2) + d3 + d4;
  o[2 * os] = T(4) * (d1 - d2) - d3 + d4;
  o[3 * os] = T(2) * (d3 - d1) - d2 + d4;
  o[4 * os] = T(2) * (d1 - d3) - d2 + d4;
  o[5 * os] = T(4) * d1 - T(5) * d3 + d5;
}
template <class T>
SL_WINO_FN void filter_1d(const T* g, int s, T* o, int os) {  // o = G g (3 -> 6)
  const T g0 = g[0], g1 = g[s], g2 = g[2 * s];
  o[0] = g0 / T(4);
  o[os] = -(g0 + g1 + g2) / T(6);
  o[2 * os] = -(g0 - g1 + g2) / T(6);
  o[3 * os] = g0 / T(24) + g1 / T(12) + g2 / T(6);
  o[4 * os] = g0 / T(24) - g1 / T(12) + g2 / T(6);
  o[5 * os] = g2;
}
template <class T>
SL_WINO_FN void output_1d(const T* m, int s, T* o, int os) {  // o = A^T m (6 -> 4)
  const T m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s];
  const T p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
  o[0] = m[0] + p12 + p34;
  o[os] = d12 + T(2) * d34;
  o[2 * os] = p12 + T(4) * p34;
  o[3 * os] = d12 + T(8) * d34 + m[5 * s];
}
template <class T>
SL_WINO_FN void grad_1d(const T* y, int s, T* o, int os) {  // o = A y (4 -> 6), the transpose of output_1d
  const T y0 = y[0], y1 = y[s], y2 = y[2 * s], y3 = y[3 * s];
  const T e = y0 + y2, f = y1 + y3, e4 = y0 + T(4) * y2, f8 = T(2) * y1 + T(8) * y3;
  o[0] = y0;
  o[os] = e + f;
  o[2 * os] = e - f;
  o[3 * os] = e4 + f8;
  o[4 * os] = e4 - f8;
  o[5 * os] = y3;
}
template <class T>
SL_WINO_FN void filter_grad_1d(const T* u, int s, T* o, int os) {  // o = G^T u (6 -> 3), the transpose of filter_1d
  const T u1 = u[s], u2 = u[2 * s], u3 = u[3 * s], u4 = u[4 * s];
  o[0] = u[0] / T(4) - (u1 + u2) / T(6) + (u3 + u4) / T(24);
  o[os] = (u2 - u1) / T(6) + (u3 - u4) / T(12);
  o[2 * os] = -(u1 + u2) / T(6) + (u3 + u4) / T(6) + u[5 * s];
}

// 2-d transforms of row-major tiles.
template <class T>
SL_WINO_FN void input_2d(const T (&d)[kIn][kIn], T (&v)[kIn][kIn]) {  // v = B^T d B
  T t[kIn][kIn];
  SL_WINO_UNROLL
  for (int c = 0; c < kIn; ++c) input_1d(&d[0][c], kIn, &t[0][c], kIn);
  SL_WINO_UNROLL
  for (int r = 0; r < kIn; ++r) input_1d(&t[r][0], 1, &v[r][0], 1);
}
template <class T>
SL_WINO_FN void filter_2d(const T (&g)[3][3], T (&u)[kIn][kIn]) {  // u = G g G^T
  T t[kIn][3];
  SL_WINO_UNROLL
  for (int c = 0; c < 3; ++c) filter_1d(&g[0][c], 3, &t[0][c], 3);
  SL_WINO_UNROLL
  for (int r = 0; r < kIn; ++r) filter_1d(&t[r][0], 1, &u[r][0], 1);
}
template <class T>
SL_WINO_FN void output_2d(const T (&m)[kIn][kIn], T (&y)[kTile][kTile]) {  // y = A^T m A
  T t[kTile][kIn];
  SL_WINO_UNROLL
  for (int c = 0; c < kIn; ++c) output_1d(&m[0][c], kIn, &t[0][c], kIn);
  SL_WINO_UNROLL
  for (int r = 0; r < kTile; ++r) output_1d(&t[r][0], 1, &y[r][0], 1);
}
template <class T>
SL_WINO_FN void grad_2d(const T (&y)[kTile][kTile], T (&m)[kIn][kIn]) {  // m = A y A^T
  T t[kIn][kTile];
  SL_WINO_UNROLL
  for (int c = 0; c < kTile; ++c) grad_1d(&y[0][c], kTile, &t[0][c], kTile);
  SL_WINO_UNROLL
  for (int r = 0; r < kIn; ++r) grad_1d(&t[r][0], 1, &m[r][0], 1);
}
template <class T>
SL_WINO_FN void filter_grad_2d(const T (&u)[kIn][kIn], T (&g)[3][3]) {  // g = G^T u G
  T t[3][kIn];
  SL_WINO_UNROLL
  for (int c = 0; c < kIn; ++c) filter_grad_1d(&u[0][c], kIn, &t[0][c], kIn);
  SL_WINO_UNROLL
  for (int r = 0; r < 3; ++r) filter_grad_1d(&t[r][0], 1, &g[r][0], 1);
}

}  // namespace sl::winograd
