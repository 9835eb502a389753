// Black-box model inversion (inverse network) written out in one page.
//
// The cloud does not know f1 but may query it. It sends its own images x_i, keeps the answers v_i = f1(x_i),
// and trains a decoder g with  min (1/m) Σ ‖g(v_i) − x_i‖².  Then every observed v is decoded: x = g(v).
//
//   example_blackbox_attack MODEL.ckpt DATA_DIR [SPLIT] [EPOCHS]
//   e.g. example_blackbox_attack runs/lenet-mnist.ckpt data ReLU2 2
#include <cmath>
#include <cstdio>
#include <string>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "datasets/image_io.h"
#include "datasets/loader.h"
#include "inversion/attack.h"
#include "inversion/inverse_net.h"
#include "inversion/metrics.h"
#include "nn/checkpoint.h"
#include "nn/optim.h"

using namespace sl;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.ckpt DATA_DIR [SPLIT=ReLU2] [EPOCHS=2]\n", argv[0]);
    return 2;
  }
  const std::string split = argc > 3 ? argv[3] : "ReLU2";
  const int epochs = argc > 4 ? std::stoi(argv[4]) : 2;
  try {
    Checkpoint ckpt = load_checkpoint(argv[1]);
    Generator gen(0);
    Model model = make_model(ckpt.arch, gen);
    load_into(model, ckpt);
    model.net->eval();
    const std::string name = ckpt.get("dataset", "mnist");
    data::Dataset test = data::load_dataset(name, argv[2], false);
    data::Dataset victims = inv::select(test, inv::first_of_each_class(test));
    data::Dataset own = data::load_dataset(name, argv[2], true);  // the attacker's images: the training set
    SplitModel sm = model.net->split(split);
    Module& edge = *sm.head;  // used only as a black box: x in, f1(x) out

    // 1. The decoder: its shape follows the features it receives (SPEC's decoder for LeNet conv1 / ReLU2).
    Shape feature = edge.output_shape(Shape{1, test.channels(), test.height(), test.width()});
    auto decoder = inv::make_decoder(model.arch, split,
                                     Shape(std::vector<int64_t>(feature.dims().begin() + 1, feature.dims().end())),
                                     model.input_shape, gen);  // Xavier initialisation
    std::printf("decoder for %s:\n%s", split.c_str(), decoder->summary(feature).c_str());

    // 2. Query the edge and fit the decoder on (answer, image) pairs.
    AdamArgs a;
    a.lr = 2e-2;
    a.eps = 1e-3;
    a.amsgrad = true;
    Adam opt(decoder->parameters(), a);
    data::LoaderOptions lo;
    lo.batch_size = 32;
    data::Loader loader(own, lo);
    const int64_t steps = loader.batches_per_epoch() * epochs;
    int64_t step = 0;
    for (int e = 0; e < epochs; ++e) {
      loader.set_epoch(e);
      for (int64_t i = 0; i < loader.batches_per_epoch(); ++i, ++step) {
        Tensor x = loader.batch(i).images;
        Tensor v;
        {
          NoGradGuard no_grad;
          v = edge(x);  // a query
        }
        opt.set_lr(a.lr * 0.5 * (1 + std::cos(M_PI * double(step) / double(steps))));  // cosine decay
        opt.zero_grad();
        Tensor loss = mse_loss((*decoder)(v), x);
        loss.backward();
        opt.step();
        if ((step + 1) % 500 == 0)
          std::printf("step %lld/%lld  loss %.5f\n", (long long)step + 1, (long long)steps, loss.item());
      }
    }

    // 3. Decode what the edge sent for the victims; score.
    Tensor recovered;
    {
      NoGradGuard no_grad;
      decoder->eval();
      recovered = (*decoder)(edge(victims.images));
    }
    Tensor originals = data::denormalize(victims.images, victims.norm);
    recovered = data::denormalize(recovered, victims.norm);  // clamped to [0, 1]
    auto psnr = inv::psnr_per_image(originals, recovered);
    auto ssim = inv::ssim_per_image(originals, recovered);
    double mp = 0, ms = 0;
    for (size_t i = 0; i < psnr.size(); ++i) mp += psnr[i] / double(psnr.size()), ms += ssim[i] / double(ssim.size());
    std::printf("mean over %zu images: PSNR %.2f dB  SSIM %.3f  (split %s)\n", psnr.size(), mp, ms, split.c_str());
    data::GridOptions g;
    g.scale = 3;
    g.row_labels = {"original", "decoder " + split};
    data::write_grid("blackbox_" + split + ".png", {originals, recovered}, g);
    std::printf("wrote blackbox_%s.png\n", split.c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
