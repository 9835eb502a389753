// Raw-pointer entry points of the CPU GEMM (kernels/cpu/gemm.cpp), for kernels that call GEMM from inside
// their own loops (conv per image) or reuse one packed operand for many products (conv weights).
//
//   C[m x n] = alpha * op(A)[m x k] * op(B)[k x n] + beta * C      (row-major, leading dimensions lda/ldb/ldc)
//   op(A)(i, p) = trans_a ? a[p * lda + i] : a[i * lda + p]        (likewise op(B))
//
// beta == 0 overwrites C without reading it (NaN in C does not leak through), as in BLAS.
// Results do not depend on the thread count: every element of C is summed in the same order either way.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sl::cpu {

// parallel = true splits C over the OpenMP threads (ignored inside an active parallel region or for tiny
// products); false runs on the calling thread only, e.g. inside a caller's own `omp parallel for`.
template <class T>
void gemm_raw(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b,
              int64_t ldb, T beta, T* c, int64_t ldc, bool parallel);

// --- a pre-packed left operand, packed once and reused by many products (read-only, shareable by threads) ---
// Number of elements of the buffer pack_a needs for op(A) of m x k (allocate with aligned_buffer below).
template <class T>
int64_t packed_a_size(int64_t m, int64_t k);
// Packs op(A) (m x k) into dst (packed_a_size(m, k) elements, 64-byte aligned).
template <class T>
void pack_a(bool trans_a, int64_t m, int64_t k, const T* a, int64_t lda, T* dst);
// C = alpha * A * op(B) + beta * C with A given packed by pack_a(…, m, k, …).
template <class T>
void gemm_packed_a(int64_t m, int64_t n, int64_t k, T alpha, const T* packed_a, bool trans_b, const T* b, int64_t ldb,
                   T beta, T* c, int64_t ldc, bool parallel);

// --- 64-byte-aligned scratch memory ---------------------------------------------------------------------
// An owning, 64-byte-aligned, uninitialised buffer.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t bytes) { reserve(bytes); }
  ~AlignedBuffer();
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  // Makes the buffer at least `bytes` long (old contents are lost when it grows); returns it.
  void* reserve(size_t bytes);
  template <class T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
  size_t cap_ = 0;
};

// Per-thread scratch that persists between calls (grow-only). Slots 0 and 1 are the GEMM's packing
// buffers; kernels that call the GEMM use the others for their own scratch.
enum ScratchSlot : int {
  kScratchPackA = 0,
  kScratchPackB = 1,
  kScratchConvCol = 2,    // conv: column block (per worker thread)
  kScratchConvAux = 3,    // conv: padded image (per worker thread)
  kScratchConvParts = 4,  // conv: weight-gradient partials (the calling thread's, shared with the workers)
  kScratchSlots = 5
};
void* thread_scratch(int slot, size_t bytes);

}  // namespace sl::cpu
