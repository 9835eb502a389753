#include "nn/profile.h"

#include "nn/layers.h"

namespace sl {

const char* layer_kind_name(LayerKind k) {
  switch (k) {
    case LayerKind::conv:
      return "conv";
    case LayerKind::conv_transpose:
      return "conv_transpose";
    case LayerKind::linear:
      return "linear";
    case LayerKind::relu:
      return "relu";
    case LayerKind::sigmoid:
      return "sigmoid";
    case LayerKind::max_pool:
      return "max_pool";
    case LayerKind::flatten:
      return "flatten";
    case LayerKind::dropout:
      return "dropout";
    default:
      return "other";
  }
}

LayerKind layer_kind_of(const Module& m) {
  if (dynamic_cast<const Conv2d*>(&m)) return LayerKind::conv;
  if (dynamic_cast<const ConvTranspose2d*>(&m)) return LayerKind::conv_transpose;
  if (dynamic_cast<const Linear*>(&m)) return LayerKind::linear;
  if (dynamic_cast<const ReLU*>(&m)) return LayerKind::relu;
  if (dynamic_cast<const Sigmoid*>(&m)) return LayerKind::sigmoid;
  if (dynamic_cast<const MaxPool2d*>(&m)) return LayerKind::max_pool;
  if (dynamic_cast<const Flatten*>(&m)) return LayerKind::flatten;
  if (dynamic_cast<const Dropout*>(&m)) return LayerKind::dropout;
  return LayerKind::other;
}

const char* region_name(Region r) {
  switch (r) {
    case Region::early:
      return "early";
    case Region::first_pool:
      return "first_pool";
    case Region::conv:
      return "conv";
    default:
      return "fc";
  }
}

double TvByRegion::at(Region r) const {
  switch (r) {
    case Region::early:
      return early;
    case Region::first_pool:
      return first_pool;
    case Region::conv:
      return conv;
    default:
      return fc;
  }
}

std::shared_ptr<Sequential> build_sequential(const std::vector<LayerSpec>& layers) {
  auto s = std::make_shared<Sequential>();
  for (const LayerSpec& l : layers) {
    std::shared_ptr<Module> m;
    switch (l.kind) {
      case LayerKind::conv:
        m = std::make_shared<Conv2d>(l.in, l.out, l.kernel, l.stride, l.pad);
        break;
      case LayerKind::conv_transpose:
        m = std::make_shared<ConvTranspose2d>(l.in, l.out, l.kernel, l.stride, l.pad, l.output_padding);
        break;
      case LayerKind::linear:
        m = std::make_shared<Linear>(l.in, l.out);
        break;
      case LayerKind::relu:
        m = std::make_shared<ReLU>();
        break;
      case LayerKind::sigmoid:
        m = std::make_shared<Sigmoid>();
        break;
      case LayerKind::max_pool:
        m = std::make_shared<MaxPool2d>(l.kernel, l.stride == 1 ? 0 : l.stride);
        break;
      case LayerKind::flatten:
        m = std::make_shared<Flatten>();
        break;
      default:
        throw ValueError(str("build_sequential: cannot build layer '", l.name, "' of kind ", layer_kind_name(l.kind)));
    }
    s->add(l.name, m);
  }
  return s;
}

const LayerFacts& ModelProfile::layer(const std::string& name) const {
  for (auto& l : layers)
    if (l.name == name) return l;
  std::string names;
  for (auto& l : layers) names += (names.empty() ? "" : ", ") + l.name;
  throw ValueError(str("no layer named '", name, "' in model '", arch, "'; the layers are: ", names));
}

bool ModelProfile::has_layer(const std::string& name) const {
  for (auto& l : layers)
    if (l.name == name) return true;
  return false;
}

const InversionHint* ModelProfile::hint(const std::string& setting) const {
  auto it = inversion.find(setting);
  if (it != inversion.end()) return &it->second;
  it = inversion.find("reference");
  return it == inversion.end() ? nullptr : &it->second;
}

namespace {

LayerSpec conv(const char* name, int in, int out, int k, int stride = 1, int pad = 0) {
  return LayerSpec{name, LayerKind::conv, in, out, k, stride, pad, 0};
}
LayerSpec deconv(const char* name, int in, int out, int k, int stride = 1, int pad = 0, int output_padding = 0) {
  return LayerSpec{name, LayerKind::conv_transpose, in, out, k, stride, pad, output_padding};
}
LayerSpec act(const char* name, LayerKind k) { return LayerSpec{name, k, 0, 0, 0, 1, 0, 0}; }
LayerSpec pool(const char* name, int k) { return LayerSpec{name, LayerKind::max_pool, 0, 0, k, k, 0, 0}; }

// LeNet on MNIST (the paper, §4; inversion/NOTES.md for how the λ were measured).
//   reference: the reference commands — λ 0 up to pool1 (the paper: none before the FC layers), 1 in the rest of
//              the conv part (its ReLU2 command), 1e3 on the FC side (its fc3 command), 10 for prob;
//   tuned:     measured with projection, cosine lr 0.05 and β = 1 TV: 0 before pool1, 2e-4 in the conv part,
//              1e-2 on the FC side, 1e-3 for prob; the query-free attack needs more (2e-4 / 1e-3 / 1e-2).
ModelProfile lenet_data() {
  ModelProfile p;
  p.arch = "lenet";
  p.dataset = "mnist";
  p.input_shape = Shape{1, 28, 28};
  p.measured = true;
  InversionHint ref;
  ref.tv = TvByRegion{0, 0, 1, 1e3, 10, 1e3};
  p.inversion["reference"] = ref;
  InversionHint tuned;
  tuned.tv = TvByRegion{0, 2e-4, 2e-4, 1e-2, 1e-3, 1e-2};
  p.inversion["tuned"] = tuned;
  InversionHint tuned_qf;
  tuned_qf.tv = TvByRegion{2e-4, 1e-3, 1e-3, 1e-2, 1e-2, 1e-2};
  p.inversion["tuned/queryfree"] = tuned_qf;
  p.decoders["conv1"] = {conv("deconv1", 8, 1, 5, 1, 4)};  // [8, 24, 24] -> [1, 28, 28]
  p.decoders["ReLU2"] = {deconv("deconv1", 16, 8, 5), act("deconv1act", LayerKind::relu),
                         deconv("deconv2", 8, 1, 5, 2, 0, 1)};            // [16, 8, 8] -> [8, 12, 12] -> [1, 28, 28]
  p.shadows["conv1"] = {conv("conv1", 1, 8, 3), conv("conv2", 8, 8, 3)};  // two 3x3 convs: 28 -> 26 -> 24
  p.shadows["ReLU2"] = {conv("conv1", 1, 8, 5), act("ReLU1", LayerKind::relu), pool("pool1", 2),
                        conv("conv2", 8, 16, 5), act("ReLU2", LayerKind::relu)};
  return p;
}

// CIFAR10CNN on CIFAR-10: the reference's λ 10 (ReLU22 command) in the conv part, 1e3 on the FC side; its
// query-free inversion runs at lr 0.1, λ 2, 500 iterations. No tuned setting measured yet.
ModelProfile cifar10cnn_data() {
  ModelProfile p;
  p.arch = "cifar10cnn";
  p.dataset = "cifar10";
  p.input_shape = Shape{3, 32, 32};
  p.measured = true;
  InversionHint ref;
  ref.tv = TvByRegion{10, 10, 10, 1e3, 1e3, 1e3};
  p.inversion["reference"] = ref;
  InversionHint qf;
  qf.tv = TvByRegion{2, 2, 2, 2, 2, 2};
  qf.lr = 0.1;
  qf.iters = 500;
  p.inversion["reference/queryfree"] = qf;
  // [128, 16, 16] -> [64, 32, 32] -> [3, 32, 32]
  p.decoders["ReLU22"] = {deconv("deconv1", 128, 64, 3, 2, 1, 1), act("deconv1act", LayerKind::relu),
                          deconv("deconv2", 64, 3, 3, 1, 1)};
  return p;
}

}  // namespace

ModelProfile builtin_profile(const std::string& arch) {
  if (arch == "lenet") return lenet_data();
  if (arch == "cifar10cnn") return cifar10cnn_data();
  ModelProfile p;
  p.arch = arch;
  p.inversion["reference"] = InversionHint{};  // TvByRegion's defaults: lenet's reference suggestions
  return p;
}

ModelProfile profile_of(const Model& model) {
  SL_CHECK(model.net, ValueError, "profile: model '", model.arch, "' has no network");
  ModelProfile p = builtin_profile(model.arch);
  p.input_shape = model.input_shape;
  p.layers.clear();
  const auto& children = model.net->children();
  auto shapes = model.net->output_shapes(model.batch_shape(1));
  size_t first_pool = children.size(), first_fc = children.size();
  for (size_t i = 0; i < children.size(); ++i) {
    LayerKind k = layer_kind_of(*children[i].second);
    if (k == LayerKind::max_pool && first_pool == children.size()) first_pool = i;
    if (k == LayerKind::linear && first_fc == children.size()) first_fc = i;
  }
  if (!p.measured) {
    // A model of unknown make (an imported one): the regions come from the shapes alone. The first layer that
    // shrinks the height below 3/4 of its input's (a pooling layer or a strided convolution, whatever its kind; not
    // the border an unpadded convolution loses) plays the first pool; the first layer with a flat output [F], other
    // than a Flatten, starts the fully connected part.
    first_pool = first_fc = children.size();
    int64_t prev_h = model.input_shape[1];
    for (size_t i = 0; i < children.size(); ++i) {
      const Shape& s = shapes[i].second;
      if (s.rank() == 4) {
        if (s[2] * 4 < prev_h * 3 && first_pool == children.size()) first_pool = i;
        prev_h = s[2];
      }
      if (s.rank() == 2 && layer_kind_of(*children[i].second) != LayerKind::flatten && first_fc == children.size())
        first_fc = i;
    }
    if (first_pool > first_fc) first_pool = first_fc;
  }
  for (size_t i = 0; i < children.size(); ++i) {
    LayerFacts f;
    f.name = children[i].first;
    f.kind = layer_kind_of(*children[i].second);
    f.index = i;
    f.region = i >= first_fc     ? Region::fc
               : i < first_pool  ? Region::early
               : i == first_pool ? Region::first_pool
                                 : Region::conv;
    const Shape& s = shapes[i].second;
    f.output = Shape(std::vector<int64_t>(s.dims().begin() + 1, s.dims().end()));
    p.layers.push_back(f);
  }
  return p;
}

}  // namespace sl
