// Defenses of a split model: what the edge does to a query before the untrusted cloud sees it (He, Zhang & Lee
// §IV; the paper's §IV). A defense has a kind ("gaussian", "laplace", "dropout", "cis"), a level (σ, b, r, ε), a place
// (on the input image, before the edge head, or on the intermediate tensor, after it) and a seeded random stream.
//
// Randomness: a fresh draw per query, reproducible per seed. Query q of a batch (its position in the edge's stream
// of queries: the test-set index in `eval` and in the runtime's edge) draws Philox counters
// [q·P, (q+1)·P) of the defense's key, P the elements of one sample where the defense sits. So the draw for query
// q depends only on (seed, position in the chain, q) — not on the batch it arrives in, the thread count or the
// backend (CPU and CUDA draw the same numbers: kernels/*/random.*). Levels share the draw: dropout at r zeroes the
// elements whose uniform u < r (the masks of r = 0.3 lie inside those of r = 0.6), noise at σ is σ·z for the same z.
//
// Spec syntax (one string, several defenses comma-separated):
//   spec   := item { ',' item }
//   item   := KIND [ ':' arg { ',' arg } ] [ '@' PLACE ]
//   arg    := NUMBER            the level (first argument only)
//           | KEY '=' VALUE     an option, or the level by its name (sigma=, b=, r=, ...); place=input|intermediate
//           | KEY               a flag option (e.g. rescale)
// A comma-separated piece starts a new item when it is a known kind name or contains ':' (KIND:...); otherwise it
// is one more argument of the item before it. So `gaussian:0.5@input,dropout:0.6,rescale` is two defenses and
// `cis:eps=1,alloc=rank,clip=4` one defense with three arguments. Every number must be finite; each kind checks its
// level's range (dropout r in [0, 1], σ and b >= 0). Errors are ValueError naming the piece and what is expected.
//
// Adding a defense kind is one file: a Defense subclass and a DefenseKind registered in defense.cpp's list.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sl {

enum class Place { input, intermediate };
const char* place_name(Place p);             // "input", "intermediate"
Place parse_place(const std::string& name);  // ValueError otherwise

// One defense as written: kind, level (unset in a `defend` spec, whose levels come from --levels), place, options.
struct DefenseSpec {
  std::string kind;
  std::optional<double> level;
  Place place = Place::intermediate;
  std::vector<std::pair<std::string, std::string>> options;  // key=value in the order written; a flag has value ""

  bool has(const std::string& key) const;
  std::string option(const std::string& key, const std::string& fallback = "") const;
  double number(const std::string& key, double fallback) const;  // ValueError when not a finite number
  bool flag(const std::string& key) const;                       // present as a flag, or =1/true/yes/on
  // Canonical text, e.g. "dropout:0.6,rescale@intermediate"; parses back to the same spec.
  std::string str() const;
  DefenseSpec at_level(double level) const;  // a copy with the level set (validated by the caller)
};

// Parses a spec string (grammar above) and validates every item against its kind. With level_required false, an
// item may omit its level (`splitleak defend --defense dropout --levels ...`).
std::vector<DefenseSpec> parse_defenses(const std::string& text, bool level_required = true);
// Text of several specs, comma-separated ("" for none).
std::string defenses_str(const std::vector<DefenseSpec>& specs);

// A defense instance: one kind at one level and place, with its own key (derived from the seed and its position in
// the chain). Applying it records an autograd graph when the input requires grad (an attacker may train through
// it); the draw itself is a constant.
class Defense {
 public:
  Defense(DefenseSpec spec, uint64_t key);
  virtual ~Defense() = default;
  Defense(const Defense&) = delete;
  Defense& operator=(const Defense&) = delete;

  const DefenseSpec& spec() const { return spec_; }
  const std::string& kind() const { return spec_.kind; }
  double level() const { return *spec_.level; }
  Place place() const { return spec_.place; }
  uint64_t key() const { return key_; }

  // The defended batch. Row r of x is query first_query + r.
  Tensor apply(const Tensor& x, uint64_t first_query) const;
  // Row r of x is query queries[r] (any order; runs of consecutive ids are drawn in one kernel call each).
  Tensor apply(const Tensor& x, const std::vector<uint64_t>& queries) const;

  // The first Philox counter of query q for samples of `per_sample` elements (ValueError past 2^64).
  static uint64_t counter(uint64_t query, int64_t per_sample);

 protected:
  // Rows of x (contiguous, a batch of at least one sample) are the consecutive queries first_query, ...
  virtual Tensor apply_block(const Tensor& x, uint64_t first_query) const = 0;

 private:
  DefenseSpec spec_;
  uint64_t key_;
};

using DefenseChain = std::vector<std::shared_ptr<const Defense>>;

// What a deployment measured once on the edge's own data, for kinds that need it (CIS: the mean numerical rank of
// each channel of the split's feature map, split/cis.h). Stored with the deployment.
struct DefenseCalibration {
  std::vector<double> channel_rank;
  int64_t images = 0;  // how many images it was measured on
  bool empty() const { return channel_rank.empty(); }
};
// As text in a deployment's metadata: "images=256 ranks=5.7,4.2,..." (every rank round-trips exactly), and back
// (ValueError naming `where` for anything else: a count that is not one, a rank that is not a finite number >= 0).
std::string calibration_text(const DefenseCalibration& c);
DefenseCalibration parse_calibration(const std::string& text, const std::string& where);

// Everything a kind needs to build an instance.
struct DefenseSetup {
  uint64_t key = 0;
  const DefenseCalibration* calibration = nullptr;  // null when the caller has none
};

// A kind of defense: its name, the name of its level (accepted as KEY=), the options it takes, a check of a spec
// (ValueError saying what is wrong) and a factory.
struct DefenseKind {
  std::string name;
  std::string level_name;  // e.g. "sigma"
  std::string level_help;  // e.g. "the standard deviation σ >= 0 of the noise"
  std::vector<std::string> options;
  std::function<void(const DefenseSpec&)> validate;
  std::function<std::unique_ptr<Defense>(const DefenseSpec&, const DefenseSetup&)> make;
  // Whether an instance of this spec needs a calibration (null: never).
  std::function<bool(const DefenseSpec&)> needs_calibration;
};
void register_defense_kind(DefenseKind kind);              // replaces a kind of the same name
const DefenseKind& defense_kind(const std::string& name);  // ValueError listing the kinds
std::vector<std::string> defense_kind_names();

// The Philox key of defense number `position` of a chain seeded with `seed` (splitmix64 of both).
uint64_t defense_key(uint64_t seed, size_t position);
// Builds the chain: every spec must have its level; defense k gets defense_key(seed, k). A kind that needs a
// calibration gets `calibration` (ValueError when it is null or empty).
DefenseChain make_defenses(const std::vector<DefenseSpec>& specs, uint64_t seed,
                           const DefenseCalibration* calibration = nullptr);
// Whether any of the specs needs a calibration (split/cis.h: calibrate_channels).
bool needs_calibration(const std::vector<DefenseSpec>& specs);
std::string chain_str(const DefenseChain& chain);  // "none" for an empty chain

}  // namespace sl
