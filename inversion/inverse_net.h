// Black-box attack: the inverse network (He et al. §III-B).
//
// The cloud does not know f1 but may query the edge with inputs of its choice. It sends its own images x_i,
// collects v_i = f1(x_i), and fits a decoder g (Xavier-initialised) to map features back to images:
//
//   min_g (1/m) Σ_i ‖g(f1(x_i)) − x_i‖²        then   x = g(v)  for every observed v.
//
// One forward pass per victim image once g is trained; g never sees f1's weights, only its answers.
#pragma once
#include <functional>
#include <memory>
#include <string>

#include "inversion/common.h"
#include "nn/profile.h"
#include "nn/sequential.h"

namespace sl::inv {

// The black box: a batch of inputs (on the attack's device) -> the edge's outputs f1(x).
using EdgeQuery = std::function<Tensor(const Tensor& x)>;

// The decoder for features of shape `feature_shape` (one sample, e.g. [16, 8, 8] or [120]) back to images
// of shape `image_shape` ([C, H, W]): the profile's reference decoder for the split where it has one (the reference's
// for lenet conv1 and ReLU2, cifar10cnn ReLU22), a generic one otherwise (see inverse_net.cpp).
// Xavier-initialised from gen.
std::shared_ptr<Sequential> make_decoder(const ModelProfile& profile, const std::string& split,
                                         const Shape& feature_shape, const Shape& image_shape, Generator& gen);
// The same with the built-in profile of an architecture by name.
std::shared_ptr<Sequential> make_decoder(const std::string& arch, const std::string& split, const Shape& feature_shape,
                                         const Shape& image_shape, Generator& gen);

// Trains the decoder on (f1(x_i), x_i) pairs from the attacker's own images; returns the last epoch's mean
// squared error (in the normalised space). The decoder must already be on `device`.
double train_inverse_net(Module& decoder, const EdgeQuery& edge, const data::Dataset& attacker_data, Device device,
                         const FitOptions& o, const FitProgress& progress = {});

// x = g(v), clamped into the valid pixel box; no graph is recorded.
Tensor invert_with_decoder(Module& decoder, const Tensor& observed_v, const PixelRange& range);

}  // namespace sl::inv
