#include "runtime/deploy.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "tensor/io.h"
#include "tensor/serialize.h"

namespace sl::runtime {

namespace {

std::string hex8(uint32_t v) {
  char b[9];
  std::snprintf(b, sizeof b, "%08x", v);
  return b;
}

std::vector<std::string> split_csv(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (auto& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

// CRC-32 of every parameter of the model (names and little-endian values), in order.
uint32_t weights_digest(const Module& net) {
  uint32_t c = 0;
  for (auto& [name, t] : net.named_parameters()) {
    c = io::crc32(name.data(), name.size(), c);
    Bytes b;
    put_tensor(b, t);
    c = io::crc32(b.data(), b.size(), c);
  }
  return c;
}

// The layers [first, last) of net as a Sequential sharing the layer objects.
std::shared_ptr<Sequential> layer_range(const Sequential& net, size_t first, size_t last) {
  auto s = std::make_shared<Sequential>();
  for (size_t i = first; i < last && i < net.children().size(); ++i)
    s->add(net.children()[i].first, net.children()[i].second);
  s->train(net.is_training());
  return s;
}

}  // namespace

std::string shape_csv(const Shape& s) {
  std::string out;
  for (auto d : s.dims()) {
    if (!out.empty()) out += ',';
    out += std::to_string(d);
  }
  return out;
}

Shape parse_shape_csv(const std::string& s) {
  std::vector<int64_t> dims;
  for (auto& item : split_csv(s)) {
    size_t used = 0;
    long long v = 0;
    try {
      v = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SL_CHECK(used == item.size() && v > 0 && v < (1ll << 31), ValueError, "bad shape '", s, "'");
    dims.push_back(v);
  }
  SL_CHECK(!dims.empty() && dims.size() <= size_t(kMaxTensorRank), ValueError, "bad shape '", s, "'");
  return Shape(dims);
}

std::vector<std::string> parse_split_list(const Sequential& net, const std::string& spec) {
  std::vector<std::string> names = net.layer_names();
  if (spec == "all") {
    names.insert(names.begin(), "input");
    return names;
  }
  std::vector<std::string> asked = split_csv(spec);
  SL_CHECK(!asked.empty(), ValueError, "no split layer given (a layer name, a comma-separated list, or 'all')");
  std::vector<std::pair<size_t, std::string>> order;
  for (auto& a : asked) {
    size_t idx = a == "input" ? 0 : net.index_of(a) + 1;  // index_of: ValueError naming the layers
    for (auto& [i, n] : order) SL_CHECK(n != a, ValueError, "split '", a, "' given twice");
    order.emplace_back(idx, a);
  }
  std::sort(order.begin(), order.end());
  std::vector<std::string> out;
  for (auto& [i, n] : order) out.push_back(n);
  return out;
}

std::vector<SplitPoint> split_points(const Model& model, const std::vector<std::string>& names) {
  const Sequential& net = *model.net;
  std::string wdigest = hex8(weights_digest(net));
  Shape in = model.batch_shape(1);
  auto shapes = net.output_shapes(in);
  std::vector<SplitPoint> out;
  for (auto& name : names) {
    SplitPoint s;
    s.name = name;
    s.edge_layers = name == "input" ? 0 : net.index_of(name) + 1;
    Shape v = s.edge_layers == 0 ? in : shapes[s.edge_layers - 1].second;
    s.sample_shape = Shape(std::vector<int64_t>(v.dims().begin() + 1, v.dims().end()));
    // The head's structure, as text, then its CRC.
    std::string text = str("arch=", model.arch, ";input=", in.str(), ";");
    for (size_t i = 0; i < s.edge_layers; ++i) {
      auto& [lname, layer] = net.children()[i];
      text += lname + ":" + layer->describe();
      for (auto& [pname, t] : layer->named_parameters()) text += "|" + pname + t.shape().str();
      text += ";";
    }
    text += "out=" + v.str();
    s.fingerprint = str(model.arch, "/", name, "/s", hex8(io::crc32(text.data(), text.size())), "/w", wdigest);
    out.push_back(std::move(s));
  }
  return out;
}

SplitFiles write_split(const Model& model, const std::vector<std::string>& names, const std::string& dir,
                       const std::map<std::string, std::string>& meta,
                       const std::map<std::string, DefenseCalibration>& calibration) {
  SL_CHECK(!names.empty(), ValueError, "no split given");
  const Sequential& net = *model.net;
  SplitFiles f;
  f.splits = split_points(model, names);
  size_t deepest = 0, shallowest = net.size();
  for (auto& s : f.splits) {
    deepest = std::max(deepest, s.edge_layers);
    shallowest = std::min(shallowest, s.edge_layers);
  }
  auto edge = layer_range(net, 0, deepest);
  auto cloud = layer_range(net, shallowest, net.size());
  f.edge_params = edge->num_parameters();
  f.cloud_params = cloud->num_parameters();

  std::map<std::string, std::string> common = meta;
  common["splits"] = join(names);
  common["input_shape"] = shape_csv(model.input_shape);
  common["classes"] = std::to_string(model.num_classes);
  for (auto& s : f.splits) {
    common["fingerprint." + s.name] = s.fingerprint;
    common["sample_shape." + s.name] = shape_csv(s.sample_shape);
    common["edge_layers." + s.name] = std::to_string(s.edge_layers);
  }
  auto side = [&](const std::string& role, const std::shared_ptr<Sequential>& part, size_t first) {
    auto m = common;
    m["role"] = role;
    m["layers"] = join(part->layer_names());
    m["first_layer"] = std::to_string(first);
    return m;
  };
  std::filesystem::path d(dir);
  f.edge_path = (d / "edge.ckpt").string();
  f.cloud_path = (d / "cloud.ckpt").string();
  // Both checkpoints are complete before either is written, so a failure leaves no half deployment behind.
  auto edge_meta = side("edge", edge, 0);
  for (auto& [name, cal] : calibration) {
    SL_CHECK(std::find(names.begin(), names.end(), name) != names.end(), ValueError, "a calibration for split '", name,
             "', which is not one of the splits written");
    edge_meta["cis_calibration." + name] = calibration_text(cal);
  }
  Checkpoint ce = make_checkpoint(*edge, model.arch, edge_meta);
  Checkpoint cc = make_checkpoint(*cloud, model.arch, side("cloud", cloud, shallowest));
  save_checkpoint(f.edge_path, ce);
  save_checkpoint(f.cloud_path, cc);
  return f;
}

const SplitPoint& Deployment::split(const std::string& name) const {
  for (auto& s : splits)
    if (s.name == name) return s;
  std::string served;
  for (auto& s : splits) served += (served.empty() ? "" : ", ") + s.name;
  throw ValueError(str(role, " checkpoint has no split '", name, "'; it serves: ", served));
}

const SplitPoint* Deployment::find_fingerprint(const std::string& fp) const {
  for (auto& s : splits)
    if (s.fingerprint == fp) return &s;
  return nullptr;
}

std::shared_ptr<Sequential> Deployment::part(const SplitPoint& s) const {
  if (role == "edge") return layer_range(*net, 0, s.edge_layers);
  return layer_range(*net, s.edge_layers - first_layer, net->size());
}

SplitPipeline Deployment::pipeline(const SplitPoint& s, DefenseChain defenses) const {
  Model m{arch, input_shape, num_classes, net};
  if (role == "edge") return SplitPipeline::from_parts(m, s.name, part(s), nullptr, std::move(defenses));
  SL_CHECK(defenses.empty(), ValueError, "the defenses run on the edge, not in the cloud");
  return SplitPipeline::from_parts(m, s.name, nullptr, part(s));
}

const DefenseCalibration& Deployment::calibration_of(const SplitPoint& s) const {
  auto it = calibration.find(s.name);
  SL_CHECK(it != calibration.end(), ValueError, "this ", role, " checkpoint holds no channel calibration for split ",
           s.name, " (CIS with alloc=rank needs one): split again with `splitleak split ... --calibrate 256`, or use ",
           "alloc=uniform");
  return it->second;
}

std::vector<std::string> Deployment::fingerprints() const {
  std::vector<std::string> v;
  for (auto& s : splits) v.push_back(s.fingerprint);
  return v;
}

Deployment load_deployment(const std::string& path, const std::string& role, Device device) {
  Deployment d;
  d.ckpt = load_checkpoint(path);
  const Checkpoint& c = d.ckpt;
  std::string got = c.get("role");
  SL_CHECK(!got.empty(), ValueError, path, " is a whole '", c.arch,
           "' model, not one side of a split (run `splitleak split --model ", path,
           " --at LAYER --out DIR` and use DIR/", role, ".ckpt)");
  SL_CHECK(got == role, ValueError, path, " is the ", got, " side of a split; this command needs the ", role, " side (",
           role, ".ckpt)");
  d.role = role;
  d.arch = c.arch;
  auto need = [&](const std::string& key) {
    std::string v = c.get(key);
    SL_CHECK(!v.empty(), ValueError, path, ": split checkpoint without '", key, "' in its metadata");
    return v;
  };
  auto need_uint = [&](const std::string& key) {
    std::string v = need(key);
    size_t used = 0;
    unsigned long long x = 0;
    try {
      x = std::stoull(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SL_CHECK(used == v.size() && x < (1ull << 31), ValueError, path, ": metadata '", key, "' is not a count: '", v,
             "'");
    return size_t(x);
  };
  d.input_shape = parse_shape_csv(need("input_shape"));
  d.num_classes = int(need_uint("classes"));
  d.layers = split_csv(need("layers"));
  d.first_layer = need_uint("first_layer");

  // The full architecture gives the layer objects; only this side's layers are kept and loaded.
  Generator gen(0);
  Model full = make_model(d.arch, gen);
  SL_CHECK(full.input_shape == d.input_shape, ValueError, path, ": input shape ", d.input_shape.str(),
           " does not fit '", d.arch, "' (", full.input_shape.str(), ")");
  auto all = full.net->layer_names();
  SL_CHECK(d.first_layer + d.layers.size() <= all.size(), ValueError, path, ": layer range out of the model");
  for (size_t i = 0; i < d.layers.size(); ++i)
    SL_CHECK(all[d.first_layer + i] == d.layers[i], ValueError, path, ": layer '", d.layers[i], "' is not layer ",
             d.first_layer + i, " of '", d.arch, "'");
  d.net = layer_range(*full.net, d.first_layer, d.first_layer + d.layers.size());
  full.net.reset();  // the other side's layers (never loaded) go away here
  load_into(*d.net, d.arch, c);

  for (auto& name : split_csv(need("splits"))) {
    SplitPoint s;
    s.name = name;
    s.fingerprint = need("fingerprint." + name);
    s.sample_shape = parse_shape_csv(need("sample_shape." + name));
    s.edge_layers = need_uint("edge_layers." + name);
    bool held = role == "edge" ? s.edge_layers <= d.layers.size()
                               : s.edge_layers >= d.first_layer && s.edge_layers <= d.first_layer + d.layers.size();
    SL_CHECK(held, ValueError, path, ": split '", name, "' needs layers this ", role, " checkpoint does not hold");
    const std::string cal = c.get("cis_calibration." + name);
    if (!cal.empty()) {
      DefenseCalibration dc = parse_calibration(cal, path + ": metadata 'cis_calibration." + name + "'");
      const int64_t channels = s.sample_shape.rank() >= 1 ? s.sample_shape[0] : 0;
      SL_CHECK(int64_t(dc.channel_rank.size()) == channels, ValueError, path, ": metadata 'cis_calibration.", name,
               "' holds ", dc.channel_rank.size(), " channel ranks, the split's tensor ", s.sample_shape.str(), " has ",
               channels, " channels");
      d.calibration[name] = std::move(dc);
    }
    d.splits.push_back(std::move(s));
  }
  SL_CHECK(!d.splits.empty(), ValueError, path, ": no split listed");
  d.net->to(device);
  d.net->eval();
  return d;
}

}  // namespace sl::runtime
