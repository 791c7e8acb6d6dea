// CPU kernels of the SSL op on raw arrays. No torch header: only binding.cpp includes torch,
// so these translation units compile on first use without parsing the torch headers.
#pragma once

#include <cstdint>

#if defined(__SSE__)
#include <xmmintrin.h>
#endif

namespace ssl_ops {

// Within its scope (on the calling thread), denormal inputs and results count as zero: the
// MXCSR DAZ and FTZ bits on x86, restored on exit; nothing elsewhere. The SSL graphs and
// their gradients hold many values below 1e-38 (exponentials of large negative arguments);
// each multiply with one costs a microcode assist of ~100 cycles, which made the backward
// several times slower on real images than on random numbers. Values that small change
// nothing a float sum of these magnitudes can hold.
class FlushDenormals {
 public:
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
#if defined(__SSE__)
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | 0x8040); }
  ~FlushDenormals() { _mm_setcsr(saved_); }

 private:
  unsigned saved_;
#else
  FlushDenormals() {}  // elsewhere: IEEE arithmetic, at its speed
#endif
};

// Shape of a call: B images of C channels, reflect-padded to Hp x Wp; n masked pixels whose
// (batch, row, column) triples (unpadded coordinates, torch.nonzero order) are in pos[3 n].
struct Shape {
  int64_t B, C, Hp, Wp, search, window, n;
};

// out[n, search^2] = D (see __init__.py). threads: the most threads to use (results do not
// depend on it).
template <typename T>
void patch_distances_forward(const T* padded, const int64_t* pos, const Shape& s, T* out,
                             int threads);

// How the backward takes a band of masked pixels: one pixel at a time, or shared between the
// pixels whose windows cover a pixel; by default whichever the band's overlap favours
// (ssl_cpu.cpp, kSharePairs). Both give the same values to float rounding.
enum class Way { kByOverlap = -1, kPerPixel = 0, kShared = 1 };

// grad_padded[B, C, Hp, Wp] (zero on entry) += dL/dpadded for grad = dL/dD [n, search^2].
template <typename T>
void patch_distances_backward(const T* padded, const int64_t* pos, const T* grad,
                              const Shape& s, T* grad_padded, int threads,
                              Way way = Way::kByOverlap);

// The graph arithmetic of the SSL loss: a = 1 / (C * window^2 * sigma), the KL weight and
// whether rows are normalised, and c = -a / (N * search^2), the gradient's scale.
struct GraphLossArgs {
  float a, kl, c;
  bool normalize;
};

// The arguments for n rows of ss distances, and the loss from the rows' summed L1 and KL
// terms: what graph_loss and ssl_loss_cpu share.
inline GraphLossArgs graph_loss_args(double a, bool normalize, double kl, int64_t n,
                                     int64_t ss) {
  return {static_cast<float>(a), static_cast<float>(kl),
          static_cast<float>(-a / (static_cast<double>(n) * ss)), normalize};
}
inline double graph_loss_total(double l1, double kl_sum, double kl, int64_t n, int64_t ss) {
  return n == 0 ? 0.0 : (l1 + kl * kl_sum) / (static_cast<double>(n) * ss);
}
struct GraphRowSums {
  float l1, kl;
};

// One row of distances d_sr, d_hr [ss]: the row's L1 and KL sums, and dloss/dd_sr into grad
// [ss] unless grad is null. buf: 5 ss floats of scratch (graph_loss_cpu.cpp).
GraphRowSums graph_loss_row(const float* d_sr, const float* d_hr, float* buf, float* grad,
                            int64_t ss, const GraphLossArgs& la);

// The whole SSL loss on CPU, float32, fused (ssl_cpu.cpp), for the images scale * sr and
// scale * hr: sr and hr unpadded [B, C, H, W] (s.Hp, s.Wp their padded sizes, H + 2P and
// W + 2P, P = search / 2 < H, W), reflect-padded and scaled inside; the masked pixels; the
// graph arguments as graph_loss takes them. Writes dloss/dsr (unpadded, the padding folded
// back, the scale applied) into grad and returns the loss. No [n, ss] array is made: a band
// of pixels' distances at a time, then each pixel's graphs and gradient. n >= 1.
double ssl_loss_cpu(const float* sr, const float* hr, float scale, const int64_t* pos,
                    const Shape& s, double a, bool normalize, double kl, float* grad,
                    int threads);

// Bytes in the vectors the CPU kernels were built for (64 AVX-512, 32 AVX/AVX2, 16 SSE2/NEON).
int vector_bytes();

// SSL loss arithmetic on float32 distances d_sr, d_hr [n, ss] (graph_loss_cpu.cpp).
// Returns the loss; writes dloss/dd_sr into grad [n, ss] when grad is not null.
double graph_loss(const float* d_sr, const float* d_hr, int64_t n, int64_t ss, double a,
                  bool normalize, double kl, float* grad, int threads);

}  // namespace ssl_ops
