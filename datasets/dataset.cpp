#include "datasets/dataset.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "datasets/cifar10.h"
#include "datasets/folder.h"
#include "datasets/mnist.h"

namespace sl::data {

namespace fs = std::filesystem;

Normalization mnist_normalization() { return Normalization{{0.5f}, {0.5f}}; }

Normalization cifar10_normalization() { return Normalization{{0.485f, 0.456f, 0.406f}, {0.229f, 0.224f, 0.225f}}; }

Normalization normalization_for(const std::string& name) {
  if (name == "mnist") return mnist_normalization();
  if (name == "cifar10") return cifar10_normalization();
  throw ValueError(str("unknown data set '", name, "' (known: mnist, cifar10)"));
}

namespace {

// Applies y = x * scale[c] + shift[c] over the channel dimension of a [N,C,H,W] or [C,H,W] tensor.
Tensor per_channel_affine(const Tensor& in, const std::vector<float>& scale, const std::vector<float>& shift,
                          bool clamp01, const char* what) {
  SL_CHECK(in.defined(), ValueError, what, ": undefined tensor");
  SL_CHECK(in.dim() == 3 || in.dim() == 4, ShapeError, what, ": expected [N, C, H, W] or [C, H, W], got ",
           in.shape().str());
  const int cdim = in.dim() == 4 ? 1 : 0;
  const int64_t C = in.size(cdim);
  SL_CHECK(C == int64_t(scale.size()), ShapeError, what, ": tensor has ", C, " channels, the normalisation has ",
           scale.size());
  Tensor x = in.device().is_cpu() ? in : in.to(Device::cpu());
  x = x.to(DType::f32).contiguous();
  Tensor out = Tensor::empty(x.shape(), DType::f32);
  const int64_t N = in.dim() == 4 ? in.size(0) : 1;
  const int64_t plane = x.size(-1) * x.size(-2);
  const float* src = x.data<float>();
  float* dst = out.data<float>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const float a = scale[c], b = shift[c];
      const float* s = src + (n * C + c) * plane;
      float* d = dst + (n * C + c) * plane;
      if (clamp01) {
        for (int64_t i = 0; i < plane; ++i) d[i] = std::clamp(s[i] * a + b, 0.0f, 1.0f);
      } else {
        for (int64_t i = 0; i < plane; ++i) d[i] = s[i] * a + b;
      }
    }
  return out;
}

}  // namespace

Tensor normalize(const Tensor& pixels01, const Normalization& norm) {
  std::vector<float> scale(norm.mean.size()), shift(norm.mean.size());
  for (size_t c = 0; c < scale.size(); ++c) {
    scale[c] = 1.0f / norm.std[c];
    shift[c] = -norm.mean[c] / norm.std[c];
  }
  return per_channel_affine(pixels01, scale, shift, false, "normalize");
}

Tensor denormalize(const Tensor& normalized, const Normalization& norm, bool clamp01) {
  return per_channel_affine(normalized, norm.std, norm.mean, clamp01, "denormalize");
}

Dataset Dataset::slice(int64_t begin, int64_t end) const {
  SL_CHECK(0 <= begin && begin <= end && end <= size(), ValueError, "Dataset::slice: range [", begin, ", ", end,
           ") outside the ", size(), " samples of ", name);
  Dataset d = *this;
  d.images = images.slice(begin, end);
  d.labels.assign(labels.begin() + begin, labels.begin() + end);
  d.source = str(source, ", samples ", begin, "..", end - 1);
  return d;
}

Dataset load_dataset(const std::string& name, const std::string& data_dir, bool train, int64_t limit) {
  if (name == "mnist") return load_mnist(data_dir, train, limit);
  if (name == "cifar10") {
    CifarOptions opt;
    opt.limit = limit;
    return load_cifar10(data_dir, train, opt);
  }
  if (name.rfind("folder:", 0) == 0 && name.size() > 7) return load_folder(name.substr(7), train, limit);
  throw ValueError(str("unknown data set '", name, "' (known: mnist, cifar10, folder:DIR)"));
}

std::string fetch_hint(const std::string& name, const std::string& data_dir) {
  return str("run: splitleak fetch ", name, " --data ", data_dir);
}

std::string printable(std::string text) {
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) c = '?';
  return text;
}

}  // namespace sl::data
