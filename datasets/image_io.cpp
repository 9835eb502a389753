#include "datasets/image_io.h"

#include <algorithm>
#include <array>
#include <climits>
#include <cmath>
#include <cstring>

#include "datasets/dataset.h"
#include "tensor/io.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace sl::data {

namespace {

// --- PNG container check: signature, chunk framing and CRC-32 of every chunk (stb_image checks none of the CRCs,
// so without this a flipped bit in the compressed data could decode to wrong pixels without any error).

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

std::string chunk_name(const uint8_t* p) {
  std::string s;
  for (int i = 0; i < 4; ++i) s += (p[i] >= 32 && p[i] < 127) ? char(p[i]) : '?';
  return s;
}

// header_only: stop after the IHDR chunk.
void check_png_container(const std::vector<uint8_t>& b, const std::string& path, bool header_only = false) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (b.size() < 8 || std::memcmp(b.data(), sig, 8) != 0)
    throw IoError(str(path, ": not a PNG file (no PNG signature at byte 0; file has ", b.size(), " bytes)"));
  size_t pos = 8;
  bool first = true;
  for (;;) {
    if (pos + 12 > b.size())
      throw IoError(str(path, ": corrupt PNG: truncated at byte ", b.size(), ", expected a chunk header at byte ", pos,
                        (first ? "" : " (no IEND chunk)")));
    const uint32_t len = be32(&b[pos]);
    const std::string name = chunk_name(&b[pos + 4]);
    if (len > 0x7FFFFFFFu || pos + 12 + uint64_t(len) > b.size())
      throw IoError(str(path, ": corrupt PNG: truncated at byte ", b.size(), ", expected ", pos + 12 + uint64_t(len),
                        " bytes for the ", name, " chunk at byte ", pos));
    if (first && name != "IHDR")
      throw IoError(str(path, ": corrupt PNG: first chunk at byte 8 is ", name, ", expected IHDR"));
    const uint32_t want = be32(&b[pos + 8 + len]);
    const uint32_t got = io::crc32(&b[pos + 4], size_t(len) + 4);
    if (want != got)
      throw IoError(str(path, ": corrupt PNG: CRC mismatch in the ", name, " chunk at byte ", pos, " (data bytes ",
                        pos + 8, "..", pos + 8 + len, ")"));
    first = false;
    pos += 12 + size_t(len);
    if (name == "IEND" || header_only) return;
  }
}

uint8_t to_byte(float v) {
  if (!(v > 0.0f)) return 0;  // also NaN
  if (v >= 1.0f) return 255;
  return uint8_t(std::lround(v * 255.0f));
}

Tensor cpu_f32(const Tensor& t) {
  Tensor x = t.device().is_cpu() ? t : t.to(Device::cpu());
  return x.to(DType::f32).contiguous();
}

// --- 5x7 font. Each glyph: 7 rows, 5 columns, '#' = ink. -----------------------------------------------------
struct Glyph {
  char c;
  const char* rows[7];
};

// clang-format off
const Glyph kFont[] = {
  {' ', {"     ", "     ", "     ", "     ", "     ", "     ", "     "}},
  {'A', {" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"}},
  {'B', {"#### ", "#   #", "#   #", "#### ", "#   #", "#   #", "#### "}},
  {'C', {" ### ", "#   #", "#    ", "#    ", "#    ", "#   #", " ### "}},
  {'D', {"#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "}},
  {'E', {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"}},
  {'F', {"#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#    "}},
  {'G', {" ### ", "#   #", "#    ", "# ###", "#   #", "#   #", " ####"}},
  {'H', {"#   #", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"}},
  {'I', {" ### ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
  {'J', {"  ###", "   # ", "   # ", "   # ", "   # ", "#  # ", " ##  "}},
  {'K', {"#   #", "#  # ", "# #  ", "##   ", "# #  ", "#  # ", "#   #"}},
  {'L', {"#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"}},
  {'M', {"#   #", "## ##", "# # #", "# # #", "#   #", "#   #", "#   #"}},
  {'N', {"#   #", "#   #", "##  #", "# # #", "#  ##", "#   #", "#   #"}},
  {'O', {" ### ", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}},
  {'P', {"#### ", "#   #", "#   #", "#### ", "#    ", "#    ", "#    "}},
  {'Q', {" ### ", "#   #", "#   #", "#   #", "# # #", "#  # ", " ## #"}},
  {'R', {"#### ", "#   #", "#   #", "#### ", "# #  ", "#  # ", "#   #"}},
  {'S', {" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "}},
  {'T', {"#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "}},
  {'U', {"#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "}},
  {'V', {"#   #", "#   #", "#   #", "#   #", "#   #", " # # ", "  #  "}},
  {'W', {"#   #", "#   #", "#   #", "# # #", "# # #", "# # #", " # # "}},
  {'X', {"#   #", "#   #", " # # ", "  #  ", " # # ", "#   #", "#   #"}},
  {'Y', {"#   #", "#   #", " # # ", "  #  ", "  #  ", "  #  ", "  #  "}},
  {'Z', {"#####", "    #", "   # ", "  #  ", " #   ", "#    ", "#####"}},
  {'0', {" ### ", "#   #", "#  ##", "# # #", "##  #", "#   #", " ### "}},
  {'1', {"  #  ", " ##  ", "  #  ", "  #  ", "  #  ", "  #  ", " ### "}},
  {'2', {" ### ", "#   #", "    #", "   # ", "  #  ", " #   ", "#####"}},
  {'3', {"#####", "   # ", "  #  ", "   # ", "    #", "#   #", " ### "}},
  {'4', {"   # ", "  ## ", " # # ", "#  # ", "#####", "   # ", "   # "}},
  {'5', {"#####", "#    ", "#### ", "    #", "    #", "#   #", " ### "}},
  {'6', {"  ## ", " #   ", "#    ", "#### ", "#   #", "#   #", " ### "}},
  {'7', {"#####", "    #", "   # ", "  #  ", " #   ", " #   ", " #   "}},
  {'8', {" ### ", "#   #", "#   #", " ### ", "#   #", "#   #", " ### "}},
  {'9', {" ### ", "#   #", "#   #", " ####", "    #", "   # ", " ##  "}},
  {'.', {"     ", "     ", "     ", "     ", "     ", " ##  ", " ##  "}},
  {',', {"     ", "     ", "     ", "     ", " ##  ", "  #  ", " #   "}},
  {':', {"     ", " ##  ", " ##  ", "     ", " ##  ", " ##  ", "     "}},
  {';', {"     ", " ##  ", " ##  ", "     ", " ##  ", "  #  ", " #   "}},
  {'-', {"     ", "     ", "     ", "#####", "     ", "     ", "     "}},
  {'+', {"     ", "  #  ", "  #  ", "#####", "  #  ", "  #  ", "     "}},
  {'=', {"     ", "     ", "#####", "     ", "#####", "     ", "     "}},
  {'_', {"     ", "     ", "     ", "     ", "     ", "     ", "#####"}},
  {'/', {"    #", "    #", "   # ", "  #  ", " #   ", "#    ", "#    "}},
  {'(', {"   # ", "  #  ", " #   ", " #   ", " #   ", "  #  ", "   # "}},
  {')', {" #   ", "  #  ", "   # ", "   # ", "   # ", "  #  ", " #   "}},
  {'[', {" ### ", " #   ", " #   ", " #   ", " #   ", " #   ", " ### "}},
  {']', {" ### ", "   # ", "   # ", "   # ", "   # ", "   # ", " ### "}},
  {'<', {"   # ", "  #  ", " #   ", "#    ", " #   ", "  #  ", "   # "}},
  {'>', {" #   ", "  #  ", "   # ", "    #", "   # ", "  #  ", " #   "}},
  {'%', {"##   ", "##  #", "   # ", "  #  ", " #   ", "#  ##", "   ##"}},
  {'!', {"  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "     ", "  #  "}},
  {'?', {" ### ", "#   #", "    #", "   # ", "  #  ", "     ", "  #  "}},
  {'\'', {"  #  ", "  #  ", "     ", "     ", "     ", "     ", "     "}},
  {'*', {"     ", "  #  ", "# # #", " ### ", "# # #", "  #  ", "     "}},
  {'#', {" # # ", " # # ", "#####", " # # ", "#####", " # # ", " # # "}},
  {'|', {"  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "}},
};
// clang-format on

const Glyph& glyph_for(char ch) {
  static const std::array<const Glyph*, 128> index = [] {
    std::array<const Glyph*, 128> ix{};
    for (const Glyph& g : kFont) ix[size_t(g.c)] = &g;
    return ix;
  }();
  unsigned char c = static_cast<unsigned char>(ch);
  if (c >= 'a' && c <= 'z') c = static_cast<unsigned char>(c - 'a' + 'A');
  if (c < 128 && index[c]) return *index[c];
  return *index[size_t('?')];
}

}  // namespace

Image8 decode_png(const std::vector<uint8_t>& bytes, const std::string& path) {
  check_png_container(bytes, path);
  if (bytes.size() > size_t(INT_MAX)) throw IoError(str(path, ": PNG of ", bytes.size(), " bytes is too large"));
  const auto* p = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = int(bytes.size());
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(p, len, &w, &h, &comp))
    throw IoError(str(path, ": corrupt PNG header (", stbi_failure_reason(), ")"));
  Image8 img;
  img.bit_depth = stbi_is_16_bit_from_memory(p, len) ? 16 : 8;
  stbi_uc* px = stbi_load_from_memory(p, len, &w, &h, &comp, 0);
  if (!px) throw IoError(str(path, ": corrupt PNG data (", stbi_failure_reason(), ")"));
  img.width = w;
  img.height = h;
  img.channels = comp;
  img.pixels.assign(px, px + size_t(w) * h * comp);
  stbi_image_free(px);
  return img;
}

Image8 png_info(const std::vector<uint8_t>& bytes, const std::string& path) {
  check_png_container(bytes, path, true);
  if (bytes.size() > size_t(INT_MAX)) throw IoError(str(path, ": PNG of ", bytes.size(), " bytes is too large"));
  const auto* p = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = int(bytes.size());
  Image8 img;
  if (!stbi_info_from_memory(p, len, &img.width, &img.height, &img.channels))
    throw IoError(str(path, ": corrupt PNG header (", stbi_failure_reason(), ")"));
  img.bit_depth = stbi_is_16_bit_from_memory(p, len) ? 16 : 8;
  return img;
}

Image8 read_png(const std::string& path) { return decode_png(io::read_file(path, "PNG image"), path); }

std::vector<uint8_t> encode_png(const Image8& img) {
  SL_CHECK(img.width > 0 && img.height > 0 && img.channels >= 1 && img.channels <= 4, ValueError,
           "encode_png: bad image ", img.width, "x", img.height, "x", img.channels);
  SL_CHECK(img.pixels.size() == size_t(img.width) * img.height * img.channels, ValueError,
           "encode_png: ", img.pixels.size(), " pixel bytes for a ", img.width, "x", img.height, "x", img.channels,
           " image");
  std::vector<uint8_t> out;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(ctx);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  const int ok = stbi_write_png_to_func(sink, &out, img.width, img.height, img.channels, img.pixels.data(),
                                        img.width * img.channels);
  if (!ok) throw IoError(str("encode_png: stb_image_write failed for a ", img.width, "x", img.height, " image"));
  return out;
}

void write_png(const std::string& path, const Image8& img) {
  const std::vector<uint8_t> bytes = encode_png(img);
  io::write_file_atomic(path, bytes.data(), bytes.size(), "PNG image");
}

Image8 to_image8(const Tensor& image01) {
  SL_CHECK(image01.defined(), ValueError, "to_image8: undefined tensor");
  const bool ok_rank = image01.dim() == 3 || (image01.dim() == 4 && image01.size(0) == 1);
  SL_CHECK(ok_rank, ShapeError, "to_image8: expected [C, H, W] or [1, C, H, W], got ", image01.shape().str());
  Tensor x = cpu_f32(image01);
  const int C = int(x.size(-3)), H = int(x.size(-2)), W = int(x.size(-1));
  SL_CHECK(C == 1 || C == 3, ShapeError, "to_image8: expected 1 or 3 channels, got ", C);
  Image8 img;
  img.width = W;
  img.height = H;
  img.channels = C;
  img.pixels.resize(size_t(W) * H * C);
  const float* s = x.data<float>();
  for (int c = 0; c < C; ++c)
    for (int i = 0; i < H * W; ++i) img.pixels[size_t(i) * C + c] = to_byte(s[size_t(c) * H * W + i]);
  return img;
}

Tensor to_tensor(const Image8& img) {
  const int C = img.channels == 2 ? 1 : img.channels == 4 ? 3 : img.channels;
  Tensor t = Tensor::empty(Shape{C, img.height, img.width}, DType::f32);
  float* d = t.data<float>();
  const size_t plane = size_t(img.width) * img.height;
  for (int c = 0; c < C; ++c)
    for (size_t i = 0; i < plane; ++i) d[c * plane + i] = img.pixels[i * img.channels + c] / 255.0f;
  return t;
}

void write_png(const std::string& path, const Tensor& image01) { write_png(path, to_image8(image01)); }

void draw_text(Image8& img, int x, int y, const std::string& text, uint8_t value, int clip_x) {
  const int right = clip_x < 0 ? img.width : std::min(clip_x, img.width);
  for (size_t k = 0; k < text.size(); ++k) {
    const Glyph& g = glyph_for(text[k]);
    const int gx = x + int(k) * kGlyphAdvance;
    for (int r = 0; r < kGlyphH; ++r)
      for (int c = 0; c < kGlyphW; ++c) {
        if (g.rows[r][c] != '#') continue;
        const int px = gx + c, py = y + r;
        if (px < 0 || py < 0 || px >= right || py >= img.height) continue;
        for (int ch = 0; ch < img.channels; ++ch) img.pixels[(size_t(py) * img.width + px) * img.channels + ch] = value;
      }
  }
}

Image8 make_grid(const std::vector<Tensor>& rows, const GridOptions& opt) {
  SL_CHECK(!rows.empty(), ValueError, "make_grid: no rows");
  SL_CHECK(opt.pad >= 0 && opt.scale >= 1 && opt.scale <= 64, ValueError, "make_grid: pad ", opt.pad, " and scale ",
           opt.scale, " must be >= 0 and in 1..64");
  SL_CHECK(opt.row_labels.empty() || opt.row_labels.size() == rows.size(), ValueError,
           "make_grid: ", opt.row_labels.size(), " row labels for ", rows.size(), " rows");
  std::vector<Tensor> batch;
  int64_t H = -1, W = -1, cols = 0, channels = 1;
  for (size_t r = 0; r < rows.size(); ++r) {
    const Tensor& t = rows[r];
    SL_CHECK(t.defined() && (t.dim() == 3 || t.dim() == 4), ShapeError, "make_grid: row ", r,
             " must be [N, C, H, W] or [C, H, W], got ", t.defined() ? t.shape().str() : "undefined");
    Tensor x = cpu_f32(t);
    if (x.dim() == 3) x = x.reshape(Shape{1, x.size(0), x.size(1), x.size(2)});
    SL_CHECK(x.size(1) == 1 || x.size(1) == 3, ShapeError, "make_grid: row ", r, " has ", x.size(1),
             " channels, expected 1 or 3");
    if (H < 0) {
      H = x.size(2);
      W = x.size(3);
    }
    SL_CHECK(x.size(2) == H && x.size(3) == W, ShapeError, "make_grid: row ", r, " holds ", x.size(2), "x", x.size(3),
             " images, row 0 holds ", H, "x", W);
    cols = std::max(cols, x.size(0));
    channels = std::max(channels, x.size(1));
    batch.push_back(x);
  }
  cols = std::max<int64_t>(cols, int64_t(opt.col_labels.size()));
  const int pad = opt.pad;
  size_t longest = 0;
  for (const auto& s : opt.row_labels) longest = std::max(longest, s.size());
  const int left = longest ? int(longest) * kGlyphAdvance + pad : 0;  // glyph spacing + pad before the images
  const int top = opt.col_labels.empty() ? 0 : kGlyphH + pad;
  const int gw = pad + left + int(cols) * int(W + pad);
  const int gh = pad + top + int(rows.size()) * int(H + pad);

  Image8 g;
  g.width = gw;
  g.height = gh;
  g.channels = int(channels);
  g.pixels.assign(size_t(gw) * gh * g.channels, to_byte(opt.background));
  const uint8_t ink = opt.background > 0.5f ? 0 : 255;

  for (size_t r = 0; r < batch.size(); ++r) {
    const Tensor& x = batch[r];
    const int64_t C = x.size(1);
    const float* src = x.data<float>();
    const int y0 = pad + top + int(r) * int(H + pad);
    for (int64_t n = 0; n < x.size(0); ++n) {
      const int x0 = pad + left + int(n) * int(W + pad);
      for (int64_t yy = 0; yy < H; ++yy)
        for (int64_t xx = 0; xx < W; ++xx)
          for (int ch = 0; ch < g.channels; ++ch) {
            const int64_t sc = C == 1 ? 0 : ch;
            const float v = src[((n * C + sc) * H + yy) * W + xx];
            g.pixels[((size_t(y0) + yy) * gw + x0 + xx) * g.channels + ch] = to_byte(v);
          }
    }
    if (!opt.row_labels.empty()) draw_text(g, pad, y0 + int(H - kGlyphH) / 2, opt.row_labels[r], ink, pad + left);
  }
  for (size_t c = 0; c < opt.col_labels.size(); ++c) {
    const int x0 = pad + left + int(c) * int(W + pad);
    draw_text(g, x0, pad, opt.col_labels[c], ink, x0 + int(W + pad));
  }
  if (opt.scale == 1) return g;

  Image8 s;
  const int k = opt.scale;
  s.width = gw * k;
  s.height = gh * k;
  s.channels = g.channels;
  s.pixels.resize(size_t(s.width) * s.height * s.channels);
  for (int y = 0; y < s.height; ++y)
    for (int x = 0; x < s.width; ++x)
      std::memcpy(&s.pixels[(size_t(y) * s.width + x) * s.channels],
                  &g.pixels[(size_t(y / k) * gw + x / k) * g.channels], size_t(g.channels));
  return s;
}

void write_grid(const std::string& path, const std::vector<Tensor>& rows, const GridOptions& opt) {
  write_png(path, make_grid(rows, opt));
}

}  // namespace sl::data
