// The tensor-core (TF32 / 3xTF32) path of the GEMM engine (kernels/cuda/igemm_mma.cuh) against the FFMA float32
// path, for every conv pass and GEMM transpose, both tile shapes, with and without split-K, at the project's
// shapes and awkward ones (stride 2, 5x5, sizes that fill no tile). Conv errors are max |out - ref| / max |ref|
// against the float64 path: TF32 (10-bit mantissa operands) lands near 1e-4..1e-3; 3xTF32 near 1e-6..4e-5, the
// tensor cores' float32 accumulation growing with K (printed next to the FFMA path's own error). GEMMs are
// compared with the FFMA path.
// Tagged [cuda-configs] too, so the racecheck run of scripts/gpu-check.sh covers the cp.async pipeline.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "kernels/dispatch.h"
#include "tensor/tensor.h"

#ifdef SPLITLEAK_WITH_CUDA
#include "kernels/cuda/cuda.h"
#endif

using namespace sl;

namespace {
const Device kGpu = Device::cuda(0);

[[maybe_unused]] double rel(const Tensor& a, const Tensor& ref) {
  auto va = a.to_vector(), vr = ref.to_vector();
  double m = 0, d = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    if (!std::isfinite(va[i])) return INFINITY;
    m = std::max(m, std::fabs(vr[i]));
    d = std::max(d, std::fabs(va[i] - vr[i]));
  }
  return m > 0 ? d / m : d;
}

[[maybe_unused]] Tensor rnd(const Shape& s, uint64_t seed) {
  Tensor x = Tensor::empty(s, DType::f32, kGpu);
  kern::fill_uniform(x, seed, 0, -1.0, 1.0);
  return x;
}

struct Restore {
  ~Restore() {
    kern::set_cuda_matmul_precision(MatmulPrecisions{});
#ifdef SPLITLEAK_WITH_CUDA
    cuda::debug_force_mma_plan(-1, 0);
#endif
  }
};
}  // namespace

TEST_CASE("cuda: TF32 and 3xTF32 tensor-core convolutions and GEMMs match the FFMA path", "[cuda][cuda-configs][mma]") {
#ifdef SPLITLEAK_WITH_CUDA
  if (!cuda_available()) {
    WARN("no GPU: tensor-core path skipped (cudaGetDeviceCount found no usable device)");
    return;
  }
  Restore restore;
  struct Cv {
    const char* name;
    int n, c, h, w, co, k, stride, pad;
  };
  // SL_TEST_QUICK=1 (the compute-sanitizer runs of scripts/gpu-check.sh): the small shapes only, which still
  // reach every kernel variant (generic and tap-major loads, both tiles, split 3 and the warp finish at 20)
  const bool quick = std::getenv("SL_TEST_QUICK") != nullptr;
  std::vector<Cv> convs = {{"cifar conv2 64->64 k3 N4", 4, 64, 32, 32, 64, 3, 1, 1},
                           {"cifar conv4 128->128 k3 16x16 N2", 2, 128, 16, 16, 128, 3, 1, 1},
                           {"lenet conv2 8->16 k5 N3", 3, 8, 12, 12, 16, 5, 1, 0},
                           {"odd 5->19 k3 s2 p1 13x11", 3, 5, 13, 11, 19, 3, 2, 1},
                           {"strided 16->32 k3 s2 p1 15x15", 2, 16, 15, 15, 32, 3, 2, 1},
                           {"tap-major 32->48 k5 p2 9x7", 3, 32, 9, 7, 48, 5, 1, 2},
                           {"first layer 3->64 k3 N2", 2, 3, 32, 32, 64, 3, 1, 1}};
  if (quick) convs.erase(convs.begin(), convs.begin() + 2);
  struct Gm {
    int m, n, k;
    bool ta, tb;
  };
  std::vector<Gm> gemms = {{128, 512, 2048, false, true},
                           {37, 50, 29, false, false},
                           {64, 300, 70, true, false},
                           {19, 130, 33, true, true},
                           {32, 120, 256, false, true}};
  if (quick) gemms.erase(gemms.begin());
  for (MatmulPrecision prec : {MatmulPrecision::tf32, MatmulPrecision::tf32x3}) {
    const double tol = prec == MatmulPrecision::tf32 ? 3e-3 : 1e-4;
    for (int cfg = -1; cfg < 2; ++cfg) {
      for (int slices : {0, 3, 20}) {  // 20: the warp-per-element split-K finish
        if (cfg < 0 && slices) continue;
        for (const auto& c : convs) {
          const int oh = int(conv_out_size(c.h, c.k, c.stride, c.pad)),
                    ow = int(conv_out_size(c.w, c.k, c.stride, c.pad));
          const ConvArgs a{c.stride, c.pad, 0};
          Tensor x = rnd({c.n, c.c, c.h, c.w}, 1), w = rnd({c.co, c.c, c.k, c.k}, 2), b = rnd({c.co}, 3);
          Tensor gy = rnd({c.n, c.co, oh, ow}, 4);
          auto run = [&](Tensor& y, Tensor& gx, Tensor& gw) {
            y = Tensor::full({c.n, c.co, oh, ow}, NAN, DType::f32, kGpu);  // poisoned: every element must be written
            gx = Tensor::full(x.shape(), NAN, DType::f32, kGpu);
            gw = Tensor::full(w.shape(), NAN, DType::f32, kGpu);
            Tensor none;
            kern::conv2d_forward(x, w, b, a, y);
            kern::conv2d_backward_data(gy, w, a, gx);
            kern::conv2d_backward_weight(x, gy, a, gw, none);
          };
          // float64 reference (the engine's double path), the FFMA float32 result, and the tensor-core result
          Tensor y0, gx0, gw0, y1, gx1, gw1, yr, gxr, gwr;
          kern::set_cuda_matmul_precision(MatmulPrecisions{});
          cuda::debug_force_mma_plan(-1, 0);
          {
            Tensor xs = x, ws = w, bs = b, gys = gy;
            x = x.to(DType::f64), w = w.to(DType::f64), b = b.to(DType::f64), gy = gy.to(DType::f64);
            yr = Tensor::empty({c.n, c.co, oh, ow}, DType::f64, kGpu), gxr = Tensor::empty(x.shape(), DType::f64, kGpu);
            gwr = Tensor::empty(w.shape(), DType::f64, kGpu);
            Tensor none;
            kern::conv2d_forward(x, w, b, a, yr);
            kern::conv2d_backward_data(gy, w, a, gxr);
            kern::conv2d_backward_weight(x, gy, a, gwr, none);
            x = xs, w = ws, b = bs, gy = gys;
          }
          run(y0, gx0, gw0);
          kern::set_cuda_matmul_precision(MatmulPrecisions{prec, prec});
          cuda::debug_force_mma_plan(cfg, slices);
          run(y1, gx1, gw1);
          const double ef = rel(y1, yr), ed = rel(gx1, gxr), ew = rel(gw1, gwr);
          const double f32f = rel(y0, yr), f32d = rel(gx0, gxr), f32w = rel(gw0, gwr);
          INFO(matmul_precision_name(prec)
               << " cfg " << cfg << " slices " << slices << " " << c.name << ": fwd " << ef << " bwd-data " << ed
               << " bwd-weight " << ew << " (FFMA fp32: " << f32f << " " << f32d << " " << f32w << ")");
          // tf32: within 3e-3 of float64. 3xtf32: float32-level operands, but the tensor cores accumulate in
          // float32 without round-to-nearest, so the error grows with K: measured 4e-6..5e-6 at K = 576..1152 and
          // 1.4e-5..3.6e-5 at K = 2048..4096 without split-K (the FFMA path with split-K: ~3e-7)
          CHECK(ef <= tol);
          CHECK(ed <= tol);
          CHECK(ew <= tol);
          if (cfg < 0)
            std::printf(
                "[mma] %-6s %-34s vs float64: fwd %.2e bwd-data %.2e bwd-weight %.2e | FFMA fp32: %.2e %.2e %.2e\n",
                matmul_precision_name(prec), c.name, ef, ed, ew, f32f, f32d, f32w);
        }
        for (const auto& gm : gemms) {
          Tensor A = rnd(gm.ta ? Shape{gm.k, gm.m} : Shape{gm.m, gm.k}, 5);
          Tensor B = rnd(gm.tb ? Shape{gm.n, gm.k} : Shape{gm.k, gm.n}, 6);
          Tensor C0 = rnd({gm.m, gm.n}, 7), C1 = C0.clone();
          kern::set_cuda_matmul_precision(MatmulPrecisions{});
          cuda::debug_force_mma_plan(-1, 0);
          kern::gemm(A, gm.ta, B, gm.tb, C0, 1.5, 0.5);
          kern::set_cuda_matmul_precision(MatmulPrecisions{prec, prec});
          cuda::debug_force_mma_plan(cfg, slices);
          kern::gemm(A, gm.ta, B, gm.tb, C1, 1.5, 0.5);
          const double e = rel(C1, C0);
          INFO(matmul_precision_name(prec) << " cfg " << cfg << " slices " << slices << " gemm " << gm.m << "x" << gm.n
                                           << "x" << gm.k << " ta " << gm.ta << " tb " << gm.tb << ": " << e);
          CHECK(e <= (prec == MatmulPrecision::tf32 ? 3e-3 : 3e-5));
        }
      }
    }
  }
  // precisions are settings of their own: conv and gemm independently
  kern::set_cuda_matmul_precision(MatmulPrecisions{MatmulPrecision::tf32, MatmulPrecision::fp32});
  CHECK(kern::cuda_matmul_precision().conv == MatmulPrecision::tf32);
  CHECK(kern::cuda_matmul_precision().gemm == MatmulPrecision::fp32);
  CHECK(parse_matmul_precision("3xtf32") == MatmulPrecision::tf32x3);
  CHECK_THROWS_AS(parse_matmul_precision("bf16"), ValueError);
#else
  WARN("no GPU: tensor-core path skipped (splitleak built without CUDA)");
  CHECK(parse_matmul_precision("tf32") == MatmulPrecision::tf32);
#endif
}
