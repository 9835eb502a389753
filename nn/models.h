// The two target models of SPEC §3, with the paper's layer names (the split points), PyTorch's default
// initialisation drawn from a Generator (same seed, same weights), and a by-name factory.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "nn/sequential.h"

namespace sl {

// A network plus what the rest of the system needs to know about it.
struct Model {
  std::string arch;   // "lenet", "cifar10cnn"; checked when a checkpoint is loaded
  Shape input_shape;  // one sample, [C, H, W]
  int num_classes = 10;
  std::shared_ptr<Sequential> net;

  // [batch, C, H, W]
  Shape batch_shape(int64_t batch) const { return Shape{batch, input_shape[0], input_shape[1], input_shape[2]}; }
};

// LeNet-5 for MNIST (1x28x28): conv1, ReLU1, pool1, conv2, ReLU2, pool2, flatten, fc1, fc1act, fc2, fc2act, fc3.
std::shared_ptr<Sequential> make_lenet(Generator& gen);

// The CIFAR10CNN layer stack: conv11, ReLU11, conv12, ReLU12, pool1, conv21, ReLU21, conv22, ReLU22, pool2,
// conv31, ReLU31, conv32, ReLU32, pool3, flatten, fc1, fc1act (Sigmoid), fc2. The defaults are SPEC §3's
// model; smaller instances of the same stack (for fast tests) change the sizes.
struct Cifar10CnnSize {
  int in_channels = 3;
  int image_size = 32;  // must be divisible by 8 (three 2x2 pools)
  int width = 64;       // channels of block 1; blocks 2 and 3 have 2·width
  int hidden = 512;     // fc1 outputs
  int classes = 10;
};
std::shared_ptr<Sequential> make_cifar10cnn(Generator& gen, const Cifar10CnnSize& size = {});

// "lenet" or "cifar10cnn"; throws ValueError listing the known names otherwise.
Model make_model(const std::string& arch, Generator& gen);
std::vector<std::string> model_names();

}  // namespace sl
