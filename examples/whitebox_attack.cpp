// White-box model inversion (rMLE) written out in one page.
//
// The cloud knows the edge model f1 and receives v = f1(x0). It recovers x0 by gradient descent on the
// image itself:   x* = argmin_x  mean (f1(x) - v)²  +  λ·TV(x),   starting from x = 0.
//
//   example_whitebox_attack MODEL.ckpt DATA_DIR [SPLIT] [LAMBDA]
//   e.g. example_whitebox_attack runs/lenet-mnist.ckpt data ReLU2 1
#include <cstdio>
#include <string>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "datasets/image_io.h"
#include "inversion/attack.h"
#include "inversion/metrics.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"

using namespace sl;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.ckpt DATA_DIR [SPLIT=ReLU2] [LAMBDA=1]\n", argv[0]);
    return 2;
  }
  const std::string split = argc > 3 ? argv[3] : "ReLU2";
  const double lambda = argc > 4 ? std::stod(argv[4]) : 1.0;
  try {
    // 1. The victim's side: a trained model, split; the edge computes v = f1(x0) for ten test images.
    Checkpoint ckpt = load_checkpoint(argv[1]);
    Generator gen(0);
    Model model = make_model(ckpt.arch, gen);
    load_into(model, ckpt);
    model.net->eval();
    data::Dataset test = data::load_dataset(ckpt.get("dataset", "mnist"), argv[2], false);
    data::Dataset victims = inv::select(test, inv::first_of_each_class(test));
    SplitModel sm = model.net->split(split);
    Module& f1 = *sm.head;
    Tensor v;
    {
      NoGradGuard no_grad;
      v = f1(victims.images);  // all the cloud gets to see
    }

    // 2. The attack: x is the parameter; the weights of f1 stay fixed (no gradient is computed for them).
    inv::FrozenParams frozen(f1);
    const double n = double(victims.size());
    Tensor x = Tensor::zeros(victims.images.shape()).requires_grad_();
    AdamArgs a;
    a.lr = 1e-2;
    a.eps = 1e-3;
    a.amsgrad = true;
    Adam opt({x}, a);
    for (int it = 1; it <= 5000; ++it) {
      opt.zero_grad();
      // Summed over images (n · batch mean), so each image is optimised exactly as if it were alone.
      Tensor loss = n * (mse_loss(f1(x), v) + lambda * tv_loss(x));
      loss.backward();  // d loss / d x, through every layer of f1
      opt.step();
      if (it % 1000 == 0) std::printf("iteration %d  objective %.6f\n", it, loss.item());
    }

    // 3. Back to pixels (clamped to [0, 1] only now) and scored against the originals.
    Tensor originals = data::denormalize(victims.images, victims.norm);
    Tensor recovered = data::denormalize(x.detach(), victims.norm);
    auto psnr = inv::psnr_per_image(originals, recovered);
    auto ssim = inv::ssim_per_image(originals, recovered);
    double mp = 0, ms = 0;
    for (size_t i = 0; i < psnr.size(); ++i) {
      std::printf("image %zu (label %d): PSNR %.2f dB  SSIM %.3f\n", i, victims.labels[i], psnr[i], ssim[i]);
      mp += psnr[i] / double(psnr.size());
      ms += ssim[i] / double(ssim.size());
    }
    std::printf("mean: PSNR %.2f dB  SSIM %.3f  (split %s, lambda %g)\n", mp, ms, split.c_str(), lambda);
    data::GridOptions g;
    g.scale = 3;
    g.row_labels = {"original", "rMLE " + split};
    data::write_grid("whitebox_" + split + ".png", {originals, recovered}, g);
    std::printf("wrote whitebox_%s.png\n", split.c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
