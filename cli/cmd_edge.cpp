// splitleak edge: the device. Runs the head of a deployed split on test images, sends each intermediate tensor to
// a `splitleak serve` cloud, reads the prediction back; a progress line, then accuracy, latency percentiles
// (end-to-end, edge, wire, cloud), bytes, requests/s and the edge's peak memory. With --link-mbps/--link-rtt-ms the
// transfer is paced as such a link would carry it. --sweep-splits measures every split the cloud serves and plots
// the Neurosurgeon-style breakdown (edge compute, transfer, cloud compute per split; edge-only and cloud-only).
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "cli/net_options.h"
#include "cli/validate.h"
#include "datasets/fetch.h"
#include "experiment/common.h"
#include "experiment/ui.h"
#include "runtime/adaptive.h"
#include "runtime/deploy.h"
#include "runtime/edge.h"
#include "runtime/metrics.h"
#include "tensor/io.h"

namespace sl::cli {

using namespace sl::experiment;  // load_model, parse_device, json_text, command_line, ...

namespace {

struct EdgeOptions {
  std::string model, connect, split, dataset, data, device = "cpu", name, out, link_mbps, predictions;
  runtime::ClientOptions net;
  runtime::EdgeRunOptions run;
  std::string link_schedule;
  double link_rtt_ms = 0;
  int64_t images = -1;
  bool all = false, json = false, plain = false, sweep = false;
  int threads = 0;
  std::string defense;  // split/defense.h spec, applied on the edge before sending
  uint64_t defense_seed = 1;
  bool adaptive = false, no_fixed = false;  // --adaptive-split, --no-fixed
  std::string splits, link_phases;          // --splits (adaptive: which splits), --link-phases MBPS:N,...
  int64_t calibration = 4;
  double edge_slowdown = 1;  // --edge-slowdown: the head on a device this many times slower than this CPU
};

// Percentiles of one component over the requests.
struct Dist {
  double p50 = 0, p95 = 0, p99 = 0, mean = 0;
};
Dist dist(const std::vector<double>& v) {
  Dist d;
  if (v.empty()) return d;
  d.p50 = runtime::percentile(v, 50);
  d.p95 = runtime::percentile(v, 95);
  d.p99 = runtime::percentile(v, 99);
  double s = 0;
  for (double x : v) s += x;
  d.mean = s / double(v.size());
  return d;
}
nlohmann::json dist_json(const Dist& d) {
  return {{"p50", d.p50 * 1e3}, {"p95", d.p95 * 1e3}, {"p99", d.p99 * 1e3}, {"mean", d.mean * 1e3}};
}

struct Summary {
  Dist e2e, edge, wire, queue, cloud, overhead;
  double bytes_per_request = 0, requests_per_s = 0, images_per_s = 0;
};
Summary summarize(const runtime::EdgeRunResult& r) {
  std::vector<double> e2e, edge, wire, queue, cloud, over;
  double bytes = 0;
  for (auto& t : r.timings) {
    e2e.push_back(t.e2e_s);
    edge.push_back(t.edge_s);
    wire.push_back(t.wire_s);
    queue.push_back(t.queue_s);
    cloud.push_back(t.cloud_s);
    over.push_back(t.e2e_s - t.edge_s - t.cloud_s);
    bytes += double(t.up_bytes);
  }
  Summary s{dist(e2e), dist(edge), dist(wire), dist(queue), dist(cloud), dist(over)};
  size_t n = r.timings.size();
  s.bytes_per_request = n ? bytes / double(n) : 0;
  s.requests_per_s = r.wall_s > 0 ? double(n) / r.wall_s : 0;
  s.images_per_s = r.wall_s > 0 ? double(r.images) / r.wall_s : 0;
  return s;
}

std::string ms(double s) { return ui::fixed(s * 1e3, 3); }

std::vector<double> parse_list(const std::string& s, const char* flag) {
  std::vector<double> v;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    size_t used = 0;
    double x = 0;
    try {
      x = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    SL_CHECK(used == item.size() && std::isfinite(x) && x >= 0 && x <= 1e6, ValueError, flag, " '", item,
             "' is not a number in [0, 1e6]");
    v.push_back(x);
  }
  SL_CHECK(!v.empty(), ValueError, flag, " is empty");
  return v;
}

struct Setup {
  runtime::Deployment dep;
  data::Dataset test;
  Device device;
};

Setup prepare(const EdgeOptions& o) {
  set_threads(o.threads);
  Device device = parse_device(o.device);
  Setup s{runtime::load_deployment(o.model, "edge", device), {}, device};
  std::string ds = o.dataset.empty() ? s.dep.ckpt.get("dataset") : o.dataset;
  SL_CHECK(!ds.empty(), ValueError, o.model, ": the checkpoint does not say its data set; pass --dataset");
  int64_t limit = o.all ? -1 : o.images > 0 ? o.images : o.sweep ? 10 : 1000;
  s.test = data::load_dataset(ds, data::find_data_dir(o.data), false, limit);
  check_not_empty(s.test, "test set", "no images to send");
  Shape img{s.test.channels(), s.test.height(), s.test.width()};
  SL_CHECK(img == s.dep.input_shape, ValueError, "the edge model takes images of shape ", s.dep.input_shape.str(),
           " but data set '", ds, "' has ", img.str());
  return s;
}

runtime::CloudClient connect(EdgeOptions& o, const runtime::Deployment& dep, wire::Welcome& welcome) {
  runtime::parse_host_port(o.connect, o.net.host, o.net.port, false);
  if (o.net.tls.enabled())
    o.net.tls.validate("edge");
  else
    check_plain_tcp("edge", o.net.host, o.plain, false);
  std::string name = o.name;
  if (name.empty()) {
    char host[128] = "edge";
    gethostname(host, sizeof host - 1);
    name = str(host, ":", getpid());
  }
  runtime::CloudClient c(o.net);
  welcome = c.hello(name, dep.fingerprints());
  if (!o.net.tls.enabled()) check_plain_tcp("edge", o.net.host, o.plain, true);  // the warning, once connected
  return c;
}

// The edge's side of the split pipeline: head and defenses. The runner passes the test-set index of a request's
// first image as its first query, so image i is query i here as in `eval --defense` and `attack --defense`: the
// same draw for the same image and seed, however images are grouped into requests.
// With --edge-slowdown F the head runs on an emulated device: F times this CPU's median time per image, measured
// once here (runtime::emulated_device).
runtime::EdgeCompute edge_compute(const runtime::Deployment& dep, const runtime::SplitPoint& sp, Device device,
                                  const DefenseChain& defenses, double slowdown = 1, const Tensor& sample = {}) {
  auto pipe = std::make_shared<SplitPipeline>(dep.pipeline(sp, defenses));
  runtime::EdgeCompute c = [pipe, device](const Tensor& x, int64_t first_query) {
    return pipe->edge(x.to(device), uint64_t(first_query));
  };
  if (slowdown <= 1 || !sample.defined()) return c;
  return runtime::emulated_device(c, slowdown * runtime::time_per_image(c, sample));
}

// The edge's defenses at a split (the spec was checked when the flags were parsed): CIS's rank allocation takes the
// split's calibration stored in edge.ckpt (`splitleak split --calibrate`), a clear error when there is none.
DefenseChain edge_defenses(const EdgeOptions& o, const runtime::Deployment& dep, const runtime::SplitPoint& sp) {
  if (o.defense.empty()) return {};
  const std::vector<DefenseSpec> specs = parse_defenses(o.defense);
  return make_defenses(specs, o.defense_seed, needs_calibration(specs) ? &dep.calibration_of(sp) : nullptr);
}

uint16_t split_id_for(const wire::Welcome& w, const runtime::SplitPoint& sp) {
  const wire::WelcomeSplit* ws = w.find(sp.fingerprint);
  if (ws) return ws->split_id;
  std::string served;
  for (auto& s : w.splits) served += (served.empty() ? "" : ", ") + s.name;
  throw ValueError(str("the cloud does not serve split ", sp.name, " of this edge (splits in common: ", served, ")"));
}

// The 1/5/15-minute load averages: other work on the machine that the timings share it with.
std::string machine_load() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return a.empty() ? "unknown" : a + " " + b + " " + c;
}

// ---- one run ---------------------------------------------------------------------------------------------------
void run_once(EdgeOptions& o) {
  if (!o.predictions.empty()) io::check_output_file(o.predictions, "--predictions");
  if (!o.link_mbps.empty()) o.run.link.mbps = parse_list(o.link_mbps, "--link-mbps").at(0);
  o.run.link.rtt_ms = o.link_rtt_ms;
  if (!o.link_schedule.empty()) runtime::parse_link_schedule(o.link_schedule, o.run.link);
  Setup s = prepare(o);
  const runtime::Deployment& dep = s.dep;
  const runtime::SplitPoint* sp = nullptr;
  if (!o.split.empty()) {
    sp = &dep.split(o.split);
  } else {
    SL_CHECK(dep.splits.size() == 1, ValueError, o.model, " holds several splits; choose one with --split");
    sp = &dep.splits.front();
  }
  DefenseChain defenses = edge_defenses(o, dep, *sp);  // before connecting
  wire::Welcome welcome;
  runtime::CloudClient client = connect(o, dep, welcome);
  o.run.split_id = split_id_for(welcome, *sp);

  int64_t n = s.test.size();
  runtime::MemoryUse before = runtime::memory_use();
  ui::Progress prog("edge", n, "img");
  runtime::EdgeRunResult r =
      runtime::run_edge(client, edge_compute(dep, *sp, s.device, defenses, o.edge_slowdown, s.test.images.slice(0, 1)),
                        s.test.images, s.test.labels, o.run, [&](int64_t done, int64_t correct) {
                          prog.update(done, "acc " + ui::percent(done ? double(correct) / double(done) : 0));
                        });
  prog.finish("acc " + ui::percent(r.images ? double(r.correct) / double(r.images) : 0));
  client.bye();
  runtime::MemoryUse mem = runtime::memory_use();
  Summary sum = summarize(r);
  double acc = r.images ? double(r.correct) / double(r.images) : 0;
  int64_t head_bytes = dep.part(*sp)->num_parameters() * 4;
  std::string transport = o.net.tls.enabled() ? "mutual TLS 1.3" : "plain TCP";

  nlohmann::json j{{"command", command_line()},
                   {"date", ui::now_iso8601()},
                   {"device", s.device.str()},
                   {"model", o.model},
                   {"arch", dep.arch},
                   {"split", sp->name},
                   {"fingerprint", sp->fingerprint},
                   {"defense", chain_str(defenses)},
                   {"defense_seed", o.defense_seed},
                   {"cloud", client.address()},
                   {"cloud_name", welcome.server_name},
                   {"transport", transport},
                   {"link", o.run.link.str()},
                   {"images", r.images},
                   {"requests", r.timings.size()},
                   {"batch", o.run.batch},
                   {"window", o.run.window},
                   {"rate", o.run.rate},
                   {"correct", r.correct},
                   {"accuracy", acc},
                   {"failed_requests", r.failed_requests},
                   {"errors", r.errors},
                   {"latency_ms",
                    {{"end_to_end", dist_json(sum.e2e)},
                     {"edge", dist_json(sum.edge)},
                     {"wire", dist_json(sum.wire)},
                     {"cloud_queue", dist_json(sum.queue)},
                     {"cloud_compute", dist_json(sum.cloud)},
                     {"overhead", dist_json(sum.overhead)}}},
                   {"bytes_sent", r.bytes_sent},
                   {"bytes_received", r.bytes_received},
                   {"bytes_per_request", sum.bytes_per_request},
                   {"requests_per_s", sum.requests_per_s},
                   {"images_per_s", sum.images_per_s},
                   {"wall_s", r.wall_s},
                   {"edge_peak_rss_bytes", mem.peak},
                   {"edge_rss_before_run_bytes", before.rss},
                   {"head_parameter_bytes", head_bytes},
                   {"load_average", machine_load()}};
  if (!r.first_error.empty()) j["first_error"] = r.first_error;
  if (!o.predictions.empty()) {
    std::string csv = "image,label,prediction\n";
    for (int64_t i = 0; i < n; ++i) csv += str(i, ",", s.test.labels[size_t(i)], ",", r.predictions[size_t(i)], "\n");
    io::write_file_atomic(o.predictions, csv, "--predictions");
    j["predictions_file"] = o.predictions;
  }
  if (o.json) {
    std::cout << json_text(j) << std::endl;
  } else {
    std::cout << "edge: " << dep.arch << " split at " << sp->name
              << (defenses.empty() ? std::string() : str(" + ", chain_str(defenses), " (seed ", o.defense_seed, ")"))
              << " -> " << welcome.server_name << " at " << client.address() << " (" << transport << ", link "
              << o.run.link.str() << ")\n"
              << "      " << r.images << " images in " << r.timings.size() << " requests of " << o.run.batch
              << ", window " << o.run.window
              << (o.run.rate > 0 ? str(", ", o.run.rate, " requests/s offered") : std::string()) << ", "
              << ui::fixed(r.wall_s, 2) << " s\n\n";
    std::cout << "accuracy " << ui::percent(acc) << " (" << r.correct << " of " << r.images << ")";
    if (r.failed_requests) std::cout << "; " << r.failed_requests << " requests failed (" << r.first_error << ")";
    std::cout << "\n\n";
    ui::Table t({"ms per request", "p50", "p95", "p99", "mean"});
    auto row = [&](const char* name, const Dist& d) { t.add({name, ms(d.p50), ms(d.p95), ms(d.p99), ms(d.mean)}); };
    row("end-to-end", sum.e2e);
    row("edge (head)", sum.edge);
    row("wire", sum.wire);
    row("cloud queue", sum.queue);
    row("cloud compute", sum.cloud);
    row("overhead", sum.overhead);
    t.print();
    std::cout << "\n(overhead = end-to-end - edge - cloud compute: serialisation, network, queueing)\n"
              << "sent " << ui::bytes(double(r.bytes_sent)) << " (" << ui::fixed(sum.bytes_per_request, 0)
              << " B per request), received " << ui::bytes(double(r.bytes_received)) << "; "
              << ui::fixed(sum.requests_per_s, 0) << " requests/s, " << ui::fixed(sum.images_per_s, 0)
              << " images/s\nedge peak memory " << ui::bytes(double(mem.peak)) << " (RSS; before the run "
              << ui::bytes(double(before.rss)) << ", head parameters " << ui::bytes(double(head_bytes)) << ")\n";
  }
  SL_CHECK(r.failed_requests == 0, Error, r.failed_requests, " requests failed: ", r.first_error);
}

// ---- the sweep over split points ----------------------------------------------------------------------------------
// What a sweep writes into --out (besides the gnuplot data files, one per link).
const char* const kSweepFiles[] = {"sweep.csv", "sweep.json", "sweep.gp", "latency.png", "bytes.png", "bytes.dat"};

struct SweepRow {
  std::string split;
  double link_mbps = 0;
  double edge_ms = 0, transfer_ms = 0, cloud_ms = 0, total_ms = 0;
  double bytes = 0;    // sent per image
  bool local = false;  // edge-only: no network
};

void write_sweep_plots(const std::string& dir, const std::vector<SweepRow>& rows, const std::vector<double>& links,
                       const std::string& title) {
  namespace fs = std::filesystem;
  for (double l : links) {
    std::ostringstream f;
    f << "# split edge_ms transfer_ms cloud_ms\n";
    for (auto& r : rows)
      if (r.link_mbps == l) f << r.split << " " << r.edge_ms << " " << r.transfer_ms << " " << r.cloud_ms << "\n";
    io::write_file_atomic((fs::path(dir) / str("latency-", l, "mbps.dat")).string(), f.str(), "--out");
  }
  {
    std::ostringstream f;
    f << "# split bytes_per_image\n";
    for (auto& r : rows)
      if (r.link_mbps == links.front()) f << r.split << " " << std::max(r.bytes, 1.0) << "\n";
    io::write_file_atomic((fs::path(dir) / "bytes.dat").string(), f.str(), "--out");
  }
  std::ostringstream g;
  g << "set terminal pngcairo size " << 520 * links.size() + 200 << ",600 font 'DejaVu Sans,10'\n"
    << "set output '" << (fs::path(dir) / "latency.png").string() << "'\n"
    << "set multiplot layout 1," << links.size() << " title '" << title << ": latency per split (ms)'\n"
    << "set style data histograms\nset style histogram rowstacked\nset style fill solid 0.85 border -1\n"
    << "set boxwidth 0.75\nset xtics rotate by -50 scale 0\nset grid ytics\nset key outside bottom center horizontal\n"
    << "set ylabel 'ms per image'\n";
  for (double l : links)
    g << "set title '" << l << " Mbit/s'\nplot '" << (fs::path(dir) / str("latency-", l, "mbps.dat")).string()
      << "' using 2:xtic(1) title 'edge compute' lc rgb '#4477aa', '' using 3 title 'transfer' lc rgb '#ee6677', "
         "'' using 4 title 'cloud compute' lc rgb '#228833'\n";
  g << "unset multiplot\n"
    << "set terminal pngcairo size 700,480 font 'DejaVu Sans,10'\n"
    << "set output '" << (fs::path(dir) / "bytes.png").string() << "'\n"
    << "set title '" << title << ": bytes sent per image'\nset logscale y\nset ylabel 'bytes'\nunset key\n"
    << "set style fill solid 0.85 border -1\nset boxwidth 0.7\nset xtics rotate by -50 scale 0\n"
    << "plot '" << (fs::path(dir) / "bytes.dat").string() << "' using 0:2:xtic(1) with boxes lc rgb '#4477aa'\n";
  io::write_file_atomic((fs::path(dir) / "sweep.gp").string(), g.str(), "--out");
  std::string cmd = "gnuplot '" + (fs::path(dir) / "sweep.gp").string() + "' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  SL_CHECK(p, IoError, "cannot run gnuplot");
  std::string out;
  char buf[256];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  int rc = ::pclose(p);
  SL_CHECK(rc == 0, IoError, "gnuplot failed (is gnuplot installed?): ", out);
}

void run_sweep(EdgeOptions& o) {
  namespace fs = std::filesystem;
  SL_CHECK(!o.out.empty(), ValueError, "--sweep-splits needs --out DIR for its table and plots");
  SL_CHECK(o.link_schedule.empty(), ValueError,
           "--sweep-splits takes fixed links (--link-mbps A,B,...), not a schedule");
  io::check_output_dir(o.out, "--out");
  for (const char* f : kSweepFiles) io::check_output_file((fs::path(o.out) / f).string(), "--out");
  std::vector<double> links = o.link_mbps.empty() ? std::vector<double>{0} : parse_list(o.link_mbps, "--link-mbps");
  Setup s = prepare(o);
  const runtime::Deployment& dep = s.dep;
  std::map<std::string, DefenseChain> defenses;  // per split, before connecting
  for (auto& sp : dep.splits) defenses[sp.name] = edge_defenses(o, dep, sp);
  wire::Welcome welcome;
  runtime::CloudClient client = connect(o, dep, welcome);
  std::vector<const runtime::SplitPoint*> splits;
  for (auto& sp : dep.splits)
    if (welcome.find(sp.fingerprint)) splits.push_back(&sp);
  SL_CHECK(!splits.empty(), ValueError, "no split in common with the cloud");
  Generator g0(0);
  size_t all_layers = make_model(dep.arch, g0).net->size();
  // Edge-only needs the split after the model's last layer (`splitleak split --at all` makes it).
  bool edge_only = dep.layers.size() == all_layers && welcome.find(dep.splits.back().fingerprint) &&
                   dep.splits.back().name == dep.layers.back();

  std::vector<SweepRow> rows;
  int64_t n = s.test.size();
  std::string load = machine_load();
  auto med = [](std::vector<double> v) { return runtime::percentile(std::move(v), 50); };
  ui::Progress prog("sweep", int64_t(links.size() * (splits.size() + (edge_only ? 1 : 0))), "split");
  int64_t done = 0;
  for (double l : links) {
    for (auto* sp : splits) {
      runtime::EdgeRunOptions ro = o.run;
      ro.split_id = split_id_for(welcome, *sp);
      ro.batch = 1;
      ro.window = 1;
      ro.rate = 0;
      ro.warmup = std::max<int64_t>(ro.warmup, 1);
      ro.link.mbps = l;
      ro.link.rtt_ms = o.link_rtt_ms;
      runtime::EdgeRunResult r = runtime::run_edge(
          client, edge_compute(dep, *sp, s.device, defenses[sp->name], o.edge_slowdown, s.test.images.slice(0, 1)),
          s.test.images, {}, ro);
      std::vector<double> e, w, c, t;
      for (auto& x : r.timings) {
        e.push_back(x.edge_s * 1e3);
        w.push_back((x.wire_s + x.queue_s) * 1e3);
        c.push_back(x.cloud_s * 1e3);
        t.push_back(x.e2e_s * 1e3);
      }
      SweepRow row{sp->name, l, med(e), med(w), med(c), med(t), double(sp->sample_shape.numel() * 4), false};
      rows.push_back(row);
      prog.update(++done, str(l, " Mbit/s ", sp->name, " ", ui::fixed(row.total_ms, 2), " ms"));
    }
    if (edge_only) {
      // The whole model on the edge, nothing sent: the edge compute of the split after the last layer, measured
      // above like every other split's.
      for (auto& r : rows)
        if (r.link_mbps == l && r.split == dep.layers.back()) {
          rows.push_back({"edge-only", l, r.edge_ms, 0, 0, r.edge_ms, 0, true});
          break;
        }
      prog.update(++done, str(l, " Mbit/s edge-only"));
    }
  }
  prog.finish();
  client.bye();
  // Cloud-only is the "input" split (the edge sends the image); name it so in the table and the plots.
  for (auto& r : rows)
    if (r.split == "input") r.split = "cloud-only";

  nlohmann::json j{{"command", command_line()},
                   {"date", ui::now_iso8601()},
                   {"device", s.device.str()},
                   {"arch", dep.arch},
                   {"model", o.model},
                   {"cloud", client.address()},
                   {"images_per_split", n},
                   {"rtt_ms", o.link_rtt_ms},
                   {"load_average_at_start", load},
                   {"note", "medians per request (batch 1, window 1); transfer = end-to-end - edge - cloud compute"}};
  io::CreatedDirs created(o.out, "--out");
  std::ostringstream csv;
  csv << "link_mbps,split,edge_ms,transfer_ms,cloud_ms,total_ms,bytes_per_image\n";
  ui::Table t({"link", "split", "edge ms", "transfer ms", "cloud ms", "total ms", "sent/image"});
  for (auto& r : rows) {
    std::string link = r.link_mbps > 0 ? str(r.link_mbps, " Mbit/s") : "loopback";
    t.add({link, r.split, ui::fixed(r.edge_ms, 3), ui::fixed(r.transfer_ms, 3), ui::fixed(r.cloud_ms, 3),
           ui::fixed(r.total_ms, 3), r.local ? "-" : ui::bytes(r.bytes)});
    csv << r.link_mbps << "," << r.split << "," << r.edge_ms << "," << r.transfer_ms << "," << r.cloud_ms << ","
        << r.total_ms << "," << r.bytes << "\n";
    j["rows"].push_back({{"link_mbps", r.link_mbps},
                         {"split", r.split},
                         {"edge_ms", r.edge_ms},
                         {"transfer_ms", r.transfer_ms},
                         {"cloud_ms", r.cloud_ms},
                         {"total_ms", r.total_ms},
                         {"bytes_per_image", r.bytes}});
  }
  io::write_file_atomic((fs::path(o.out) / "sweep.csv").string(), csv.str(), "--out");
  io::write_file_atomic((fs::path(o.out) / "sweep.json").string(), json_text(j, 2) + "\n", "--out");
  write_sweep_plots(o.out, rows, links, dep.arch + (o.link_rtt_ms > 0 ? str(", RTT ", o.link_rtt_ms, " ms") : ""));
  created.keep();
  if (o.json) {
    std::cout << json_text(j) << std::endl;
    return;
  }
  t.print();
  for (double l : links) {
    const SweepRow* best = nullptr;
    for (auto& r : rows)
      if (r.link_mbps == l && (!best || r.total_ms < best->total_ms)) best = &r;
    std::cout << "fastest at " << (l > 0 ? str(l, " Mbit/s") : std::string("loopback")) << ": " << best->split << " ("
              << ui::fixed(best->total_ms, 3) << " ms)\n";
  }
  std::cout << "wrote " << (fs::path(o.out) / "latency.png").string() << ", "
            << (fs::path(o.out) / "bytes.png").string() << ", sweep.csv, sweep.json\n";
}

// ---- the adaptive split (CIS) ------------------------------------------------------------------------------------
std::string splits_used(const runtime::PhaseStats& ps, const std::map<uint16_t, std::string>& names) {
  std::string out;
  for (auto& [id, count] : ps.by_split) out += (out.empty() ? "" : ", ") + names.at(id) + " x" + std::to_string(count);
  return out.empty() ? "-" : out;
}

void run_adaptive(EdgeOptions& o) {
  SL_CHECK(o.split.empty(), ValueError, "--adaptive-split chooses the split; give the candidates with --splits");
  SL_CHECK(o.link_phases.empty() || o.link_schedule.empty(), ValueError,
           "give --link-phases or --link-schedule, not both");
  SL_CHECK(o.run.rate == 0 && o.run.warmup == 0, ValueError,
           "--adaptive-split runs closed loop without warm-up (--rate, --warmup are not for it)");
  if (!o.link_mbps.empty()) o.run.link.mbps = parse_list(o.link_mbps, "--link-mbps").at(0);
  o.run.link.rtt_ms = o.link_rtt_ms;
  if (!o.link_schedule.empty()) runtime::parse_link_schedule(o.link_schedule, o.run.link);
  if (!o.link_phases.empty()) {
    int64_t requests = runtime::parse_link_phases(o.link_phases, o.run.link);
    SL_CHECK(o.images < 0 && !o.all, ValueError, "--link-phases sets the number of images (requests x --batch)");
    o.images = requests * o.run.batch;
  }
  Setup s = prepare(o);
  const runtime::Deployment& dep = s.dep;
  int64_t n = s.test.size();
  int64_t requests = (n + o.run.batch - 1) / o.run.batch;
  SL_CHECK(o.link_phases.empty() || n == o.images, ValueError, "--link-phases needs ", o.images,
           " test images but the data set has ", n);
  // The candidates named by --splits must be the edge's, checked before connecting.
  std::vector<std::string> names;
  if (!o.splits.empty()) {
    std::stringstream ss(o.splits);
    std::string item;
    while (std::getline(ss, item, ',')) names.push_back(dep.split(item).name);  // ValueError listing the edge's
  }
  std::map<std::string, DefenseChain> defenses;  // per split, before connecting
  for (auto& sp : dep.splits)
    if (o.splits.empty() || std::find(names.begin(), names.end(), sp.name) != names.end())
      defenses[sp.name] = edge_defenses(o, dep, sp);
  wire::Welcome welcome;
  runtime::CloudClient client = connect(o, dep, welcome);
  if (o.splits.empty())
    for (auto& sp : dep.splits)
      if (welcome.find(sp.fingerprint)) names.push_back(sp.name);
  SL_CHECK(!names.empty(), ValueError, "no split in common with the cloud");
  std::vector<runtime::AdaptiveSplit> splits;
  std::map<uint16_t, std::string> name_of;
  for (auto& nm : names) {
    const runtime::SplitPoint& sp = dep.split(nm);  // ValueError listing the edge's splits
    uint16_t id = split_id_for(welcome, sp);        // ValueError when the cloud does not serve it
    splits.push_back(
        {sp.name, id,
         edge_compute(dep, sp, s.device, defenses.at(sp.name), o.edge_slowdown, s.test.images.slice(0, 1))});
    name_of[id] = sp.name;
  }

  runtime::AdaptiveOptions ao;
  ao.calibration = o.calibration;
  ui::Progress prog("adaptive", n, "img");
  runtime::AdaptiveRunResult a = runtime::run_edge_adaptive(
      client, splits, s.test.images, s.test.labels, o.run, ao, [&](int64_t done, int64_t correct) {
        prog.update(done, "acc " + ui::percent(done ? double(correct) / double(done) : 0));
      });
  prog.finish("acc " + ui::percent(a.run.images ? double(a.run.correct) / double(a.run.images) : 0));

  // The same images, link and schedule at each split held fixed.
  std::vector<runtime::EdgeRunResult> fixed;
  if (!o.no_fixed) {
    ui::Progress fp("fixed splits", int64_t(splits.size()), "split");
    for (auto& sp : splits) {
      runtime::EdgeRunOptions fo = o.run;
      fo.split_id = sp.split_id;
      fixed.push_back(runtime::run_edge(client, sp.compute, s.test.images, s.test.labels, fo));
      fp.update(int64_t(fixed.size()), sp.name);
    }
    fp.finish("");
  }
  client.bye();

  std::vector<runtime::LinkPhase> phases = runtime::link_phases(o.run.link, requests);
  double acc = a.run.images ? double(a.run.correct) / double(a.run.images) : 0;
  nlohmann::json j{{"command", command_line()},
                   {"date", ui::now_iso8601()},
                   {"device", s.device.str()},
                   {"model", o.model},
                   {"arch", dep.arch},
                   {"splits", names},
                   {"cloud", client.address()},
                   {"link", o.run.link.str()},
                   {"edge_slowdown", o.edge_slowdown},
                   {"batch", o.run.batch},
                   {"window", o.run.window},
                   {"images", a.run.images},
                   {"requests", a.run.timings.size()},
                   {"correct", a.run.correct},
                   {"accuracy", acc},
                   {"failed_requests", a.run.failed_requests},
                   {"switches", a.switches},
                   {"calibration_overhead_ms", a.overhead_s * 1e3},
                   {"calibration_mbps", a.calibration_mbps},
                   {"calibration_noise_ms", a.noise_s * 1e3},
                   {"load_average", machine_load()}};
  ui::Table ct({"split", "bytes/request", "edge ms", "cloud ms"});
  for (auto& c : a.costs) {
    ct.add({c.split, std::to_string(c.bytes_sent), ms(c.edge_seconds), ms(c.cloud_seconds)});
    j["calibration"].push_back({{"split", c.split},
                                {"bytes_per_request", c.bytes_sent},
                                {"edge_ms", c.edge_seconds * 1e3},
                                {"cloud_ms", c.cloud_seconds * 1e3}});
  }
  std::vector<std::string> trace;
  for (size_t i : a.split_of) trace.push_back(splits[i].name);
  j["split_per_request"] = trace;
  ui::Table pt({"phase", "link", "requests", "splits used", "switch after", "mean ms", "best fixed", "its mean ms",
                "adaptive/best"});
  for (size_t k = 0; k < phases.size(); ++k) {
    const runtime::LinkPhase& ph = phases[k];
    runtime::PhaseStats ps = runtime::phase_stats(a.run, ph);
    // Requests of this phase sent before the split first changed in it (none: it kept the split it came with).
    std::string after = "-";
    for (int64_t i = ph.first + 1; i < ph.end; ++i)
      if (a.split_of[size_t(i)] != a.split_of[size_t(i - 1)]) {
        after = std::to_string(i - ph.first);
        break;
      }
    if (k > 0 && ph.first > 0 && a.split_of[size_t(ph.first)] != a.split_of[size_t(ph.first - 1)]) after = "0";
    std::string best_name = "-", best_ms = "-", ratio = "-";
    nlohmann::json pj{{"first_request", ph.first},
                      {"end_request", ph.end},
                      {"link_mbps", ph.mbps},
                      {"requests", ps.requests},
                      {"splits_used", splits_used(ps, name_of)},
                      {"requests_before_switch", after},
                      {"mean_ms", ps.mean_e2e_s * 1e3}};
    if (!fixed.empty()) {
      size_t best = 0;
      std::vector<double> means;
      for (size_t f = 0; f < fixed.size(); ++f) {
        means.push_back(runtime::phase_stats(fixed[f], ph).mean_e2e_s);
        if (means[f] < means[best]) best = f;
      }
      best_name = splits[best].name;
      best_ms = ms(means[best]);
      ratio = ui::fixed(ps.mean_e2e_s / means[best], 3);
      pj["best_fixed"] = best_name;
      pj["best_fixed_mean_ms"] = means[best] * 1e3;
      pj["ratio_to_best_fixed"] = ps.mean_e2e_s / means[best];
      for (size_t f = 0; f < fixed.size(); ++f) pj["fixed_mean_ms"][splits[f].name] = means[f] * 1e3;
    }
    j["phases"].push_back(pj);
    pt.add({std::to_string(k + 1), ph.mbps > 0 ? str(ph.mbps, " Mbit/s") : std::string("unlimited"),
            std::to_string(ps.requests), splits_used(ps, name_of), after, ms(ps.mean_e2e_s), best_name, best_ms,
            ratio});
  }
  if (o.json) {
    std::cout << json_text(j) << std::endl;
  } else {
    std::cout << "edge: " << dep.arch << ", adaptive split over " << names.size() << " splits -> "
              << welcome.server_name << " at " << client.address() << " (link " << o.run.link.str()
              << (o.edge_slowdown > 1 ? str(", edge slowed ", o.edge_slowdown, "x") : std::string())
              << ")\n\ncalibration (" << o.calibration << " requests per split, medians per request):\n";
    ct.print();
    std::cout << "fitted wire time: " << ui::fixed(a.overhead_s * 1e3, 3) << " ms + bytes at "
              << ui::fixed(a.calibration_mbps, 2) << " Mbit/s (timing noise " << ui::fixed(a.noise_s * 1e3, 3)
              << " ms)\n\naccuracy " << ui::percent(acc) << " (" << a.run.correct << " of " << a.run.images << "), "
              << a.run.timings.size() << " requests, " << a.run.failed_requests << " failed, " << a.switches
              << " split switches\n\n";
    pt.print();
    std::cout << "(switch after: requests of the phase sent before the split first changed in it; best fixed: the "
                 "split with the lowest mean when held fixed over the same images and link)\n";
  }
  SL_CHECK(a.run.failed_requests == 0, Error, a.run.failed_requests, " requests failed: ", a.run.first_error);
}

}  // namespace

void add_edge(CLI::App& app) {
  auto o = std::make_shared<EdgeOptions>();
  auto* c = app.add_subcommand("edge", "The device: run the head, send to a `splitleak serve` cloud, measure");
  c->add_option("--model", o->model, "edge.ckpt written by `splitleak split`")->required()->check(valid::path());
  c->add_option("--connect", o->connect, "HOST:PORT of the cloud")->required();
  c->add_option("--split", o->split, "Which split of edge.ckpt to run (when it holds several)");
  c->add_option("--images", o->images, "Send the first N test images (default 1000; 10 per split with --sweep-splits)")
      ->check(valid::integer(1, valid::kMaxImages));
  c->add_flag("--all", o->all, "Send the whole test set");
  c->add_option("--batch", o->run.batch, "Images per request (default 1)")->check(valid::integer(1, 65536));
  c->add_option("--window", o->run.window, "Requests in flight (default 1)")->check(valid::integer(1, 4096));
  c->add_option("--rate", o->run.rate, "Requests per second, open loop (default: as fast as answers come)")
      ->check(valid::real(0, 1e7));
  c->add_option("--warmup", o->run.warmup, "Requests sent first and left out of the figures (default 0)")
      ->check(valid::integer(0, 1000000));
  c->add_option("--link-mbps", o->link_mbps,
                "Emulate a link of this many Mbit/s (--sweep-splits: a comma-separated list, one sweep each)");
  c->add_option("--link-rtt-ms", o->link_rtt_ms, "Emulated round-trip time (ms)")->check(valid::non_negative());
  c->add_option("--link-schedule", o->link_schedule,
                "Link speed over the run: AT:MBPS,... with AT in seconds (5) or requests (200r)");
  c->add_flag("--adaptive-split", o->adaptive,
              "CIS's adaptive partition: measure the link from the transfers and send each request at the fastest "
              "split (docs/runtime.md)");
  c->add_option("--splits", o->splits, "--adaptive-split: the splits to choose from (default: all the cloud serves)");
  c->add_option("--link-phases", o->link_phases,
                "Link phases MBPS:REQUESTS,... in order (e.g. 100:200,1:200,100:200); sets the number of images");
  c->add_option("--edge-slowdown", o->edge_slowdown,
                "Stretch the head's time this many times: a device slower than this CPU (default 1)")
      ->check(valid::real(1, 1000));
  c->add_option("--calibration", o->calibration, "--adaptive-split: requests per split measured first (default 4)")
      ->check(valid::integer(1, 1000));
  c->add_flag("--no-fixed", o->no_fixed, "--adaptive-split: skip the runs at each fixed split for comparison");
  c->add_flag("--sweep-splits", o->sweep, "Measure every split the cloud serves; table and plots in --out");
  c->add_option("--out", o->out, "Folder for the sweep's CSV, JSON and plots")->check(valid::path());
  c->add_option("--dataset", o->dataset, "mnist or cifar10 (default: the checkpoint's)")
      ->check(CLI::IsMember({"mnist", "cifar10"}));
  c->add_option("--data", o->data, "Data directory (default: $SPLITLEAK_DATA or data/)")->check(valid::path());
  c->add_option("--device", o->device, "cpu or cuda[:N]: where the head runs");
  c->add_option("--threads", o->threads, "CPU threads (default 0: all cores)")->check(valid::threads());
  c->add_option("--name", o->name, "Name sent to the cloud (default: host:pid)");
  c->add_option("--connect-timeout", o->net.connect_timeout_s, "Seconds to connect, handshake and HELLO (5)")
      ->check(valid::real(0, 3600));
  c->add_option("--timeout", o->net.io_timeout_s, "Seconds to wait for any one answer (30)")
      ->check(valid::real(0, 86400));
  add_tls_flags(c, o->net.tls, true);
  c->add_flag("--plain", o->plain, "Allow plain TCP to a non-loopback address");
  c->add_flag("--json", o->json, "Print one JSON object with the results");
  c->add_option("--defense", o->defense,
                "Defenses on the edge before sending, e.g. dropout:0.6 or gaussian:0.5@input (docs/defenses.md)")
      ->check(valid::defense());
  c->add_option("--defense-seed,--seed", o->defense_seed, "Seed of the defense's draws (query i = test image i)")
      ->check(valid::seed());
  c->add_option("--predictions", o->predictions, "Write image,label,prediction per test image to this CSV file")
      ->check(valid::path());
  c->callback([o] {
    SL_CHECK(!(o->all && o->images > 0), ValueError, "give --images N or --all, not both");
    SL_CHECK(!(o->sweep && o->adaptive), ValueError, "give --sweep-splits or --adaptive-split, not both");
    SL_CHECK(o->adaptive || (o->splits.empty() && o->link_phases.empty() && !o->no_fixed), ValueError,
             "--splits, --link-phases and --no-fixed go with --adaptive-split");
    if (o->adaptive)
      run_adaptive(*o);
    else if (o->sweep)
      run_sweep(*o);
    else
      run_once(*o);
  });
}

}  // namespace sl::cli
