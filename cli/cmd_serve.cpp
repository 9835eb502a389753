// splitleak serve: the cloud. Runs the tail of a deployed split for any number of edges, batching what arrives
// together, recording what it receives (--record), until SIGINT/SIGTERM (SIGUSR1 prints the metrics).
// splitleak stats: asks a running server for its metrics.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/net_options.h"
#include "cli/validate.h"
#include "experiment/common.h"
#include "experiment/ui.h"
#include "runtime/client.h"
#include "runtime/server.h"

namespace sl::cli {

using namespace sl::experiment;  // load_model, parse_device, json_text, command_line, ...

namespace {

struct ServeOptions {
  std::string model, listen = "127.0.0.1:7000", device = "cpu";
  runtime::ServerOptions srv;
  double memory_budget_mb = 256;
  int threads = 1;
  bool plain = false, quiet = false;
};

void run_serve(ServeOptions o) {
  runtime::parse_host_port(o.listen, o.srv.host, o.srv.port, true);
  Device device = parse_device(o.device);
  o.srv.device = device;
  o.srv.memory_budget = int64_t(o.memory_budget_mb * (1 << 20));
  if (o.srv.tls.enabled())
    o.srv.tls.validate("serve");
  else
    check_plain_tcp("serve", o.srv.host, o.plain, false);
  o.srv.log = !o.quiet;
  runtime::Deployment dep = runtime::load_deployment(o.model, "cloud", device);
  std::string arch = dep.arch, splits;
  for (auto& s : dep.splits) splits += (splits.empty() ? "" : ", ") + s.name;
  o.srv.compute_threads = o.threads;
  runtime::CloudServer server(std::move(dep), o.srv);
  if (!o.srv.tls.enabled()) check_plain_tcp("serve", o.srv.host, o.plain, true);  // the warning, once all is set

  // The first line on stdout says where to connect (scripts read the port from it when --listen has port 0).
  std::printf("serve: listening on %s:%u (%s), %s split at %s, tail on %s%s%s\n", o.srv.host.c_str(), server.port(),
              o.srv.tls.enabled() ? "mutual TLS 1.3" : "plain TCP", arch.c_str(), splits.c_str(), device.str().c_str(),
              o.srv.record_path.empty() ? "" : ", recording to ", o.srv.record_path.c_str());
  std::fflush(stdout);
  server.run(true);
  std::printf("serve: stopped; %s\n", server.stats_line().c_str());
}

struct StatsOptions {
  std::string connect;
  runtime::ClientOptions net;
  bool json = false, plain = false;
};

void run_stats(StatsOptions o) {
  runtime::parse_host_port(o.connect, o.net.host, o.net.port, false);
  if (!o.net.tls.enabled()) check_plain_tcp("stats", o.net.host, o.plain, false);
  runtime::CloudClient c(o.net);
  std::string text = c.stats();
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  SL_CHECK(!j.is_discarded(), IoError, "the server at ", o.connect, " sent stats that are not JSON");
  if (o.json) {
    std::cout << json_text(j) << std::endl;
    return;
  }
  auto cell = [](const nlohmann::json& x) {
    if (x.is_string()) return x.get<std::string>();
    if (x.is_number_float()) return ui::fixed(x.get<double>(), std::abs(x.get<double>()) < 10 ? 3 : 1);
    return x.dump();
  };
  ui::Table t({"metric", "value"});
  for (auto& [group, v] : j.items()) {
    if (v.is_object()) {
      for (auto& [k, x] : v.items()) t.add({group + "." + k, cell(x)});
    } else {
      t.add({group, cell(v)});
    }
  }
  t.print();
}

}  // namespace

void add_serve(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  auto* c = app.add_subcommand("serve", "The cloud: serve the tail of a split to edges over the network");
  c->add_option("--model", o->model, "cloud.ckpt written by `splitleak split`")->required()->check(valid::path());
  c->add_option("--listen", o->listen, "HOST:PORT to listen on (port 0: any free port)");
  c->add_option("--record", o->srv.record_path, "Append every received tensor with its metadata to this file")
      ->check(valid::path());
  c->add_option("--record-sync", o->srv.record_sync_s, "fdatasync the recording every S seconds (0: every batch)")
      ->check(valid::non_negative());
  c->add_option("--device", o->device, "cpu or cuda[:N]: where the tail runs");
  c->add_option("--threads", o->threads, "CPU threads for the tail (default 1)")->check(valid::threads());
  c->add_option("--io-threads", o->srv.io_threads, "Network threads (default 1)")->check(valid::integer(1, 64));
  c->add_option("--max-connections", o->srv.max_connections, "Connections at once (default 256)")
      ->check(valid::integer(1, 100000));
  c->add_option("--max-inflight", o->srv.max_inflight, "Requests read ahead per connection (default 16)")
      ->check(valid::integer(1, 4096));
  c->add_option("--max-rows", o->srv.max_rows, "Images per request (default 64)")->check(valid::integer(1, 65536));
  c->add_option("--max-batch", o->srv.max_batch_rows, "Images per tail batch (default 64)")
      ->check(valid::integer(1, 65536));
  c->add_option("--batch-wait-us", o->srv.batch_wait_us,
                "Wait up to this long for more requests before running a batch (default 0: take what is queued)")
      ->check(valid::integer(0, 1000000));
  c->add_option("--memory-budget-mb", o->memory_budget_mb, "Request data held at once, all connections (default 256)")
      ->check(valid::real(0.999, 1 << 20));
  c->add_option("--handshake-timeout", o->srv.handshake_timeout_s, "Seconds for the TLS handshake and HELLO (10)")
      ->check(valid::real(0, 86400));
  c->add_option("--idle-timeout", o->srv.idle_timeout_s, "Seconds a connection may stay silent (300)")
      ->check(valid::real(0, 86400));
  c->add_option("--io-timeout", o->srv.io_timeout_s, "Seconds to finish a started frame or a write (10)")
      ->check(valid::real(0, 86400));
  c->add_option("--drain-timeout", o->srv.drain_timeout_s, "Seconds to finish in-flight requests on shutdown (10)")
      ->check(valid::real(0, 86400));
  c->add_option("--name", o->srv.name, "Server name sent to edges");
  add_tls_flags(c, o->srv.tls, false);
  c->add_flag("--plain", o->plain, "Allow plain TCP on a non-loopback address");
  c->add_flag("--quiet", o->quiet, "No per-connection log lines on stderr");
  c->callback([o] { run_serve(*o); });

  auto s = std::make_shared<StatsOptions>();
  auto* cs = app.add_subcommand("stats", "Ask a running `splitleak serve` for its metrics");
  cs->add_option("--connect", s->connect, "HOST:PORT of the server")->required();
  add_tls_flags(cs, s->net.tls, true);
  cs->add_flag("--plain", s->plain, "Allow plain TCP to a non-loopback address");
  cs->add_option("--timeout", s->net.io_timeout_s, "Seconds to wait for the answer (30)")->check(valid::real(0, 86400));
  cs->add_flag("--json", s->json, "Print the JSON object");
  cs->callback([s] { run_stats(*s); });
}

}  // namespace sl::cli
