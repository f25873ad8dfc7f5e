#include "models/partition.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <exception>
#include <fstream>
#include <iterator>
#include <memory>
#include <numeric>
#include <optional>
#include <sstream>
#include <utility>

#include "autograd/shape_ops.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/digest.h"

namespace veil::models {

namespace {

// ---- CSV ----------------------------------------------------------------------------------------

constexpr std::string_view kReadOp = "read_table_csv";

bool is_blank(char c) {
  return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_blank(s.front())) {
    s.remove_prefix(1);
  }
  while (!s.empty() && is_blank(s.back())) {
    s.remove_suffix(1);
  }
  return s;
}

// Splits one line into fields (see parse_table_csv for the quoting rules). Throws ValueError
// naming the line and the 1-based field for an unterminated quote or text after a closing quote.
std::vector<std::string> split_fields(std::string_view line,
                                      char delimiter,
                                      const std::string& source,
                                      int64_t line_no) {
  std::vector<std::string> fields;
  std::size_t i = 0;
  const std::size_t n = line.size();
  while (true) {
    const auto column = static_cast<int64_t>(fields.size()) + 1;
    while (i < n && is_blank(line[i]) && line[i] != delimiter) {
      ++i;
    }
    std::string field;
    if (i < n && line[i] == '"') {
      ++i;
      bool closed = false;
      while (i < n) {
        if (line[i] == '"') {
          if (i + 1 < n && line[i + 1] == '"') {
            field.push_back('"');
            i += 2;
            continue;
          }
          ++i;
          closed = true;
          break;
        }
        field.push_back(line[i]);
        ++i;
      }
      VEIL_CHECK(closed,
                 "[{}] '{}' line {}, column {}: unterminated quoted field (line breaks inside "
                 "quotes are not supported)",
                 kReadOp, source, line_no, column);
      while (i < n && is_blank(line[i]) && line[i] != delimiter) {
        ++i;
      }
      VEIL_CHECK(i == n || line[i] == delimiter,
                 "[{}] '{}' line {}, column {}: text after the closing quote", kReadOp, source,
                 line_no, column);
    } else {
      const std::size_t start = i;
      while (i < n && line[i] != delimiter) {
        ++i;
      }
      field = std::string(trim(line.substr(start, i - start)));
    }
    fields.push_back(std::move(field));
    if (i >= n) {
      break;
    }
    ++i;  // the delimiter
  }
  return fields;
}

// A finite number in std::from_chars syntax (an optional leading '+' allowed), or nullopt.
std::optional<double> parse_number(std::string_view s) {
  if (!s.empty() && s.front() == '+') {
    s.remove_prefix(1);
    if (!s.empty() && (s.front() == '-' || s.front() == '+')) {
      return std::nullopt;
    }
  }
  if (s.empty()) {
    return std::nullopt;
  }
  double v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

// SHA-256 over le64(count) and, per string, le64(length) || bytes.
std::array<uint8_t, 32> strings_digest(const std::vector<std::string>& items) {
  crypto::Sha256 h;
  h.update_u64(items.size());
  for (const std::string& s : items) {
    h.update_u64(s.size());
    h.update(s);
  }
  return h.digest();
}

// ---- the metadata record of share_vertical / share_horizontal ----------------------------------

enum class Kind : int64_t { kVertical = 1, kHorizontal = 2 };

// Slots of the int64 record every party all_gathers.
enum Slot : std::size_t {
  kKind = 0,
  kOk,
  kHasData,
  kRows,
  kWidth,
  kHasLabel,
  kAnnouncedClasses,
  kIdDigest,                      // 4 slots
  kHeaderDigest = kIdDigest + 4,  // 4 slots
  kOptLabels = kHeaderDigest + 4,
  kOptClasses,
  kOptFeatures,
  kOptRequireLabels,
  kMessageBytes,
  kRecordSlots,
};
static_assert(kRecordSlots == 20, "the documented cost is 8 * 20 bytes per peer");

// Longest error message a party sends (longer ones are cut).
constexpr std::size_t kMaxMessageBytes = 4000;

void put_digest(std::vector<int64_t>& rec, std::size_t slot, const std::array<uint8_t, 32>& d) {
  std::memcpy(rec.data() + slot, d.data(), d.size());
}

bool same_digest(const std::vector<int64_t>& a, const std::vector<int64_t>& b, std::size_t slot) {
  return std::equal(a.begin() + static_cast<std::ptrdiff_t>(slot),
                    a.begin() + static_cast<std::ptrdiff_t>(slot + 4),
                    b.begin() + static_cast<std::ptrdiff_t>(slot));
}

std::string kind_function(int64_t kind) {
  if (kind == static_cast<int64_t>(Kind::kVertical)) {
    return "share_vertical/load_vertical";
  }
  if (kind == static_cast<int64_t>(Kind::kHorizontal)) {
    return "share_horizontal/load_horizontal";
  }
  return "an unknown function";
}

std::string join_ranks(const std::vector<int>& ranks) {
  std::string out;
  for (std::size_t i = 0; i < ranks.size(); ++i) {
    if (i > 0) {
      out += i + 1 == ranks.size() ? " and " : ", ";
    }
    out += std::to_string(ranks[i]);
  }
  return out;
}

// Local checks a party makes before the exchange (the result goes into its record as an error
// message, so every party learns of it): values within the fixed-point range, labels below the
// given class count. Returns the largest label + 1 (0 without labels).
int64_t check_local(const crypto::Party& party,
                    const LocalTable& t,
                    const ShareTableOptions& options,
                    std::string_view op) {
  if (!t.has_data()) {
    return 0;
  }
  VEIL_CHECK(t.features.dtype() == core::DType::kFloat64 && t.features.dim() == 2,
             "[{}] '{}': expected float64 features [n, d], got {}", op, t.source, t.features.str());
  const int64_t n = t.rows();
  const int64_t d = t.width();
  VEIL_CHECK(n >= 1, "[{}] '{}': a table with data needs at least one row", op, t.source);
  VEIL_CHECK(static_cast<int64_t>(t.ids.size()) == n, "[{}] '{}': {} ids for {} rows", op, t.source,
             t.ids.size(), n);
  VEIL_CHECK(t.lines.empty() || static_cast<int64_t>(t.lines.size()) == n,
             "[{}] '{}': {} line numbers for {} rows", op, t.source, t.lines.size(), n);
  VEIL_CHECK(std::is_sorted(t.ids.begin(), t.ids.end()) &&
                 std::adjacent_find(t.ids.begin(), t.ids.end()) == t.ids.end(),
             "[{}] '{}': ids must be sorted and unique (use parse_table_csv)", op, t.source);
  auto line_of = [&](int64_t row) {
    return t.lines.empty() ? row + 1 : t.lines[static_cast<std::size_t>(row)];
  };
  const core::Tensor f = t.features.contiguous();
  const auto* fp = f.data<double>();
  const double limit = party.encoder().max_abs();
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      const double v = fp[i * d + j];
      VEIL_CHECK(std::isfinite(v) && std::abs(v) <= limit,
                 "[{}] '{}' line {}, feature column {} of {}: a value outside the fixed-point "
                 "range +-2^{} (frac_bits {}) or not finite",
                 op, t.source, line_of(i), j + 1, d, 62 - party.frac_bits(), party.frac_bits());
    }
  }
  if (!t.has_labels()) {
    return 0;
  }
  VEIL_CHECK(t.labels.dtype() == core::DType::kInt64 && t.labels.shape() == core::Shape{n},
             "[{}] '{}': expected int64 labels [{}], got {}", op, t.source, n, t.labels.str());
  int64_t top = 0;
  const auto labels = t.labels.to_vector<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t y = labels[static_cast<std::size_t>(i)];
    VEIL_CHECK(y >= 0 && (options.classes <= 0 || y < options.classes),
               "[{}] '{}' line {}: a label outside [0, {})", op, t.source, line_of(i),
               options.classes > 0 ? std::to_string(options.classes) : std::string("2^31"));
    top = std::max(top, y + 1);
  }
  return top;
}

struct Gathered {
  std::vector<std::vector<int64_t>> records;  // by rank
  std::vector<std::string> messages;          // by rank ("" when fine)
};

// The metadata exchange: one all_gather of the records, and one of the messages when a party
// reports an error.
Gathered exchange(crypto::Party& party, const std::vector<int64_t>& record, std::string message) {
  auto& comm = party.comm();
  const core::Tensor mine =
      core::Tensor::from_vector<int64_t>(record, {static_cast<int64_t>(kRecordSlots)});
  const std::vector<core::Tensor> all = comm.all_gather(party.next_tag("share_table"), mine);
  Gathered g;
  std::size_t longest = 0;
  for (const core::Tensor& t : all) {
    g.records.push_back(t.to_vector<int64_t>());
    const int64_t len = g.records.back()[kMessageBytes];
    VEIL_CHECK_WITH(ProtocolError, len >= 0 && len <= static_cast<int64_t>(kMaxMessageBytes),
                    "[share_table] a party announced a message of {} bytes", len);
    longest = std::max(longest, static_cast<std::size_t>(len));
  }
  g.messages.resize(all.size());
  if (longest > 0) {
    message.resize(longest, '\0');
    core::Tensor bytes = core::Tensor::empty({static_cast<int64_t>(longest)}, core::DType::kUInt8);
    std::memcpy(bytes.data<uint8_t>(), message.data(), longest);
    const std::vector<core::Tensor> texts = comm.all_gather(party.next_tag("share_table"), bytes);
    for (std::size_t p = 0; p < texts.size(); ++p) {
      const auto len = static_cast<std::size_t>(g.records[p][kMessageBytes]);
      g.messages[p].assign(reinterpret_cast<const char*>(texts[p].data<uint8_t>()), len);
    }
  }
  return g;
}

// Every check below runs on the gathered records only, so every party reaches the same verdict
// and throws the same message.
SharedTable share_table(crypto::Party& party,
                        const LocalTable& mine,
                        std::string local_error,
                        Kind kind,
                        const ShareTableOptions& options,
                        std::string_view op) {
  const int world = party.world_size();
  const int rank = party.rank();
  int64_t announced = 0;
  if (local_error.empty()) {
    try {
      announced = check_local(party, mine, options, op);
    } catch (const std::exception& e) {
      local_error = e.what();
    }
  }
  if (local_error.size() > kMaxMessageBytes) {
    local_error.resize(kMaxMessageBytes);
  }
  const bool ok = local_error.empty();
  const bool has_data = ok && mine.has_data();

  std::vector<int64_t> rec(kRecordSlots, 0);
  rec[kKind] = static_cast<int64_t>(kind);
  rec[kOk] = ok ? 1 : 0;
  rec[kHasData] = has_data ? 1 : 0;
  rec[kRows] = has_data ? mine.rows() : 0;
  rec[kWidth] = has_data ? mine.width() : 0;
  rec[kHasLabel] = has_data && mine.has_labels() ? 1 : 0;
  // Disclosed only when the class count is not given.
  rec[kAnnouncedClasses] = options.classes > 0 ? 0 : announced;
  if (has_data && kind == Kind::kVertical) {
    put_digest(rec, kIdDigest, id_digest(mine.ids));  // ids are shared knowledge (vertical)
  }
  if (has_data && kind == Kind::kHorizontal) {
    put_digest(rec, kHeaderDigest, strings_digest(mine.feature_names));
  }
  rec[kOptLabels] = static_cast<int64_t>(options.labels);
  rec[kOptClasses] = options.classes;
  rec[kOptFeatures] = options.features;
  rec[kOptRequireLabels] = options.require_labels ? 1 : 0;
  rec[kMessageBytes] = static_cast<int64_t>(local_error.size());

  const Gathered g = exchange(party, rec, local_error);
  const auto& r = g.records;
  auto at = [&](int p, std::size_t slot) {
    return r[static_cast<std::size_t>(p)][slot];
  };

  // 1. the same function and options everywhere
  for (int p = 1; p < world; ++p) {
    VEIL_CHECK(at(p, kKind) == at(0, kKind),
               "[{}] the parties called different functions: party 0 {}, party {} {}", op,
               kind_function(at(0, kKind)), p, kind_function(at(p, kKind)));
    VEIL_CHECK(std::equal(r[static_cast<std::size_t>(p)].begin() + kOptLabels,
                          r[static_cast<std::size_t>(p)].begin() + kMessageBytes,
                          r[0].begin() + kOptLabels),
               "[{}] the parties passed different ShareTableOptions: party 0 (labels {}, classes "
               "{}, features {}, require_labels {}), party {} (labels {}, classes {}, features "
               "{}, require_labels {})",
               op, at(0, kOptLabels), at(0, kOptClasses), at(0, kOptFeatures),
               at(0, kOptRequireLabels), p, at(p, kOptLabels), at(p, kOptClasses),
               at(p, kOptFeatures), at(p, kOptRequireLabels));
  }
  // 2. local failures, all of them, in rank order
  {
    std::string failures;
    for (int p = 0; p < world; ++p) {
      if (at(p, kOk) == 0) {
        failures += fmt::format("{}party {} {}: {}", failures.empty() ? "" : "; ", p,
                                op.starts_with("load") ? "could not load its table" : "failed",
                                g.messages[static_cast<std::size_t>(p)]);
      }
    }
    VEIL_CHECK(failures.empty(), "[{}] {}", op, failures);
  }
  // 3. options
  VEIL_CHECK(options.classes >= 0, "[{}] expected classes >= 0 (0: inferred), got {}", op,
             options.classes);
  VEIL_CHECK(options.features >= -1, "[{}] expected features >= 1 or -1 (any), got {}", op,
             options.features);

  std::vector<int> with_data;
  std::vector<int> with_labels;
  for (int p = 0; p < world; ++p) {
    if (at(p, kHasData) != 0) {
      with_data.push_back(p);
      if (at(p, kHasLabel) != 0) {
        with_labels.push_back(p);
      }
    }
  }
  VEIL_CHECK(!with_data.empty(), "[{}] no party has data", op);
  const int first = with_data.front();

  SharedTable out;
  out.rows.assign(static_cast<std::size_t>(world), 0);
  out.widths.assign(static_cast<std::size_t>(world), 0);
  int64_t n = 0;
  int64_t d = 0;
  if (kind == Kind::kVertical) {
    // 4v. the same id set everywhere, at most one label owner
    n = at(first, kRows);
    for (const int p : with_data) {
      VEIL_CHECK(at(p, kRows) == n,
                 "[{}] the parties' sample id sets differ: party {} has {} rows, party {} has {} "
                 "rows; a vertical partition needs the same sample ids in every file",
                 op, first, n, p, at(p, kRows));
      VEIL_CHECK(same_digest(r[static_cast<std::size_t>(p)], r[static_cast<std::size_t>(first)],
                             kIdDigest),
                 "[{}] the parties' sample id sets differ: parties {} and {} both have {} rows but "
                 "different ids (the SHA-256 digests of their sorted id lists differ); a vertical "
                 "partition needs the same sample ids in every file",
                 op, first, p, n);
      out.rows[static_cast<std::size_t>(p)] = n;
      out.widths[static_cast<std::size_t>(p)] = at(p, kWidth);
      d += at(p, kWidth);
    }
    VEIL_CHECK(with_labels.size() <= 1,
               "[{}] the label column appears in the files of parties {}; in a vertical partition "
               "exactly one party owns the labels",
               op, join_ranks(with_labels));
    VEIL_CHECK(d >= 1, "[{}] no party has a feature column", op);
  } else {
    // 4h. the same columns everywhere, labels in every file or in none
    d = at(first, kWidth);
    for (const int p : with_data) {
      VEIL_CHECK(at(p, kWidth) == d,
                 "[{}] the parties' files have different feature columns: party {} has {}, "
                 "party {} has {}; a horizontal partition needs the same columns in every file",
                 op, first, d, p, at(p, kWidth));
      VEIL_CHECK(same_digest(r[static_cast<std::size_t>(p)], r[static_cast<std::size_t>(first)],
                             kHeaderDigest),
                 "[{}] the parties' files have different feature columns: parties {} and {} both "
                 "have {} but with different names or in a different order; a horizontal "
                 "partition needs the same columns in every file",
                 op, first, p, d);
      out.rows[static_cast<std::size_t>(p)] = at(p, kRows);
      out.widths[static_cast<std::size_t>(p)] = d;
      n += at(p, kRows);
    }
    if (!with_labels.empty() && with_labels.size() != with_data.size()) {
      std::vector<int> without;
      std::set_difference(with_data.begin(), with_data.end(), with_labels.begin(),
                          with_labels.end(), std::back_inserter(without));
      throw ValueError(fmt::format(
          "[{}] the label column appears in the files of parties {} but not in those of "
          "parties {}; in a horizontal partition every row owner shares its labels",
          op, join_ranks(with_labels), join_ranks(without)));
    }
    VEIL_CHECK(d >= 1, "[{}] the tables have no feature column", op);
  }
  VEIL_CHECK(!options.require_labels || !with_labels.empty(),
             "[{}] no party's file has the label column (require_labels is set)", op);
  VEIL_CHECK(options.features < 0 || d == options.features,
             "[{}] expected {} feature columns in all (the model's input width), the parties "
             "have {}",
             op, options.features, d);
  int64_t classes = 0;
  if (!with_labels.empty()) {
    classes = options.classes;
    if (classes == 0) {
      for (const int p : with_labels) {
        classes = std::max(classes, at(p, kAnnouncedClasses));
      }
    }
    VEIL_CHECK(
        classes >= 1 && (options.labels != LabelEncoding::kOneHot || classes <= kMaxTableClasses),
        "[{}] expected 1 to {} classes for one-hot labels, got {}", op, kMaxTableClasses, classes);
  }

  // 5. sharing: every owner's block from its owner (PRZS: no communication), then cat
  std::vector<MpcTensor> blocks;
  std::vector<MpcTensor> label_blocks;
  auto share_labels = [&](int owner, int64_t rows) {
    core::Tensor values;
    core::Shape shape{rows};
    if (options.labels == LabelEncoding::kOneHot) {
      shape.push_back(classes);
    }
    if (owner == rank) {
      values = options.labels == LabelEncoding::kOneHot
                   ? core::one_hot(mine.labels.contiguous(), classes)
                   : mine.labels.to(core::DType::kFloat64);
    }
    label_blocks.push_back(MpcTensor::share(values, owner, shape, party));
  };
  for (const int p : with_data) {
    const bool me = p == rank;
    if (kind == Kind::kVertical) {
      const int64_t dp = at(p, kWidth);
      if (dp > 0) {
        blocks.push_back(MpcTensor::share(me ? mine.features : core::Tensor(), p, {n, dp}, party));
      }
      if (at(p, kHasLabel) != 0) {
        share_labels(p, n);
        out.label_owner = p;
      }
    } else {
      const int64_t np = at(p, kRows);
      blocks.push_back(MpcTensor::share(me ? mine.features : core::Tensor(), p, {np, d}, party));
      if (at(p, kHasLabel) != 0) {
        share_labels(p, np);
      }
    }
  }
  const int64_t cat_dim = kind == Kind::kVertical ? 1 : 0;
  out.x = blocks.size() == 1 ? blocks.front() : veil::cat(blocks, cat_dim);
  if (!label_blocks.empty()) {
    out.y = label_blocks.size() == 1 ? label_blocks.front() : veil::cat(label_blocks, 0);
    out.classes = classes;
  }
  return out;
}

SharedTable load_table(crypto::Party& party,
                       const std::string& path,
                       const TableOptions& table,
                       const ShareTableOptions& options,
                       Kind kind,
                       std::string_view op) {
  LocalTable mine;
  std::string error;
  if (!path.empty()) {
    try {
      mine = read_table_csv(path, table);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  return share_table(party, mine, std::move(error), kind, options, op);
}

}  // namespace

LocalTable parse_table_csv(std::string_view text,
                           const std::string& source,
                           const TableOptions& options) {
  VEIL_CHECK(options.delimiter != '"' && options.delimiter != '\n' && options.delimiter != '\r',
             "[{}] the delimiter cannot be a quote or a line break", kReadOp);
  VEIL_CHECK(!options.id_column.empty() && options.id_column != options.label_column,
             "[{}] expected a non-empty id column name different from the label column name",
             kReadOp);
  if (text.starts_with("\xEF\xBB\xBF")) {
    text.remove_prefix(3);
  }
  LocalTable out;
  out.source = source;

  std::vector<std::string> header;
  int64_t header_line = 0;
  std::size_t id_col = 0;
  std::optional<std::size_t> label_col;
  std::vector<std::size_t> feature_cols;
  std::vector<std::string> ids;
  std::vector<int64_t> lines;
  std::vector<double> values;
  std::vector<int64_t> labels;

  int64_t line_no = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    if (trim(line).empty()) {
      continue;
    }
    std::vector<std::string> fields = split_fields(line, options.delimiter, source, line_no);
    if (header.empty()) {
      header = std::move(fields);
      header_line = line_no;
      std::optional<std::size_t> id_at;
      for (std::size_t c = 0; c < header.size(); ++c) {
        VEIL_CHECK(!header[c].empty(), "[{}] '{}' line {}, column {}: empty column name", kReadOp,
                   source, line_no, c + 1);
        for (std::size_t k = 0; k < c; ++k) {
          VEIL_CHECK(header[k] != header[c],
                     "[{}] '{}' line {}: column name '{}' appears twice (columns {} and {})",
                     kReadOp, source, line_no, header[c], k + 1, c + 1);
        }
        if (header[c] == options.id_column) {
          id_at = c;
        } else if (header[c] == options.label_column) {
          label_col = c;
        } else {
          feature_cols.push_back(c);
          out.feature_names.push_back(header[c]);
        }
      }
      VEIL_CHECK(id_at.has_value(), "[{}] '{}' line {}: missing id column '{}' (columns: {})",
                 kReadOp, source, line_no, options.id_column, fmt::join(header, ", "));
      id_col = *id_at;
      continue;
    }
    VEIL_CHECK(fields.size() == header.size(),
               "[{}] '{}' line {}: {} fields, the header (line {}) has {} columns", kReadOp, source,
               line_no, fields.size(), header_line, header.size());
    VEIL_CHECK(!fields[id_col].empty(), "[{}] '{}' line {}, column {} ('{}'): empty id", kReadOp,
               source, line_no, id_col + 1, header[id_col]);
    ids.push_back(std::move(fields[id_col]));
    lines.push_back(line_no);
    for (const std::size_t c : feature_cols) {
      const std::optional<double> v = parse_number(fields[c]);
      VEIL_CHECK(v.has_value(), "[{}] '{}' line {}, column {} ('{}'): expected a finite number{}",
                 kReadOp, source, line_no, c + 1, header[c],
                 fields[c].empty() ? " (the field is empty)" : "");
      values.push_back(*v);
    }
    if (label_col) {
      const std::optional<double> v = parse_number(fields[*label_col]);
      VEIL_CHECK(v.has_value() && *v >= 0 && *v < 2147483648.0 && *v == std::floor(*v),
                 "[{}] '{}' line {}, column {} ('{}'): expected a class index (an integer in "
                 "[0, 2^31))",
                 kReadOp, source, line_no, *label_col + 1, header[*label_col]);
      labels.push_back(static_cast<int64_t>(*v));
    }
  }
  VEIL_CHECK(!header.empty(), "[{}] '{}': no header line (the file is empty)", kReadOp, source);
  VEIL_CHECK(!ids.empty(), "[{}] '{}': no data rows after the header (line {})", kReadOp, source,
             header_line);

  // rows sorted by id (bytewise), duplicates refused
  const auto n = static_cast<int64_t>(ids.size());
  std::vector<std::size_t> order(ids.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return ids[a] < ids[b]; });
  for (std::size_t i = 1; i < order.size(); ++i) {
    const std::size_t a = order[i - 1];
    const std::size_t b = order[i];
    VEIL_CHECK(ids[a] != ids[b],
               "[{}] '{}' line {}, column {} ('{}'): duplicate id (first at line {})", kReadOp,
               source, lines[b], id_col + 1, header[id_col], lines[a]);
  }
  const auto d = static_cast<int64_t>(feature_cols.size());
  out.features = core::Tensor::empty({n, d}, core::DType::kFloat64);
  auto* fp = out.features.data<double>();
  out.ids.reserve(ids.size());
  out.lines.reserve(ids.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    const std::size_t src = order[i];
    out.ids.push_back(std::move(ids[src]));
    out.lines.push_back(lines[src]);
    const auto du = static_cast<std::size_t>(d);
    std::copy_n(values.begin() + static_cast<std::ptrdiff_t>(src * du), du,
                fp + static_cast<std::ptrdiff_t>(i * du));
  }
  if (label_col) {
    out.labels = core::Tensor::empty({n}, core::DType::kInt64);
    auto* lp = out.labels.data<int64_t>();
    for (std::size_t i = 0; i < order.size(); ++i) {
      lp[i] = labels[order[i]];
    }
  }
  return out;
}

LocalTable read_table_csv(const std::string& path, const TableOptions& options) {
  std::ifstream in(path, std::ios::binary);
  VEIL_CHECK_WITH(IoError, in.good(), "[{}] cannot open '{}' for reading", kReadOp, path);
  std::ostringstream buf;
  buf << in.rdbuf();
  VEIL_CHECK_WITH(IoError, !in.bad(), "[{}] error while reading '{}'", kReadOp, path);
  return parse_table_csv(buf.str(), path, options);
}

std::array<uint8_t, 32> id_digest(const std::vector<std::string>& ids) {
  return strings_digest(ids);
}

SharedTable share_vertical(crypto::Party& party,
                           const LocalTable& mine,
                           const ShareTableOptions& options) {
  return share_table(party, mine, {}, Kind::kVertical, options, "share_vertical");
}

SharedTable share_horizontal(crypto::Party& party,
                             const LocalTable& mine,
                             const ShareTableOptions& options) {
  return share_table(party, mine, {}, Kind::kHorizontal, options, "share_horizontal");
}

SharedTable load_vertical(crypto::Party& party,
                          const std::string& path,
                          const TableOptions& table,
                          const ShareTableOptions& options) {
  return load_table(party, path, table, options, Kind::kVertical, "load_vertical");
}

SharedTable load_horizontal(crypto::Party& party,
                            const std::string& path,
                            const TableOptions& table,
                            const ShareTableOptions& options) {
  return load_table(party, path, table, options, Kind::kHorizontal, "load_horizontal");
}

}  // namespace veil::models
