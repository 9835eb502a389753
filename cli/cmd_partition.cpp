// splitleak partition: the flags; the advisor is experiment/partition.h.
#include "cli/commands.h"
#include "cli/validate.h"
#include "experiment/partition.h"

namespace sl::cli {

void add_partition(CLI::App& app) {
  auto o = std::make_shared<experiment::PartitionOptions>();
  auto* c = app.add_subcommand("partition",
                               "Where to split: attack quality, leakage, bytes, memory and latency per layer, and the "
                               "recommended split for a link and a device (paper Figs 14-15)");
  c->add_option("--model", o->model, "Checkpoint written by `splitleak train`")->required()->check(valid::path());
  c->add_option("--out", o->out, "Folder for results.json/csv, table.txt and the plots (created if missing)")
      ->required()
      ->check(valid::path());
  c->add_option("--attacks", o->attacks, "Comma-separated: queryfree (default, the paper's), whitebox, blackbox");
  c->add_option("--splits", o->splits, "Comma-separated split layers (default: every layer but flatten)");
  c->add_option("--bandwidth", o->bandwidth, "Link bandwidth, e.g. 1Mbit, 100Mbit, 1Gbit (default 100Mbit)");
  c->add_option("--rtt-ms", o->rtt_ms, "Link round trip in ms (default 10)")->check(valid::non_negative());
  c->add_option("--edge-memory", o->edge_memory, "Edge memory budget, e.g. 2MB, 512KiB (default: no limit)");
  c->add_option("--scenario", o->scenarios,
                "Also recommend for this link and budget, BANDWIDTH[,EDGE_MEMORY] (e.g. 100Mbit or 1Mbit,64KiB), "
                "from the same measurements; repeatable")
      ->take_all();
  c->add_option("--max-ssim", o->max_ssim, "Privacy threshold: the worst attack's SSIM at most this")
      ->check(valid::real(-1, 1));
  c->add_option("--max-leakage", o->max_leakage, "Privacy threshold: the worst leakage index (bit/px) at most this")
      ->check(valid::non_negative());
  c->add_flag("--quick", o->quick, "300 rMLE iterations, 1 decoder/shadow epoch, 10000 attacker images (stated)");
  c->add_option("--iters", o->iters, "rMLE iterations (default: the preset's)")->check(valid::integer(0, 1000000));
  c->add_option("--epochs", o->epochs, "Decoder / shadow training epochs")->check(valid::integer(1, 100000));
  c->add_option("--images", o->images, "Attack the first N test images (default: the first of each class)")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--attacker-limit", o->attacker_limit, "Use only the first N attacker (training) images")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_option("--preset", o->preset, "Attack settings: reference (default) or tuned");
  c->add_option("--seed", o->seed, "Seed of the attackers")->check(valid::seed());
  c->add_option("--dataset", o->dataset, "mnist or cifar10 (default: the checkpoint's)");
  c->add_option("--data", o->data, "Data directory (default: $SPLITLEAK_DATA or data/)")->check(valid::path());
  c->add_option("--device", o->device, "cpu or cuda[:N]");
  c->add_option("--threads", o->threads, "CPU threads (default 0: all cores)")->check(valid::threads());
  c->add_flag("--json", o->json, "Print one JSON object with the results");
  c->add_flag("--allow-nonfinite", o->allow_nonfinite, "Load a checkpoint holding NaN or inf weights (with a warning)");
  c->callback([o] { experiment::run_partition_command(*o); });
}

}  // namespace sl::cli
