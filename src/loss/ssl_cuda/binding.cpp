// Python binding of the SSL patch-distance op: argument checks and CPU / CUDA dispatch.
//
// The CUDA kernels live in ssl_kernels.cu, which includes no torch header; they are reached
// through the plain C functions declared below and built only when SSL_WITH_CUDA is
// defined. The CUDA stream comes from Python as an integer, so this file needs no CUDA
// header either and compiles the same with or without SSL_WITH_CUDA.
#include <torch/extension.h>

#include <cstdint>

namespace ssl_ops {
at::Tensor forward_cpu(const at::Tensor& padded, const at::Tensor& pos, int64_t search,
                       int64_t window);
at::Tensor backward_cpu(const at::Tensor& padded, const at::Tensor& pos, const at::Tensor& grad,
                        int64_t search, int64_t window);
std::tuple<at::Tensor, at::Tensor> graph_loss_cpu(const at::Tensor& d_sr, const at::Tensor& d_hr,
                                                  double a, bool normalize, double kl,
                                                  bool need_grad);
}  // namespace ssl_ops

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
  if (!padded.is_cuda()) return ssl_ops::forward_cpu(padded, pos, search, window);
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
                    int64_t search, int64_t window, int64_t stream) {
  check_common(padded, pos, search, window);
  TORCH_CHECK(grad.is_contiguous() && grad.scalar_type() == padded.scalar_type() &&
                  grad.device() == padded.device() && grad.dim() == 2 &&
                  grad.size(0) == pos.size(0) && grad.size(1) == search * search,
              "ssl_ops: gradient must be a contiguous [N, search*search] tensor like the output");
  if (!padded.is_cuda()) return ssl_ops::backward_cpu(padded, pos, grad, search, window);
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
  m.def("backward", &backward, "gradient with respect to the padded image", py::arg("padded"),
        py::arg("pos"), py::arg("grad"), py::arg("search"), py::arg("window"),
        py::arg("stream") = 0);
  m.def("graph_loss", &ssl_ops::graph_loss_cpu,
        "SSL loss from float32 CPU distances: (loss, dloss/dd_sr or None)", py::arg("d_sr"),
        py::arg("d_hr"), py::arg("a"), py::arg("normalize"), py::arg("kl"), py::arg("need_grad"));
  m.def("has_cuda", &has_cuda, "whether this build contains the CUDA kernels");
}
