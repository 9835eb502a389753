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

constexpr int kTile = 4;  // output tile side
constexpr int kIn = 6;    // input tile side (kTile + 3 - 1)
constexpr int kPoints = 36;

// 1-d transforms: s is the stride between the elements of a line (1: a row, 6: a column of a 6x6 array).
struct Input {  // o = B^T d (6 -> 6)
  template <class T>
  static SL_WINO_FN void line(const T* d, int s, T* o, int os) {
    const T d0 = d[0], d1 = d[s], d2 = d[2 * s], d3 = d[3 * s], d4 = d[4 * s], d5 = d[5 * s];
    o[0] = T(4) * d0 - T(5) * d2 + d4;
    o[os] = -T(4) * (d1 + d2) + d3 + d4;
    o[2 * os] = T(4) * (d1 - d2) - d3 + d4;
    o[3 * os] = T(2) * (d3 - d1) - d2 + d4;
    o[4 * os] = T(2) * (d1 - d3) - d2 + d4;
    o[5 * os] = T(4) * d1 - T(5) * d3 + d5;
  }
};
struct Filter {  // o = G g (3 -> 6)
  template <class T>
  static SL_WINO_FN void line(const T* g, int s, T* o, int os) {
    const T g0 = g[0], g1 = g[s], g2 = g[2 * s];
    o[0] = g0 / T(4);
    o[os] = -(g0 + g1 + g2) / T(6);
    o[2 * os] = -(g0 - g1 + g2) / T(6);
    o[3 * os] = g0 / T(24) + g1 / T(12) + g2 / T(6);
    o[4 * os] = g0 / T(24) - g1 / T(12) + g2 / T(6);
    o[5 * os] = g2;
  }
};
struct Output {  // o = A^T m (6 -> 4)
  template <class T>
  static SL_WINO_FN void line(const T* m, int s, T* o, int os) {
    const T m1 = m[s], m2 = m[2 * s], m3 = m[3 * s], m4 = m[4 * s];
    const T p12 = m1 + m2, d12 = m1 - m2, p34 = m3 + m4, d34 = m3 - m4;
    o[0] = m[0] + p12 + p34;
    o[os] = d12 + T(2) * d34;
    o[2 * os] = p12 + T(4) * p34;
    o[3 * os] = d12 + T(8) * d34 + m[5 * s];
  }
};
struct Grad {  // o = A y (4 -> 6), the transpose of output_1d
  template <class T>
  static SL_WINO_FN void line(const T* y, int s, T* o, int os) {
    const T y0 = y[0], y1 = y[s], y2 = y[2 * s], y3 = y[3 * s];
    const T e = y0 + y2, f = y1 + y3, e4 = y0 + T(4) * y2, f8 = T(2) * y1 + T(8) * y3;
    o[0] = y0;
    o[os] = e + f;
    o[2 * os] = e - f;
    o[3 * os] = e4 + f8;
    o[4 * os] = e4 - f8;
    o[5 * os] = y3;
  }
};
struct FilterGrad {  // o = G^T u (6 -> 3), the transpose of filter_1d
  template <class T>
  static SL_WINO_FN void line(const T* u, int s, T* o, int os) {
    const T u1 = u[s], u2 = u[2 * s], u3 = u[3 * s], u4 = u[4 * s];
    o[0] = u[0] / T(4) - (u1 + u2) / T(6) + (u3 + u4) / T(24);
    o[os] = (u2 - u1) / T(6) + (u3 - u4) / T(12);
    o[2 * os] = -(u1 + u2) / T(6) + (u3 + u4) / T(6) + u[5 * s];
  }
};

// 2-d transforms of row-major tiles: the 1-d transform L on the columns of a (I x I), then on the rows (O x O).
template <class L, int I, int O, class T>
SL_WINO_FN void transform_2d(const T (&a)[I][I], T (&o)[O][O]) {
  T t[O][I];
  SL_WINO_UNROLL
  for (int c = 0; c < I; ++c) L::line(&a[0][c], I, &t[0][c], I);
  SL_WINO_UNROLL
  for (int r = 0; r < O; ++r) L::line(&t[r][0], 1, &o[r][0], 1);
}
template <class T>
SL_WINO_FN void input_2d(const T (&d)[kIn][kIn], T (&v)[kIn][kIn]) {
  transform_2d<Input>(d, v);
}  // B^T d B
template <class T>
SL_WINO_FN void filter_2d(const T (&g)[3][3], T (&u)[kIn][kIn]) {
  transform_2d<Filter>(g, u);
}  // G g G^T
template <class T>
SL_WINO_FN void output_2d(const T (&m)[kIn][kIn], T (&y)[kTile][kTile]) {
  transform_2d<Output>(m, y);
}  // A^T m A
template <class T>
SL_WINO_FN void grad_2d(const T (&y)[kTile][kTile], T (&m)[kIn][kIn]) {
  transform_2d<Grad>(y, m);
}  // A y A^T
template <class T>
SL_WINO_FN void filter_grad_2d(const T (&u)[kIn][kIn], T (&g)[3][3]) {
  transform_2d<FilterGrad>(u, g);
}  // G^T u G

}  // namespace sl::winograd
