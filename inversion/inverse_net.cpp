#include "inversion/inverse_net.h"

#include <algorithm>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "nn/init.h"
#include "nn/layers.h"
#include "nn/profile.h"

namespace sl::inv {

namespace {

// A feature map [C, h, h] -> image [Cin, H, H]: transposed convolutions that double the size while it fits
// (halving the channels, at least 16), one that grows (or a conv that shrinks) it to exactly H, then a
// 3x3 conv down to the image's channels.
std::shared_ptr<Sequential> generic_spatial_decoder(const Shape& f, const Shape& img) {
  auto g = std::make_shared<Sequential>();
  int width = int(f[0]);
  int64_t h = f[1];
  const int64_t H = img[1];
  int k = 0;
  while (h * 2 <= H) {
    int next = std::max(width / 2, 16);
    g->add("up" + std::to_string(++k), std::make_shared<ConvTranspose2d>(width, next, 3, 2, 1, 1));
    g->add("up" + std::to_string(k) + "act", std::make_shared<ReLU>());
    width = next;
    h *= 2;
  }
  if (h < H) {
    g->add("grow", std::make_shared<ConvTranspose2d>(width, width, int(H - h + 1)));
    g->add("growact", std::make_shared<ReLU>());
  } else if (h > H) {
    g->add("shrink", std::make_shared<Conv2d>(width, width, int(h - H + 1)));
    g->add("shrinkact", std::make_shared<ReLU>());
  }
  g->add("out", std::make_shared<Conv2d>(width, int(img[0]), 3, 1, 1));
  return g;
}

// A feature vector [F] -> image: a two-layer perceptron onto the pixels.
std::shared_ptr<Sequential> generic_flat_decoder(const Shape& f, const Shape& img) {
  const int hidden = 512;
  auto g = std::make_shared<Sequential>();
  g->add("fc1", std::make_shared<Linear>(int(f[0]), hidden));
  g->add("fc1act", std::make_shared<ReLU>());
  g->add("fc2", std::make_shared<Linear>(hidden, int(img.numel())));
  g->add("unflatten", std::make_shared<Reshape>(img, true));  // [N, C·H·W] -> [N, C, H, W]
  return g;
}

}  // namespace

std::shared_ptr<Sequential> make_decoder(const std::string& arch, const std::string& split, const Shape& feature_shape,
                                         const Shape& image_shape, Generator& gen) {
  return make_decoder(builtin_profile(arch), split, feature_shape, image_shape, gen);
}

std::shared_ptr<Sequential> make_decoder(const ModelProfile& profile, const std::string& split,
                                         const Shape& feature_shape, const Shape& image_shape, Generator& gen) {
  SL_CHECK(image_shape.rank() == 3 && image_shape[1] == image_shape[2], ShapeError,
           "make_decoder: images must be square [C, H, W], got ", image_shape.str());
  const std::string& arch = profile.arch;
  auto g = std::make_shared<Sequential>();
  if (auto it = profile.decoders.find(split); it != profile.decoders.end()) {
    g = build_sequential(it->second);
  } else if (feature_shape.rank() == 3 && feature_shape[1] == feature_shape[2]) {
    g = generic_spatial_decoder(feature_shape, image_shape);
  } else if (feature_shape.rank() == 1) {
    g = generic_flat_decoder(feature_shape, image_shape);
  } else {
    throw ShapeError("make_decoder: no decoder for features of shape " + feature_shape.str() +
                     " (expected [C, h, h] or [F])");
  }
  // The decoder must produce exactly the image shape.
  std::vector<int64_t> batch_of_one{1};
  batch_of_one.insert(batch_of_one.end(), feature_shape.dims().begin(), feature_shape.dims().end());
  Shape out = g->output_shape(Shape(batch_of_one));
  SL_CHECK(out == Shape({1, image_shape[0], image_shape[1], image_shape[2]}), ShapeError, "decoder for ", arch, " ",
           split, " maps features ", feature_shape.str(), " to ", out.str(), ", not to images ", image_shape.str());
  init::xavier_module_(*g, gen);
  return g;
}

double train_inverse_net(Module& decoder, const EdgeQuery& edge, const data::Dataset& attacker_data, Device device,
                         const FitOptions& o, const FitProgress& progress) {
  auto loss = [&](const Tensor& x, const Tensor&) {
    Tensor v;
    {
      NoGradGuard no_grad;  // the edge is a black box: only its answer comes back
      v = edge(x);
    }
    return mse_loss(decoder(v), x);
  };
  return fit(decoder, attacker_data, device, o, loss, progress);
}

Tensor invert_with_decoder(Module& decoder, const Tensor& observed_v, const PixelRange& range) {
  NoGradGuard no_grad;
  decoder.eval();
  return clamp_to_range(decoder(observed_v), range);
}

}  // namespace sl::inv
