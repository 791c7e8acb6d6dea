// Python binding of the SSL patch-distance op: argument checks and CPU / CUDA dispatch.
// The only file that includes torch: the CPU kernels (ssl_cpu.h) work on raw arrays.
//
// The CUDA kernels live in ssl_kernels.cu, which includes no torch header; they are reached
// through the plain C functions declared below and built only when SSL_WITH_CUDA is
// defined. The CUDA stream comes from Python as an integer, so this file needs no CUDA
// header either and compiles the same with or without SSL_WITH_CUDA.
//
// Only the pieces it uses, not <torch/extension.h> (the whole C++ frontend): this file is
// what the first-use build waits for, and these headers parse in well under half the time.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/scalar_tensor.h>
#include <ATen/ops/zeros_like.h>
#include <torch/csrc/utils/pybind.h>

#include <cstdint>
#include <tuple>

#include "ssl_cpu.h"

#ifdef SSL_WITH_CUDA
extern "C" {
int ssl_cuda_forward_f32(const float* padded, const int64_t* pos, float* out, int64_t n, int64_t c,
                         int64_t hp, int64_t wp, int64_t search, int64_t window, void* stream);
int ssl_cuda_forward_f64(const double* padded, const int64_t* pos, double* out, int64_t n,
                         int64_t c, int64_t hp, int64_t wp, int64_t search, int64_t window,
                         void* stream);
int ssl_cuda_backward_f32(const float* padded, const int64_t* pos, const float* grad,
                          float* grad_padded, int64_t n, int64_t c, int64_t hp, int64_t wp,
                          int64_t search, int64_t window, void* stream);
int ssl_cuda_backward_f64(const double* padded, const int64_t* pos, const double* grad,
                          double* grad_padded, int64_t n, int64_t c, int64_t hp, int64_t wp,
                          int64_t search, int64_t window, void* stream);
const char* ssl_cuda_error_string(int code);
}
#endif

namespace {

ssl_ops::Shape shape_of(const at::Tensor& padded, const at::Tensor& pos, int64_t search,
                        int64_t window) {
  return {padded.size(0), padded.size(1), padded.size(2), padded.size(3), search, window,
          pos.size(0)};
}

at::Tensor forward_cpu(const at::Tensor& padded, const at::Tensor& pos, int64_t search,
                       int64_t window) {
  at::Tensor out = at::empty({pos.size(0), search * search}, padded.options());
  const ssl_ops::Shape s = shape_of(padded, pos, search, window);
  const int threads = at::get_num_threads();
  if (padded.scalar_type() == at::kFloat) {
    ssl_ops::patch_distances_forward(padded.data_ptr<float>(), pos.data_ptr<int64_t>(), s,
                                     out.data_ptr<float>(), threads);
  } else {
    ssl_ops::patch_distances_forward(padded.data_ptr<double>(), pos.data_ptr<int64_t>(), s,
                                     out.data_ptr<double>(), threads);
  }
  return out;
}

at::Tensor backward_cpu(const at::Tensor& padded, const at::Tensor& pos, const at::Tensor& grad,
                        int64_t search, int64_t window, ssl_ops::Way way) {
  at::Tensor out = at::zeros_like(padded);
  const ssl_ops::Shape s = shape_of(padded, pos, search, window);
  const int threads = at::get_num_threads();
  if (padded.scalar_type() == at::kFloat) {
    ssl_ops::patch_distances_backward(padded.data_ptr<float>(), pos.data_ptr<int64_t>(),
                                      grad.data_ptr<float>(), s, out.data_ptr<float>(), threads,
                                      way);
  } else {
    ssl_ops::patch_distances_backward(padded.data_ptr<double>(), pos.data_ptr<int64_t>(),
                                      grad.data_ptr<double>(), s, out.data_ptr<double>(),
                                      threads, way);
  }
  return out;
}

// d_sr, d_hr: float32 CPU [N, SS]; a = 1 / (C * window^2 * sigma).
// Returns (loss as a 0-dim float32 tensor, dloss/dd_sr [N, SS] or an undefined tensor).
std::tuple<at::Tensor, at::Tensor> graph_loss(const at::Tensor& d_sr, const at::Tensor& d_hr,
                                              double a, bool normalize, double kl,
                                              bool need_grad) {
  TORCH_CHECK(d_sr.scalar_type() == at::kFloat && d_hr.scalar_type() == at::kFloat &&
                  d_sr.is_contiguous() && d_hr.is_contiguous() && d_sr.dim() == 2 &&
                  d_sr.sizes() == d_hr.sizes() && !d_sr.is_cuda() && !d_hr.is_cuda(),
              "ssl_ops: graph loss needs two contiguous float32 CPU [N, SS] tensors");
  at::Tensor grad = need_grad ? at::empty_like(d_sr) : at::Tensor();
  const double loss = ssl_ops::graph_loss(
      d_sr.data_ptr<float>(), d_hr.data_ptr<float>(), d_sr.size(0), d_sr.size(1), a, normalize,
      kl, need_grad ? grad.data_ptr<float>() : nullptr, at::get_num_threads());
  return {at::scalar_tensor(loss, d_sr.options()), grad};
}

void check_common(const at::Tensor& padded, const at::Tensor& pos, int64_t search,
                  int64_t window) {
  TORCH_CHECK(padded.dim() == 4 && padded.is_contiguous(),
              "ssl_ops: padded image must be a contiguous [B, C, Hp, Wp] tensor");
  TORCH_CHECK(padded.scalar_type() == at::kFloat || padded.scalar_type() == at::kDouble,
              "ssl_ops: padded image must be float32 or float64");
  TORCH_CHECK(pos.dim() == 2 && pos.size(1) == 3 && pos.scalar_type() == at::kLong &&
                  pos.is_contiguous(),
              "ssl_ops: positions must be a contiguous int64 [N, 3] tensor (batch, row, col)");
  TORCH_CHECK(pos.device() == padded.device(), "ssl_ops: positions and image on different devices");
  TORCH_CHECK(search >= 1 && search % 2 == 1 && window >= 1 && window % 2 == 1 && window <= search,
              "ssl_ops: search and window must be odd, positive, window <= search");
  TORCH_CHECK(padded.size(2) >= search && padded.size(3) >= search,
              "ssl_ops: padded image smaller than the search square");
}

#ifdef SSL_WITH_CUDA
void check_cuda(int code, const char* what) {
  TORCH_CHECK(code == 0, "ssl_ops: CUDA ", what, " failed: ", ssl_cuda_error_string(code));
}
#endif

at::Tensor forward(const at::Tensor& padded, const at::Tensor& pos, int64_t search, int64_t window,
                   int64_t stream) {
  check_common(padded, pos, search, window);
  if (!padded.is_cuda()) return forward_cpu(padded, pos, search, window);
#ifdef SSL_WITH_CUDA
  const int64_t n = pos.size(0);
  at::Tensor out = at::empty({n, search * search}, padded.options());
  if (n == 0) return out;
  void* s = reinterpret_cast<void*>(stream);
  int code;
  if (padded.scalar_type() == at::kFloat) {
    code = ssl_cuda_forward_f32(padded.data_ptr<float>(), pos.data_ptr<int64_t>(),
                                out.data_ptr<float>(), n, padded.size(1), padded.size(2),
                                padded.size(3), search, window, s);
  } else {
    code = ssl_cuda_forward_f64(padded.data_ptr<double>(), pos.data_ptr<int64_t>(),
                                out.data_ptr<double>(), n, padded.size(1), padded.size(2),
                                padded.size(3), search, window, s);
  }
  check_cuda(code, "forward");
  return out;
#else
  TORCH_CHECK(false, "ssl_ops: this build has no CUDA kernels (torch or nvcc without CUDA)");
#endif
}

at::Tensor backward(const at::Tensor& padded, const at::Tensor& pos, const at::Tensor& grad,
                    int64_t search, int64_t window, int64_t stream, int64_t way) {
  check_common(padded, pos, search, window);
  TORCH_CHECK(grad.is_contiguous() && grad.scalar_type() == padded.scalar_type() &&
                  grad.device() == padded.device() && grad.dim() == 2 &&
                  grad.size(0) == pos.size(0) && grad.size(1) == search * search,
              "ssl_ops: gradient must be a contiguous [N, search*search] tensor like the output");
  TORCH_CHECK(way >= -1 && way <= 1, "ssl_ops: way must be -1 (by overlap), 0 or 1");
  if (!padded.is_cuda()) {
    return backward_cpu(padded, pos, grad, search, window, static_cast<ssl_ops::Way>(way));
  }
#ifdef SSL_WITH_CUDA
  at::Tensor grad_padded = at::zeros_like(padded);
  const int64_t n = pos.size(0);
  if (n == 0) return grad_padded;
  void* s = reinterpret_cast<void*>(stream);
  int code;
  if (padded.scalar_type() == at::kFloat) {
    code = ssl_cuda_backward_f32(padded.data_ptr<float>(), pos.data_ptr<int64_t>(),
                                 grad.data_ptr<float>(), grad_padded.data_ptr<float>(), n,
                                 padded.size(1), padded.size(2), padded.size(3), search, window, s);
  } else {
    code = ssl_cuda_backward_f64(padded.data_ptr<double>(), pos.data_ptr<int64_t>(),
                                 grad.data_ptr<double>(), grad_padded.data_ptr<double>(), n,
                                 padded.size(1), padded.size(2), padded.size(3), search, window, s);
  }
  check_cuda(code, "backward");
  return grad_padded;
#else
  TORCH_CHECK(false, "ssl_ops: this build has no CUDA kernels (torch or nvcc without CUDA)");
#endif
}

// The fused SSL loss on CPU for scale * sr and scale * hr: unpadded float32 SR and HR
// [B, C, H, W], positions [N, 3] (N >= 1), a = 1 / (C * window^2 * sigma). The images are
// reflect-padded inside. Returns (loss as a 0-dim float32 tensor, dloss/dsr).
std::tuple<at::Tensor, at::Tensor> ssl_loss(const at::Tensor& sr, const at::Tensor& hr,
                                            const at::Tensor& pos, int64_t search,
                                            int64_t window, double a, bool normalize,
                                            double kl, double scale) {
  TORCH_CHECK(sr.dim() == 4 && sr.is_contiguous() && hr.is_contiguous() &&
                  hr.sizes() == sr.sizes() && !sr.is_cuda() && !hr.is_cuda() &&
                  sr.scalar_type() == at::kFloat && hr.scalar_type() == at::kFloat,
              "ssl_ops: the fused loss needs two contiguous float32 CPU [B, C, H, W] images "
              "of one shape");
  TORCH_CHECK(pos.dim() == 2 && pos.size(1) == 3 && pos.scalar_type() == at::kLong &&
                  pos.is_contiguous() && !pos.is_cuda() && pos.size(0) >= 1,
              "ssl_ops: positions must be a contiguous int64 CPU [N, 3] tensor, N >= 1");
  TORCH_CHECK(search > 1 && search % 2 == 1 && window >= 1 && window % 2 == 1 &&
                  window <= search,
              "ssl_ops: search > 1 and window must be odd, window <= search");
  const int64_t p = search / 2;
  TORCH_CHECK(sr.size(2) > p && sr.size(3) > p,
              "ssl_ops: images need more than search / 2 pixels per side");
  at::Tensor grad = at::empty_like(sr);
  const ssl_ops::Shape s = {sr.size(0), sr.size(1), sr.size(2) + 2 * p, sr.size(3) + 2 * p,
                            search, window, pos.size(0)};
  const double loss = ssl_ops::ssl_loss_cpu(
      sr.data_ptr<float>(), hr.data_ptr<float>(), static_cast<float>(scale),
      pos.data_ptr<int64_t>(), s, a, normalize, kl, grad.data_ptr<float>(),
      at::get_num_threads());
  return {at::scalar_tensor(loss, sr.options()), grad};
}

bool has_cuda() {
#ifdef SSL_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "SSL patch distances (internal; use loss.ssl_cuda.patch_distances)";
  m.def("forward", &forward, "D[N, search*search] from the reflect-padded image",
        py::arg("padded"), py::arg("pos"), py::arg("search"), py::arg("window"),
        py::arg("stream") = 0);
  m.def("backward", &backward,
        "gradient with respect to the padded image; way (CPU): -1 by the bands' overlap, 0 one "
        "pixel at a time, 1 shared between pixels", py::arg("padded"), py::arg("pos"),
        py::arg("grad"), py::arg("search"), py::arg("window"), py::arg("stream") = 0,
        py::arg("way") = -1);
  m.def("graph_loss", &graph_loss,
        "SSL loss from float32 CPU distances: (loss, dloss/dd_sr or None)", py::arg("d_sr"),
        py::arg("d_hr"), py::arg("a"), py::arg("normalize"), py::arg("kl"), py::arg("need_grad"));
  m.def("ssl_loss", &ssl_loss,
        "fused SSL loss of scale * sr and scale * hr, CPU float32 unpadded images: "
        "(loss, dloss/dsr)", py::arg("sr"), py::arg("hr"), py::arg("pos"), py::arg("search"),
        py::arg("window"), py::arg("a"), py::arg("normalize"), py::arg("kl"), py::arg("scale"));
  m.def("has_cuda", &has_cuda, "whether this build contains the CUDA kernels");
  m.def("vector_bytes", &ssl_ops::vector_bytes,
        "bytes in the vectors the CPU kernels were built for (64: AVX-512, 32: AVX2, 16: SSE2/NEON)");
}
