// The docs test: the shell commands of README.md, docs/ (and CHANGELOG.md, bench/RESULTS.md) run as written, so the
// documents cannot drift from the program. Every fenced block whose info string is sh, bash, shell or console must be
// preceded (on the line before the fence) by one of two markers:
//   <!-- docs-test -->             run here, in order, one shell per document (set -euo pipefail)
//   <!-- docs-skip: REASON -->     not run here; REASON says what runs it instead (a CI script) or why nothing can
//                                  (network, GPU); the block must still parse (bash -n)
// An unmarked shell block fails the test, and so does a relative link to a file that does not exist. Each document runs
// in a fresh folder holding data/mnist (the tiny synthetic MNIST of tests/tiny_data.h: 200 training and 50 test
// images), runs/lenet.ckpt (LeNet trained on it) and build -> this build's folder, with this build's bin/ first on
// PATH, SPLITLEAK_DATA=data and OMP_NUM_THREADS=1 (one thread is fastest for these small runs, and far faster on a busy
// machine). Hidden tag: ctest runs it as its own test (tests/CMakeLists.txt); `splitleak_tests "[docs]"` runs it by
// hand.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "tests/tiny_data.h"

namespace fs = std::filesystem;

namespace {

struct Block {
  std::string file;  // relative to the source folder
  int line = 0;      // of the opening fence, 1-based
  std::string info, marker, body;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

bool is_shell(const std::string& info) {
  const std::string lang = info.substr(0, info.find_first_of(" \t{"));
  return lang == "sh" || lang == "bash" || lang == "shell" || lang == "console";
}

// Every fenced block of a Markdown file, with the marker comment on the line before its fence (or "").
std::vector<Block> fenced_blocks(const fs::path& path, const std::string& rel) {
  std::ifstream f(path);
  std::vector<Block> out;
  std::string line, prev;
  int n = 0;
  Block* open = nullptr;
  std::string fence;
  while (std::getline(f, line)) {
    ++n;
    const std::string t = trim(line);
    if (open) {
      if (t.rfind(fence, 0) == 0 && trim(t.substr(fence.size())).empty()) {
        open = nullptr;
      } else {
        open->body += line + "\n";
      }
    } else if (t.rfind("```", 0) == 0 || t.rfind("~~~", 0) == 0) {
      fence = t.substr(0, t.find_first_not_of(t[0]));
      Block b;
      b.file = rel;
      b.line = n;
      b.info = trim(t.substr(fence.size()));
      if (prev.rfind("<!--", 0) == 0) b.marker = prev;
      out.push_back(b);
      open = &out.back();
    }
    if (!t.empty()) prev = t;
  }
  if (open) out.back().marker = "unclosed";
  return out;
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string last_lines(const std::string& s, int k) {
  size_t pos = s.size();
  for (int i = 0; i <= k && pos != std::string::npos && pos > 0; ++i) pos = s.rfind('\n', pos - 1);
  return pos == std::string::npos ? s : s.substr(pos + 1);
}

// Runs `bash script` in dir with the docs test's environment; returns the exit status (-1 on a signal).
int run_script(const fs::path& dir, const fs::path& script, const fs::path& log) {
  const std::string bin = SPLITLEAK_BIN_DIR;
  const std::string cmd = "cd '" + dir.string() + "' && PATH='" + bin +
                          "':\"$PATH\" SPLITLEAK_DATA=data OMP_NUM_THREADS=1 bash '" + script.string() + "' >'" +
                          log.string() + "' 2>&1 </dev/null";
  const int st = std::system(cmd.c_str());
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// The documents the test reads: README.md, CHANGELOG.md, bench/RESULTS.md and every Markdown file under docs/.
std::vector<std::string> documents(const fs::path& src) {
  std::vector<std::string> docs;
  for (const char* f : {"README.md", "CHANGELOG.md", "bench/RESULTS.md"})
    if (fs::is_regular_file(src / f)) docs.push_back(f);
  const size_t fixed = docs.size();
  if (fs::is_directory(src / "docs"))
    for (auto& e : fs::recursive_directory_iterator(src / "docs"))
      if (e.is_regular_file() && e.path().extension() == ".md")
        docs.push_back(fs::relative(e.path(), src).generic_string());
  std::sort(docs.begin() + long(fixed), docs.end());
  return docs;
}

}  // namespace

TEST_CASE("docs: every shell block of README.md and docs/ is marked, and the marked ones run", "[.docs]") {
  const fs::path src = SPLITLEAK_SOURCE_DIR;
  const fs::path root = fs::temp_directory_path() / ("splitleak_docs_" + std::to_string(::getpid()));
  fs::remove_all(root);
  fs::create_directories(root);

  // The marks, and the syntax of the blocks that are not run.
  std::vector<std::pair<std::string, std::vector<Block>>> to_run;
  int n_run = 0, n_skip = 0;
  for (const std::string& rel : documents(src)) {
    std::vector<Block> run;
    for (Block& b : fenced_blocks(src / rel, rel)) {
      if (!is_shell(b.info)) continue;
      const std::string where = b.file + ":" + std::to_string(b.line);
      INFO(where << " (" << b.info << " block, marker '" << b.marker << "')");
      if (b.marker == "<!-- docs-test -->") {
        run.push_back(b);
        ++n_run;
        continue;
      }
      const std::string skip = "<!-- docs-skip:";
      const bool skipped = b.marker.rfind(skip, 0) == 0 && b.marker.size() > skip.size() + 4 &&
                           !trim(b.marker.substr(skip.size(), b.marker.size() - skip.size() - 3)).empty();
      CHECK(skipped);  // neither marker: mark it <!-- docs-test --> or <!-- docs-skip: why -->
      if (!skipped) continue;
      ++n_skip;
      const fs::path f = root / "syntax.sh";
      std::ofstream(f) << b.body;
      const std::string check = "bash -n '" + f.string() + "' 2>'" + (root / "syntax.log").string() + "'";
      INFO(slurp(root / "syntax.log"));
      CHECK(std::system(check.c_str()) == 0);
    }
    if (!run.empty()) to_run.emplace_back(rel, run);
  }
  REQUIRE(n_run > 0);

  // Every relative link of the documents points at a file or folder of the repository.
  const std::regex link(R"(\]\(([^)#\s]+)(#[^)\s]*)?\))");
  for (const std::string& rel : documents(src)) {
    const std::string text = slurp(src / rel);
    for (auto it = std::sregex_iterator(text.begin(), text.end(), link); it != std::sregex_iterator(); ++it) {
      const std::string target = (*it)[1];
      if (target.find("://") != std::string::npos || target.rfind("mailto:", 0) == 0) continue;
      INFO(rel << " links to " << target);
      CHECK(fs::exists((src / rel).parent_path() / target));
    }
  }

  // The fixture every document starts from.
  const fs::path fixture = root / "fixture";
  sl::test::write_tiny_mnist(fixture / "data", 200, 50);
  fs::create_directories(fixture / "runs");
  {
    const fs::path f = root / "fixture.sh";
    std::ofstream(f) << "set -euo pipefail\nsplitleak train --dataset mnist --model lenet --epochs 2 --batch 16 "
                        "--lr 0.003 --out runs/lenet.ckpt\n";
    INFO(slurp(root / "fixture.log"));
    REQUIRE(run_script(fixture, f, root / "fixture.log") == 0);
  }

  bool all_ok = true;
  for (auto& [rel, blocks] : to_run) {
    const fs::path dir = root / fs::path(rel).replace_extension("").generic_string();
    fs::create_directories(dir.parent_path());
    fs::copy(fixture, dir, fs::copy_options::recursive);
    fs::create_directory_symlink(fs::path(SPLITLEAK_BIN_DIR).parent_path(), dir / "build");
    std::ostringstream script;
    script << "set -euo pipefail\n";
    for (const Block& b : blocks)
      script << "printf '\\n[docs-test] %s:%d\\n' '" << b.file << "' " << b.line << "\n" << b.body;
    const fs::path f = dir / "docs-test.sh", log = dir / "docs-test.log";
    std::ofstream(f) << script.str();
    const int rc = run_script(dir, f, log);
    const std::string out = slurp(log);
    INFO(rel << ": " << blocks.size() << " block(s) ran in " << dir.string() << "; exit " << rc
             << "; the last lines (the failing block is the last [docs-test] line):\n"
             << last_lines(out, 40));
    CHECK(rc == 0);
    all_ok = all_ok && rc == 0;
  }
  std::printf("docs test: %d block(s) run, %d marked docs-skip\n", n_run, n_skip);
  if (all_ok) fs::remove_all(root);  // else kept for a look: each document's folder, script and log
}
