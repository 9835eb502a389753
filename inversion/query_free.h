// Query-free attack: the shadow model (He et al. §III-C).
//
// The cloud neither knows f1 nor may query it; it has only its own part f2 and data of the same kind. It
// builds a shadow head f1' of a DIFFERENT architecture with f1's output shape and trains it through the
// frozen f2 to classify:
//
//   min_f1'  Σ_i CrossEntropy(f2(f1'(x_i)), y_i)
//
// A head that makes f2 work must produce features much like f1's, so the cloud then runs the white-box
// rMLE with f1' in place of f1 against the observed v.
#pragma once
#include <memory>
#include <string>

#include "inversion/common.h"
#include "inversion/rmle.h"
#include "nn/profile.h"
#include "nn/sequential.h"

namespace sl::inv {

// What a shadow head may end with: the attacker sees v and so knows whether it is non-negative (after a
// ReLU) or in (0, 1) (after a Sigmoid).
enum class Activation { none, relu, sigmoid };
Activation guess_activation(const Tensor& observed_v);

// A shadow head from images of shape `image_shape` ([C, H, W]) to features of shape `feature_shape` (one
// sample): the profile's reference shadow for the split where it has one (the reference's for lenet conv1 and ReLU2), a
// generic one otherwise (see query_free.cpp), ending with `last`. PyTorch-default initialisation from gen.
std::shared_ptr<Sequential> make_shadow(const ModelProfile& profile, const std::string& split, const Shape& image_shape,
                                        const Shape& feature_shape, Activation last, Generator& gen);
// The same with the built-in profile of an architecture by name.
std::shared_ptr<Sequential> make_shadow(const std::string& arch, const std::string& split, const Shape& image_shape,
                                        const Shape& feature_shape, Activation last, Generator& gen);

// Trains the shadow through the frozen cloud tail with cross-entropy on the attacker's labelled images;
// returns the last epoch's mean loss. shadow and cloud_tail must be on `device`.
double train_shadow(Module& shadow, Module& cloud_tail, const data::Dataset& attacker_data, Device device,
                    const FitOptions& o, const FitProgress& progress = {});

// Classification accuracy of tail(shadow(x)) on a data set: how well the shadow stands in for f1.
double shadow_accuracy(Module& shadow, Module& cloud_tail, const data::Dataset& d, Device device);

}  // namespace sl::inv
