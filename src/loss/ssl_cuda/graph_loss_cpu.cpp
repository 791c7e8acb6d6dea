// Fused CPU arithmetic of the SSL loss on float32 patch distances (forward and gradient).
//
// Per row (one masked pixel): r = exp(-a D), S = r / (sum r + 1e-10) (or S = r),
// loss = [sum |S_sr - S_hr| + kl * sum t (log t - log s)] / (N * SS), with s, t the graphs
// clamped at 1e-10 (torch's kl_div(log s, t, 'mean')). Because S = exp(-a D) / z,
// log S = -a D - log z exactly, so the only transcendental work per element is the two
// exponentials, done with a polynomial that the compiler vectorises.
//
// Gradient with respect to D_sr (HR is a constant), with g = dloss/dS_sr:
//   (S g)_k = [sign(S_sr - S_hr) S_sr - kl * t [S_sr >= 1e-10]]_k / (N * SS)
//   dloss/dD_k = -a ((S g)_k - S_k sum_j (S g)_j)   (normalised),   -a (S g)_k  (not).
// Rows are processed in fixed blocks whose partial sums (double) are added in block order,
// so the result does not depend on the number of threads.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ssl_cpu.h"

namespace ssl_ops {
namespace {

constexpr int64_t kRowsPerBlock = 64;
constexpr float kClamp = 1e-10f;

// exp(x) for x in [-87.3, 88.3] (clamped), within ~2 ulp: Cody-Waite reduction to
// |r| <= ln2 / 2 and a degree-7 Taylor polynomial. Plain arithmetic (the rounding uses the
// 1.5 * 2^23 shifter, the power of two is built in the exponent bits), so loops vectorise.
inline float exp_poly(float x) {
  x = std::min(std::max(x, -87.33654f), 88.3762626647949f);
  constexpr float kShifter = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kShifter) - kShifter;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
}

struct RowSums {
  float l1, kl;
};

// One row: graphs into s and t, per-element terms into l1v, klv, sg (all of length ss),
// the gradient row into grad when it is not null (scaled by c = -a / (N * SS)).
RowSums row_loss(const float* __restrict__ ds, const float* __restrict__ dh,
                 float* __restrict__ s, float* __restrict__ t, float* __restrict__ sg,
                 float* __restrict__ l1v, float* __restrict__ klv, float* __restrict__ grad,
                 const int64_t ss, const float a, const float kl, const bool normalize,
                 const float c) {
  const float log_clamp = std::log(kClamp);
  for (int64_t k = 0; k < ss; ++k) {
    s[k] = exp_poly(-a * ds[k]);
    t[k] = exp_poly(-a * dh[k]);
  }
  float log_zs = 0.0f, log_zt = 0.0f;
  if (normalize) {
    double z1 = 0.0, z2 = 0.0;
#pragma omp simd reduction(+ : z1, z2)
    for (int64_t k = 0; k < ss; ++k) {
      z1 += s[k];
      z2 += t[k];
    }
    const float zs = static_cast<float>(z1 + 1e-10), zt = static_cast<float>(z2 + 1e-10);
    const float is = 1.0f / zs, it = 1.0f / zt;
    for (int64_t k = 0; k < ss; ++k) {
      s[k] *= is;
      t[k] *= it;
    }
    log_zs = std::log(zs);
    log_zt = std::log(zt);
  }
  // Per-element terms in a branch-free loop (vectorised), then the sums.
  for (int64_t k = 0; k < ss; ++k) {
    const float diff = s[k] - t[k];
    l1v[k] = std::fabs(diff);
    const float ls = std::max(-a * ds[k] - log_zs, log_clamp);
    const float lt = std::max(-a * dh[k] - log_zt, log_clamp);
    const float tc = std::max(t[k], kClamp);
    klv[k] = tc * (lt - ls);
    const float sign = static_cast<float>(diff > 0.0f) - static_cast<float>(diff < 0.0f);
    const float live = static_cast<float>(s[k] >= kClamp);
    sg[k] = sign * s[k] - live * kl * tc;
  }
  float row_l1 = 0.0f, row_kl = 0.0f, row_sg = 0.0f;
#pragma omp simd reduction(+ : row_l1, row_kl, row_sg)
  for (int64_t k = 0; k < ss; ++k) {
    row_l1 += l1v[k];
    row_kl += klv[k];
    row_sg += sg[k];
  }
  if (grad != nullptr) {
    if (normalize) {
      for (int64_t k = 0; k < ss; ++k) grad[k] = c * (sg[k] - s[k] * row_sg);
    } else {
      for (int64_t k = 0; k < ss; ++k) grad[k] = c * sg[k];
    }
  }
  return {row_l1, row_kl};
}

}  // namespace

GraphRowSums graph_loss_row(const float* d_sr, const float* d_hr, float* buf, float* grad,
                            int64_t ss, const GraphLossArgs& la) {
  const RowSums r = row_loss(d_sr, d_hr, buf, buf + ss, buf + 2 * ss, buf + 3 * ss,
                             buf + 4 * ss, grad, ss, la.a, la.kl, la.normalize, la.c);
  return {r.l1, r.kl};
}

// a = 1 / (C * window^2 * sigma).
double graph_loss(const float* ps, const float* ph, int64_t n, int64_t ss, double a,
                  bool normalize, double kl, float* pg, int threads) {
  const int64_t nblocks = (n + kRowsPerBlock - 1) / kRowsPerBlock;
  std::vector<double> part_l1(nblocks, 0.0), part_kl(nblocks, 0.0);
  const GraphLossArgs la = graph_loss_args(a, normalize, kl, n, ss);
  // Small calls stay on this thread (waking the pool costs more than it saves).
  const int workers = nblocks < 4 ? 1 : std::max(1, threads);

#pragma omp parallel num_threads(workers)
  {
    const FlushDenormals flush;
    std::vector<float> buf(5 * ss);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < nblocks; ++blk) {
      double l1 = 0.0, klsum = 0.0;
      const int64_t r1 = std::min(n, (blk + 1) * kRowsPerBlock);
      for (int64_t row = blk * kRowsPerBlock; row < r1; ++row) {
        const GraphRowSums r = graph_loss_row(ps + row * ss, ph + row * ss, buf.data(),
                                              pg ? pg + row * ss : nullptr, ss, la);
        l1 += r.l1;
        klsum += r.kl;
      }
      part_l1[blk] = l1;
      part_kl[blk] = klsum;
    }
  }
  double l1 = 0.0, klsum = 0.0;
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    l1 += part_l1[blk];
    klsum += part_kl[blk];
  }
  return graph_loss_total(l1, klsum, kl, n, ss);
}

}  // namespace ssl_ops
