// A data set of PNG images in class folders (datasets/folder.h).
#include "datasets/folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "datasets/image_io.h"

namespace sl::data {

namespace fs = std::filesystem;

namespace {

bool is_png(const fs::path& p) {
  std::string e = p.extension().string();
  for (char& c : e) c = char(std::tolower(static_cast<unsigned char>(c)));
  return e == ".png";
}

}  // namespace

Dataset load_folder(const std::string& dir, bool train, int64_t limit) {
  std::error_code ec;
  SL_CHECK(fs::is_directory(dir, ec), IoError, "data set folder '", printable(dir), "' is not a folder");
  fs::path root = dir;
  const bool split = fs::is_directory(root / "train", ec) && fs::is_directory(root / "test", ec);
  if (split) root /= train ? "train" : "test";
  std::vector<std::string> classes;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory()) classes.push_back(e.path().filename().string());
  SL_CHECK(!ec, IoError, "data set folder '", printable(root.string()), "': ", ec.message());
  std::sort(classes.begin(), classes.end());
  SL_CHECK(!classes.empty(), IoError, "data set folder '", printable(root.string()),
           "' has no class sub-folders (one sub-folder of PNG images per class, named in the order of the classes)");
  SL_CHECK(classes.size() <= 100000, IoError, "data set folder '", printable(root.string()), "' has ", classes.size(),
           " class folders");
  std::vector<std::vector<fs::path>> files(classes.size());
  size_t total = 0, most = 0;
  for (size_t k = 0; k < classes.size(); ++k) {
    for (const auto& e : fs::directory_iterator(root / classes[k], ec))
      if (e.is_regular_file() && is_png(e.path())) files[k].push_back(e.path());
    std::sort(files[k].begin(), files[k].end());
    total += files[k].size();
    most = std::max(most, files[k].size());
  }
  SL_CHECK(total > 0, IoError, "data set folder '", printable(root.string()), "' holds no PNG images in its ",
           classes.size(), " class folders");
  // The classes take turns (image 0 of every class, then image 1, ...), so the first N images cover every class.
  std::vector<std::pair<fs::path, int32_t>> order;
  for (size_t j = 0; j < most; ++j)
    for (size_t k = 0; k < classes.size(); ++k)
      if (j < files[k].size()) order.emplace_back(files[k][j], int32_t(k));
  if (limit >= 0 && size_t(limit) < order.size()) order.resize(size_t(limit));

  Dataset d;
  d.name = "folder:" + dir;
  d.split = train ? "train" : "test";
  d.classes = int(classes.size());
  int C = 0, H = 0, W = 0;
  std::string first;
  std::vector<float> table;
  float* dst = nullptr;
  for (size_t i = 0; i < order.size(); ++i) {
    const std::string path = order[i].first.string();
    Image8 img = read_png(path);
    const int c = img.channels <= 2 ? 1 : 3;  // alpha is dropped
    if (i == 0) {
      C = c, H = img.height, W = img.width, first = path;
      SL_CHECK(int64_t(H) * W * C * int64_t(order.size()) <= (int64_t(1) << 31), IoError, "data set folder '",
               printable(dir), "': ", order.size(), " images of ", W, "x", H, " are too many to hold (use --limit)");
      d.norm = C == 1 ? mnist_normalization() : cifar10_normalization();
      d.images = Tensor::empty(Shape{int64_t(order.size()), C, H, W});
      dst = d.images.data<float>();
      table.resize(size_t(C) * 256);
      for (int ch = 0; ch < C; ++ch)
        for (int p = 0; p < 256; ++p)
          table[size_t(ch) * 256 + size_t(p)] = (float(p) / 255.0f - d.norm.mean[size_t(ch)]) / d.norm.std[size_t(ch)];
    }
    SL_CHECK(img.width == W && img.height == H && c == C, IoError, printable(path), ": ", img.width, "x", img.height,
             c == 1 ? " grey" : " colour", " image, but the data set's first image (", printable(first), ") is ", W,
             "x", H, C == 1 ? " grey" : " colour", "; every image must have the same size and kind");
    for (int ch = 0; ch < C; ++ch)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) *dst++ = table[size_t(ch) * 256 + img.at(x, y, img.channels <= 2 ? 0 : ch)];
    d.labels.push_back(order[i].second);
  }
  d.source = str(printable(root.string()), ": ", d.size(), " PNG images in ", classes.size(), " class folders");
  return d;
}

}  // namespace sl::data
