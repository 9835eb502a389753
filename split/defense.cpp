#include "split/defense.h"

#include <cmath>
#include <cstdlib>
#include <iomanip>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>

#include "split/cis.h"
#include "split/kinds.h"

namespace sl {

const char* place_name(Place p) { return p == Place::input ? "input" : "intermediate"; }

Place parse_place(const std::string& name) {
  if (name == "input") return Place::input;
  if (name == "intermediate") return Place::intermediate;
  throw ValueError("unknown defense place '" + name + "' (places: input, intermediate)");
}

// ---- the spec ------------------------------------------------------------------------------------------------

namespace {

// A finite number spelled in full ("0.5", "1e-3"); nullopt for anything else (text after it, NaN, inf).
std::optional<double> parse_number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

// The shortest decimal text that reads back as v.
std::string number_str(double v) {
  for (int p = 1; p <= 17; ++p) {
    std::ostringstream os;
    os << std::setprecision(p) << v;
    if (std::strtod(os.str().c_str(), nullptr) == v) return os.str();
  }
  std::ostringstream os;
  os << std::setprecision(17) << v;
  return os.str();
}

}  // namespace

bool DefenseSpec::has(const std::string& key) const {
  for (auto& [k, v] : options)
    if (k == key) return true;
  return false;
}

std::string DefenseSpec::option(const std::string& key, const std::string& fallback) const {
  for (auto& [k, v] : options)
    if (k == key) return v;
  return fallback;
}

double DefenseSpec::number(const std::string& key, double fallback) const {
  if (!has(key)) return fallback;
  auto v = parse_number(option(key));
  SL_CHECK(v, ValueError, "defense ", kind, ": option ", key, "=", option(key), " is not a finite number");
  return *v;
}

bool DefenseSpec::flag(const std::string& key) const {
  if (!has(key)) return false;
  std::string v = option(key);
  if (v.empty() || v == "1" || v == "true" || v == "yes" || v == "on") return true;
  if (v == "0" || v == "false" || v == "no" || v == "off") return false;
  throw ValueError(::sl::str("defense ", kind, ": flag ", key, "=", v, " must be true or false"));
}

std::string DefenseSpec::str() const {
  std::string s = kind;
  std::string args = level ? number_str(*level) : "";
  for (auto& [k, v] : options) args += (args.empty() ? "" : ",") + k + (v.empty() ? "" : "=" + v);
  if (!args.empty()) s += ":" + args;
  return s + "@" + place_name(place);
}

DefenseSpec DefenseSpec::at_level(double l) const {
  DefenseSpec s = *this;
  s.level = l;
  return s;
}

std::string defenses_str(const std::vector<DefenseSpec>& specs) {
  std::string s;
  for (auto& d : specs) s += (s.empty() ? "" : ",") + d.str();
  return s;
}

namespace {

bool is_kind(const std::string& name);

// One comma-separated piece added to the item being built (or starting one).
struct ItemBuilder {
  DefenseSpec spec;
  bool place_set = false;
  bool level_by_position_allowed = true;
};

void add_arg(ItemBuilder& b, const std::string& arg, const std::string& piece) {
  const DefenseKind& k = defense_kind(b.spec.kind);
  SL_CHECK(!arg.empty(), ValueError, "defense spec: empty argument in '", piece, "'");
  auto eq = arg.find('=');
  std::string key = eq == std::string::npos ? arg : arg.substr(0, eq);
  std::string value = eq == std::string::npos ? "" : arg.substr(eq + 1);
  if (eq == std::string::npos && b.level_by_position_allowed && !b.spec.level) {
    if (auto v = parse_number(arg)) {
      b.spec.level = *v;
      b.level_by_position_allowed = false;
      return;
    }
    // Not a number: "nan", "inf", "1.5x" or a flag.
    bool looks_numeric =
        !arg.empty() && (std::isdigit(static_cast<unsigned char>(arg[0])) || arg[0] == '-' || arg[0] == '+' ||
                         arg[0] == '.' || arg == "nan" || arg == "inf" || arg == "NaN" || arg == "Inf");
    SL_CHECK(!looks_numeric, ValueError, "defense ", b.spec.kind, ": level '", arg, "' is not a finite number (",
             k.level_help, ")");
  }
  b.level_by_position_allowed = false;
  if (key == k.level_name || key == "level") {
    SL_CHECK(!b.spec.level, ValueError, "defense ", b.spec.kind, ": the level is given twice in '", piece, "'");
    auto v = parse_number(value);
    SL_CHECK(v, ValueError, "defense ", b.spec.kind, ": ", key, "=", value, " is not a finite number (", k.level_help,
             ")");
    b.spec.level = *v;
    return;
  }
  if (key == "place") {
    SL_CHECK(!b.place_set, ValueError, "defense ", b.spec.kind, ": the place is given twice");
    b.spec.place = parse_place(value);
    b.place_set = true;
    return;
  }
  bool known = false;
  for (auto& o : k.options) known = known || o == key;
  if (!known) {
    std::string list = k.level_name;
    for (auto& o : k.options) list += ", " + o;
    throw ValueError(str(
        "defense ", b.spec.kind, ": unknown option '", key, "' (options: ", list, ", place; or a new defense, kinds: ",
        [] {
          std::string s;
          for (auto& n : defense_kind_names()) s += (s.empty() ? "" : ", ") + n;
          return s;
        }(),
        ")"));
  }
  SL_CHECK(!b.spec.has(key), ValueError, "defense ", b.spec.kind, ": option ", key, " is given twice");
  b.spec.options.emplace_back(key, value);
}

void finish(ItemBuilder& b, bool level_required, std::vector<DefenseSpec>& out) {
  const DefenseKind& k = defense_kind(b.spec.kind);
  SL_CHECK(!level_required || b.spec.level, ValueError, "defense ", b.spec.kind, ": needs a level, e.g. ", b.spec.kind,
           ":", k.level_name, "=... (", k.level_help, ")");
  if (k.validate) k.validate(b.spec);
  out.push_back(b.spec);
}

}  // namespace

std::vector<DefenseSpec> parse_defenses(const std::string& text, bool level_required) {
  SL_CHECK(!text.empty(), ValueError, "empty defense spec (e.g. dropout:0.6, gaussian:0.5@input)");
  std::vector<DefenseSpec> out;
  std::optional<ItemBuilder> cur;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string piece = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    start = comma == std::string::npos ? text.size() + 1 : comma + 1;
    SL_CHECK(!piece.empty(), ValueError, "defense spec '", text, "': empty item between commas");
    // An '@PLACE' suffix belongs to the item of this piece.
    std::string body = piece, place;
    if (auto at = piece.rfind('@'); at != std::string::npos) {
      body = piece.substr(0, at);
      place = piece.substr(at + 1);
    }
    auto colon = body.find(':');
    std::string head = colon == std::string::npos ? body : body.substr(0, colon);
    bool starts_item = colon != std::string::npos || is_kind(head);
    if (starts_item) {
      if (cur) finish(*cur, level_required, out);
      cur.emplace();
      cur->spec.kind = defense_kind(head).name;  // ValueError listing the kinds
      if (colon != std::string::npos) add_arg(*cur, body.substr(colon + 1), piece);
    } else {
      SL_CHECK(
          cur, ValueError, "unknown defense kind '", head, "' (kinds: ",
          [] {
            std::string s;
            for (auto& n : defense_kind_names()) s += (s.empty() ? "" : ", ") + n;
            return s;
          }(),
          ")");
      add_arg(*cur, body, piece);
    }
    if (!place.empty() || piece.find('@') != std::string::npos) {
      SL_CHECK(!cur->place_set, ValueError, "defense ", cur->spec.kind, ": the place is given twice");
      cur->spec.place = parse_place(place);
      cur->place_set = true;
    }
  }
  if (cur) finish(*cur, level_required, out);
  return out;
}

// ---- the registry ------------------------------------------------------------------------------------------

namespace {

struct Registry {
  std::vector<DefenseKind> kinds;
  Registry() {
    kinds.push_back(kinds::gaussian());
    kinds.push_back(kinds::laplace());
    kinds.push_back(kinds::dropout());
    kinds.push_back(kinds::cis());
  }
};

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
Registry& registry() {
  static Registry r;
  return r;
}

bool is_kind(const std::string& name) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (auto& k : registry().kinds)
    if (k.name == name) return true;
  return false;
}

}  // namespace

void register_defense_kind(DefenseKind kind) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (auto& k : registry().kinds)
    if (k.name == kind.name) {
      k = std::move(kind);
      return;
    }
  registry().kinds.push_back(std::move(kind));
}

const DefenseKind& defense_kind(const std::string& name) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::string names;
  for (auto& k : registry().kinds) {
    if (k.name == name) return k;
    names += (names.empty() ? "" : ", ") + k.name;
  }
  throw ValueError(str("unknown defense kind '", name, "' (kinds: ", names, ")"));
}

std::vector<std::string> defense_kind_names() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  std::vector<std::string> names;
  for (auto& k : registry().kinds) names.push_back(k.name);
  return names;
}

void kinds::check_level(const DefenseSpec& s, const char* what, double lo, double hi, bool hi_open) {
  if (!s.level) return;
  double v = *s.level;
  bool ok = std::isfinite(v) && v >= lo && (hi_open ? v < hi : v <= hi);
  if (ok) return;
  std::string range = std::isinf(hi) ? str(">= ", lo) : str("in [", lo, ", ", hi, hi_open ? ")" : "]");
  throw ValueError(str("defense ", s.kind, ": ", what, " must be ", range, ", got ", v));
}

// ---- instances -----------------------------------------------------------------------------------------------

Defense::Defense(DefenseSpec spec, uint64_t key) : spec_(std::move(spec)), key_(key) {
  SL_CHECK(spec_.level, ValueError, "defense ", spec_.kind, ": an instance needs a level");
}

uint64_t Defense::counter(uint64_t query, int64_t per_sample) {
  const uint64_t p = uint64_t(std::max<int64_t>(per_sample, 1));
  SL_CHECK(query <= (std::numeric_limits<uint64_t>::max() - p) / p, ValueError, "defense: query number ", query,
           " is too large for samples of ", per_sample, " elements");
  return query * p;
}

Tensor Defense::apply(const Tensor& x, uint64_t first_query) const {
  SL_CHECK(x.defined() && x.dim() >= 1 && x.size(0) >= 1, ShapeError, "defense ", spec_.kind,
           ": needs a batch of at least one sample, got ", x.defined() ? x.str() : "an undefined tensor");
  SL_CHECK(x.dtype() != DType::i32, ValueError, "defense ", spec_.kind, ": needs float32/float64 input, got ", x.str());
  return apply_block(x, first_query);
}

Tensor Defense::apply(const Tensor& x, const std::vector<uint64_t>& queries) const {
  SL_CHECK(x.defined() && x.dim() >= 1 && int64_t(queries.size()) == x.size(0), ShapeError, "defense ", spec_.kind,
           ": ", queries.size(), " query numbers for a batch ", x.defined() ? x.str() : "(undefined)");
  // Runs of consecutive query numbers are drawn in one call each.
  std::vector<std::pair<int64_t, int64_t>> runs;  // [begin, end) rows
  for (int64_t r = 0; r < x.size(0); ++r) {
    if (!runs.empty() && queries[size_t(r)] == queries[size_t(r - 1)] + 1)
      runs.back().second = r + 1;
    else
      runs.push_back({r, r + 1});
  }
  if (runs.size() == 1) return apply(x, queries[0]);
  // Pieces joined row-wise. (No graph across the join: an attacker who trains through a defense calls the
  // consecutive form.)
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  for (auto [b, e] : runs) {
    Tensor part = apply(x.slice(b, e), queries[size_t(b)]);
    Tensor dst = out.slice(b, e);
    dst.copy_(part.detach());
  }
  return out;
}

uint64_t defense_key(uint64_t seed, size_t position) {
  // splitmix64 of the seed advanced by the position: distinct, well-mixed keys for the defenses of one chain.
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t(position) + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string calibration_text(const DefenseCalibration& c) {
  std::ostringstream o;
  o << "images=" << c.images << " ranks=";
  o << std::setprecision(17);
  for (size_t i = 0; i < c.channel_rank.size(); ++i) o << (i ? "," : "") << c.channel_rank[i];
  return o.str();
}

DefenseCalibration parse_calibration(const std::string& text, const std::string& where) {
  auto printable = [](std::string t) {  // a file's bytes quoted in a one-line error
    for (char& c : t)
      if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7F) c = '?';
    return t;
  };
  auto bad = [&](const std::string& why) {
    return ValueError(str(printable(where), ": not a channel calibration (", printable(why), "): '",
                          printable(text.substr(0, 80)), "'"));
  };
  const std::string a = "images=", b = " ranks=";
  const size_t at = text.find(b);
  if (text.rfind(a, 0) != 0 || at == std::string::npos) throw bad("expected 'images=N ranks=R,R,...'");
  DefenseCalibration c;
  const std::string n = text.substr(a.size(), at - a.size());
  size_t used = 0;
  try {
    c.images = std::stoll(n, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (n.empty() || used != n.size() || c.images < 1) throw bad("the image count '" + n + "' is not a count >= 1");
  std::stringstream ss(text.substr(at + b.size()));
  std::string item;
  while (std::getline(ss, item, ',')) {
    double r = 0;
    try {
      r = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (item.empty() || used != item.size() || !std::isfinite(r) || r < 0)
      throw bad("rank '" + item + "' is not a finite number >= 0");
    c.channel_rank.push_back(r);
  }
  if (c.channel_rank.empty()) throw bad("no ranks");
  return c;
}

bool needs_calibration(const std::vector<DefenseSpec>& specs) {
  for (auto& s : specs) {
    const DefenseKind& k = defense_kind(s.kind);
    if (k.needs_calibration && k.needs_calibration(s)) return true;
  }
  return false;
}

DefenseChain make_defenses(const std::vector<DefenseSpec>& specs, uint64_t seed,
                           const DefenseCalibration* calibration) {
  DefenseChain chain;
  for (size_t i = 0; i < specs.size(); ++i) {
    const DefenseKind& k = defense_kind(specs[i].kind);
    SL_CHECK(specs[i].level, ValueError, "defense ", specs[i].kind, ": needs a level");
    if (k.validate) k.validate(specs[i]);
    DefenseSetup setup;
    setup.key = defense_key(seed, i);
    if (k.needs_calibration && k.needs_calibration(specs[i])) {
      SL_CHECK(calibration && !calibration->empty(), ValueError, "defense ", specs[i].str(),
               " needs a calibration on the edge's own data (none was given)");
      setup.calibration = calibration;
    }
    chain.push_back(std::shared_ptr<const Defense>(k.make(specs[i], setup)));
  }
  return chain;
}

std::string chain_str(const DefenseChain& chain) {
  std::string s;
  for (auto& d : chain) s += (s.empty() ? "" : ",") + d->spec().str();
  return s.empty() ? "none" : s;
}

}  // namespace sl
