// CPU kernel of the SSL patch-distance op (forward and backward), on raw arrays.
//
// Definition (see __init__.py): for a masked pixel m and an offset d of the search square,
//   D[m, d] = sum_c sum_k (A[m+k] - Z_m[d+k])^2,
// where A is the reflect-padded image, k runs over the window and Z_m is the pixel's search
// square of A surrounded by zeros (window pixels that leave the square count as zero: in()
// of the definition).
//
// Forward (band_distances): the squared differences E of a window pixel with the pixels of
// one offset row do not depend on which masked pixel's window it is in, so the pixels of a
// band share them: E is made once per band, offset row and window pixel, in vector lanes
// (the offsets' columns), summed along each pixel column's window rows (H, shared by the
// pixels of a column) and then down each pixel's window. Window pixels whose partner leaves
// the search square count their own square instead (the zero border of in()). Every D is a
// sum of non-negative terms (no expansion into A^2 - 2AB + B^2, whose cancellation would
// lose the small distances, and no running sums that subtract terms back out), so it keeps
// full float precision. The work grows with the area the masked pixels' windows cover:
// against one pixel at a time (81 window pixels each), measured 1.3x (the stride-3 training
// mask) to 1.7-2.3x (an edge mask) faster, see README.md.
//
// Backward, a band at a time, in one of two ways (shares_backward chooses by how much the
// band's windows overlap):
// - one pixel at a time (backward_pixel): its square, with the zero border, is copied into a
//   small buffer Z (in L1 cache) and, for the upstream gradient G[m, d] of the pixel (D is
//   linear in each square):
//     dA[m+k] += 2 (sum_d G[d]) A[m+k] - 2 sum_d G[d] Z[d+k]        (window_part)
//     dA[u]   -= 2 sum_k G[u-k] A[m+k] - 2 A[u] sum_k G[u-k]         (square_part; u inside)
//   two correlations of G with the image, in vector lanes (the offsets' columns);
// - shared between the pixels whose windows cover a pixel (BandBackward): the rows of G of
//   those pixels are summed first, so each covered pixel costs one pass over its offsets
//   however many windows hold it.
//
// ssl_loss_cpu (the loss while training on the CPU) does a band at a time: the SR and HR
// distances of its pixels, then per pixel the graph arithmetic of the row
// (graph_loss_cpu.cpp) and that row's gradient, so the [N, S*S] arrays are never written.
//
// Work is split into bands of masked pixels (split_bands) that depend on the mask only. The
// forward writes disjoint output rows; the backward adds each band into a private buffer and
// the buffers are added in a fixed order, so results do not depend on the number of threads.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <cstdlib>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "ssl_cpu.h"

namespace ssl_ops {
namespace {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
#else
constexpr int kVectorBytes = 16;  // SSE2, NEON: the vectors the machine's registers hold
#endif

// Vectors of kVectorBytes (GCC/Clang vector extensions: the compiler maps them onto the
// machine's instructions, AVX-512, AVX2 or NEON), with the integer vectors that index them.
template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(kVectorBytes)));
  typedef int32_t index __attribute__((vector_size(kVectorBytes)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(kVectorBytes)));
  typedef int64_t index __attribute__((vector_size(kVectorBytes)));
};

// Vectors of 64 bytes whatever the machine's: the forward's path for the default sizes
// (band_distances) is written for two of them per row of lanes; on AVX2 or SSE2 the compiler
// does each operation as two or four of the machine's. (With the machine's own 8 lanes, that
// path did not apply and AVX2 builds took the any-size path, 4.5x as long as AVX-512 on the
// same CPU instead of about 2x.)
constexpr int kWideBytes = 64;
template <typename T>
struct WideOf {
  typedef T type __attribute__((vector_size(kWideBytes)));
};

template <typename V, typename T>
inline V load(const T* p) {
  V v;
  std::memcpy(&v, p, sizeof(V));
  return v;
}

template <typename V, typename T>
inline void store(T* p, const V& v) {
  std::memcpy(p, &v, sizeof(V));
}

// v with lane i taken from lane i ^ flip (flip a power of two): swaps blocks of flip lanes.
template <typename T, typename V>
inline V swap_blocks(const V& v, int flip) {
  typename VecOf<T>::index idx = {};
  for (int l = 0; l < static_cast<int>(sizeof(V) / sizeof(T)); ++l) idx[l] = l ^ flip;  // constant
#if defined(__clang__)
  return __builtin_shufflevector(v, idx);
#else
  return __builtin_shuffle(v, idx);
#endif
}

// Sum of the lanes, as a tree (halves added, then quarters, down to 4 lanes).
template <typename T, typename V>
inline T hsum(V v) {
  constexpr int n = sizeof(V) / sizeof(T);
  static_assert(n == 2 || n == 4 || n == 8 || n == 16, "vectors of 2 to 16 lanes");
  if constexpr (n == 16) v += swap_blocks<T>(v, 8);
  if constexpr (n >= 8) v += swap_blocks<T>(v, 4);
  if constexpr (n == 2) return v[0] + v[1];
  else return (v[0] + v[1]) + (v[2] + v[3]);
}

// Blocks of memory a thread has used for its scratch buffers, kept for its next ones: the
// bands of one call, and of the next call, need buffers of the same sizes. Taken from and
// returned to malloc each time, glibc handed much of that memory back to the kernel and took
// it again page by page (hundreds of page faults per call of the op, ~0.3 ms of system time
// on the random-mask case). A thread keeps at most kKeptBytes; larger needs are freed.
class BlockPool {
 public:
  static constexpr size_t kKeptBytes = size_t(16) << 20;
  ~BlockPool() {
    for (const Block& b : free_) std::free(b.p);
  }
  // A block of at least `bytes`: the smallest kept one that is large enough, else a new one.
  void* take(size_t bytes, size_t& got) {
    size_t best = free_.size();
    for (size_t k = 0; k < free_.size(); ++k) {
      if (free_[k].bytes >= bytes && (best == free_.size() || free_[k].bytes < free_[best].bytes)) {
        best = k;
      }
    }
    if (best == free_.size()) {
      got = bytes;
      void* p = std::malloc(bytes);
      if (!p) throw std::bad_alloc();
      return p;
    }
    const Block b = free_[best];
    free_[best] = free_.back();
    free_.pop_back();
    kept_ -= b.bytes;
    got = b.bytes;
    return b.p;
  }
  void give(void* p, size_t bytes) {
    if (kept_ + bytes > kKeptBytes) {
      std::free(p);
      return;
    }
    free_.push_back({p, bytes});
    kept_ += bytes;
  }

 private:
  struct Block {
    void* p;
    size_t bytes;
  };
  std::vector<Block> free_;
  size_t kept_ = 0;
};

inline BlockPool& block_pool() {
  thread_local BlockPool pool;
  return pool;
}

// n values starting on a 64-byte boundary, zero-initialised unless zero is false, from the
// thread's BlockPool. (Where the rows of the scratch buffers fall against cache lines
// decides how many vector loads straddle two lines; with malloc's 16-byte alignment that
// changed from run to run, and the kernel's speed with it.)
template <typename T>
class Aligned {
 public:
  explicit Aligned(int64_t n, bool zero = true) {
    raw_ = block_pool().take(n * sizeof(T) + 64, bytes_);
    const auto address = reinterpret_cast<std::uintptr_t>(raw_);
    p_ = reinterpret_cast<T*>(address + (64 - address % 64) % 64);
    if (zero) std::fill(p_, p_ + n, T(0));
  }
  ~Aligned() { block_pool().give(raw_, bytes_); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  T* data() { return p_; }
  const T* data() const { return p_; }

 private:
  void* raw_;
  size_t bytes_;
  T* p_;
};

// The vector at p, kept in a register: without this the compiler folds the load into every
// multiply-add that uses the value, loading it again for each (the loads, not the
// arithmetic, then bound the loop).
template <typename V, typename T>
inline V load_once(const T* p) {
  V v = load<V>(p);
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  asm("" : "+v"(v));
#endif
  return v;
}


// Geometry of one call. Lanes: the offset columns dx, in NT tiles of NV vectors of L lanes
// (XW lanes in all, those past S unused). Z: a pixel's square surrounded by zeros (rows and
// columns [K, K + S) hold the square), one plane of ZR rows per channel. Gp: one pixel's
// upstream gradient surrounded by zeros (G[iy][ix] at Gp[iy + BT][ix + GC]; GC = L puts
// the rows of G on vector boundaries), GR rows. Both have rows of `stride` values. TR: rows
// of square_part's output per channel.
struct Geo {
  int64_t C, Hp, Wp, S, P, K, W, SS;
  int64_t L, NV, TW, NT, XW;
  int64_t ZR, BT, GC, GR, TR, stride, zplane;

  Geo(const Shape& s, int64_t lanes) {
    C = s.C, Hp = s.Hp, Wp = s.Wp, S = s.search, P = S / 2, K = s.window / 2, W = s.window;
    SS = S * S;
    L = lanes;
    NV = S <= 2 * L ? 2 : 4;
    TW = NV * L;
    NT = (S + TW - 1) / TW;
    XW = NT * TW;
    // What the backward reads past the square and G: window_part's window rounded up to its
    // 3 x 3 blocks (and 2 rows of G above and below), square_part's rows rounded up to its
    // tiles (dividing 12).
    const int64_t wy = (W + 2) / 3 * 3, wx = wy;
    ZR = S + wy - 1;
    BT = std::max<int64_t>(K, 2);
    TR = (S + 11) / 12 * 12;
    GR = BT + std::max(TR + K, S + 2);
    GC = L;
    stride = std::max(XW + std::max(wx - 1, 2 * K), GC + XW + K);
    zplane = ZR * stride;
  }
};

// Row strides known at compile time keep the row offsets in the instructions (with a
// runtime stride the compiler runs out of registers for them); 64 covers searches up to 32.
constexpr int64_t kFixedStride = 64;

template <typename V, typename T>
inline V splat(T s) {
  return s - V{};  // s - 0 is s for every s (not so s + 0), so this folds to a broadcast
}

// v with the lanes at or past `limit` set to 0, lane l of v being number first + l.
template <typename V, typename T>
inline V lanes_below(const V& v, int64_t first, int64_t limit) {
  V lane = {};
  for (int l = 0; l < static_cast<int>(sizeof(V) / sizeof(T)); ++l) lane[l] = T(l);  // constant
  return lane < static_cast<T>(limit - first) ? v : V{};
}

// dst[0, XW) = src[0, S) followed by zeros: whole vectors (lanes past S zeroed by a select)
// when reading XW values from src stays before `end`, else one value at a time.
template <typename T>
inline void copy_row(const T* src, const T* end, const Geo& g, T* dst) {
  using V = typename VecOf<T>::type;
  constexpr int64_t L = kVectorBytes / sizeof(T);
  if (src + g.XW > end) {
    for (int64_t j = 0; j < g.XW; ++j) dst[j] = j < g.S ? src[j] : T(0);
    return;
  }
  for (int64_t j = 0; j < g.XW; j += L) {
    const V v = load<V>(src + j);
    store(dst + j, j + L <= g.S ? v : lanes_below<V, T>(v, j, g.S));
  }
}

// The square of the pixel at unpadded (y, x) of image `img` (which ends at `end`) into Z,
// whose border stays 0.
template <typename T>
void fill_square(const T* img, const T* end, int64_t y, int64_t x, const Geo& g, int64_t zs,
                 T* Z) {
  for (int64_t c = 0; c < g.C; ++c) {
    const T* src = img + c * g.Hp * g.Wp + y * g.Wp + x;
    T* dst = Z + c * g.ZR * zs + g.K * zs + g.K;
    for (int64_t i = 0; i < g.S; ++i) copy_row(src + i * g.Wp, end, g, dst + i * zs);
  }
}

// wk[c][jy][jx] += sum_{iy, ix} G[iy][ix] Z[c][iy + jy][ix + jx] over the lanes of tile t, for
// every channel and window position, in blocks of JY x JX window positions: each loaded row
// of Z serves JY rows of G and each row of G JX columns of Z. (Blocks reaching past the
// window read zeros or values of Z whose sums are dropped.)
template <typename T, int NV, int64_t RS>
void window_part(const T* Z, const T* Gp, const Geo& g, int64_t t, T* wk) {
  using V = typename VecOf<T>::type;
  constexpr int64_t L = kVectorBytes / sizeof(T);
  constexpr int JY = 3, JX = 3;  // the blocks Geo allows for (its wy, wx)
  const int64_t zs = RS ? RS : g.stride, zplane = g.ZR * zs, x0 = t * g.TW;
  for (int64_t c = 0; c < g.C; ++c) {
    for (int64_t jy0 = 0; jy0 < g.W; jy0 += JY) {
      for (int64_t jx0 = 0; jx0 < g.W; jx0 += JX) {
        // One vector of lanes at a time (JY x JX accumulators, not NV times as many, so
        // that none is spilled to memory), the vectors' sums added before the lane sums.
        V total[JY][JX];
        for (int v = 0; v < NV; ++v) {
          V acc[JY][JX];
          for (int a = 0; a < JY; ++a) {
            for (int b = 0; b < JX; ++b) acc[a][b] = V{};
          }
          // Z row u meets G row u - jy: u runs over every row some jy of the block needs.
          const T* zr = Z + c * zplane + jy0 * zs + x0 + jx0 + v * L;
          const T* gr = Gp + g.BT * zs + g.GC + x0 + v * L;
          for (int64_t i = 0; i < g.S + JY - 1; ++i, zr += zs, gr += zs) {
            V zv[JX];
            for (int b = 0; b < JX; ++b) zv[b] = load_once<V>(zr + b);
            for (int a = 0; a < JY; ++a) {
              const V gv = load_once<V>(gr - a * zs);
              for (int b = 0; b < JX; ++b) acc[a][b] += gv * zv[b];
            }
          }
          for (int a = 0; a < JY; ++a) {
            for (int b = 0; b < JX; ++b) total[a][b] = v == 0 ? acc[a][b] : total[a][b] + acc[a][b];
          }
        }
        T sum[JY][JX];  // every sum first, so that total can stay in registers
        for (int a = 0; a < JY; ++a) {
          for (int b = 0; b < JX; ++b) {
            sum[a][b] = hsum<T>(total[a][b]);
          }
        }
        for (int a = 0; a < JY && jy0 + a < g.W; ++a) {
          T* w = wk + (c * g.W + jy0 + a) * g.W + jx0;
          for (int b = 0; b < JX && jx0 + b < g.W; ++b) w[b] += sum[a][b];
        }
      }
    }
  }
}

// tq[c][s_y][lane] = sum_{jy, jx} G[s_y + K - jy][s_x + K - jx] a_c[jy][jx] over the square's
// rows, lanes of tile t, channels [c0, c0 + CG) together (one load of G serves all of them);
// a = the window inside Z. Rows RT at a time. tq has TR rows per channel.
template <typename T, int NV, int CG, int64_t RS>
void square_part(const T* Z, const T* Gp, const Geo& g, int64_t t, int64_t c0, T* tq) {
  using V = typename VecOf<T>::type;
  constexpr int64_t L = kVectorBytes / sizeof(T);
  constexpr int RT = std::max(1, 12 / (CG * NV));
  const int64_t zs = RS ? RS : g.stride, zplane = g.ZR * zs, x0 = t * g.TW;
  const T* win = Z + c0 * zplane + g.P * zs + g.P;
  for (int64_t sy0 = 0; sy0 < g.S; sy0 += RT) {
    V acc[CG][RT][NV] = {};
    for (int64_t jy = 0; jy < g.W; ++jy) {
      const T* grow = Gp + (sy0 + g.K - jy + g.BT) * zs + x0 + g.GC + g.K;
      for (int64_t jx = 0; jx < g.W; ++jx) {
        V gv[RT][NV];
        for (int r = 0; r < RT; ++r) {
          for (int v = 0; v < NV; ++v) gv[r][v] = load_once<V>(grow + r * zs - jx + v * L);
        }
        for (int cc = 0; cc < CG; ++cc) {
          const V av = splat<V>(win[cc * zplane + jy * zs + jx]);
          for (int r = 0; r < RT; ++r) {
            for (int v = 0; v < NV; ++v) acc[cc][r][v] += av * gv[r][v];
          }
        }
      }
    }
    for (int cc = 0; cc < CG; ++cc) {
      for (int r = 0; r < RT; ++r) {
        for (int v = 0; v < NV; ++v) {
          store(tq + ((c0 + cc) * g.TR + sy0 + r) * g.XW + x0 + v * L, acc[cc][r][v]);
        }
      }
    }
  }
}

constexpr int64_t kBandRows = 32;
constexpr int64_t kBandPixels = 64;
// Below this many (pixel, offset) pairs the work stays on the calling thread: waking the
// thread pool costs more than it saves (and much more on an oversubscribed machine).
constexpr int64_t kMinParallelPairs = 1 << 15;

struct Band {
  int64_t b, q0, q1;             // image, masked pixels [q0, q1)
  int64_t rlo, rhi, clo, chi;    // their rows and columns (unpadded)
};

// Bands: runs of masked pixels of one image spanning at most kBandRows rows and holding at
// most max(kBandPixels, n / parts) pixels, so that the work spreads over the threads. With
// the default parts the split depends on the mask alone, never on the number of threads
// (what the backward's sums need).
std::vector<Band> split_bands(const int64_t* pos, int64_t n, int64_t parts = 8) {
  const int64_t most = std::max(kBandPixels, (n + parts - 1) / parts);
  std::vector<Band> bands;
  for (int64_t q = 0; q < n; ++q) {
    const int64_t b = pos[3 * q], r = pos[3 * q + 1], c = pos[3 * q + 2];
    if (!bands.empty()) {
      Band& k = bands.back();
      if (k.b == b && r - k.rlo < kBandRows && k.q1 - k.q0 < most) {
        k.q1 = q + 1;
        k.rhi = r;
        k.clo = std::min(k.clo, c);
        k.chi = std::max(k.chi, c);
        continue;
      }
    }
    bands.push_back({b, q, q + 1, r, r, c, c});
  }
  return bands;
}

// Runs f(band index, worker) for every band on up to `threads` threads, biggest bands first
// so the threads finish together. Which thread runs a band does not change its result.
template <typename F>
void for_each_band(const std::vector<Band>& bands, int workers, const F& f) {
  const int64_t n = static_cast<int64_t>(bands.size());
  std::vector<int64_t> order(n);
  for (int64_t k = 0; k < n; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    return bands[x].q1 - bands[x].q0 > bands[y].q1 - bands[y].q0;
  });
  std::atomic<int64_t> next{0};
#pragma omp parallel num_threads(workers)
  for (int64_t k = next++; k < n; k = next++) f(order[k]);
}

int workers_for(const Shape& s, int threads, int64_t bands) {
  if (s.n * s.search * s.search < kMinParallelPairs) return 1;
  return static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, bands)));
}

// What band_distances needs of a band's mask, whatever the image (the fused loss passes SR
// and HR through one plan): window rows R = rlo - K + i (i < nr) and columns
// x = clo - K + j (j < nw), unpadded; the band's distinct pixel columns (cols, col_of); per
// row, the runs [j0, j1) of window pixels whose E is needed (e_runs, need_e) and the
// columns whose H is (h_cols); the lane weights; the ring slot of each row.
template <typename T>
struct BandPlan {
  int64_t K, nr, nw, ncol;
  std::vector<int64_t> col_of, cols, slot;
  std::vector<char> need_e;
  std::vector<std::vector<int64_t>> e_runs, h_cols;
  Aligned<T> weight;  // [t][lane]: 1 where the partner of window column jx = t - K lies in
                      // the square, 0 <= jx + dx <= 2P, else 0

  BandPlan(const int64_t* pos, const Geo& g, const Band& band)
      : K(g.K),
        nr(band.rhi - band.rlo + 1 + 2 * K),
        nw(band.chi - band.clo + 1 + 2 * K),
        col_of(band.chi - band.clo + 1, -1),
        slot(nr),
        need_e(nr * nw, 0),
        e_runs(nr),
        h_cols(nr),
        weight(g.W * g.XW) {
    for (int64_t q = band.q0; q < band.q1; ++q) {
      int64_t& ci = col_of[pos[3 * q + 2] - band.clo];
      if (ci < 0) {
        ci = static_cast<int64_t>(cols.size());
        cols.push_back(pos[3 * q + 2]);
      }
    }
    ncol = static_cast<int64_t>(cols.size());
    std::vector<char> need_h(nr * ncol, 0);
    for (int64_t q = band.q0; q < band.q1; ++q) {
      const int64_t i0 = pos[3 * q + 1] - band.rlo, j0 = pos[3 * q + 2] - band.clo;
      const int64_t ci = col_of[j0];
      for (int64_t i = i0; i <= i0 + 2 * K; ++i) {
        std::fill(need_e.begin() + i * nw + j0, need_e.begin() + i * nw + j0 + 2 * K + 1, 1);
        need_h[i * ncol + ci] = 1;
      }
    }
    for (int64_t i = 0; i < nr; ++i) {
      for (int64_t j = 0; j < nw; ++j) {
        if (!need_e[i * nw + j]) continue;
        if (j == 0 || !need_e[i * nw + j - 1]) e_runs[i].push_back(j);
        if (j == nw - 1 || !need_e[i * nw + j + 1]) e_runs[i].push_back(j + 1);
      }
      for (int64_t ci = 0; ci < ncol; ++ci) {
        if (need_h[i * ncol + ci]) h_cols[i].push_back(ci);
      }
      slot[i] = i % g.W;
    }
    for (int64_t t = 0; t < g.W; ++t) {
      for (int64_t l = 0; l < g.XW; ++l) {
        weight.data()[t * g.XW + l] = l + t - K >= 0 && l + t - K <= 2 * g.P ? T(1) : T(0);
      }
    }
  }
};

#if defined(__AVX512F__)
// E of one window pixel j = kb + SH (the default sizes, float: 32 lanes in two 16-lane
// vectors, CC channels), from the partner row's aligned vectors kb, kb + 16 and kb + 32 of
// each channel (z0, z1, z2): its lanes j .. j + 31 are a shift of them by SH lanes (valignd,
// one instruction), where a load at j would straddle two cache lines, which takes two loads'
// worth of the load ports, 15 times in 16. Same arithmetic as the unaligned form, so E is
// bitwise the same.
template <int CC, int SH, typename V>
inline void e_shifted(const V* z0, const V* z1, const V* z2, const float* const* a, int64_t j,
                      float* e) {
  V acc0 = V{}, acc1 = V{};
  for (int c = 0; c < CC; ++c) {
    const V av = splat<V>(a[c][j]);
    const V p0 = reinterpret_cast<V>(_mm512_alignr_epi32(reinterpret_cast<__m512i>(z1[c]),
                                                        reinterpret_cast<__m512i>(z0[c]), SH));
    const V p1 = reinterpret_cast<V>(_mm512_alignr_epi32(reinterpret_cast<__m512i>(z2[c]),
                                                        reinterpret_cast<__m512i>(z1[c]), SH));
    const V d0 = av - p0, d1 = av - p1;
    acc0 += d0 * d0;
    acc1 += d1 * d1;
  }
  store(e + j * 32, acc0);
  store(e + j * 32 + 16, acc1);
}

// E of the window pixels j in [kb + s0, kb + s1) (0 <= s0 < s1 <= 16) of one window row.
template <int CC, typename V, int... SH>
inline void e_block(const V* z0, const V* z1, const V* z2, const float* const* a, int64_t kb,
                    int64_t s0, int64_t s1, float* e, std::integer_sequence<int, SH...>) {
  ((SH >= s0 && SH < s1 ? e_shifted<CC, SH>(z0, z1, z2, a, kb + SH, e) : void()), ...);
}

// E of the window pixels j in [j0, j1) of one window row: z[c] the partner row of channel c
// (64-byte aligned, readable up to (j1 + 47) rounded down to 16 values), a[c] the window
// row; E into e (32 values per window pixel).
template <int CC>
inline void e_run_aligned(const float* const* z, const float* const* a, int64_t j0, int64_t j1,
                          float* e) {
  using V = typename WideOf<float>::type;
  for (int64_t kb = j0 / 16 * 16; kb < j1; kb += 16) {
    V z0[CC], z1[CC], z2[CC];
    for (int c = 0; c < CC; ++c) {
      z0[c] = load<V>(z[c] + kb);
      z1[c] = load<V>(z[c] + kb + 16);
      z2[c] = load<V>(z[c] + kb + 32);
    }
    e_block<CC>(z0, z1, z2, a, kb, std::max<int64_t>(j0 - kb, 0), std::min<int64_t>(j1 - kb, 16),
                e, std::make_integer_sequence<int, 16>());
  }
}
#endif

// D of every pixel of a band, sharing work between pixels whose windows overlap.
//
// With the image's rows R and columns x (unpadded) and an offset row dy, the squared
// differences of a window pixel (R, x) with the pixels dx = 0 .. S-1 along the row,
//   E(R, x)[dx] = sum_c (A[c][R][x] - A[c][R + dy - P][x + dx - P])^2,
// do not depend on which masked pixel's window (R, x) is in: each is made once per band and
// offset row, in vector lanes dx. A pixel at (py, px) then needs, for each of its window rows
// R = py + jy, the sum along its window columns,
//   H(R, px)[dx] = sum_jx (0 <= jx + dx <= 2P ? E(R, px + jx)[dx] : sq(R, px + jx)),
// where sq = sum_c A^2 is what a window pixel contributes when its partner lies outside the
// search square (the zero border of the definition). H is shared by the pixels of one column
// whose windows hold row R; its sq part does not depend on dy and is made once, and the E
// terms are taken with 0/1 lane weights (exact) instead of selects. Last, down the rows:
//   D[py, px][dy][dx] = sum_jy (0 <= jy + dy <= 2P ? H(py + jy, px)[dx] : Q(py + jy, px)),
// Q(R, px) = sum_jx sq(R, px + jx). Every sum adds non-negative terms, so D keeps full float
// precision (no term is ever subtracted back out), and its value does not depend on which
// band a pixel falls in. Rows are walked downwards for each offset row, with the last 2K + 1
// rows of H kept in a ring, and a pixel's row of D is written once its window's last row is
// done. out: one row of S*S + XW values per pixel of the band (the last XW are spill room).
// NVT (vectors per row of lanes), KW (window), CC (channels): compile-time values for the
// default sizes, 0 for any. plan: the band's, from BandPlan.
template <typename T, int NVT, int KW, int CC>
void band_distances(const T* A, const BandPlan<T>& plan, const int64_t* pos, const Geo& g,
                    const Band& band, T* out, int64_t out_stride) {
  // the default sizes in 64-byte vectors (WideOf), any size in the machine's
  using V = std::conditional_t<NVT != 0, typename WideOf<T>::type, typename VecOf<T>::type>;
  constexpr int64_t L = sizeof(V) / sizeof(T);
  const int64_t nvt = NVT ? NVT : g.XW / L, W = KW ? KW : g.W, C = CC ? CC : g.C;
  const int64_t K = W / 2, P = g.P, S = g.S, XW = NVT ? NVT * L : g.XW;
  const int64_t nr = plan.nr, nw = plan.nw, ncol = plan.ncol;
  const std::vector<int64_t>& cols = plan.cols;
  const std::vector<int64_t>& col_of = plan.col_of;
  const std::vector<int64_t>& slot = plan.slot;
  const T* weight = plan.weight.data();
  const int64_t x0 = band.clo - K;
  // The padded image's rows that the band reads, with its columns [x0, x0 + nw + XW) (zero
  // where they leave the image, so that lanes past the square read zeros, not past memory).
  const int64_t pr0 = std::max<int64_t>(0, band.rlo - K);
  const int64_t pr1 = std::min<int64_t>(g.Hp, band.rhi + K + S);
  // Rows of whole 64-byte vectors and one more, so that every row starts on a 64-byte
  // boundary and e_run_aligned's aligned vectors stay inside it.
  const int64_t aw = (nw + XW + 15) / 16 * 16 + 16, ah = pr1 - pr0;
  Aligned<T> ab(C * ah * aw);
  const T* img = A + band.b * C * g.Hp * g.Wp;
  for (int64_t c = 0; c < C; ++c) {
    for (int64_t r = pr0; r < pr1; ++r) {
      T* dst = ab.data() + (c * ah + r - pr0) * aw;
      const T* src = img + (c * g.Hp + r) * g.Wp;
      const int64_t lo = std::max<int64_t>(0, -x0), hi = std::min<int64_t>(aw, g.Wp - x0);
      std::fill(dst, dst + lo, T(0));
      std::memcpy(dst + lo, src + x0 + lo, (hi - lo) * sizeof(T));
      std::fill(dst + hi, dst + aw, T(0));
    }
  }
  // a = A[c][R][x] is the padded image at (R + P, x + P): row R + P - pr0, column j + P.
  auto arow = [&](int64_t c, int64_t i) {
    return ab.data() + (c * ah + band.rlo - K + i + P - pr0) * aw + P;
  };
  // What does not depend on the offset: sq, Q and H's sq part (hsq) per (row, column).
  std::vector<T> sq(nr * nw, T(0)), qsum(nr * ncol, T(0));
  // The default sizes with P >= 12 keep H's sq part in one vector per (row, column) instead
  // of two (hsq_one): the first vector's lanes outside the square are its first K, the
  // second's the K lanes from 2P - K + 1 - L (and those past S, whose values are never
  // used); all other lanes are 0, so for P >= 12 the two sets do not meet and one vector
  // holds both, halving the traffic of hsq, which outgrows the L1 cache.
  constexpr bool kFixed = KW != 0 && NVT == 2;
  const bool hsq_one = kFixed && 2 * P - K + 1 - L >= K;
  const int64_t hw = hsq_one ? L : XW;  // hsq values per (row, column)
  Aligned<T> hsq(nr * ncol * hw);
  Aligned<T> keep(2 * L);  // hsq_one: the lanes of the first and of the second vector
  for (int64_t l = 0; l < L; ++l) {
    keep.data()[l] = l < K ? T(1) : T(0);
    keep.data()[L + l] = l >= 2 * P - K + 1 - L && l <= 2 * P - L ? T(1) : T(0);
  }
  for (int64_t i = 0; i < nr; ++i) {
    for (int64_t j = 0; j < nw; ++j) {
      if (!plan.need_e[i * nw + j]) continue;
      T s = T(0);
      for (int64_t c = 0; c < C; ++c) s += arow(c, i)[j] * arow(c, i)[j];
      sq[i * nw + j] = s;
    }
    for (int64_t ci : plan.h_cols[i]) {
      const T* sr = sq.data() + i * nw + cols[ci] - band.clo;
      T s = T(0);
      for (int64_t t = 0; t < W; ++t) s += sr[t];
      qsum[i * ncol + ci] = s;
      T* h = hsq.data() + (i * ncol + ci) * hw;
      V one = V{};
      for (int64_t v = 0; v < nvt; ++v) {
        V o = V{};
        for (int64_t t = 0; t < W; ++t) {
          o += (T(1) - load<V>(weight + t * XW + v * L)) * splat<V>(sr[t]);
        }
        if (!hsq_one) store(h + v * L, o);
        else one += o * load<V>(keep.data() + v * L);
      }
      if (hsq_one) store(h, one);
    }
  }
  Aligned<T> e(nw * XW), ring(W * ncol * XW);
  constexpr int64_t kBlock = NVT ? NVT : 8;  // accumulators of E at a time
  std::vector<const T*> ring_rows(W);
  for (int64_t dy = 0; dy < S; ++dy) {
    int64_t q = band.q0;
    for (int64_t i = 0; i < nr; ++i) {
      const int64_t R = band.rlo - K + i;  // window row (unpadded); its partners: padded row R + dy
      if (R + dy >= 0 && R + dy < g.Hp) {
        const std::vector<int64_t>& runs = plan.e_runs[i];
#if defined(__AVX512F__)
        if constexpr (std::is_same_v<T, float> && NVT == 2 && CC != 0) {
          const float* zr[CC];
          const float* ar[CC];
          for (int c = 0; c < CC; ++c) {
            zr[c] = ab.data() + (c * ah + R + dy - pr0) * aw;
            ar[c] = arow(c, i);
          }
          for (size_t k = 0; k < runs.size(); k += 2) {
            e_run_aligned<CC>(zr, ar, runs[k], runs[k + 1], e.data());
          }
        } else
#endif
        for (size_t k = 0; k < runs.size(); k += 2) {
          for (int64_t j = runs[k]; j < runs[k + 1]; ++j) {
            for (int64_t v0 = 0; v0 < nvt; v0 += kBlock) {
              const int64_t nb = std::min(kBlock, nvt - v0);
              V acc[kBlock];
              for (int64_t v = 0; v < nb; ++v) acc[v] = V{};
              for (int64_t c = 0; c < C; ++c) {
                const V a = splat<V>(arow(c, i)[j]);
                const T* z = ab.data() + (c * ah + R + dy - pr0) * aw + j + v0 * L;
                for (int64_t v = 0; v < nb; ++v) {
                  const V d = a - load<V>(z + v * L);
                  acc[v] += d * d;
                }
              }
              for (int64_t v = 0; v < nb; ++v) store(e.data() + j * XW + (v0 + v) * L, acc[v]);
            }
          }
        }
        T* hring = ring.data() + slot[i] * ncol * XW;
        if constexpr (KW != 0 && NVT == 2) {
          // The default sizes (distances_of_band): both vectors of a column at once, each as
          // two sums (even and odd t), so four additions are in flight. Weights that are 1
          // on every lane in use are left out: only the first vector's columns left of the
          // centre and the second's right of it have lanes outside the square.
          constexpr int KC = KW / 2;
          V w0[KC], w1[KC];
          for (int t = 0; t < KC; ++t) {
            w0[t] = load<V>(weight + t * XW);
            w1[t] = load<V>(weight + (KC + 1 + t) * XW + L);
          }
          const V keep0 = load<V>(keep.data()), keep1 = load<V>(keep.data() + L);
          for (int64_t ci : plan.h_cols[i]) {
            const T* ev = e.data() + (cols[ci] - band.clo) * XW;  // jx = -K
            const T* hs = hsq.data() + (i * ncol + ci) * hw;
            V h[2][2];
            if (hsq_one) {
              const V both = load<V>(hs);
              h[0][0] = both * keep0;
              h[1][0] = both * keep1;
            } else {
              h[0][0] = load<V>(hs);
              h[1][0] = load<V>(hs + L);
            }
            h[0][1] = h[1][1] = V{};
            for (int t = 0; t < KW; ++t) {
              const V e0 = load<V>(ev + t * XW), e1 = load<V>(ev + t * XW + L);
              h[0][t % 2] += t < KC ? e0 * w0[t] : e0;
              h[1][t % 2] += t > KC ? e1 * w1[t - KC - 1] : e1;
            }
            for (int v = 0; v < 2; ++v) store(hring + ci * XW + v * L, h[v][0] + h[v][1]);
          }
        } else {
          for (int64_t ci : plan.h_cols[i]) {
            const T* ev = e.data() + (cols[ci] - band.clo) * XW;  // jx = -K
            for (int64_t v = 0; v < nvt; ++v) {
              V h0 = load<V>(hsq.data() + (i * ncol + ci) * hw + v * L), h1 = V{};
              for (int64_t t = 0; t < W; ++t) {
                const V wv = load<V>(weight + t * XW + v * L);
                if (t % 2 == 0) h0 += load<V>(ev + t * XW + v * L) * wv;
                else h1 += load<V>(ev + t * XW + v * L) * wv;
              }
              store(hring + ci * XW + v * L, h0 + h1);
            }
          }
        }
      }
      if (i < 2 * K) continue;
      // Pixels whose window ends on this row: py = R - K. Window rows t (jy = t - K) with
      // partners in the square: 0 <= t - K + dy <= 2P.
      const int64_t t0 = std::max<int64_t>(0, K - dy), t1 = std::min<int64_t>(W - 1, 2 * P + K - dy);
      const T** rows = ring_rows.data();  // the ring's rows of t = 0 .. W-1
      for (int64_t t = 0; t < W; ++t) rows[t] = ring.data() + slot[i - 2 * K + t] * ncol * XW;
      for (; q < band.q1 && pos[3 * q + 1] == R - K; ++q) {
        const int64_t ci = col_of[pos[3 * q + 2] - band.clo];
        const T* qs = qsum.data() + (i - 2 * K) * ncol + ci;  // Q of t = 0
        T outside = T(0);
        for (int64_t t = 0; t < t0; ++t) outside += qs[t * ncol];
        for (int64_t t = t1 + 1; t < W; ++t) outside += qs[t * ncol];
        T* o = out + (q - band.q0) * out_stride + dy * S;
        for (int64_t v0 = 0; v0 < nvt; v0 += kBlock) {
          const int64_t nb = std::min(kBlock, nvt - v0);
          V d[kBlock];
          for (int64_t v = 0; v < nb; ++v) d[v] = splat<V>(outside);
          for (int64_t t = t0; t <= t1; ++t) {
            const T* h = rows[t] + ci * XW + v0 * L;
            for (int64_t v = 0; v < nb; ++v) d[v] += load<V>(h + v * L);
          }
          for (int64_t v = 0; v < nb; ++v) store(o + (v0 + v) * L, d[v]);
        }
      }
    }
  }
}

// D of a band's pixels into out: rows of `stride` >= S*S + XW values.
template <typename T>
void distances_of_band(const T* A, const BandPlan<T>& plan, const int64_t* pos, const Geo& g,
                       const Band& band, T* out, int64_t stride) {
  constexpr int64_t L = kWideBytes / sizeof(T);
  // The defaults (search 25, window 9, RGB); band_distances's fast path needs the search
  // square's lanes to fill most of two 64-byte vectors (2P >= L + K).
  if (std::is_same_v<T, float> && g.XW == 2 * L && g.W == 9 && g.C == 3 && 2 * g.P >= L + g.K) {
    band_distances<T, 2, 9, 3>(A, plan, pos, g, band, out, stride);
  } else {
    band_distances<T, 0, 0, 0>(A, plan, pos, g, band, out, stride);
  }
}

// D of a band's pixels into out (rows of S*S).
template <typename T>
void forward_band(const T* A, const int64_t* pos, const Geo& g, const Band& band, T* out) {
  const FlushDenormals flush;
  const int64_t stride = g.SS + g.XW;
  Aligned<T> rows((band.q1 - band.q0) * stride);
  distances_of_band(A, BandPlan<T>(pos, g, band), pos, g, band, rows.data(), stride);
  for (int64_t q = band.q0; q < band.q1; ++q) {
    std::memcpy(out + q * g.SS, rows.data() + (q - band.q0) * stride, g.SS * sizeof(T));
  }
}

// Scratch buffers of the backward for one band (one set per thread at a time).
template <typename T>
struct BackwardScratch {
  Aligned<T> Z, Gp, tq, hb, gb;
  std::vector<T> wk;
  BackwardScratch(const Geo& g, int64_t zs)
      : Z(g.C * g.ZR * zs),
        Gp(g.GR * zs),
        tq(g.C * g.TR * g.XW),
        hb((g.S + 2 * g.K) * g.XW),
        gb(g.S * g.XW),
        wk(g.C * g.W * g.W + kVectorBytes / sizeof(T)) {}  // whole vectors read past the end
};

// Adds the gradient of sum_d G[d] D[m, d] for one pixel, whose square is in w.Z, into ga: the
// band's buffer of GH rows of GW values, the square's corner at (gy, gx). gq: G's row (S*S
// values; reading XW values from a row must stay before gend, else it goes one at a time).
template <typename T, int NV, int64_t RS>
void backward_pixel(const T* gq, const T* gend, const Geo& g, BackwardScratch<T>& w, T* ga,
                    int64_t GH, int64_t GW, int64_t gy, int64_t gx) {
  using V = typename VecOf<T>::type;
  constexpr int64_t L = kVectorBytes / sizeof(T);
  const int64_t K = g.K, P = g.P, S = g.S, W = g.W, XW = g.XW;
  const int64_t zs = RS ? RS : g.stride, zplane = g.ZR * zs;
  T* Gp = w.Gp.data();
  for (int64_t iy = 0; iy < S; ++iy) copy_row(gq + iy * S, gend, g, Gp + (iy + g.BT) * zs + g.GC);
  // gs = sum_d G[d]; gb[s] = sum_k G[s + K - k], the box sum of G over the window (along
  // rows into hb, then down the columns), lanes in vectors.
  V vs = {};
  for (int64_t iy = 0; iy < S; ++iy) {
    for (int64_t x0 = 0; x0 < XW; x0 += L) vs += load<V>(Gp + (iy + g.BT) * zs + g.GC + x0);
  }
  const T gs = hsum<T>(vs);
  for (int64_t r = 0; r < S + 2 * K; ++r) {
    const T* gr = Gp + (r - K + g.BT) * zs + g.GC + K;
    for (int64_t x0 = 0; x0 < XW; x0 += L) {
      V h = load<V>(gr + x0);
      for (int64_t jx = 1; jx < W; ++jx) h += load<V>(gr + x0 - jx);
      store(w.hb.data() + r * XW + x0, h);
    }
  }
  for (int64_t sy = 0; sy < S; ++sy) {
    for (int64_t x0 = 0; x0 < XW; x0 += L) {
      const T* h = w.hb.data() + (sy + 2 * K) * XW + x0;
      V o = load<V>(h);
      for (int64_t jy = 1; jy < W; ++jy) o += load<V>(h - jy * XW);
      store(w.gb.data() + sy * XW + x0, o);
    }
  }
  std::fill(w.wk.begin(), w.wk.end(), T(0));
  const T* Z = w.Z.data();
  for (int64_t t = 0; t < g.NT; ++t) {
    window_part<T, NV, RS>(Z, Gp, g, t, w.wk.data());
    for (int64_t c0 = 0; c0 < g.C; c0 += 3) {
      const int64_t n = std::min<int64_t>(3, g.C - c0);
      if (n == 3) square_part<T, NV, 3, RS>(Z, Gp, g, t, c0, w.tq.data());
      else if (n == 2) square_part<T, NV, 2, RS>(Z, Gp, g, t, c0, w.tq.data());
      else square_part<T, NV, 1, RS>(Z, Gp, g, t, c0, w.tq.data());
    }
  }
  for (int64_t c = 0; c < g.C; ++c) {
    const T* zc = Z + c * zplane;
    T* gc = ga + c * GH * GW;
    // The square: -2 (tq - Z gb); past lane S, Z is 0 and tq is dropped.
    for (int64_t sy = 0; sy < S; ++sy) {
      const T* tr = w.tq.data() + (c * g.TR + sy) * XW;
      const T* zr = zc + (sy + K) * zs + K;
      const T* br = w.gb.data() + sy * XW;
      T* o = gc + (gy + sy) * GW + gx;
      for (int64_t j = 0; j < XW; j += L) {
        V d = T(2) * (load<V>(zr + j) * load<V>(br + j) - load<V>(tr + j));
        if (j + L > S) d = lanes_below<V, T>(d, j, S);
        store(o + j, load<V>(o + j) + d);
      }
    }
    // The window: 2 (gs a - wk), in whole vectors (lanes past W add 0) when the band's row
    // has room for them after the window, which it has for the default sizes.
    const int64_t wvec = (W + L - 1) / L * L;
    for (int64_t jy = 0; jy < W; ++jy) {
      const T* ar = zc + (P + jy) * zs + P;
      const T* wr = w.wk.data() + (c * W + jy) * W;
      T* o = gc + (gy + P - K + jy) * GW + gx + P - K;
      if (wvec <= P + K + XW - S && P + wvec <= zs) {
        for (int64_t j = 0; j < wvec; j += L) {
          const V d = lanes_below<V, T>(T(2) * (gs * load<V>(ar + j) - load<V>(wr + j)), j, W);
          store(o + j, load<V>(o + j) + d);
        }
      } else {
        for (int64_t jx = 0; jx < W; ++jx) o[jx] += T(2) * (gs * ar[jx] - wr[jx]);
      }
    }
  }
}

// A band's gradient buffer covers its reach, padded rows [rlo, rhi + 2P] and columns
// [clo, chi + 2P], with XW - S spare values per row so that a square's rows are added in
// whole vectors: GH rows of GW values.
inline int64_t reach_rows(const Geo& g, const Band& band) {
  return band.rhi - band.rlo + 1 + 2 * g.P;
}
inline int64_t reach_pitch(const Geo& g, const Band& band) {
  return band.chi - band.clo + 1 + 2 * g.P + g.XW - g.S;
}

// The backward of one band, shared between the masked pixels whose windows cover a pixel.
//
// D[m, d] is linear in each square, so for a window pixel u = m + k of masked pixels m, the
// gradient of sum_{m, d} G[m, d] D[m, d] is the sum over u of
//   dA[u]     += 2 A[u] GS(u) - 2 sum_d Gin(u)[d] A[u + d]
//   dA[u + d] += 2 Gin(u)[d] (A[u + d] - A[u])
// where, over the masked pixels m whose windows hold u,
//   GS(u)     = sum_m sum_d G[m, d]                  (a partner outside m's square counts
//                                                     A[u]^2, whose gradient is only 2 G A[u])
//   Gin(u)[d] = sum_m [u + d in m's square] G[m, d].
// Gin is a box sum of the rows G[m] over the window, with exact 0/1 lane weights for the
// square's edge: along the image rows first (each pixel adds its row of G into the 2K + 1
// window columns of its image row, lanes dx weighted; the last 2K + 2 image rows are kept in
// a ring), then down the columns when the window row of u is reached (image rows whose
// square misses u + d left out). The work grows with the area the windows cover, not with
// the number of (pixel, window pixel) pairs: a pixel covered by n windows costs one pass
// over its offsets instead of n.
//
// The band does the window rows [own_lo, own_hi] (by default all its windows' rows,
// [rlo - K, rhi + K]) with every pixel it is given (set_row) whose window holds them. Given
// the pixels within K rows of its own rows, a band can take a share of an image's window
// rows, so that window rows near band edges are done once, not once per band (op_parts).
//
// Coordinates: u at unpadded (uy, ux) of the band's window rows and columns
// [clo - K, chi + K] (cu = ux - clo + K). The band's image (ab) and gradient (da)
// hold its reach (the padded rows [rlo, rhi + 2P] and columns [clo, chi + 2P], XW - S spare
// columns) with K more rows and columns of zeros on every side, so that the partners of u
// in every lane, in the square or not, are in the buffer (those outside every square get
// a weight of 0).
//
// Window columns per strip. A strip's ring of G rows (2K + 2 slots x kStrip columns x S x
// XW values, 512 KB for the defaults) stays in the core's L2 cache while the strip's window
// rows read it; with a band's whole width (136 columns, 4.4 MB) the backward took 1.1x as
// long (timed side by side, 1 thread), and the ring's size would grow with the image.
constexpr int64_t kStrip = 16;

// Whether the shared backward takes window rows in pairs (window_pair_fixed): the default
// sizes, whose lanes fill 2 vectors, and RGB. Its threshold (kSharePairs) depends on it too.
template <typename T>
bool takes_pairs(const Geo& g) {
  return g.XW == 2 * (kVectorBytes / static_cast<int64_t>(sizeof(T))) && g.C == 3;
}

// The rows [lo, hi) of a window pixel's list of image rows (ky ascending, each seen from a
// window pixel `shift` rows further down) whose squares hold offset row i:
// 0 <= ky + shift + i <= 2P. at(i) is called for i = 0, 1, ...; both bounds only fall.
struct ValidRows {
  const int64_t* ky;
  int64_t shift, top, lo = 0, hi;
  ValidRows(const int64_t* k, int64_t m, int64_t s, int64_t P)
      : ky(k), shift(s), top(2 * P), hi(m) {
    while (lo < m && ky[lo] + shift < 0) ++lo;
  }
  void at(int64_t i) {
    while (lo > 0 && ky[lo - 1] + shift + i >= 0) --lo;
    while (hi > 0 && ky[hi - 1] + shift + i > top) --hi;
  }
};

template <typename T>
class BandBackward {
 public:
  BandBackward(const T* A, const Geo& g, const Band& band)
      : BandBackward(A, g, band, band.rlo - g.K, band.rhi + g.K) {}

  BandBackward(const T* A, const Geo& g, const Band& band, int64_t own_lo, int64_t own_hi)
      : g_(g),
        band_(band),
        K_(g.K),
        own_lo_(own_lo),
        own_hi_(own_hi),
        nc_(band.chi - band.clo + 1 + 2 * g.K),
        gh_(reach_rows(g, band)),
        gw_(reach_pitch(g, band)),
        bh_(gh_ + 2 * K_),
        bw_(gw_ + 2 * K_),
        ab_(g.C * bh_ * bw_),
        da_(g.C * bh_ * bw_),
        ring_((g.W + 1) * kStrip * g.S * g.XW, false),  // read where written only
        gq_((band.q1 - band.q0) * g.S * g.XW, false),
        gs2_(band.q1 - band.q0),
        gsr_((g.W + 1) * kStrip),
        touched_((g.W + 1) * kStrip, 0),
        slot_row_(g.W + 1, -1),
        weight_(g.W * g.XW),
        list_(2 * (g.W + 1)),
        rows_(g.W + 1) {
    const T* img = A + band.b * g.C * g.Hp * g.Wp;
    const int64_t width = band.chi - band.clo + 1 + 2 * g.P;  // the reach's columns
    for (int64_t c = 0; c < g.C; ++c) {
      for (int64_t r = 0; r < gh_; ++r) {
        std::memcpy(ab_.data() + (c * bh_ + r + K_) * bw_ + K_,
                    img + (c * g.Hp + band.rlo + r) * g.Wp + band.clo, width * sizeof(T));
      }
    }
    // 2 where the partner of window column t (kx = t - K) lies in the square, 0 <= t - K + j
    // <= 2P for lane j, else 0: the factor 2 of both gradient terms, exact.
    for (int64_t t = 0; t < g.W; ++t) {
      for (int64_t j = 0; j < g.XW; ++j) {
        const bool in = j < g.S && j + t - K_ >= 0 && j + t - K_ <= 2 * g.P;
        weight_.data()[t * g.XW + j] = in ? T(2) : T(0);
      }
    }
  }

  // The upstream gradient of the band's pixel q: its row gq of S*S values (reading XW values
  // from a row must stay before gend).
  void set_row(int64_t q, const T* gq, const T* gend) {
    using V = typename VecOf<T>::type;
    constexpr int64_t L = kVectorBytes / sizeof(T);
    const int64_t S = g_.S, XW = g_.XW;
    T* gp = gq_.data() + (q - band_.q0) * S * XW;
    V vs = {};
    for (int64_t i = 0; i < S; ++i) {
      copy_row(gq + i * S, gend, g_, gp + i * XW);
      for (int64_t j = 0; j < XW; j += L) vs += load<V>(gp + i * XW + j);
    }
    gs2_[q - band_.q0] = T(2) * hsum<T>(vs);
  }

  // After every pixel's row: the band's gradient into ga (reach_rows x reach_pitch values per
  // channel, as add_bands reads it), a strip of window columns at a time.
  void finish(const int64_t* pos, std::vector<T>& ga) {
    for (c0_ = 0; c0_ < nc_; c0_ += kStrip) {
      c1_ = std::min(nc_, c0_ + kStrip);
      next_row_ = band_.rlo;
      done_ = own_lo_;
      std::fill(slot_row_.begin(), slot_row_.end(), -1);
      for (int64_t q = band_.q0; q < band_.q1; ++q) {
        const int64_t y = pos[3 * q + 1], x = pos[3 * q + 2];
        // the pixel's window columns cu = x - clo + t, t = 0 .. 2K, within the strip
        const int64_t t0 = std::max<int64_t>(0, c0_ - (x - band_.clo));
        const int64_t t1 = std::min<int64_t>(2 * K_ + 1, c1_ - (x - band_.clo));
        if (t0 < t1) scatter(q, y, x, t0, t1);
      }
      flush(own_hi_, true);
    }
    ga.assign(g_.C * gh_ * gw_, T(0));
    const int64_t width = band_.chi - band_.clo + 1 + 2 * g_.P;
    for (int64_t c = 0; c < g_.C; ++c) {
      for (int64_t r = 0; r < gh_; ++r) {
        std::memcpy(ga.data() + (c * gh_ + r) * gw_,
                    da_.data() + (c * bh_ + r + K_) * bw_ + K_, width * sizeof(T));
      }
    }
  }

 private:
  // Pixel q's row of G, weighted, into its image row's slot, window columns t0 .. t1 - 1.
  void scatter(int64_t q, int64_t y, int64_t x, int64_t t0, int64_t t1) {
    using V = typename VecOf<T>::type;
    constexpr int64_t L = kVectorBytes / sizeof(T);
    const int64_t S = g_.S, XW = g_.XW;
    enter_rows(y);
    const T* gp = gq_.data() + (q - band_.q0) * S * XW;
    const T gs2 = gs2_[q - band_.q0];
    const int64_t s = slot(y);
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t k = s * kStrip + x - band_.clo + t - c0_;
      T* h = ring_.data() + k * S * XW;
      const T* w = weight_.data() + t * XW;
      if (!touched_[k]) {
        touched_[k] = 1;
        gsr_[k] = gs2;
        for (int64_t i = 0; i < S; ++i) {
          for (int64_t j = 0; j < XW; j += L) {
            store(h + i * XW + j, load<V>(gp + i * XW + j) * load<V>(w + j));
          }
        }
      } else {
        gsr_[k] += gs2;
        for (int64_t i = 0; i < S; ++i) {
          for (int64_t j = 0; j < XW; j += L) {
            const V add = load<V>(gp + i * XW + j) * load<V>(w + j);
            store(h + i * XW + j, load<V>(h + i * XW + j) + add);
          }
        }
      }
    }
  }

  // Masked rows up to y enter the ring, each after the window rows that need the row it
  // replaces are done.
  int64_t slot(int64_t y) const { return (y - band_.rlo) % (g_.W + 1); }

  void enter_rows(int64_t y) {
    for (; next_row_ <= y; ++next_row_) {
      flush(next_row_ - 1 - K_);
      const int64_t s = slot(next_row_);
      slot_row_[s] = next_row_;
      std::fill(touched_.begin() + s * kStrip, touched_.begin() + (s + 1) * kStrip, 0);
    }
  }

  // The default sizes take window rows two at a time (window_pair_fixed).
  bool pairs() const { return takes_pairs<T>(g_); }

  // Window rows up to uy, whose masked rows (uy - K .. uy + K) have all entered; in pairs,
  // the last row waits for the next one unless it is the band's last (last). The ring (2K + 2
  // slots) still holds the rows of both when they are done.
  void flush(int64_t uy, bool last = false) {
    uy = std::min(uy, own_hi_);
    if (pairs()) {
      for (; done_ + 1 <= uy; done_ += 2) window_rows(done_, 2);
      if (last && done_ == uy) window_rows(done_++, 1);
    } else {
      for (; done_ <= uy; ++done_) window_rows(done_, 1);
    }
  }

  // The ring slot of image row y, -1 unless it holds the row.
  int64_t live_slot(int64_t y) const {
    if (y < band_.rlo || y >= next_row_) return -1;
    const int64_t s = slot(y);
    return slot_row_[s] == y ? s : -1;
  }

  // Window rows uy .. uy + count - 1 (count 1 or 2) of the strip.
  void window_rows(int64_t uy, int64_t count) {
    const int64_t plane = bh_ * bw_, W = g_.W, entry = g_.S * g_.XW;
    const T** rows = rows_.data();
    int64_t* ky = list_.data();
    int64_t* live = ky + W + 1;  // slots of y = uy - k, k = -K .. K, then of y = uy + 1 + K
    for (int64_t r = 0; r < W; ++r) live[r] = live_slot(uy - (r - K_));
    live[W] = count == 2 ? live_slot(uy + 1 + K_) : -1;
    for (int64_t cu = c0_; cu < c1_; ++cu) {
      const int64_t col = cu - c0_;
      // rows[0 .. m): the rows both windows hold, ky ascending; top (k = K) the first
      // window's only when count is 2, bottom (y = uy + 1 + K) the second's only
      int64_t m = 0;
      const T* top = nullptr;
      const T* bottom = nullptr;
      T gs0 = T(0), gs1 = T(0);
      if (live[W] >= 0 && touched_[live[W] * kStrip + col]) {
        bottom = ring_.data() + (live[W] * kStrip + col) * entry;
        gs1 = gsr_[live[W] * kStrip + col];
      }
      for (int64_t r = 0; r < W; ++r) {
        if (live[r] < 0) continue;
        const int64_t k = live[r] * kStrip + col;
        if (!touched_[k]) continue;
        const T* e = ring_.data() + k * entry;
        gs0 += gsr_[k];
        if (count == 2 && r == W - 1) {
          top = e;
          continue;
        }
        rows[m] = e;
        ky[m++] = r - K_;
        if (count == 2) gs1 += gsr_[k];
      }
      const int64_t at = (uy - band_.rlo + K_) * bw_ + cu;  // u's partners: row 0, lane 0
      const T* a = ab_.data() + at;
      T* d = da_.data() + at;
      if (count == 2) {
        if (m == 0 && !top && !bottom) continue;
        window_pair_fixed(rows, ky, m, top, bottom, a, d, plane, gs0, gs1);
      } else if (m > 0) {
        window_pixel(rows, ky, m, a, d, plane, gs0);
      }
    }
  }

  // Two window pixels, u0 = (uy, cu) and u1 = (uy + 1, cu), the default sizes (2 vectors of
  // lanes, RGB). The image rows both windows hold are rows[0 .. m) (ky = uy - y ascending);
  // top (ky = K) is u0's only and bottom (ky = -K - 1) u1's only, either null. Gin of both
  // is made from one pass over the shared rows, and their partners' rows (u1's offset row i
  // is u0's i + 1) are read and written once for both: half the loads and stores of two
  // separate pixels.
  void window_pair_fixed(const T* const* rows, const int64_t* ky, int64_t m, const T* top,
                         const T* bottom, const T* a, T* d, int64_t plane, T gs0, T gs1) const {
    using V = typename VecOf<T>::type;
    constexpr int64_t L = kVectorBytes / sizeof(T);
    constexpr int NR = 2, CC = 3;
    constexpr int64_t XW = NR * L;  // takes_pairs
    const int64_t S = g_.S, P = g_.P, K = K_, bw = bw_;
    V acc0[CC][NR], acc1[CC][NR], au0[CC], au1[CC];
    for (int c = 0; c < CC; ++c) {
      au0[c] = splat<V>(a[c * plane + P * bw + P]);
      au1[c] = splat<V>(a[c * plane + (P + 1) * bw + P]);
      for (int v = 0; v < NR; ++v) acc0[c][v] = acc1[c][v] = V{};
    }
    V g1p[NR] = {};        // u1's Gin of the offset row before
    bool have1p = false;
    // The rows valid for u0 at offset row i, and for u1 (one row down: ky + 1)
    ValidRows r0(ky, m, 0, P), r1(ky, m, 1, P);
    for (int64_t i = 0; i <= S; ++i) {
      V g0[NR], g1[NR];
      bool have0 = false, have1 = false;
      if (i < S) {
        r0.at(i);
        r1.at(i);
        const int64_t lo0 = r0.lo, hi0 = r0.hi, lo1 = r1.lo, hi1 = r1.hi;
        const int64_t sa = std::max(lo0, lo1), sb = std::min(hi0, hi1);
        V sh[NR] = {};
        for (int64_t r = sa; r < sb; ++r) {
          for (int v = 0; v < NR; ++v) sh[v] += load<V>(rows[r] + i * XW + v * L);
        }
        for (int v = 0; v < NR; ++v) g0[v] = g1[v] = sh[v];
        have0 = lo0 < hi0;
        have1 = lo1 < hi1;
        // the rows only one of them holds (at most one at each end)
        if (lo0 < sa) for (int v = 0; v < NR; ++v) g0[v] += load<V>(rows[lo0] + i * XW + v * L);
        if (hi0 > sb) for (int v = 0; v < NR; ++v) g0[v] += load<V>(rows[sb] + i * XW + v * L);
        if (lo1 < sa) for (int v = 0; v < NR; ++v) g1[v] += load<V>(rows[lo1] + i * XW + v * L);
        if (hi1 > sb) for (int v = 0; v < NR; ++v) g1[v] += load<V>(rows[sb] + i * XW + v * L);
        if (top && i <= 2 * P - K) {
          have0 = true;
          for (int v = 0; v < NR; ++v) g0[v] += load<V>(top + i * XW + v * L);
        }
        if (bottom && i >= K) {
          have1 = true;
          for (int v = 0; v < NR; ++v) g1[v] += load<V>(bottom + i * XW + v * L);
        }
      }
      // partner row i of u0, i - 1 of u1
      if (have0 || have1p) {
        if (!have0) for (int v = 0; v < NR; ++v) g0[v] = V{};
        for (int c = 0; c < CC; ++c) {
          const T* z = a + c * plane + i * bw;
          T* o = d + c * plane + i * bw;
          for (int v = 0; v < NR; ++v) {
            const V zv = load_once<V>(z + v * L);
            acc0[c][v] += g0[v] * zv;
            acc1[c][v] += g1p[v] * zv;
            store(o + v * L, load<V>(o + v * L) + g0[v] * (zv - au0[c]) + g1p[v] * (zv - au1[c]));
          }
        }
      }
      for (int v = 0; v < NR; ++v) g1p[v] = have1 ? g1[v] : V{};
      have1p = have1;
    }
    for (int c = 0; c < CC; ++c) {
      const V t0 = acc0[c][0] + acc0[c][1], t1 = acc1[c][0] + acc1[c][1];
      d[c * plane + P * bw + P] += gs0 * au0[c][0] - hsum<T>(t0);
      d[c * plane + (P + 1) * bw + P] += gs1 * au1[c][0] - hsum<T>(t1);
    }
  }

  // One window pixel u: rows[r] (m of them) hold Gin's parts from the image rows at
  // ky[r] = uy - y; a and d point at u's partner square (offset row 0, lane 0) of channel 0.
  void window_pixel(const T* const* rows, const int64_t* ky, int64_t m, const T* a, T* d,
                    int64_t plane, T gs2) const {
    constexpr int64_t L = kVectorBytes / sizeof(T);
    if (g_.XW == 2 * L && g_.C == 3) window_pixel_fixed<2, 3>(rows, ky, m, a, d, plane, gs2);
    else if (g_.XW == 4 * L && g_.C == 3) window_pixel_fixed<4, 3>(rows, ky, m, a, d, plane, gs2);
    else window_pixel_any(rows, ky, m, a, d, plane, gs2);
  }

  // NR vectors of lanes, CC channels: every channel's accumulators in registers.
  template <int NR, int CC>
  void window_pixel_fixed(const T* const* rows, const int64_t* ky, int64_t m, const T* a, T* d,
                          int64_t plane, T gs2) const {
    using V = typename VecOf<T>::type;
    constexpr int64_t L = kVectorBytes / sizeof(T), XW = NR * L;
    const int64_t S = g_.S, P = g_.P, bw = bw_;
    V acc[CC][NR], au[CC];
    for (int c = 0; c < CC; ++c) {
      au[c] = splat<V>(a[c * plane + P * bw + P]);
      for (int v = 0; v < NR; ++v) acc[c][v] = V{};
    }
    ValidRows valid(ky, m, 0, P);
    for (int64_t i = 0; i < S; ++i) {
      valid.at(i);
      const int64_t lo = valid.lo, hi = valid.hi;
      if (lo >= hi) continue;
      V gin[NR];
      for (int v = 0; v < NR; ++v) gin[v] = load<V>(rows[lo] + i * XW + v * L);
      for (int64_t r = lo + 1; r < hi; ++r) {
        for (int v = 0; v < NR; ++v) gin[v] += load<V>(rows[r] + i * XW + v * L);
      }
      for (int c = 0; c < CC; ++c) {
        const T* z = a + c * plane + i * bw;
        T* o = d + c * plane + i * bw;
        for (int v = 0; v < NR; ++v) {
          const V zv = load_once<V>(z + v * L);
          acc[c][v] += gin[v] * zv;
          store(o + v * L, load<V>(o + v * L) + gin[v] * (zv - au[c]));
        }
      }
    }
    for (int c = 0; c < CC; ++c) {
      V t = acc[c][0];
      for (int v = 1; v < NR; ++v) t += acc[c][v];
      T& du = d[c * plane + P * bw + P];
      du += gs2 * au[c][0] - hsum<T>(t);
    }
  }

  // Any size: a vector of lanes at a time, its Gin made once for up to 4 channels.
  void window_pixel_any(const T* const* rows, const int64_t* ky, int64_t m, const T* a, T* d,
                        int64_t plane, T gs2) const {
    using V = typename VecOf<T>::type;
    constexpr int64_t L = kVectorBytes / sizeof(T);
    constexpr int64_t kChannels = 4;
    const int64_t S = g_.S, XW = g_.XW, P = g_.P, bw = bw_;
    for (int64_t c0 = 0; c0 < g_.C; c0 += kChannels) {
      const int64_t nc = std::min(kChannels, g_.C - c0);
      T ac[kChannels], sum[kChannels] = {};
      V au[kChannels];
      for (int64_t cc = 0; cc < nc; ++cc) {
        ac[cc] = a[(c0 + cc) * plane + P * bw + P];
        au[cc] = splat<V>(ac[cc]);
      }
      for (int64_t j = 0; j < XW; j += L) {
        V acc[kChannels] = {};
        ValidRows valid(ky, m, 0, P);
        for (int64_t i = 0; i < S; ++i) {
          valid.at(i);
          const int64_t lo = valid.lo, hi = valid.hi;
          if (lo >= hi) continue;
          V gin = load<V>(rows[lo] + i * XW + j);
          for (int64_t r = lo + 1; r < hi; ++r) gin += load<V>(rows[r] + i * XW + j);
          for (int64_t cc = 0; cc < nc; ++cc) {
            const V zv = load<V>(a + (c0 + cc) * plane + i * bw + j);
            T* o = d + (c0 + cc) * plane + i * bw + j;
            acc[cc] += gin * zv;
            store(o, load<V>(o) + gin * (zv - au[cc]));
          }
        }
        for (int64_t cc = 0; cc < nc; ++cc) sum[cc] += hsum<T>(acc[cc]);
      }
      for (int64_t cc = 0; cc < nc; ++cc) {
        d[(c0 + cc) * plane + P * bw + P] += gs2 * ac[cc] - sum[cc];
      }
    }
  }

  const Geo& g_;
  const Band& band_;
  const int64_t K_, own_lo_, own_hi_, nc_, gh_, gw_, bh_, bw_;
  Aligned<T> ab_, da_;  // the band's image and gradient (with the margins above)
  Aligned<T> ring_;     // [slot][cu - c0][offset row][lane]
  Aligned<T> gq_;       // the band's rows of G: [pixel][offset row][lane]
  std::vector<T> gs2_;         // 2 sum_d G per pixel
  std::vector<T> gsr_;         // [slot][cu - c0]: gs2 of the row's pixels covering cu
  std::vector<char> touched_;  // [slot][cu - c0]: some pixel of the slot's row covers cu
  std::vector<int64_t> slot_row_;
  Aligned<T> weight_;
  std::vector<int64_t> list_;  // window_rows's ring slots and ky of the rows
  std::vector<const T*> rows_;
  int64_t c0_ = 0, c1_ = 0, next_row_ = 0, done_ = 0;  // the strip's columns, its rows done
};

// Pairs of (masked pixel, window pixel) per window pixel a band's windows cover, at or above
// which the band's backward is shared between its pixels (BandBackward) rather than taken a
// pixel at a time (backward_pixel). `python bench/ssl_op.py --ways --threads 1` (random masks
// of 1, 2, 4, 6, 10, 25% of 128x128, per band 1.4, 1.7, 2.6, 3.5, 5.4, 12.9) found the shared
// way 0.59, 0.71, 0.89, 1.11, 1.36, 2.52x as fast with AVX-512 (the defaults take window rows
// in pairs: kSharePairs), and built for 8-lane (`--cflags=-mno-avx512f`) or 4-lane vectors
// (`--cflags=-march=x86-64`; one window row at a time, and a slower per-pixel way too) 0.72,
// 0.84, 1.07, 1.28, 1.60, 2.97x and 0.55, 0.67, 0.93, 1.16, 1.60, 3.42x (kSharePairsOneRow).
// On the stride-3 training batch, whose bands lie on both sides: 1.13, 1.30 and 1.23x.
// Those figures predate op_parts (the op's bands splitting an image's window rows), which
// made the op's shared way cheaper: 0.55, 0.78, 0.93, 1.23, 1.65, 2.84x with AVX-512, 0.67,
// 0.85, 1.33, 1.35, 1.77, 3.17x (8 lanes), 0.58, 0.70, 1.01, 1.32, 1.84, 3.29x (4 lanes),
// so the op's even point with pairs is now near 2.8; the fused loss, whose bands each do
// all their windows' rows, keeps the figures above, and both keep these thresholds.
constexpr double kSharePairs = 3.3, kSharePairsOneRow = 2.5;

// Whether the band's windows overlap enough for the shared backward (kSharePairs).
template <typename T>
bool shares_backward(const int64_t* pos, const Geo& g, const Band& band) {
  const double at = takes_pairs<T>(g) ? kSharePairs : kSharePairsOneRow;
  const int64_t nr = band.rhi - band.rlo + 1 + 2 * g.K, nw = band.chi - band.clo + 1 + 2 * g.K;
  std::vector<char> cover(nr * nw, 0);
  for (int64_t q = band.q0; q < band.q1; ++q) {
    char* c = cover.data() + (pos[3 * q + 1] - band.rlo) * nw + pos[3 * q + 2] - band.clo;
    for (int64_t i = 0; i < g.W; ++i) std::memset(c + i * nw, 1, g.W);
  }
  const int64_t covered = std::count(cover.begin(), cover.end(), char(1));
  return static_cast<double>(band.q1 - band.q0) * g.W * g.W >= at * covered;
}

// How the op's backward takes a band: a pixel at a time, or shared (BandBackward) over the
// window rows [own_lo, own_hi] with the pixels src.q0 .. src.q1 - 1, whose reach src also
// gives the band's gradient buffer.
struct Part {
  Band src;
  int64_t own_lo, own_hi;
  bool shared;
};

// The parts of the op's backward. A run of bands of one image that all take the shared way
// splits the image's window rows between them: each band does the rows from its first
// pixel row to the row before the next band's first (the run's first band from its first
// window row, the last to its last), with the run's pixels within K rows of those. So each
// window row is done once; when every band did all its windows' rows, the 2K rows where two
// bands' windows meet were done twice, 1.5x the rows for the 16-row bands of a 10% random
// mask on 128 x 128. A part whose rows are empty (its band's pixels all in the next band's
// first row) does nothing.
template <typename T>
std::vector<Part> op_parts(const int64_t* pos, const Geo& g, const std::vector<Band>& bands,
                           Way way, int workers) {
  const int64_t nb = static_cast<int64_t>(bands.size());
  std::vector<char> shared(nb);
#pragma omp parallel for num_threads(workers) schedule(dynamic)
  for (int64_t k = 0; k < nb; ++k) {
    shared[k] = way == Way::kShared ||
                (way == Way::kByOverlap && shares_backward<T>(pos, g, bands[k]));
  }
  auto linked = [&](int64_t k) {  // bands k and k + 1 are in one run
    return k >= 0 && k + 1 < nb && shared[k] && shared[k + 1] && bands[k].b == bands[k + 1].b;
  };
  // The first pixel at or after q (< end) whose row is at least r.
  auto first_at = [&](int64_t q, int64_t end, int64_t r) {
    while (q < end) {
      const int64_t mid = q + (end - q) / 2;
      if (pos[3 * mid + 1] < r) q = mid + 1;
      else end = mid;
    }
    return q;
  };
  std::vector<Part> parts(nb);
  int64_t run_q0 = 0, run_q1 = 0;  // the pixels of the run band k is in
  for (int64_t k = 0; k < nb; ++k) {
    const Band& band = bands[k];
    Part& part = parts[k];
    part = {band, band.rlo - g.K, band.rhi + g.K, shared[k] != 0};
    if (!linked(k - 1)) {  // a run starts: find its end once
      int64_t last = k;
      while (linked(last)) ++last;
      run_q0 = band.q0;
      run_q1 = bands[last].q1;
    }
    if (!part.shared || (!linked(k - 1) && !linked(k))) continue;
    if (linked(k - 1)) part.own_lo = band.rlo;
    if (linked(k)) part.own_hi = bands[k + 1].rlo - 1;
    if (part.own_lo > part.own_hi) continue;
    Band& src = part.src;
    src.q0 = first_at(run_q0, run_q1, part.own_lo - g.K);
    src.q1 = first_at(src.q0, run_q1, part.own_hi + g.K + 1);
    src.rlo = pos[3 * src.q0 + 1];
    src.rhi = pos[3 * (src.q1 - 1) + 1];
    src.clo = src.chi = pos[3 * src.q0 + 2];
    for (int64_t q = src.q0; q < src.q1; ++q) {
      src.clo = std::min(src.clo, pos[3 * q + 2]);
      src.chi = std::max(src.chi, pos[3 * q + 2]);
    }
  }
  return parts;
}

template <typename T, int NV, int64_t RS>
void backward_band(const T* A, const int64_t* pos, const T* G, const Geo& g, const Part& part,
                   std::vector<T>& ga) {
  const FlushDenormals flush;
  const Band& band = part.src;
  const T* gend = G + band.q1 * g.SS;
  if (part.shared) {
    if (part.own_lo > part.own_hi) return;  // nothing: ga stays empty
    BandBackward<T> bb(A, g, band, part.own_lo, part.own_hi);
    for (int64_t q = band.q0; q < band.q1; ++q) bb.set_row(q, G + q * g.SS, gend);
    bb.finish(pos, ga);
    return;
  }
  const int64_t GH = reach_rows(g, band), GW = reach_pitch(g, band);
  const int64_t zs = RS ? RS : g.stride;
  ga.assign(g.C * GH * GW, T(0));
  BackwardScratch<T> w(g, zs);
  const T* img = A + band.b * g.C * g.Hp * g.Wp;
  const T* end = img + g.C * g.Hp * g.Wp;
  for (int64_t q = band.q0; q < band.q1; ++q) {
    const int64_t y = pos[3 * q + 1], x = pos[3 * q + 2];
    fill_square(img, end, y, x, g, zs, w.Z.data());
    backward_pixel<T, NV, RS>(G + q * g.SS, gend, g, w, ga.data(), GH, GW, y - band.rlo,
                              x - band.clo);
  }
}

// The fused SSL loss for one band (float32): the band's SR and HR distances
// (band_distances), then per pixel the graphs' loss terms and dloss/dD_sr (graph_loss_row),
// that row going at once into the band's backward (shared or a pixel at a time, as in
// backward_band), so no [N, S*S] array is written. Adds the band's L1 and KL sums to sums.
template <int NV, int64_t RS>
void loss_band(const float* SR, const float* HR, const int64_t* pos, const Geo& g,
               const Band& band, const GraphLossArgs& la, std::vector<float>& ga,
               double sums[2]) {
  const FlushDenormals flush;
  const int64_t SS = g.SS, stride = SS + g.XW;
  Aligned<float> dsr((band.q1 - band.q0) * stride), dhr((band.q1 - band.q0) * stride);
  const BandPlan<float> plan(pos, g, band);  // one plan for both images
  distances_of_band(SR, plan, pos, g, band, dsr.data(), stride);
  distances_of_band(HR, plan, pos, g, band, dhr.data(), stride);
  std::vector<float> grow(SS + g.XW), rows(5 * SS);
  double l1 = 0.0, kl = 0.0;
  auto row = [&](int64_t q) {  // pixel q's graph terms; its dloss/dD_sr into grow
    const int64_t k = (q - band.q0) * stride;
    const GraphRowSums r = graph_loss_row(dsr.data() + k, dhr.data() + k, rows.data(),
                                          grow.data(), SS, la);
    l1 += r.l1;
    kl += r.kl;
  };
  if (shares_backward<float>(pos, g, band)) {
    BandBackward<float> bb(SR, g, band);
    for (int64_t q = band.q0; q < band.q1; ++q) {
      row(q);
      bb.set_row(q, grow.data(), grow.data() + grow.size());
    }
    bb.finish(pos, ga);
  } else {
    const int64_t GH = reach_rows(g, band), GW = reach_pitch(g, band);
    const int64_t zs = RS ? RS : g.stride;
    ga.assign(g.C * GH * GW, 0.0f);
    BackwardScratch<float> w(g, zs);
    const int64_t offset = band.b * g.C * g.Hp * g.Wp;
    const float* end_sr = SR + offset + g.C * g.Hp * g.Wp;
    for (int64_t q = band.q0; q < band.q1; ++q) {
      row(q);
      const int64_t y = pos[3 * q + 1], x = pos[3 * q + 2];
      fill_square(SR + offset, end_sr, y, x, g, zs, w.Z.data());
      backward_pixel<float, NV, RS>(grow.data(), grow.data() + grow.size(), g, w, ga.data(),
                                    GH, GW, y - band.rlo, x - band.clo);
    }
  }
  sums[0] = l1;
  sums[1] = kl;
}

template <typename T>
void forward_all(const T* a, const int64_t* p, const Geo& g, const std::vector<Band>& bands,
                 T* o, int workers) {
  for_each_band(bands, workers, [&](int64_t k) { forward_band<T>(a, p, g, bands[k], o); });
}

template <typename T, int NV, int64_t RS>
void backward_all(const T* a, const int64_t* p, const T* gr, const Geo& g,
                  const std::vector<Band>& bands, const std::vector<Part>& parts,
                  std::vector<std::vector<T>>& local, int workers) {
  for_each_band(bands, workers, [&](int64_t k) {
    backward_band<T, NV, RS>(a, p, gr, g, parts[k], local[k]);
  });
}

// out (the padded image's gradient) += the bands' buffers (band k's over the reach of
// bands[k]; none if local[k] is empty), in a fixed order: bands of one image in band order
// (images in parallel), so the sums do not depend on the threads.
template <typename T>
void add_bands(const std::vector<Band>& bands, const Geo& g, std::vector<std::vector<T>>& local,
               T* out, int workers) {
  std::vector<int64_t> first(1, 0);
  for (int64_t k = 1; k < static_cast<int64_t>(bands.size()); ++k) {
    if (bands[k].b != bands[k - 1].b) first.push_back(k);
  }
  first.push_back(static_cast<int64_t>(bands.size()));
  const int64_t plane = g.Hp * g.Wp;
  const int64_t images = static_cast<int64_t>(first.size()) - 1;
#pragma omp parallel for num_threads(workers) schedule(static)
  for (int64_t i = 0; i < images; ++i) {
    for (int64_t k = first[i]; k < first[i + 1]; ++k) {
      if (local[k].empty()) continue;
      const Band& band = bands[k];
      const int64_t GH = reach_rows(g, band), pitch = reach_pitch(g, band);
      const int64_t GW = pitch - (g.XW - g.S);
      for (int64_t c = 0; c < g.C; ++c) {
        for (int64_t y = 0; y < GH; ++y) {
          const T* __restrict__ src = local[k].data() + (c * GH + y) * pitch;
          T* __restrict__ dst = out + (band.b * g.C + c) * plane + (band.rlo + y) * g.Wp + band.clo;
          for (int64_t x = 0; x < GW; ++x) dst[x] += src[x];
        }
      }
      std::vector<T>().swap(local[k]);
    }
  }
}

// Calls f with the kernel's compile-time choices: <NV, fixed stride or 0>.
template <typename F>
void dispatch(const Geo& g, const F& f) {
  const bool fixed = g.stride <= kFixedStride;
  if (g.NV == 2) {
    if (fixed) f(std::integral_constant<int, 2>(), std::integral_constant<int64_t, kFixedStride>());
    else f(std::integral_constant<int, 2>(), std::integral_constant<int64_t, 0>());
  } else {
    if (fixed) f(std::integral_constant<int, 4>(), std::integral_constant<int64_t, kFixedStride>());
    else f(std::integral_constant<int, 4>(), std::integral_constant<int64_t, 0>());
  }
}

}  // namespace

template <typename T>
void patch_distances_forward(const T* a, const int64_t* p, const Shape& s, T* o, int threads) {
  if (s.n == 0) return;
  if (s.search == 1) {  // one offset, d = 0, and a window of 1: D = (A[m] - A[m])^2 = 0
    std::fill(o, o + s.n, T(0));
    return;
  }
  const Geo g(s, kVectorBytes / sizeof(T));
  // A pixel's D does not depend on its band, so the forward's split may follow the number of
  // threads: two bands per thread, not eight in all, has fewer, longer bands, which make the
  // 2K window rows where two bands meet twice less often (a 10% random mask on 128 x 128
  // makes 4 bands of 32 rows on 2 threads instead of 8 of 16).
  const std::vector<Band> bands = split_bands(p, s.n, 2 * std::max(1, threads));
  const int workers = workers_for(s, threads, static_cast<int64_t>(bands.size()));
  forward_all(a, p, g, bands, o, workers);
}

template <typename T>
void patch_distances_backward(const T* a, const int64_t* p, const T* gr, const Shape& s,
                              T* out, int threads, Way way) {
  // search 1: D is 0 whatever the image, so the gradient is 0. (The sums below would give
  // it as 2 G A - 2 G A, rounded apart.)
  if (s.n == 0 || s.search == 1) return;
  const Geo g(s, kVectorBytes / sizeof(T));
  const std::vector<Band> bands = split_bands(p, s.n);
  const int workers = workers_for(s, threads, static_cast<int64_t>(bands.size()));
  const std::vector<Part> parts = op_parts<T>(p, g, bands, way, workers);
  std::vector<std::vector<T>> local(bands.size());
  dispatch(g, [&](auto nv, auto rs) {
    backward_all<T, nv(), rs()>(a, p, gr, g, bands, parts, local, workers);
  });
  std::vector<Band> reach(bands.size());
  for (size_t k = 0; k < bands.size(); ++k) reach[k] = parts[k].src;
  add_bands(reach, g, local, out, workers);
}

namespace {

// Index of padded position i (of n + 2p) in the unpadded axis of n, reflecting without
// repeating the edge (torch's 'reflect'); p < n.
inline int64_t reflect_index(int64_t i, int64_t p, int64_t n) {
  const int64_t j = i - p;
  return j < 0 ? -j : (j >= n ? 2 * (n - 1) - j : j);
}

// dst[planes, Hp, Wp] = scale * src[planes, H, W] reflect-padded by P (planes in parallel).
void pad_scaled(const float* src, float scale, int64_t planes, int64_t H, int64_t W, int64_t P,
                float* dst, int workers) {
  const int64_t Hp = H + 2 * P, Wp = W + 2 * P;
#pragma omp parallel for num_threads(workers) schedule(static)
  for (int64_t k = 0; k < planes; ++k) {
    for (int64_t y = 0; y < Hp; ++y) {
      const float* in = src + (k * H + reflect_index(y, P, H)) * W;
      float* out = dst + (k * Hp + y) * Wp;
      for (int64_t x = 0; x < P; ++x) out[x] = scale * in[P - x];
      for (int64_t x = 0; x < W; ++x) out[P + x] = scale * in[x];
      for (int64_t x = 0; x < P; ++x) out[P + W + x] = scale * in[W - 2 - x];
    }
  }
}

// dst[planes, H, W] = scale * (src[planes, Hp, Wp] with every padded value added onto the
// pixel it reflects): the gradient of pad_scaled. Padded rows are taken in order, each
// row's margins after its middle, so the sums do not depend on the threads.
void fold_scaled(const float* src, float scale, int64_t planes, int64_t H, int64_t W, int64_t P,
                 float* dst, int workers) {
  const int64_t Hp = H + 2 * P, Wp = W + 2 * P;
#pragma omp parallel for num_threads(workers) schedule(static)
  for (int64_t k = 0; k < planes; ++k) {
    float* plane = dst + k * H * W;
    std::fill(plane, plane + H * W, 0.0f);
    for (int64_t y = 0; y < Hp; ++y) {
      const float* in = src + (k * Hp + y) * Wp;
      float* out = plane + reflect_index(y, P, H) * W;
      for (int64_t x = 0; x < W; ++x) out[x] += in[P + x];
      for (int64_t x = 0; x < P; ++x) out[P - x] += in[x];
      for (int64_t x = 0; x < P; ++x) out[W - 2 - x] += in[P + W + x];
    }
    for (int64_t i = 0; i < H * W; ++i) plane[i] *= scale;
  }
}

// n floats of the calling thread's, kept from one call to the next and grown when a call
// needs more: the fused loss's padded images and their gradient. A training loop calls it
// with the same sizes at every step; taking the memory from malloc each time had glibc hand
// it back to the kernel and take it again page by page (on the 16x3x96x96 batch, about
// 1,500 page faults and 2.6-3 ms of system time per call, a tenth of the loss on 2 threads).
float* kept_floats(int64_t n) {
  thread_local std::unique_ptr<float[]> buffer;
  thread_local int64_t capacity = 0;
  if (capacity < n) {
    buffer.reset();
    buffer.reset(new float[n]);
    capacity = n;
  }
  return buffer.get();
}

}  // namespace

double ssl_loss_cpu(const float* sr, const float* hr, float scale, const int64_t* p,
                    const Shape& s, double a, bool normalize, double kl_weight, float* grad,
                    int threads) {
  const Geo g(s, kVectorBytes / sizeof(float));
  const GraphLossArgs la = graph_loss_args(a, normalize, kl_weight, s.n, g.SS);
  const std::vector<Band> bands = split_bands(p, s.n);
  const int workers = workers_for(s, threads, static_cast<int64_t>(bands.size()));
  const int64_t planes = s.B * s.C, H = s.Hp - 2 * g.P, W = s.Wp - 2 * g.P;
  const int64_t size = planes * s.Hp * s.Wp;
  float* const sr_padded = kept_floats(3 * size);
  float* const hr_padded = sr_padded + size;
  float* const grad_padded = hr_padded + size;
  std::fill(grad_padded, grad_padded + size, 0.0f);
  pad_scaled(sr, scale, planes, H, W, g.P, sr_padded, workers);
  pad_scaled(hr, scale, planes, H, W, g.P, hr_padded, workers);
  std::vector<std::vector<float>> local(bands.size());
  std::vector<double> sums(2 * bands.size(), 0.0);
  dispatch(g, [&](auto nv, auto rs) {
    for_each_band(bands, workers, [&](int64_t k) {
      loss_band<nv(), rs()>(sr_padded, hr_padded, p, g, bands[k], la, local[k],
                            sums.data() + 2 * k);
    });
  });
  add_bands(bands, g, local, grad_padded, workers);
  fold_scaled(grad_padded, scale, planes, H, W, g.P, grad, workers);
  double l1 = 0.0, kl = 0.0;  // in band order: the same for any number of threads
  for (size_t k = 0; k < bands.size(); ++k) {
    l1 += sums[2 * k];
    kl += sums[2 * k + 1];
  }
  return graph_loss_total(l1, kl, kl_weight, s.n, g.SS);
}

int vector_bytes() { return kVectorBytes; }

template void patch_distances_forward<float>(const float*, const int64_t*, const Shape&,
                                                    float*, int);
template void patch_distances_forward<double>(const double*, const int64_t*,
                                                     const Shape&, double*, int);
template void patch_distances_backward<float>(const float*, const int64_t*, const float*,
                                              const Shape&, float*, int, Way);
template void patch_distances_backward<double>(const double*, const int64_t*, const double*,
                                               const Shape&, double*, int, Way);

}  // namespace ssl_ops
