// Image I/O: PNG read/write (stb), float [0, 1] tensors <-> 8-bit images, and a labelled image grid writer
// (rows of images, e.g. originals over reconstructions) with a small built-in 5x7 bitmap font.
// Every write is atomic (temp file + rename): a reader never sees half an image.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace sl::data {

// An 8-bit image, pixels interleaved (row-major, `channels` bytes per pixel).
struct Image8 {
  int width = 0, height = 0, channels = 0;  // channels: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA
  int bit_depth = 8;                        // 16 when the PNG stored 16-bit samples (pixels are reduced to 8)
  std::vector<uint8_t> pixels;
  uint8_t at(int x, int y, int c) const { return pixels[(size_t(y) * width + x) * channels + c]; }
};

// Checks the PNG signature, chunk lengths and every chunk CRC, then decodes. `path` is for messages.
// Throws IoError "path: ..." with the byte offset for a truncated or corrupt file.
Image8 decode_png(const std::vector<uint8_t>& bytes, const std::string& path);
// Reads only the header (signature and IHDR chunk): width, height, channels, bit depth; pixels stay empty.
Image8 png_info(const std::vector<uint8_t>& bytes, const std::string& path);
Image8 read_png(const std::string& path);
std::vector<uint8_t> encode_png(const Image8& img);
void write_png(const std::string& path, const Image8& img);  // atomic

// [C, H, W] or [1, C, H, W] pixels in [0, 1], C = 1 or 3 -> 8-bit image (round to nearest; values are clamped
// to [0, 1], NaN becomes 0).
Image8 to_image8(const Tensor& image01);
// 8-bit image -> f32 [C, H, W] in [0, 1] (alpha dropped).
Tensor to_tensor(const Image8& img);
// Writes a [C, H, W] or [1, C, H, W] tensor of [0, 1] pixels as a grey or RGB PNG, atomically.
void write_png(const std::string& path, const Tensor& image01);

struct GridOptions {
  int pad = 2;                          // pixels between and around cells (before scaling)
  int scale = 1;                        // integer upscale of the whole grid (nearest neighbour)
  float background = 1.0f;              // grey level of padding and empty cells; text is drawn in contrast
  std::vector<std::string> row_labels;  // drawn left of each row (may be empty)
  std::vector<std::string> col_labels;  // drawn above each column (may be empty)
};

// Lays out rows of images: rows[r] is [N_r, C, H, W] (or [C, H, W] for one image) of [0, 1] pixels; every row
// shares H and W; the grid is RGB if any row has 3 channels, else grey. Returns the composed image.
Image8 make_grid(const std::vector<Tensor>& rows, const GridOptions& opt = {});
void write_grid(const std::string& path, const std::vector<Tensor>& rows, const GridOptions& opt = {});

// Draws text with the 5x7 font (6 px advance, lower case shown as upper case, unknown characters as '?')
// at (x, y) = top-left, in grey level `value` on every channel; clipped to the image and to x < clip_x.
void draw_text(Image8& img, int x, int y, const std::string& text, uint8_t value, int clip_x = -1);
constexpr int kGlyphW = 5, kGlyphH = 7, kGlyphAdvance = 6;

}  // namespace sl::data
