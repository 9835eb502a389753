// Model profiles: what the rest of the system knows about a model, as data rather than (arch, layer) string
// matching. A profile holds facts about the network — every layer's kind, the region it sits in, its output
// shape — and what was measured on a built-in model: suggested total-variation weights for inverting each region,
// and the reference decoder and shadow shapes (the authors' code) for the splits that have them. The attacks build
// their own settings from these facts (nn knows nothing of attacks); a model that is not built in (an imported one)
// gets a profile derived from its layers alone, with generic suggestions.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/models.h"

namespace sl {

enum class LayerKind { conv, conv_transpose, linear, relu, sigmoid, max_pool, flatten, dropout, other };
const char* layer_kind_name(LayerKind k);
LayerKind layer_kind_of(const Module& m);

// Where a layer sits in the network: before its first pooling layer (early), that pooling layer, the rest of the
// convolutional part, or from the first fully connected layer on (fc). Depth grows in that order.
enum class Region { early, first_pool, conv, fc };
const char* region_name(Region r);

struct LayerFacts {
  std::string name;
  LayerKind kind = LayerKind::other;
  Region region = Region::conv;
  size_t index = 0;  // position in the network
  Shape output;      // one sample's output shape, e.g. [16, 8, 8]
};

// One layer of a small network written as data (the reference decoders and shadow heads).
struct LayerSpec {
  std::string name;
  LayerKind kind = LayerKind::other;  // conv, conv_transpose, linear, relu, sigmoid, max_pool, flatten
  int in = 0, out = 0, kernel = 0, stride = 1, pad = 0, output_padding = 0;
};
// The layers in order, each with zero parameters (the caller initialises them). ValueError for a kind it cannot
// build.
std::shared_ptr<Sequential> build_sequential(const std::vector<LayerSpec>& layers);

// Suggested weight λ of the total variation when inverting a split in each region, and for the model's softmax
// output (prob) and its label.
struct TvByRegion {
  double early = 0, first_pool = 0, conv = 1, fc = 1e3, prob = 10, label = 1e3;
  double at(Region r) const;
};
// Inversion settings measured on a model (numbers only; 0 = the attack's own default).
struct InversionHint {
  TvByRegion tv;
  double lr = 0;
  int iters = 0;
};

struct ModelProfile {
  std::string arch;
  std::string dataset;  // the data set it was built for ("mnist", "cifar10"), "" when unknown
  Shape input_shape;    // one sample
  bool measured = false;
  std::vector<LayerFacts> layers;  // empty for a profile looked up by name alone
  // Keyed by setting name: "reference", "tuned", and "<setting>/queryfree" where the query-free attack differs.
  std::map<std::string, InversionHint> inversion;
  std::map<std::string, std::vector<LayerSpec>> decoders;  // reference black-box decoders, by split
  std::map<std::string, std::vector<LayerSpec>> shadows;   // reference query-free shadow heads, by split

  // The facts of a layer (ValueError listing the names when there is none).
  const LayerFacts& layer(const std::string& name) const;
  bool has_layer(const std::string& name) const;
  // The setting's hint, falling back to "reference"; null when there is none.
  const InversionHint* hint(const std::string& setting) const;
};

// The profile of a model: facts from its layers, plus the measured data of a built-in architecture.
ModelProfile profile_of(const Model& model);
// The profile of an architecture by name: the measured data (no layer facts) for a built-in one, a generic profile
// (lenet's reference suggestions, no decoders or shadows) otherwise.
ModelProfile builtin_profile(const std::string& arch);

}  // namespace sl
