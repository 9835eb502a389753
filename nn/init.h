// Weight initialisation, drawing from an sl::Generator so that the same seed gives the same weights.
//
// Fans follow PyTorch: for a weight of shape [d0, d1, k, k] (or [d0, d1]), fan_in = d1·k·k and
// fan_out = d0·k·k. (For a ConvTranspose2d weight [Cin, Cout, k, k] that makes fan_in = Cout·k·k, as in PyTorch.)
//
//   xavier_uniform: U(-a, a),  a = gain · sqrt(6 / (fan_in + fan_out))
//   xavier_normal:  N(0, s²),  s = gain · sqrt(2 / (fan_in + fan_out))
//   kaiming_uniform(a): U(-b, b), b = sqrt(6 / ((1 + a²) · fan_in))
//   PyTorch's default for Conv/Linear: weight kaiming_uniform(a = sqrt(5)), i.e. U(±1/sqrt(fan_in)),
//                                       bias U(±1/sqrt(fan_in)) with the weight's fan_in.
#pragma once
#include <utility>

#include "nn/module.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace sl::init {

// {fan_in, fan_out} of a weight tensor (rank 2 or more).
std::pair<int64_t, int64_t> fans(const Tensor& weight);

void uniform_(Tensor& t, double lo, double hi, Generator& gen);
void normal_(Tensor& t, double mean, double std, Generator& gen);
void xavier_uniform_(Tensor& w, Generator& gen, double gain = 1.0);
void xavier_normal_(Tensor& w, Generator& gen, double gain = 1.0);
void kaiming_uniform_(Tensor& w, Generator& gen, double a = 0.0);

// PyTorch's default initialisation of a Conv/Linear layer's weight and bias (bias may be undefined).
void pytorch_default_(Tensor& weight, Tensor& bias, Generator& gen);

// Xavier-initialises every weight (parameters of rank >= 2) of a module and zeroes every bias (rank 1),
// in named_parameters() order. Used for the inversion decoders.
void xavier_module_(Module& m, Generator& gen, bool normal = false, double gain = 1.0);

}  // namespace sl::init
