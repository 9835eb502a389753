#include "nn/models.h"

#include "nn/layers.h"

namespace sl {

std::shared_ptr<Sequential> make_lenet(Generator& gen) {
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(1, 8, 5))  // 28 -> 24
      .add("ReLU1", std::make_shared<ReLU>())
      .add("pool1", std::make_shared<MaxPool2d>(2, 2))   // -> 12
      .add("conv2", std::make_shared<Conv2d>(8, 16, 5))  // -> 8
      .add("ReLU2", std::make_shared<ReLU>())
      .add("pool2", std::make_shared<MaxPool2d>(2, 2))  // -> 4: 16·4·4 = 256 features
      .add("flatten", std::make_shared<Flatten>())
      .add("fc1", std::make_shared<Linear>(256, 120))
      .add("fc1act", std::make_shared<ReLU>())
      .add("fc2", std::make_shared<Linear>(120, 84))
      .add("fc2act", std::make_shared<ReLU>())
      .add("fc3", std::make_shared<Linear>(84, 10));
  net->reset_parameters(gen);
  return net;
}

std::shared_ptr<Sequential> make_cifar10cnn(Generator& gen, const Cifar10CnnSize& s) {
  SL_CHECK(s.image_size > 0 && s.image_size % 8 == 0, ValueError, "CIFAR10CNN needs an image size divisible by 8, got ",
           s.image_size);
  const int w1 = s.width, w2 = 2 * s.width;
  const int side = s.image_size / 8;                                                       // after three 2x2 pools
  auto conv = [](int in, int out) { return std::make_shared<Conv2d>(in, out, 3, 1, 1); };  // k3 p1 keeps H, W
  auto net = std::make_shared<Sequential>();
  net->add("conv11", conv(s.in_channels, w1))
      .add("ReLU11", std::make_shared<ReLU>())
      .add("conv12", conv(w1, w1))
      .add("ReLU12", std::make_shared<ReLU>())
      .add("pool1", std::make_shared<MaxPool2d>(2, 2))
      .add("conv21", conv(w1, w2))
      .add("ReLU21", std::make_shared<ReLU>())
      .add("conv22", conv(w2, w2))
      .add("ReLU22", std::make_shared<ReLU>())
      .add("pool2", std::make_shared<MaxPool2d>(2, 2))
      .add("conv31", conv(w2, w2))
      .add("ReLU31", std::make_shared<ReLU>())
      .add("conv32", conv(w2, w2))
      .add("ReLU32", std::make_shared<ReLU>())
      .add("pool3", std::make_shared<MaxPool2d>(2, 2))
      .add("flatten", std::make_shared<Flatten>())
      .add("fc1", std::make_shared<Linear>(w2 * side * side, s.hidden))
      .add("fc1act", std::make_shared<Sigmoid>())
      .add("fc2", std::make_shared<Linear>(s.hidden, s.classes));
  net->reset_parameters(gen);
  return net;
}

std::vector<std::string> model_names() { return {"lenet", "cifar10cnn"}; }

Model make_model(const std::string& arch, Generator& gen) {
  if (arch == "lenet") return Model{arch, Shape{1, 28, 28}, 10, make_lenet(gen)};
  if (arch == "cifar10cnn") return Model{arch, Shape{3, 32, 32}, 10, make_cifar10cnn(gen)};
  throw ValueError(str("unknown model '", arch, "'; the models are: lenet, cifar10cnn"));
}

}  // namespace sl
