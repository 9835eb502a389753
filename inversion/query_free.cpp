#include "inversion/query_free.h"

#include "autograd/node.h"
#include "autograd/ops.h"
#include "nn/layers.h"

namespace sl::inv {

Activation guess_activation(const Tensor& observed_v) {
  std::vector<double> v = observed_v.to_vector();
  bool nonneg = true, in01 = true;
  for (double e : v) {
    nonneg = nonneg && e >= 0;
    in01 = in01 && e > 0 && e < 1;
  }
  return in01 ? Activation::sigmoid : nonneg ? Activation::relu : Activation::none;
}

namespace {

void add_activation(Sequential& s, const std::string& name, Activation a) {
  if (a == Activation::relu) s.add(name, std::make_shared<ReLU>());
  if (a == Activation::sigmoid) s.add(name, std::make_shared<Sigmoid>());
}

// Image [Cin, H, H] -> feature map [C, h, h]: 3x3 conv + ReLU + 2x2 max-pool blocks while halving still
// keeps the size >= h, one valid conv that trims the rest, then a 3x3 conv to C channels.
std::shared_ptr<Sequential> generic_spatial_shadow(const Shape& img, const Shape& f, Activation last) {
  auto s = std::make_shared<Sequential>();
  const int C = int(f[0]), mid = std::max(16, C / 2);
  int64_t size = img[1];
  const int64_t h = f[1];
  SL_CHECK(h <= size, ShapeError, "make_shadow: features ", f.str(), " are larger than the images ", img.str());
  int cur = int(img[0]), k = 0;
  while (size % 2 == 0 && size / 2 >= h) {
    std::string b = "block" + std::to_string(++k);
    s->add(b + "conv", std::make_shared<Conv2d>(cur, mid, 3, 1, 1));
    s->add(b + "act", std::make_shared<ReLU>());
    s->add(b + "pool", std::make_shared<MaxPool2d>(2));
    cur = mid;
    size /= 2;
  }
  if (size > h) {
    s->add("trim", std::make_shared<Conv2d>(cur, mid, int(size - h + 1)));
    s->add("trimact", std::make_shared<ReLU>());
    cur = mid;
  }
  s->add("out", std::make_shared<Conv2d>(cur, C, 3, 1, 1));
  add_activation(*s, "outact", last);
  return s;
}

// Image -> feature vector [F]: two conv + pool blocks and a linear layer.
std::shared_ptr<Sequential> generic_flat_shadow(const Shape& img, const Shape& f, Activation last) {
  auto s = std::make_shared<Sequential>();
  const int64_t after = img[1] / 4;
  s->add("conv1", std::make_shared<Conv2d>(int(img[0]), 16, 3, 1, 1));
  s->add("act1", std::make_shared<ReLU>());
  s->add("pool1", std::make_shared<MaxPool2d>(2));
  s->add("conv2", std::make_shared<Conv2d>(16, 32, 3, 1, 1));
  s->add("act2", std::make_shared<ReLU>());
  s->add("pool2", std::make_shared<MaxPool2d>(2));
  s->add("flatten", std::make_shared<Flatten>());
  s->add("fc", std::make_shared<Linear>(int(32 * after * after), int(f[0])));
  add_activation(*s, "fcact", last);
  return s;
}

}  // namespace

std::shared_ptr<Sequential> make_shadow(const std::string& arch, const std::string& split, const Shape& image_shape,
                                        const Shape& feature_shape, Activation last, Generator& gen) {
  return make_shadow(builtin_profile(arch), split, image_shape, feature_shape, last, gen);
}

std::shared_ptr<Sequential> make_shadow(const ModelProfile& profile, const std::string& split, const Shape& image_shape,
                                        const Shape& feature_shape, Activation last, Generator& gen) {
  SL_CHECK(image_shape.rank() == 3 && image_shape[1] == image_shape[2] && image_shape[1] >= 4, ShapeError,
           "make_shadow: images must be square [C, H, W], got ", image_shape.str());
  const std::string& arch = profile.arch;
  std::shared_ptr<Sequential> s;
  if (auto it = profile.shadows.find(split); it != profile.shadows.end()) {
    s = build_sequential(it->second);
  } else if (feature_shape.rank() == 3 && feature_shape[1] == feature_shape[2]) {
    s = generic_spatial_shadow(image_shape, feature_shape, last);
  } else if (feature_shape.rank() == 1) {
    s = generic_flat_shadow(image_shape, feature_shape, last);
  } else {
    throw ShapeError("make_shadow: no shadow head for features of shape " + feature_shape.str());
  }
  std::vector<int64_t> batch_of_one{1}, want{1};
  batch_of_one.insert(batch_of_one.end(), image_shape.dims().begin(), image_shape.dims().end());
  want.insert(want.end(), feature_shape.dims().begin(), feature_shape.dims().end());
  Shape out = s->output_shape(Shape(batch_of_one));
  SL_CHECK(out == Shape(want), ShapeError, "shadow head for ", arch, " ", split, " gives ", out.str(),
           ", but the observed features are ", Shape(want).str());
  s->reset_parameters(gen);
  return s;
}

double train_shadow(Module& shadow, Module& cloud_tail, const data::Dataset& attacker_data, Device device,
                    const FitOptions& o, const FitProgress& progress) {
  FrozenParams frozen(cloud_tail);  // the cloud's own part stays as it is
  cloud_tail.eval();
  auto loss = [&](const Tensor& x, const Tensor& y) { return cross_entropy(cloud_tail(shadow(x)), y); };
  return fit(shadow, attacker_data, device, o, loss, progress);
}

double shadow_accuracy(Module& shadow, Module& cloud_tail, const data::Dataset& d, Device device) {
  NoGradGuard no_grad;
  shadow.eval();
  cloud_tail.eval();
  int64_t correct = 0;
  for (int64_t b = 0; b < d.size(); b += 500) {
    int64_t e = std::min(d.size(), b + 500);
    Tensor pred = argmax_rows(cloud_tail(shadow(d.images.slice(b, e).to(device)))).to(Device::cpu());
    for (int64_t i = 0; i < e - b; ++i) correct += pred.data<int32_t>()[i] == d.labels[size_t(b + i)];
  }
  return d.size() ? double(correct) / double(d.size()) : 0;
}

}  // namespace sl::inv
