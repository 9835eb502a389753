// Query-free model inversion (shadow model) written out in one page.
//
// The cloud knows only its own part f2 and has images of the same kind. It trains a shadow f1' of another
// architecture so that f2(f1'(x)) classifies well — min Σ CrossEntropy(f2(f1'(x_i)), y_i) with f2 frozen —
// and then runs the white-box rMLE through f1' against the v that the real edge sent.
//
//   example_queryfree_attack MODEL.ckpt DATA_DIR [SPLIT] [LAMBDA]
//   e.g. example_queryfree_attack runs/lenet-mnist.ckpt data ReLU2 1
#include <cstdio>
#include <string>

#include "autograd/node.h"
#include "autograd/ops.h"
#include "datasets/image_io.h"
#include "datasets/loader.h"
#include "inversion/attack.h"
#include "inversion/metrics.h"
#include "inversion/query_free.h"
#include "inversion/rmle.h"
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
    Checkpoint ckpt = load_checkpoint(argv[1]);
    Generator gen(0);
    Model model = make_model(ckpt.arch, gen);
    load_into(model, ckpt);
    model.net->eval();
    const std::string name = ckpt.get("dataset", "mnist");
    data::Dataset test = data::load_dataset(name, argv[2], false);
    data::Dataset victims = inv::select(test, inv::first_of_each_class(test));
    data::Dataset own = data::load_dataset(name, argv[2], true);  // the attacker's labelled images
    SplitModel sm = model.net->split(split);
    Tensor v;
    {
      NoGradGuard no_grad;
      v = (*sm.head)(victims.images);  // what the edge sends; the head itself stays unknown from here on
    }

    // 1. A shadow head with the same output shape as f1 (SPEC's shadow for LeNet conv1 / ReLU2).
    Shape feature(std::vector<int64_t>(v.shape().dims().begin() + 1, v.shape().dims().end()));
    auto shadow = inv::make_shadow(model.arch, split, model.input_shape, feature, inv::guess_activation(v), gen);
    std::printf("shadow for %s:\n%s", split.c_str(), shadow->summary(model.batch_shape(1)).c_str());

    // 2. Train it through the frozen cloud tail to classify the attacker's images (one epoch).
    inv::FrozenParams cloud_frozen(*sm.tail);
    AdamArgs a;
    a.lr = 1e-3;
    a.eps = 1e-3;
    a.amsgrad = true;
    Adam opt(shadow->parameters(), a);
    data::LoaderOptions lo;
    lo.batch_size = 32;
    data::Loader loader(own, lo);
    for (int64_t i = 0; i < loader.batches_per_epoch(); ++i) {
      data::Batch b = loader.batch(i);
      opt.zero_grad();
      Tensor loss = cross_entropy((*sm.tail)((*shadow)(b.images)), b.labels);
      loss.backward();  // reaches the shadow's weights through the cloud's layers
      opt.step();
      if ((i + 1) % 500 == 0) std::printf("step %lld  loss %.4f\n", (long long)i + 1, loss.item());
    }
    shadow->eval();
    std::printf("shadow + cloud tail accuracy on the test set: %.2f %%\n",
                100 * inv::shadow_accuracy(*shadow, *sm.tail, test, Device::cpu()));

    // 3. rMLE through the shadow against the real v (the library's rMLE: see whitebox_attack.cpp inside).
    inv::RmleOptions o;
    o.tv = lambda;
    inv::Observed observed{inv::TargetKind::feature, v};
    Tensor x = inv::rmle(*shadow, observed, victims.images.shape(), inv::PixelRange::of(victims.norm), o);

    Tensor originals = data::denormalize(victims.images, victims.norm);
    Tensor recovered = data::denormalize(x, victims.norm);
    auto psnr = inv::psnr_per_image(originals, recovered);
    auto ssim = inv::ssim_per_image(originals, recovered);
    double mp = 0, ms = 0;
    for (size_t i = 0; i < psnr.size(); ++i) mp += psnr[i] / double(psnr.size()), ms += ssim[i] / double(ssim.size());
    std::printf("mean over %zu images: PSNR %.2f dB  SSIM %.3f  (split %s, lambda %g)\n", psnr.size(), mp, ms,
                split.c_str(), lambda);
    data::GridOptions g;
    g.scale = 3;
    g.row_labels = {"original", "shadow " + split};
    data::write_grid("queryfree_" + split + ".png", {originals, recovered}, g);
    std::printf("wrote queryfree_%s.png\n", split.c_str());
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
