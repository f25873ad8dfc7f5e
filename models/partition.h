#pragma once
// Data roles: tabular data split among the parties horizontally (every party owns some rows of
// the same columns) or vertically (every party owns some feature columns of the same samples,
// aligned by a shared sample id; one party owns the labels), read from CSV files and
// secret-shared into one feature matrix and one label tensor that every party then trains on.
//
// The steps, per party:
//   1. read_table_csv: the party's own CSV file (header with an id column, feature columns and,
//      where the party owns labels, a label column) -> LocalTable, rows sorted by id. Local.
//   2. share_vertical / share_horizontal (collective): one all_gather of a fixed-size public
//      record per party (load status, row count, column count, label ownership, SHA-256
//      digests), checked identically on every party, so a mismatch (different id sets, columns,
//      labels in two files, a file that failed to parse on one party) throws the same ValueError
//      on every party instead of hanging; then input sharing by pseudo-random zero-sharing
//      (MpcTensor::share, 0 rounds, 0 bytes) and veil::cat of the owners' blocks.
//   load_vertical / load_horizontal do both, carrying a party's read error through step 2.
//
// What the parties learn from each other (all public metadata, no feature or label value):
//   vertical:   every party's row count and column count d_p, who owns the labels, and the
//               SHA-256 of every party's sorted id list. Vertical learning assumes that the sample
//               ids are shared knowledge (the parties agreed beforehand on which samples they
//               train on); the digest only checks that agreement. Finding the common ids of
//               parties whose id sets differ needs a private set intersection, which is out of
//               scope: mismatching sets are refused.
//   horizontal: every party's row count n_p, column count, a SHA-256 of its header (the feature
//               names in order and whether it has labels). Ids are never sent (they only fix
//               the order of a party's own rows).
//   both:       the number of classes, when not given in ShareTableOptions::classes, is
//               1 + the largest label of the label owner(s) (each owner discloses its maximum);
//               on failure, the parties' error messages (file name, line, column; never a
//               value from the file).

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "autograd/mpc_tensor.h"
#include "core/tensor.h"
#include "crypto/party.h"

namespace veil::models {

/// How read_table_csv finds its columns.
struct TableOptions {
  /// Name of the sample id column (required in every file).
  std::string id_column = "id";
  /// Name of the label column (only in the label owner's file; every file in horizontal mode).
  std::string label_column = "label";
  /// Field separator.
  char delimiter = ',';
};

/// One party's table, rows sorted by id.
struct LocalTable {
  /// Where the table came from (a path or a name), for messages.
  std::string source;
  /// Sample ids in ascending bytewise order (std::string comparison: "10" < "9"), unique.
  std::vector<std::string> ids;
  /// 1-based line in the source of each row (same order as ids).
  std::vector<int64_t> lines;
  /// Names of the feature columns in file order (id and label columns excluded).
  std::vector<std::string> feature_names;
  /// float64 [n, d]: the feature columns, row i for ids[i]. Undefined for a party without data.
  core::Tensor features;
  /// int64 [n] class indices (>= 0), row i for ids[i]; undefined without a label column.
  core::Tensor labels;

  /// False for a party that contributes no data (default-constructed).
  bool has_data() const { return features.defined(); }
  /// Number of rows n (0 without data).
  int64_t rows() const { return has_data() ? features.size(0) : 0; }
  /// Number of feature columns d (0 without data).
  int64_t width() const { return has_data() ? features.size(1) : 0; }
  /// Whether the table has the label column.
  bool has_labels() const { return labels.defined(); }
};

/// Parses CSV text: a header line of column names, then one line per sample with as many fields.
/// Fields are separated by options.delimiter; a field may be enclosed in double quotes ("" is a
/// quote inside; no line breaks inside quotes); spaces and tabs around fields are ignored; blank
/// lines are skipped; a UTF-8 byte order mark and CR before LF are accepted. The id column holds
/// any non-empty text, the label column non-negative integers (written as integers or as
/// integral numbers such as 3.0) below 2^31, every other column a finite number (std::from_chars
/// syntax: 1, -2.5, 1e-3; no NaN or infinity). Rows are sorted by id.
/// `source` names the text in messages (a file path).
/// Errors: ValueError "[read_table_csv] '<source>' line L, column C ('<name>'): ..." for a
/// non-numeric or non-finite value, a bad label, an empty id, a row with a different number of
/// fields than the header (ragged), an unterminated quote; "... line L: duplicate id (first at
/// line K)"; "... no header", "... missing id column 'id' (columns: ...)", an empty or repeated
/// column name, "... no data rows". Messages never contain a value from the file.
LocalTable parse_table_csv(std::string_view text,
                           const std::string& source,
                           const TableOptions& options = {});

/// Reads the file at `path` and parses it with parse_table_csv. Errors: IoError naming the path
/// when it cannot be read; parse_table_csv's ValueErrors.
LocalTable read_table_csv(const std::string& path, const TableOptions& options = {});

/// SHA-256 of a sorted id list: SHA-256 over le64(count) and, for each id, le64(length) and its
/// bytes (an unambiguous encoding: ids may contain any byte). The vertical alignment check
/// compares these digests.
std::array<uint8_t, 32> id_digest(const std::vector<std::string>& ids);

/// How labels are shared.
enum class LabelEncoding {
  kOneHot,  ///< secret [n, classes], 1.0 / 0.0 at the party's frac_bits (for cross_entropy)
  kIndex,   ///< secret [n], the class index at the party's frac_bits (e.g. mse_loss targets)
};

/// Largest class count share_vertical / share_horizontal accept (veil::cross_entropy's limit
/// on secret logits, kLogSoftmaxMaxClasses).
inline constexpr int64_t kMaxTableClasses = 4096;

/// Options of share_vertical / share_horizontal; every party must pass the same values (checked).
struct ShareTableOptions {
  LabelEncoding labels = LabelEncoding::kOneHot;
  /// Number of classes C; labels must lie in [0, C). 0: 1 + the largest label, announced by the
  /// label owner(s) (discloses that maximum).
  int64_t classes = 0;
  /// Expected total feature count (the model's input width); -1: any.
  int64_t features = -1;
  /// Whether labels must be present (vertical: exactly one party has the label column;
  /// horizontal: every party with data has it). When false, a table set without any label column
  /// is accepted (inference) and SharedTable::y stays undefined.
  bool require_labels = true;
};

/// The secret-shared data of all parties, the same structure on every party.
struct SharedTable {
  /// Secret [n, d] at the party's frac_bits. Vertical: columns of party 0, then party 1, ...
  /// (rows in sorted-id order); horizontal: rows of party 0, then party 1, ... (each party's rows
  /// in its sorted-id order).
  MpcTensor x;
  /// Secret labels (LabelEncoding) in the rows' order; undefined when no party has labels.
  MpcTensor y;
  /// Number of classes C (0 without labels).
  int64_t classes = 0;
  /// Rows each party contributed: horizontal n_p (0 for a party without data); vertical n for
  /// every party with data, 0 for one without.
  std::vector<int64_t> rows;
  /// Columns each party contributed: vertical d_p (0 for a party without data); horizontal d for
  /// every party with data, 0 for one without.
  std::vector<int64_t> widths;
  /// Vertical: the rank that owns the labels (-1 without labels). Horizontal: -1 (every row's
  /// owner shares its labels).
  int label_owner = -1;
};

/// Vertical partition (collective: every party calls it with its own table, or a
/// default-constructed LocalTable for a party without data). Checks that every party with data
/// holds the same sample ids (row count and SHA-256 of the sorted ids) and that at most one (with
/// require_labels exactly one) has the label column; then returns X = [X_0 | X_1 | ...]: party
/// p's feature matrix [n, d_p] shared from p, concatenated along dim 1 in rank order, and the
/// labels shared from their owner.
/// Shapes: x [n, d_0 + ... + d_{N-1}]; y [n, C] (kOneHot) or [n] (kIndex).
/// Cost per party: 1 round, 160 (N - 1) bytes (a metadata record of 20 int64; a second round
/// carries error messages only on failure); sharing 0 rounds, 0 bytes (PRZS); memory and PRG draws
/// n (sum_p d_p + C).
/// Errors (the same ValueError "[share_vertical] ..." on every party, nothing shared): a party's
/// local error (a value outside the fixed-point range +-2^(62-f), a label >= classes), differing
/// options or functions among the parties, differing id sets (naming the parties and row counts),
/// the label column in several files or (require_labels) in none, no feature column at all, a
/// total feature count other than options.features, more than kMaxTableClasses classes (one-hot).
/// Security: see the file comment (ids are assumed shared knowledge). Accuracy: features are
/// encoded with error <= 2^-(f+1); labels exactly.
/// Source: the vertical setting of Yang et al., "Federated Machine Learning: Concept and
/// Applications", ACM TIST 2019 (arXiv:1902.04885), Sec. 2.3.2.
SharedTable share_vertical(crypto::Party& party,
                           const LocalTable& mine,
                           const ShareTableOptions& options = {});

/// Horizontal partition (collective, as share_vertical). Checks that every party with data has
/// the same feature columns (count, names and order) and that labels are in every file or
/// (without require_labels) in none; then returns X = [X_0; X_1; ...]: party p's rows [n_p, d]
/// shared from p, concatenated along dim 0 in rank order, and the labels shared by each row's
/// owner likewise.
/// Shapes: x [n_0 + ... + n_{N-1}, d]; y [sum n_p, C] (kOneHot) or [sum n_p] (kIndex).
/// Cost per party: as share_vertical (1 round, 160 (N - 1) bytes; sharing free).
/// Errors (the same ValueError "[share_horizontal] ..." on every party): a party's local error,
/// differing options or functions, a different column count or different column names or order
/// (naming the parties), labels in some files only, no rows at all, a feature count other than
/// options.features, more than kMaxTableClasses classes (one-hot).
/// Security: see the file comment. Accuracy: as share_vertical.
/// Source: the horizontal setting of Yang et al. (arXiv:1902.04885), Sec. 2.3.1.
SharedTable share_horizontal(crypto::Party& party,
                             const LocalTable& mine,
                             const ShareTableOptions& options = {});

/// read_table_csv(path) then share_vertical, collectively: a read or parse error on any party is
/// reported on every party as ValueError "[load_vertical] party p could not load its table: ..."
/// (all such errors, in rank order) after the metadata exchange, so no party hangs. An empty
/// path means the party has no data. Cost: as share_vertical, plus one more round (m (N - 1) bytes,
/// m the longest message, at most 4000) when a party failed.
SharedTable load_vertical(crypto::Party& party,
                          const std::string& path,
                          const TableOptions& table = {},
                          const ShareTableOptions& options = {});

/// read_table_csv(path) then share_horizontal, collectively, as load_vertical (errors
/// "[load_horizontal] ...").
SharedTable load_horizontal(crypto::Party& party,
                            const std::string& path,
                            const TableOptions& table = {},
                            const ShareTableOptions& options = {});

}  // namespace veil::models
