// CPU kernel of the SSL patch-distance op (forward and backward).
//
// Definition (see __init__.py): for a masked pixel m and an offset d of the search square,
//   D[m, d] = sum_c sum_k (A[m+k] - in(d+k) * A[m+d+k])^2,
// where A is the reflect-padded image and in(v) = 1 iff |v_y|, |v_x| <= P (P = search/2).
//
// For a fixed offset d, in(d+k) only depends on k, and keeps k inside a rectangle
// R_d = [ky0, ky1] x [kx0, kx1] of the window. So
//   D[m, d] = sum_{k in R_d} E_d[m+k] + sum_{k not in R_d} Sq[m+k],
//   E_d[x] = sum_c (A[x] - A[x+d])^2,   Sq[x] = sum_c A[x]^2.
// E_d is shared by every masked pixel, so the work for one offset is one pass over the
// masked pixels' bounding box (E_d), a vertical box sum at the masked rows and a
// window-wide horizontal sum per masked pixel: the cost grows with the area the mask
// covers, not with (masked pixels x window area). Every sum is taken directly (no running sums with
// subtraction), so each D is a sum of non-negative terms and keeps full float precision.
//
// Work is split into bands of image rows of one image (split_bands). Bands run in parallel;
// the forward writes disjoint output rows, the backward accumulates into a private buffer
// per band and the buffers are added in a fixed order, so results do not depend on the
// number of threads.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <numeric>
#include <vector>

#include "ssl_cpu.h"

namespace ssl_ops {
namespace {

constexpr int64_t kBandRows = 32;
constexpr int64_t kBandPixels = 256;
// Below this many (pixel, offset) pairs the work stays on the calling thread: waking the
// thread pool costs more than it saves (and much more on an oversubscribed machine).
constexpr int64_t kMinParallelPairs = 1 << 15;

struct Dims {
  int64_t C, Hp, Wp;  // channels and padded size
  int64_t S, P, K;    // search size, search radius, window radius
};

// Masked pixels [q0, q1) (indices into pos and output rows) of one image row.
struct Row {
  int64_t r, q0, q1, cmin, cmax;
};

struct Band {
  int64_t b, q0, q1;
};

// Bands: runs of at most kBandRows image rows of one image. So that masked pixels crowded
// into a few rows still spread over the threads, a band also holds at most
// max(kBandPixels, n / 4) pixels (it ends only between rows). The split depends on the mask
// alone, never on the number of threads. (Whole-image bands, less halo, measured no faster.)
std::vector<Band> split_bands(const int64_t* pos, int64_t n) {
  const int64_t most = std::max(kBandPixels, (n + 3) / 4);
  std::vector<Band> bands;
  int64_t first_row = 0;
  for (int64_t q = 0; q < n; ++q) {
    const int64_t b = pos[3 * q], r = pos[3 * q + 1];
    const bool same_row = q > 0 && pos[3 * (q - 1)] == b && pos[3 * (q - 1) + 1] == r;
    if (!bands.empty() && bands.back().b == b &&
        (same_row || (r - first_row < kBandRows && bands.back().q1 - bands.back().q0 < most))) {
      bands.back().q1 = q + 1;
    } else {
      bands.push_back({b, q, q + 1});
      first_row = r;
    }
  }
  return bands;
}

// Where a band's masked pixels lie. "Region" is their bounding box grown by the window
// radius K: the pixels any window of the band touches.
struct Layout {
  std::vector<Row> rows;
  int64_t rlo, rhi, clo, chi;
  int64_t RH, RW;  // region size
  int64_t Y0, X0;  // padded coordinates of the region origin
  // Per region row i, the region columns [lo[i], hi[i]] that windows of the masked rows
  // within K rows of i can touch (lo > hi: none). Edge masks are sparse along a row, so this
  // is narrower than the region; E_d and the gradient are only computed there.
  std::vector<int64_t> lo, hi;

  Layout(const int64_t* pos, const Band& band, const Dims& g) {
    clo = pos[3 * band.q0 + 2];
    chi = clo;
    for (int64_t q = band.q0; q < band.q1; ++q) {
      const int64_t r = pos[3 * q + 1], c = pos[3 * q + 2];
      if (rows.empty() || rows.back().r != r) rows.push_back({r, q, q, c, c});
      Row& row = rows.back();
      row.q1 = q + 1;
      row.cmin = std::min(row.cmin, c);
      row.cmax = std::max(row.cmax, c);
      clo = std::min(clo, c);
      chi = std::max(chi, c);
    }
    rlo = rows.front().r;
    rhi = rows.back().r;
    RH = rhi - rlo + 1 + 2 * g.K;
    RW = chi - clo + 1 + 2 * g.K;
    Y0 = rlo + g.P - g.K;
    X0 = clo + g.P - g.K;
    lo.assign(RH, RW);
    hi.assign(RH, -1);
    for (const Row& row : rows) {
      const int64_t ci = row.r - rlo + g.K;
      for (int64_t i = ci - g.K; i <= ci + g.K; ++i) {
        lo[i] = std::min(lo[i], row.cmin - clo);
        hi[i] = std::max(hi[i], row.cmax - clo + 2 * g.K);
      }
    }
  }
  // Region row of a row's window centre, region column of a pixel's window centre.
  int64_t ci(const Row& row, const Dims& g) const { return row.r - rlo + g.K; }
  int64_t cj(int64_t col, const Dims& g) const { return col - clo + g.K; }
};

// The part [k0, k1] of the window offsets -K..K that stays inside the search square for the
// offset component dd (in() of the definition).
inline void clip_window(int64_t dd, const Dims& g, int64_t& k0, int64_t& k1) {
  k0 = std::max(-g.K, -g.P - dd);
  k1 = std::min(g.K, g.P - dd);
}

// Region rows that some masked row's clipped window [ky0, ky1] covers.
void mark_needed_rows(const Layout& L, const Dims& g, int64_t ky0, int64_t ky1,
                      std::vector<char>& need) {
  std::fill(need.begin(), need.end(), 0);
  for (const Row& row : L.rows) {
    const int64_t ci = L.ci(row, g);
    for (int64_t ky = ky0; ky <= ky1; ++ky) need[ci + ky] = 1;
  }
}

// Sq[i][j] = sum_c A[c][Y0+i][X0+j]^2 over the region.
template <typename T>
std::vector<T> region_squares(const T* Aorg, const Layout& L, const Dims& g) {
  std::vector<T> sq(L.RH * L.RW, T(0));
  for (int64_t c = 0; c < g.C; ++c) {
    for (int64_t i = 0; i < L.RH; ++i) {
      const T* __restrict__ a = Aorg + c * g.Hp * g.Wp + i * g.Wp;
      T* __restrict__ s = sq.data() + i * L.RW;
      for (int64_t j = 0; j < L.RW; ++j) s[j] += a[j] * a[j];
    }
  }
  return sq;
}

// out[j0 .. j0 + NB) = sum_{t < n} base[t * stride + j]: NB columns summed in registers
// (several independent vector chains), rows added in order.
template <typename T, int64_t NB>
inline void sum_block(const T* base, int64_t stride, int64_t n, int64_t j0, T* __restrict__ out) {
  T acc[NB];
  for (int64_t l = 0; l < NB; ++l) acc[l] = base[j0 + l];
  for (int64_t t = 1; t < n; ++t) {
    const T* __restrict__ row = base + t * stride + j0;
    for (int64_t l = 0; l < NB; ++l) acc[l] += row[l];
  }
  for (int64_t l = 0; l < NB; ++l) out[j0 + l] = acc[l];
}

// out[j] = sum_{t < n} base[t * stride + j] for j in [j0, j1], n >= 1, rows added in order.
template <typename T>
inline void sum_rows(const T* base, int64_t stride, int64_t n, int64_t j0, int64_t j1,
                     T* __restrict__ out) {
  constexpr int64_t V = 64 / sizeof(T), B = 4 * V;  // one vector, four vectors
  int64_t j = j0;
  for (; j + B <= j1 + 1; j += B) sum_block<T, B>(base, stride, n, j, out);
  if (j1 - j0 + 1 >= V) {  // rest in vectors, the last one overlapping (same values)
    for (; j <= j1; j += V) sum_block<T, V>(base, stride, n, std::min(j, j1 + 1 - V), out);
    return;
  }
  for (; j <= j1; ++j) {
    T s = base[j];
    for (int64_t t = 1; t < n; ++t) s += base[t * stride + j];
    out[j] = s;
  }
}

// er[j] = sum_c (a_c[j] - a_c[j + shift])^2 for j in [j0, j1] (channel planes `plane` apart).
template <typename T>
inline void diff_squares(const T* a, int64_t plane, int64_t C, int64_t shift, int64_t j0,
                         int64_t j1, T* __restrict__ er) {
  if (C == 3) {
    const T* __restrict__ a0 = a;
    const T* __restrict__ a1 = a + plane;
    const T* __restrict__ a2 = a + 2 * plane;
    for (int64_t j = j0; j <= j1; ++j) {
      const T t0 = a0[j] - a0[j + shift], t1 = a1[j] - a1[j + shift], t2 = a2[j] - a2[j + shift];
      er[j] = t0 * t0 + t1 * t1 + t2 * t2;
    }
    return;
  }
  const T* __restrict__ a0 = a;
  for (int64_t j = j0; j <= j1; ++j) {
    const T t = a0[j] - a0[j + shift];
    er[j] = t * t;
  }
  for (int64_t c = 1; c < C; ++c) {
    const T* __restrict__ ac = a + c * plane;
    for (int64_t j = j0; j <= j1; ++j) {
      const T t = ac[j] - ac[j + shift];
      er[j] += t * t;
    }
  }
}

template <typename T>
void forward_band(const T* A, const int64_t* pos, T* out, const Dims& g, const Band& band) {
  const Layout L(pos, band, g);
  const int64_t K = g.K, S = g.S, SS = S * S, RW = L.RW, plane = g.Hp * g.Wp;
  const int64_t nu = static_cast<int64_t>(L.rows.size());
  const T* Aorg = A + band.b * g.C * plane + L.Y0 * g.Wp + L.X0;

  const int64_t np = band.q1 - band.q0;
  const std::vector<T> sq = region_squares(Aorg, L, g);
  // D is built offset-major (contiguous per offset) and transposed into out at the end.
  std::vector<T> e(L.RH * RW), vsin(nu * RW), v(RW), outsum(np), local(SS * np);
  std::vector<char> need(L.RH);

  for (int64_t iy = 0; iy < S; ++iy) {
    const int64_t dy = iy - g.P;
    int64_t ky0, ky1;
    clip_window(dy, g, ky0, ky1);
    // Parts of the window that depend on dy only: column sums of Sq over the rows kept
    // (vsin) and, per pixel, the Sq sum over the rows cut off (outsum).
    for (int64_t u = 0; u < nu; ++u) {
      const Row& row = L.rows[u];
      const int64_t ci = L.ci(row, g), j0 = row.cmin - L.clo, j1 = row.cmax - L.clo + 2 * K;
      sum_rows(sq.data() + (ci + ky0) * RW, RW, ky1 - ky0 + 1, j0, j1, vsin.data() + u * RW);
      for (int64_t q = row.q0; q < row.q1; ++q) {
        const int64_t cj = L.cj(pos[3 * q + 2], g);
        T o = 0;
        for (int64_t ky = -K; ky <= K; ++ky) {
          if (ky >= ky0 && ky <= ky1) continue;
          const T* s = sq.data() + (ci + ky) * RW + cj;
          for (int64_t kx = -K; kx <= K; ++kx) o += s[kx];
        }
        outsum[q - band.q0] = o;
      }
    }
    mark_needed_rows(L, g, ky0, ky1, need);

    for (int64_t ix = 0; ix < S; ++ix) {
      const int64_t dx = ix - g.P, d = iy * S + ix, shift = dy * g.Wp + dx;
      int64_t kx0, kx1;
      clip_window(dx, g, kx0, kx1);
      const int64_t jlo = K + kx0, jhi = RW - 1 - K + kx1;
      // E_d on the rows and columns the clipped windows read (columns [lo, hi], see Layout).
      for (int64_t i = 0; i < L.RH; ++i) {
        const int64_t j0 = std::max(jlo, L.lo[i]), j1 = std::min(jhi, L.hi[i]);
        if (need[i] && j0 <= j1) {
          diff_squares(Aorg + i * g.Wp, plane, g.C, shift, j0, j1, e.data() + i * RW);
        }
      }
      for (int64_t u = 0; u < nu; ++u) {
        const Row& row = L.rows[u];
        const int64_t ci = L.ci(row, g);
        const int64_t j0 = row.cmin - L.clo + K + kx0, j1 = row.cmax - L.clo + K + kx1;
        sum_rows(e.data() + (ci + ky0) * RW, RW, ky1 - ky0 + 1, j0, j1, v.data());
        const T* vv = v.data();
        const T* vs = vsin.data() + u * RW;
        if (K == 4 && kx0 == -K && kx1 == K) {
          // The default window 9, not clipped: unrolled, summed as a tree (a shorter
          // dependency chain; 12% fewer forward instructions under callgrind).
          for (int64_t q = row.q0; q < row.q1; ++q) {
            const T* p = vv + L.cj(pos[3 * q + 2], g) - 4;
            const T s = ((p[0] + p[1]) + (p[2] + p[3])) + ((p[4] + p[5]) + (p[6] + p[7]));
            local[d * np + q - band.q0] = outsum[q - band.q0] + (s + p[8]);
          }
          continue;
        }
        for (int64_t q = row.q0; q < row.q1; ++q) {
          const int64_t cj = L.cj(pos[3 * q + 2], g);
          T acc = outsum[q - band.q0];
          for (int64_t kx = -K; kx < kx0; ++kx) acc += vs[cj + kx];
          for (int64_t kx = kx0; kx <= kx1; ++kx) acc += vv[cj + kx];
          for (int64_t kx = kx1 + 1; kx <= K; ++kx) acc += vs[cj + kx];
          local[d * np + q - band.q0] = acc;
        }
      }
    }
  }
  for (int64_t q = 0; q < np; ++q) {
    T* __restrict__ o = out + (band.q0 + q) * SS;
    for (int64_t d = 0; d < SS; ++d) o[d] = local[d * np + q];
  }
}

// Gradient of sum_{m,d} G[m,d] D[m,d] with respect to the padded image, for one band.
// ga receives it on the band's reach: padded rows [rlo, rhi + 2P], columns [clo, chi + 2P]
// ("reach coordinates": reach row 0 = padded row rlo, region row i = reach row i + P - K).
//
// With gm_d the coefficient of E_d (2 G spread over the clipped windows), the E part of the
// gradient is sum_d of +t_d at x and -t_d at x + d, t_d[x] = gm_d[x] (A[x] - A[x+d]). As
// E_{-d}[x+d] = E_d[x], the offsets d and -d share one pass: t = H[x] (A[x] - A[x+d]) with
// H[x] = gm_d[x] + gm_{-d}[x+d], half the read-modify-write traffic on the gradient.
template <typename T>
void backward_band(const T* A, const int64_t* pos, const T* G, const Dims& g, const Band& band,
                   std::vector<T>& ga) {
  const Layout L(pos, band, g);
  const int64_t K = g.K, P = g.P, S = g.S, SS = S * S, RH = L.RH, RW = L.RW;
  const int64_t plane = g.Hp * g.Wp, nu = static_cast<int64_t>(L.rows.size());
  const int64_t GH = L.rhi - L.rlo + 1 + 2 * P, GW = L.chi - L.clo + 1 + 2 * P;
  const int64_t gplane = GH * GW, M = P - K;  // M: reach coordinates of region (0, 0)
  const T* Aorg = A + band.b * g.C * plane + L.Y0 * g.Wp + L.X0;
  const T* Areach = A + band.b * g.C * plane + L.rlo * g.Wp + L.clo;

  ga.assign(g.C * gplane, T(0));
  // hrow: 2 G[m, d] spread over the clipped window columns, one row per region row (rows
  // without masked pixels stay 0); its vertical box sums are gm_d. H: the pair's
  // coefficient in reach coordinates, hlo/hhi its columns per row (hlo > hhi: none).
  // wsum: coefficient of Sq (the cut-off window parts), applied once at the end.
  std::vector<T> hrow(RH * RW, T(0)), gm(RW), tmp(GW), wsum(RH * RW, T(0));
  std::vector<T> H(gplane, T(0));
  std::vector<int64_t> hlo(GH, GW), hhi(GH, -1);
  const int64_t np = band.q1 - band.q0;
  std::vector<T> gt(SS * np);  // 2 G offset-major, contiguous per offset
  for (int64_t q = 0; q < np; ++q) {
    const T* __restrict__ gq = G + (band.q0 + q) * SS;
    for (int64_t d = 0; d < SS; ++d) gt[d * np + q] = T(2) * gq[d];
  }
  // Per search row dy (two at a time: dy and -dy): the cut-off parts' coefficients, rows
  // kept x columns cut (ghsin, per masked row) and rows cut (gsout, per pixel).
  std::vector<T> ghsin[2] = {std::vector<T>(nu * RW), std::vector<T>(nu * RW)};
  std::vector<T> gsout[2] = {std::vector<T>(np), std::vector<T>(np)};
  std::vector<char> need[2] = {std::vector<char>(RH), std::vector<char>(RH)};

  // hrow for offset (iy, ix); accumulates the cut-off coefficients of set s.
  auto spread = [&](int64_t iy, int64_t ix, int s) {
    int64_t kx0, kx1;
    clip_window(ix - P, g, kx0, kx1);
    const int64_t d = iy * S + ix;
    for (int64_t u = 0; u < nu; ++u) {
      const Row& row = L.rows[u];
      // Every column this row's pixels can reach; the rest of hrow stays 0.
      T* hh = hrow.data() + L.ci(row, g) * RW;
      std::fill(hh + row.cmin - L.clo, hh + row.cmax - L.clo + 2 * K + 1, T(0));
      T* gs = ghsin[s].data() + u * RW;
      if (K == 4 && kx0 == -K && kx1 == K) {  // the default window 9, not clipped: unrolled
        for (int64_t q = row.q0; q < row.q1; ++q) {
          const T gq = gt[d * np + q - band.q0];
          T* h = hh + L.cj(pos[3 * q + 2], g) - 4;
          gsout[s][q - band.q0] += gq;
          for (int kx = 0; kx < 9; ++kx) h[kx] += gq;
        }
        continue;
      }
      for (int64_t q = row.q0; q < row.q1; ++q) {
        const T gq = gt[d * np + q - band.q0];
        const int64_t cj = L.cj(pos[3 * q + 2], g);
        gsout[s][q - band.q0] += gq;
        for (int64_t kx = -K; kx < kx0; ++kx) gs[cj + kx] += gq;
        for (int64_t kx = kx0; kx <= kx1; ++kx) hh[cj + kx] += gq;
        for (int64_t kx = kx1 + 1; kx <= K; ++kx) gs[cj + kx] += gq;
      }
    }
  };
  // gm_d row by row: f(region row i, first column, last column, values gm[j0..j1]).
  // gm is 0 outside columns [lo, hi] of the row (see Layout) and on rows not needed.
  auto box_rows = [&](int64_t dy, int64_t dx, const std::vector<char>& nd, auto&& f) {
    int64_t ky0, ky1, kx0, kx1;
    clip_window(dy, g, ky0, ky1);
    clip_window(dx, g, kx0, kx1);
    for (int64_t i = 0; i < RH; ++i) {
      const int64_t j0 = std::max(K + kx0, L.lo[i]), j1 = std::min(RW - 1 - K + kx1, L.hi[i]);
      if (!nd[i] || j0 > j1) continue;
      const int64_t t0 = std::max(i - ky1, K), t1 = std::min(i - ky0, RH - 1 - K);
      sum_rows(hrow.data() + t0 * RW, RW, t1 - t0 + 1, j0, j1, gm.data());
      f(i, j0, j1, gm.data());
    }
  };

  for (int64_t iy = P; iy < S; ++iy) {
    const int64_t dy = iy - P, iyn = S - 1 - iy;  // iyn: the row of -dy
    const int sets = dy == 0 ? 1 : 2;
    for (int s = 0; s < sets; ++s) {
      int64_t ky0, ky1;
      clip_window(s == 0 ? dy : -dy, g, ky0, ky1);
      std::fill(ghsin[s].begin(), ghsin[s].end(), T(0));
      std::fill(gsout[s].begin(), gsout[s].end(), T(0));
      mark_needed_rows(L, g, ky0, ky1, need[s]);
    }
    for (int64_t ix = 0; ix < S; ++ix) {
      const int64_t dx = ix - P;
      if (dy == 0 && dx < 0) continue;  // done with its partner -d
      if (dy == 0 && dx == 0) {         // E_0 = 0: only the cut-off parts (none for d = 0)
        spread(iy, ix, 0);
        continue;
      }
      // H = gm_d (written), then += gm_{-d} shifted by -d.
      spread(iy, ix, 0);
      box_rows(dy, dx, need[0], [&](int64_t i, int64_t j0, int64_t j1, const T* v) {
        const int64_t r = i + M;
        T* __restrict__ h = H.data() + r * GW + M;
        for (int64_t j = j0; j <= j1; ++j) h[j] = v[j];
        hlo[r] = j0 + M;
        hhi[r] = j1 + M;
      });
      spread(dy == 0 ? iy : iyn, S - 1 - ix, dy == 0 ? 0 : 1);
      box_rows(-dy, -dx, need[dy == 0 ? 0 : 1],
               [&](int64_t i, int64_t j0, int64_t j1, const T* v) {
        const int64_t r = i + M - dy, c0 = j0 + M - dx, c1 = j1 + M - dx;
        T* __restrict__ h = H.data() + r * GW;
        if (hlo[r] > hhi[r]) {
          for (int64_t j = c0; j <= c1; ++j) h[j] = v[j + dx - M];
          hlo[r] = c0;
          hhi[r] = c1;
          return;
        }
        // Columns between the two ranges are still 0 in H.
        for (int64_t j = c0; j <= c1; ++j) h[j] += v[j + dx - M];
        hlo[r] = std::min(hlo[r], c0);
        hhi[r] = std::max(hhi[r], c1);
      });
      // t = H (A[x] - A[x+d]): +t at x, -t at x + d; then H back to 0.
      const int64_t shift = dy * g.Wp + dx, gshift = dy * GW + dx;
      for (int64_t r = 0; r < GH; ++r) {
        const int64_t j0 = hlo[r], j1 = hhi[r];
        if (j0 > j1) continue;
        T* __restrict__ h = H.data() + r * GW;
        for (int64_t c = 0; c < g.C; ++c) {
          const T* __restrict__ a = Areach + c * plane + r * g.Wp;
          T* gr = ga.data() + c * gplane + r * GW;
          if (dy != 0) {  // the two rows differ: one pass
            T* __restrict__ g1 = gr;
            T* __restrict__ g2 = gr + gshift;
            for (int64_t j = j0; j <= j1; ++j) {
              const T t = h[j] * (a[j] - a[j + shift]);
              g1[j] += t;
              g2[j] -= t;
            }
          } else {  // same row, ranges overlap: two passes
            T* __restrict__ t = tmp.data();
            for (int64_t j = j0; j <= j1; ++j) t[j] = h[j] * (a[j] - a[j + shift]);
            for (int64_t j = j0; j <= j1; ++j) gr[j] += t[j];
            for (int64_t j = j0; j <= j1; ++j) gr[j + dx] -= t[j];
          }
        }
        std::fill(h + j0, h + j1 + 1, T(0));
        hlo[r] = GW;
        hhi[r] = -1;
      }
    }
    // The cut-off parts of rows dy and -dy: rows kept x columns cut (ghsin), rows cut (gsout).
    for (int s = 0; s < sets; ++s) {
      int64_t ky0, ky1;
      clip_window(s == 0 ? dy : -dy, g, ky0, ky1);
      for (int64_t u = 0; u < nu; ++u) {
        const Row& row = L.rows[u];
        const int64_t ci = L.ci(row, g), j0 = row.cmin - L.clo, j1 = row.cmax - L.clo + 2 * K;
        const T* __restrict__ gs = ghsin[s].data() + u * RW;
        for (int64_t ky = ky0; ky <= ky1; ++ky) {
          T* __restrict__ w = wsum.data() + (ci + ky) * RW;
          for (int64_t j = j0; j <= j1; ++j) w[j] += gs[j];
        }
        for (int64_t q = row.q0; q < row.q1; ++q) {
          const T o = gsout[s][q - band.q0];
          const int64_t cj = L.cj(pos[3 * q + 2], g);
          for (int64_t ky = -K; ky <= K; ++ky) {
            if (ky >= ky0 && ky <= ky1) continue;
            T* w = wsum.data() + (ci + ky) * RW + cj;
            for (int64_t kx = -K; kx <= K; ++kx) w[kx] += o;
          }
        }
      }
    }
  }
  for (int64_t c = 0; c < g.C; ++c) {
    for (int64_t i = 0; i < RH; ++i) {
      const T* __restrict__ a = Aorg + c * plane + i * g.Wp;
      const T* __restrict__ w = wsum.data() + i * RW;
      T* __restrict__ gr = ga.data() + c * gplane + (i + M) * GW + M;
      for (int64_t j = 0; j < RW; ++j) gr[j] += a[j] * w[j];
    }
  }
}

// Runs f(band index) for every band on up to `threads` threads, biggest bands first so the
// threads finish together. Which thread runs a band does not change its result.
template <typename F>
void for_each_band(const std::vector<Band>& bands, int64_t pairs, int threads, const F& f) {
  const int64_t n = static_cast<int64_t>(bands.size());
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    return bands[x].q1 - bands[x].q0 > bands[y].q1 - bands[y].q0;
  });
  std::atomic<int64_t> next{0};
  const int workers = pairs < kMinParallelPairs
                          ? 1
                          : static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, n)));
#pragma omp parallel num_threads(workers)
  for (int64_t k = next++; k < n; k = next++) f(order[k]);
}

Dims make_dims(const Shape& s) {
  return {s.C, s.Hp, s.Wp, s.search, s.search / 2, s.window / 2};
}

}  // namespace

template <typename T>
void patch_distances_forward(const T* a, const int64_t* p, const Shape& s, T* o, int threads) {
  if (s.n == 0) return;
  const Dims g = make_dims(s);
  const std::vector<Band> bands = split_bands(p, s.n);
  for_each_band(bands, s.n * g.S * g.S, threads,
                [&](int64_t k) { forward_band<T>(a, p, o, g, bands[k]); });
}

template <typename T>
void patch_distances_backward(const T* a, const int64_t* p, const T* gr, const Shape& s,
                              T* out, int threads) {
  if (s.n == 0) return;
  const Dims g = make_dims(s);
  const std::vector<Band> bands = split_bands(p, s.n);
  std::vector<std::vector<T>> local(bands.size());
  for_each_band(bands, s.n * g.S * g.S, threads,
                [&](int64_t k) { backward_band<T>(a, p, gr, g, bands[k], local[k]); });
  // Fixed-order reduction: bands of one image in band order; images in parallel.
  std::vector<int64_t> first(1, 0);
  for (int64_t k = 1; k < static_cast<int64_t>(bands.size()); ++k) {
    if (bands[k].b != bands[k - 1].b) first.push_back(k);
  }
  first.push_back(static_cast<int64_t>(bands.size()));
  const int64_t plane = g.Hp * g.Wp;
  const int64_t images = static_cast<int64_t>(first.size()) - 1;
  const int workers = s.n * g.S * g.S < kMinParallelPairs ? 1 : std::max(1, threads);
#pragma omp parallel for num_threads(workers) schedule(static)
  for (int64_t i = 0; i < images; ++i) {
    for (int64_t k = first[i]; k < first[i + 1]; ++k) {
      const Band& band = bands[k];
      const Layout L(p, band, g);
      const int64_t GH = L.rhi - L.rlo + 1 + 2 * g.P, GW = L.chi - L.clo + 1 + 2 * g.P;
      for (int64_t c = 0; c < g.C; ++c) {
        for (int64_t y = 0; y < GH; ++y) {
          const T* __restrict__ src = local[k].data() + (c * GH + y) * GW;
          T* __restrict__ dst = out + (band.b * g.C + c) * plane + (L.rlo + y) * g.Wp + L.clo;
          for (int64_t x = 0; x < GW; ++x) dst[x] += src[x];
        }
      }
      std::vector<T>().swap(local[k]);
    }
  }
}

template void patch_distances_forward<float>(const float*, const int64_t*, const Shape&, float*,
                                             int);
template void patch_distances_forward<double>(const double*, const int64_t*, const Shape&,
                                              double*, int);
template void patch_distances_backward<float>(const float*, const int64_t*, const float*,
                                              const Shape&, float*, int);
template void patch_distances_backward<double>(const double*, const int64_t*, const double*,
                                               const Shape&, double*, int);

}  // namespace ssl_ops
