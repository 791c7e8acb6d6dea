// CUDA kernels of the SSL patch-distance op. No torch header: `nvcc -c ssl_kernels.cu`
// checks this file alone. The binding (binding.cpp) calls the extern "C" launchers below.
//
// One thread block per masked pixel m. Because window pixels that leave the search square
// count as zero, every value the block reads lies in m's search square (search x search
// pixels, C channels), which the block loads into shared memory once.
//   forward : one thread per offset d, D[m, d] = sum_c sum_k (T[k] - in(d+k) Q[d+k])^2
//             with T the window around m and Q the square.
//   backward: the gradient of the whole square is gathered in shared memory / registers
//             (each square pixel sums its terms; the window pixels' own role is a warp
//             reduction over d), then added to the image gradient with one atomicAdd per
//             square pixel, instead of two per (d, k, c) term.
#include <cuda_runtime.h>

#include <cstdint>

namespace {

constexpr int kThreads = 256;
constexpr int kErrSharedMemory = -1;

struct Geom {
  int C, S, P, K;
  int64_t Hp, Wp;
};

inline unsigned grid_size(int64_t n) {
  return static_cast<unsigned>(n < 2147483647 ? n : 2147483647);
}

// Square of masked pixel m into sq[c][y][x]: padded rows r..r+2P, columns col..col+2P.
template <typename T>
__device__ void load_square(const T* __restrict__ padded, const int64_t* __restrict__ pos,
                            int64_t m, const Geom& g, T* sq) {
  const int64_t b = pos[3 * m], r = pos[3 * m + 1], col = pos[3 * m + 2];
  const int SS = g.S * g.S;
  const T* base = padded + b * g.C * g.Hp * g.Wp + r * g.Wp + col;
  for (int t = threadIdx.x; t < g.C * SS; t += blockDim.x) {
    const int ch = t / SS, rem = t - ch * SS, y = rem / g.S, x = rem - y * g.S;
    sq[t] = base[ch * g.Hp * g.Wp + y * g.Wp + x];
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    forward_kernel(const T* __restrict__ padded, const int64_t* __restrict__ pos,
                   T* __restrict__ out, int64_t n, Geom g) {
  extern __shared__ __align__(16) unsigned char smem[];
  T* sq = reinterpret_cast<T*>(smem);
  const int S = g.S, SS = S * S, P = g.P, K = g.K;
  for (int64_t m = blockIdx.x; m < n; m += gridDim.x) {
    __syncthreads();  // the previous pixel's threads are done with sq
    load_square(padded, pos, m, g, sq);
    __syncthreads();
    for (int d = threadIdx.x; d < SS; d += blockDim.x) {
      const int iy = d / S, ix = d - iy * S;  // offset + P
      T acc = 0;
      for (int ch = 0; ch < g.C; ++ch) {
        const T* s = sq + ch * SS;
        for (int ky = -K; ky <= K; ++ky) {
          const int yy = iy + ky;  // square row of m + d + k
          const bool row_in = yy >= 0 && yy < S;
          for (int kx = -K; kx <= K; ++kx) {
            const int xx = ix + kx;
            T t = s[(P + ky) * S + P + kx];
            if (row_in && xx >= 0 && xx < S) t -= s[yy * S + xx];
            acc += t * t;
          }
        }
      }
      out[m * SS + d] = acc;
    }
  }
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    backward_kernel(const T* __restrict__ padded, const int64_t* __restrict__ pos,
                    const T* __restrict__ grad, T* __restrict__ grad_padded, int64_t n, Geom g) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int S = g.S, SS = S * S, P = g.P, K = g.K, W = 2 * K + 1, WW = W * W;
  T* sq = reinterpret_cast<T*>(smem);  // [C][S][S] the square
  T* gs = sq + g.C * SS;               // [S*S] G[m, :]
  T* gw = gs + SS;                     // [C][W][W] window pixels' gradient as T[k]
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  for (int64_t m = blockIdx.x; m < n; m += gridDim.x) {
    __syncthreads();
    load_square(padded, pos, m, g, sq);
    for (int d = threadIdx.x; d < SS; d += blockDim.x) gs[d] = grad[m * SS + d];
    __syncthreads();
    // Window pixel k as T[k]: 2 sum_d G[d] (T[k] - in(d+k) Q[d+k]); one warp per (c, k).
    for (int item = warp; item < g.C * WW; item += nwarps) {
      const int ch = item / WW, k = item - ch * WW, ky = k / W - K, kx = k % W - K;
      const T* s = sq + ch * SS;
      const T centre = s[(P + ky) * S + P + kx];
      T acc = 0;
      for (int d = lane; d < SS; d += 32) {
        const int yy = d / S + ky, xx = d % S + kx;
        T t = centre;
        if (yy >= 0 && yy < S && xx >= 0 && xx < S) t -= s[yy * S + xx];
        acc += gs[d] * t;
      }
      for (int off = 16; off > 0; off >>= 1) acc += __shfl_down_sync(0xffffffffu, acc, off);
      if (lane == 0) gw[item] = T(2) * acc;
    }
    __syncthreads();
    // Square pixel v as Q[d+k] (v = centre + d + k, always inside the square):
    // -2 sum_k G[v - centre - k] (T[k] - Q[v]); plus its window role; one atomic per pixel.
    const int64_t b = pos[3 * m], r = pos[3 * m + 1], col = pos[3 * m + 2];
    for (int t = threadIdx.x; t < g.C * SS; t += blockDim.x) {
      const int ch = t / SS, rem = t - ch * SS, vy = rem / S, vx = rem - vy * S;
      const T* s = sq + ch * SS;
      const T q = s[rem];
      T acc = 0;
      for (int ky = -K; ky <= K; ++ky) {
        const int iy = vy - ky;
        if (iy < 0 || iy >= S) continue;
        for (int kx = -K; kx <= K; ++kx) {
          const int ix = vx - kx;
          if (ix < 0 || ix >= S) continue;
          acc += gs[iy * S + ix] * (s[(P + ky) * S + P + kx] - q);
        }
      }
      T total = T(-2) * acc;
      const int wy = vy - P + K, wx = vx - P + K;
      if (wy >= 0 && wy < W && wx >= 0 && wx < W) total += gw[ch * WW + wy * W + wx];
      if (total != T(0)) {
        atomicAdd(grad_padded + ((b * g.C + ch) * g.Hp + r + vy) * g.Wp + col + vx, total);
      }
    }
  }
}

// Allows more than the default 48 KiB of dynamic shared memory when the square needs it.
template <typename Kernel>
int prepare_shared_memory(Kernel kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return 0;
  int device = 0, optin = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return static_cast<int>(e);
  e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (e != cudaSuccess) return static_cast<int>(e);
  if (bytes > static_cast<size_t>(optin)) return kErrSharedMemory;
  return static_cast<int>(cudaFuncSetAttribute(
      kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

Geom make_geom(int64_t c, int64_t hp, int64_t wp, int64_t search, int64_t window) {
  return {static_cast<int>(c), static_cast<int>(search), static_cast<int>(search / 2),
          static_cast<int>(window / 2), hp, wp};
}

template <typename T>
int forward(const T* padded, const int64_t* pos, T* out, int64_t n, int64_t c, int64_t hp,
            int64_t wp, int64_t search, int64_t window, void* stream) {
  if (n == 0) return 0;
  const Geom g = make_geom(c, hp, wp, search, window);
  const size_t bytes = sizeof(T) * static_cast<size_t>(g.C) * g.S * g.S;
  int code = prepare_shared_memory(forward_kernel<T>, bytes);
  if (code != 0) return code;
  forward_kernel<T><<<grid_size(n), kThreads, bytes, static_cast<cudaStream_t>(stream)>>>(
      padded, pos, out, n, g);
  return static_cast<int>(cudaGetLastError());
}

template <typename T>
int backward(const T* padded, const int64_t* pos, const T* grad, T* grad_padded, int64_t n,
             int64_t c, int64_t hp, int64_t wp, int64_t search, int64_t window, void* stream) {
  if (n == 0) return 0;
  const Geom g = make_geom(c, hp, wp, search, window);
  const int W = 2 * g.K + 1;
  const size_t bytes =
      sizeof(T) * (static_cast<size_t>(g.C) * g.S * g.S + g.S * g.S + static_cast<size_t>(g.C) * W * W);
  int code = prepare_shared_memory(backward_kernel<T>, bytes);
  if (code != 0) return code;
  backward_kernel<T><<<grid_size(n), kThreads, bytes, static_cast<cudaStream_t>(stream)>>>(
      padded, pos, grad, grad_padded, n, g);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

extern "C" {

int ssl_cuda_forward_f32(const float* padded, const int64_t* pos, float* out, int64_t n, int64_t c,
                         int64_t hp, int64_t wp, int64_t search, int64_t window, void* stream) {
  return forward<float>(padded, pos, out, n, c, hp, wp, search, window, stream);
}

int ssl_cuda_forward_f64(const double* padded, const int64_t* pos, double* out, int64_t n,
                         int64_t c, int64_t hp, int64_t wp, int64_t search, int64_t window,
                         void* stream) {
  return forward<double>(padded, pos, out, n, c, hp, wp, search, window, stream);
}

int ssl_cuda_backward_f32(const float* padded, const int64_t* pos, const float* grad,
                          float* grad_padded, int64_t n, int64_t c, int64_t hp, int64_t wp,
                          int64_t search, int64_t window, void* stream) {
  return backward<float>(padded, pos, grad, grad_padded, n, c, hp, wp, search, window, stream);
}

int ssl_cuda_backward_f64(const double* padded, const int64_t* pos, const double* grad,
                          double* grad_padded, int64_t n, int64_t c, int64_t hp, int64_t wp,
                          int64_t search, int64_t window, void* stream) {
  return backward<double>(padded, pos, grad, grad_padded, n, c, hp, wp, search, window, stream);
}

const char* ssl_cuda_error_string(int code) {
  if (code == kErrSharedMemory) {
    return "the search square does not fit in the GPU's shared memory; use a smaller search";
  }
  return cudaGetErrorString(static_cast<cudaError_t>(code));
}

}  // extern "C"
