// Data roles: CSV tables split horizontally (rows) or vertically (feature columns, aligned by a
// shared sample id, labels from one party), shared, checked and trained on (models/partition.h).

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "autograd/autograd.h"
#include "core/error.h"
#include "core/ops.h"
#include "crypto/launch.h"
#include "models/data.h"
#include "models/partition.h"
#include "nn/nn.h"
#include "optim/sgd.h"
#include "tests/harness/simulate.h"
#include "tests/harness/temp_dir.h"

using veil::MpcTensor;
using veil::core::DType;
using veil::core::Shape;
using veil::core::Tensor;
using veil::crypto::Party;
using veil::models::LabelEncoding;
using veil::models::LocalTable;
using veil::models::SharedTable;
using veil::models::ShareTableOptions;
using veil::testing::TempDir;
using veil::testing::test_options;

namespace {

// ---- a synthetic, linearly separable data set --------------------------------------------------

struct Sample {
  std::string id;
  std::vector<double> x;
  int64_t label = 0;
};

// n samples with `features` features uniform in [-1, 1] and the label [x . w + 0.1 > 0] for a fixed
// w; samples closer than `margin` to the separating hyperplane are redrawn, so the set is
// separable with a gap. Ids "s<k>" with k = a scrambled number, so the bytewise id order differs
// from the generation order and from the numeric order.
std::vector<Sample> make_samples(int64_t n, int64_t features, uint64_t seed, double margin = 0.1) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  std::vector<double> w(static_cast<std::size_t>(features));
  for (double& v : w) {
    v = u(gen);
  }
  const double norm = std::sqrt(std::inner_product(w.begin(), w.end(), w.begin(), 0.0));
  std::vector<Sample> out;
  for (int64_t k = 0; k < n; ++k) {
    Sample s;
    s.id = std::to_string((k * 7919 + 13) % 100003);
    s.id.insert(s.id.begin(), 's');
    double dot = 0;
    do {
      s.x.clear();
      for (int64_t j = 0; j < features; ++j) {
        s.x.push_back(u(gen));
      }
      dot = std::inner_product(s.x.begin(), s.x.end(), w.begin(), 0.1) / norm;
    } while (std::abs(dot) < margin);
    s.label = dot > 0 ? 1 : 0;
    out.push_back(std::move(s));
  }
  return out;
}

std::string num(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// CSV text of `rows` (in the given order) with the features in [lo, hi) and optionally the label.
std::string csv(const std::vector<Sample>& samples,
                const std::vector<std::size_t>& rows,
                int64_t lo,
                int64_t hi,
                bool label) {
  std::string t = "id";
  for (int64_t j = lo; j < hi; ++j) {
    t += ",f";
    t += std::to_string(j);
  }
  if (label) {
    t += ",label";
  }
  t += "\n";
  for (const std::size_t r : rows) {
    const Sample& s = samples[r];
    t += s.id;
    for (int64_t j = lo; j < hi; ++j) {
      t += ',';
      t += num(s.x[static_cast<std::size_t>(j)]);
    }
    if (label) {
      t += ',';
      t += std::to_string(s.label);
    }
    t += "\n";
  }
  return t;
}

std::vector<std::size_t> shuffled(std::vector<std::size_t> v, uint64_t seed) {
  std::shuffle(v.begin(), v.end(), std::mt19937_64(seed));
  return v;
}

std::vector<std::size_t> all_rows(std::size_t n) {
  std::vector<std::size_t> v(n);
  std::iota(v.begin(), v.end(), std::size_t{0});
  return v;
}

// Column ranges [lo, hi) of the parties in a vertical split of `features` columns: 2 parties 2/4,
// 3 parties 2/2/2.
std::vector<std::pair<int64_t, int64_t>> column_split(int parties) {
  if (parties == 2) {
    return {{0, 2}, {2, 6}};
  }
  return {{0, 2}, {2, 4}, {4, 6}};
}

// Vertical files: party p's columns, rows in a party-specific shuffled order, the label in the last
// party's file.
std::vector<std::string> write_vertical(const TempDir& dir,
                                        const std::vector<Sample>& samples,
                                        int parties) {
  std::vector<std::string> paths;
  const auto split = column_split(parties);
  for (int p = 0; p < parties; ++p) {
    const auto rows = shuffled(all_rows(samples.size()), 100 + static_cast<uint64_t>(p));
    paths.push_back(dir.write(fmt::format("v{}.csv", p),
                              csv(samples, rows, split[static_cast<std::size_t>(p)].first,
                                  split[static_cast<std::size_t>(p)].second, p == parties - 1)));
  }
  return paths;
}

// Horizontal files: a shuffled order of the samples cut into `parties` unequal blocks; every file
// has every column and the label.
std::vector<std::string> write_horizontal(const TempDir& dir,
                                          const std::vector<Sample>& samples,
                                          int parties,
                                          std::vector<std::vector<std::size_t>>* blocks) {
  const auto order = shuffled(all_rows(samples.size()), 7);
  std::vector<std::string> paths;
  std::size_t at = 0;
  for (int p = 0; p < parties; ++p) {
    // unequal blocks: 30%, then the rest split evenly
    const std::size_t len = p + 1 == parties ? order.size() - at
                                             : (p == 0 ? order.size() * 3 / 10
                                                       : (order.size() - order.size() * 3 / 10) /
                                                             static_cast<std::size_t>(parties - 1));
    std::vector<std::size_t> rows(order.begin() + static_cast<std::ptrdiff_t>(at),
                                  order.begin() + static_cast<std::ptrdiff_t>(at + len));
    at += len;
    blocks->push_back(rows);
    paths.push_back(dir.write(fmt::format("h{}.csv", p), csv(samples, rows, 0, 6, /*label=*/true)));
  }
  return paths;
}

// The reference of the vertical X: samples in bytewise id order (std::map), all features.
std::pair<Tensor, Tensor> vertical_reference(const std::vector<Sample>& samples) {
  std::map<std::string, const Sample*> by_id;
  for (const Sample& s : samples) {
    by_id[s.id] = &s;
  }
  std::vector<double> x;
  std::vector<int64_t> y;
  for (const auto& [id, s] : by_id) {
    x.insert(x.end(), s->x.begin(), s->x.end());
    y.push_back(s->label);
  }
  const auto n = static_cast<int64_t>(y.size());
  return {Tensor::from_vector<double>(x, {n, static_cast<int64_t>(samples[0].x.size())}),
          Tensor::from_vector<int64_t>(y, {n})};
}

// The reference of the horizontal X: party 0's rows in id order, then party 1's, ...
std::pair<Tensor, Tensor> horizontal_reference(
    const std::vector<Sample>& samples, const std::vector<std::vector<std::size_t>>& blocks) {
  std::vector<double> x;
  std::vector<int64_t> y;
  for (const auto& block : blocks) {
    std::map<std::string, const Sample*> by_id;
    for (const std::size_t r : block) {
      by_id[samples[r].id] = &samples[r];
    }
    for (const auto& [id, s] : by_id) {
      x.insert(x.end(), s->x.begin(), s->x.end());
      y.push_back(s->label);
    }
  }
  const auto n = static_cast<int64_t>(y.size());
  return {Tensor::from_vector<double>(x, {n, static_cast<int64_t>(samples[0].x.size())}),
          Tensor::from_vector<int64_t>(y, {n})};
}

// What one party revealed from a SharedTable, plus the communication of the loading step.
struct Loaded {
  Tensor x;
  Tensor y;
  int64_t classes = 0;
  std::vector<int64_t> rows;
  std::vector<int64_t> widths;
  int label_owner = -2;
  int64_t rounds = 0;
  int64_t bytes = 0;
};

Loaded reveal_loaded(Party& p, const SharedTable& t, const veil::comm::CommStats& before) {
  const auto cost = p.comm().stats() - before;
  Loaded out;
  out.rounds = cost.total.rounds;
  out.bytes = cost.total.bytes_sent;
  out.x = t.x.reveal();
  out.y = t.y.defined() ? t.y.reveal() : Tensor();
  out.classes = t.classes;
  out.rows = t.rows;
  out.widths = t.widths;
  out.label_owner = t.label_owner;
  return out;
}

// Runs `body` on every party and returns each party's error message ("" when it did not throw).
std::vector<std::string> errors_of(int parties, const std::function<void(Party&)>& body) {
  return veil::crypto::launch<std::string>(test_options(parties), [&](Party& p) -> std::string {
    try {
      body(p);
    } catch (const veil::ValueError& e) {
      return e.what();
    }
    return "";
  });
}

// Every party got the same error, and it contains `needle`.
void require_same_error(const std::vector<std::string>& errors, const std::string& needle) {
  INFO("party 0: " << errors[0]);
  REQUIRE(!errors[0].empty());
  CHECK_THAT(errors[0], Catch::Contains(needle));
  for (std::size_t p = 1; p < errors.size(); ++p) {
    CHECK(errors[p] == errors[0]);
  }
}

}  // namespace

// ---- CSV ---------------------------------------------------------------------------------------

TEST_CASE("parse_table_csv reads ids, features and labels and sorts rows by id",
          "[partitions][csv]") {
  // GIVEN a file with a BOM, CRLF line ends, a blank line, quoted fields and spaces
  const std::string text =
      "\xEF\xBB\xBFid, f1 ,label,f2\r\n"
      "b, 1.5, 1, -2\r\n"
      "\r\n"
      "\"a,1\", +3e-1 ,0, \"4\"\n"
      "10,-0.25,2,8.0\n";
  // WHEN it is parsed
  const LocalTable t = veil::models::parse_table_csv(text, "mem.csv");
  // THEN rows come in bytewise id order with their features and labels
  REQUIRE(t.ids == std::vector<std::string>{"10", "a,1", "b"});
  CHECK(t.lines == std::vector<int64_t>{5, 4, 2});
  CHECK(t.feature_names == std::vector<std::string>{"f1", "f2"});
  REQUIRE(t.features.shape() == Shape{3, 2});
  CHECK(t.features.to_vector<double>() == std::vector<double>{-0.25, 8.0, 0.3, 4.0, 1.5, -2.0});
  REQUIRE(t.has_labels());
  CHECK(t.labels.to_vector<int64_t>() == std::vector<int64_t>{2, 0, 1});

  // a file without the label column, custom names and delimiter
  veil::models::TableOptions o;
  o.id_column = "key";
  o.delimiter = ';';
  const LocalTable u = veil::models::parse_table_csv("x;key\n1;k2\n2;k1\n", "m2", o);
  CHECK_FALSE(u.has_labels());
  CHECK(u.ids == std::vector<std::string>{"k1", "k2"});
  CHECK(u.features.to_vector<double>() == std::vector<double>{2.0, 1.0});
}

TEST_CASE("parse_table_csv names file, line and column and never a value",
          "[partitions][csv][errors]") {
  using veil::models::parse_table_csv;
  const auto fails = [](const std::string& text) -> std::string {
    try {
      parse_table_csv(text, "party.csv");
    } catch (const veil::ValueError& e) {
      return e.what();
    }
    return "";
  };
  // non-numeric value (the value itself must not appear)
  std::string m = fails("id,f1,f2\na,1,2\nb,1,secret42x\n");
  CHECK_THAT(m, Catch::StartsWith("[read_table_csv] 'party.csv' line 3, column 3 ('f2')"));
  CHECK_THAT(m, Catch::Contains("expected a finite number"));
  CHECK_THAT(m, !Catch::Contains("secret42x"));
  // non-finite and empty values
  CHECK_THAT(fails("id,f1\na,nan\n"), Catch::Contains("line 2, column 2 ('f1')"));
  CHECK_THAT(fails("id,f1\na,inf\n"), Catch::Contains("line 2, column 2 ('f1')"));
  CHECK_THAT(fails("id,f1\na,\n"), Catch::Contains("the field is empty"));
  // ragged rows
  CHECK_THAT(fails("id,f1,f2\na,1,2\nb,1\n"),
             Catch::Contains("line 3: 2 fields, the header (line 1) has 3 columns"));
  CHECK_THAT(fails("id,f1\na,1,2\n"), Catch::Contains("line 2: 3 fields"));
  // duplicate id (the id itself is not printed)
  m = fails("id,f1\nzz9,1\nb,2\nzz9,3\n");
  CHECK_THAT(m, Catch::Contains("line 4, column 1 ('id'): duplicate id (first at line 2)"));
  CHECK_THAT(m, !Catch::Contains("zz9"));
  // missing id column, empty id, empty and repeated column names
  CHECK_THAT(fails("key,f1\na,1\n"), Catch::Contains("missing id column 'id' (columns: key, f1)"));
  CHECK_THAT(fails("id,f1\n ,1\n"), Catch::Contains("line 2, column 1 ('id'): empty id"));
  CHECK_THAT(fails("id,,f2\na,1,2\n"), Catch::Contains("line 1, column 2: empty column name"));
  CHECK_THAT(fails("id,f1,f1\na,1,2\n"), Catch::Contains("'f1' appears twice (columns 2 and 3)"));
  // labels must be class indices
  CHECK_THAT(fails("id,label\na,1.5\n"), Catch::Contains("line 2, column 2 ('label'): expected a"));
  CHECK_THAT(fails("id,label\na,-1\n"), Catch::Contains("expected a class index"));
  // quoting, empty input, no rows
  CHECK_THAT(fails("id,f1\n\"a,1\n"), Catch::Contains("line 2, column 1: unterminated quoted"));
  CHECK_THAT(fails("id,f1\n\"a\"x,1\n"), Catch::Contains("text after the closing quote"));
  CHECK_THAT(fails("\n\n"), Catch::Contains("no header line"));
  CHECK_THAT(fails("id,f1\n"), Catch::Contains("no data rows after the header (line 1)"));

  // a missing file is an IoError naming the path
  REQUIRE_THROWS_AS(veil::models::read_table_csv("/nonexistent/veil/x.csv"), veil::IoError);
  REQUIRE_THROWS_WITH(veil::models::read_table_csv("/nonexistent/veil/x.csv"),
                      Catch::Contains("'/nonexistent/veil/x.csv'"));
}

TEST_CASE("id_digest depends on every id and on their boundaries", "[partitions][csv]") {
  using veil::models::id_digest;
  CHECK(id_digest({"a", "b"}) == id_digest({"a", "b"}));
  CHECK(id_digest({"a", "b"}) != id_digest({"a", "c"}));
  CHECK(id_digest({"ab", "c"}) != id_digest({"a", "bc"}));
  CHECK(id_digest({"a"}) != id_digest({"a", ""}));
}

// ---- sharing -----------------------------------------------------------------------------------

TEST_CASE("load_vertical shares the aligned columns of every party and the owner's labels",
          "[partitions][vertical]") {
  const auto samples = make_samples(60, 6, 11);
  const auto [x_ref, y_ref] = vertical_reference(samples);
  for (const int parties : {2, 3}) {
    for (const auto kind :
         {veil::crypto::ProviderKind::kDealer, veil::crypto::ProviderKind::kTrustedFirstParty}) {
      DYNAMIC_SECTION(parties << " parties, provider " << static_cast<int>(kind)) {
        // GIVEN each party's file: its own columns, rows in its own order; labels at the last
        TempDir dir("veil_vertical");
        const auto paths = write_vertical(dir, samples, parties);
        for (const auto enc : {LabelEncoding::kOneHot, LabelEncoding::kIndex}) {
          // WHEN every party loads and shares its file
          ShareTableOptions so;
          so.labels = enc;
          so.features = 6;
          const auto out = veil::crypto::launch<Loaded>(test_options(parties, kind), [&](Party& p) {
            const auto before = p.comm().stats();
            const SharedTable t =
                veil::models::load_vertical(p, paths[static_cast<std::size_t>(p.rank())], {}, so);
            return reveal_loaded(p, t, before);
          });
          // THEN X is the plaintext concatenation in id order (encoding error <= 2^-17)
          for (const Loaded& l : out) {
            REQUIRE(l.x.shape() == Shape{60, 6});
            CHECK(veil::testing::max_abs_diff(l.x, x_ref) <= veil::testing::ulp() / 2);
            CHECK(l.classes == 2);
            CHECK(l.label_owner == parties - 1);
            CHECK(l.rows == std::vector<int64_t>(static_cast<std::size_t>(parties), 60));
            const auto split = column_split(parties);
            for (int q = 0; q < parties; ++q) {
              const auto [lo, hi] = split[static_cast<std::size_t>(q)];
              CHECK(l.widths[static_cast<std::size_t>(q)] == hi - lo);
            }
            const Tensor want = enc == LabelEncoding::kOneHot ? veil::core::one_hot(y_ref, 2)
                                                              : y_ref.to(DType::kFloat64);
            REQUIRE(l.y.shape() == want.shape());
            CHECK(veil::testing::max_abs_diff(l.y, want) == 0.0);
            // AND the loading cost is the documented one: 1 round, 160 (N - 1) bytes
            CHECK(l.rounds == 1);
            CHECK(l.bytes == int64_t{160} * (parties - 1));
          }
        }
      }
    }
  }
}

TEST_CASE("load_horizontal stacks every party's rows and labels in rank order",
          "[partitions][horizontal]") {
  const auto samples = make_samples(50, 6, 12);
  for (const int parties : {2, 3}) {
    DYNAMIC_SECTION(parties << " parties") {
      // GIVEN blocks of rows of unequal sizes, each file in its own row order
      TempDir dir("veil_horizontal");
      std::vector<std::vector<std::size_t>> blocks;
      const auto paths = write_horizontal(dir, samples, parties, &blocks);
      const auto [x_ref, y_ref] = horizontal_reference(samples, blocks);
      // WHEN every party loads and shares its rows
      const auto out = veil::crypto::launch<Loaded>(test_options(parties), [&](Party& p) {
        const auto before = p.comm().stats();
        const SharedTable t =
            veil::models::load_horizontal(p, paths[static_cast<std::size_t>(p.rank())]);
        return reveal_loaded(p, t, before);
      });
      // THEN X is the concatenation of the parties' id-sorted rows, labels likewise
      for (const Loaded& l : out) {
        REQUIRE(l.x.shape() == Shape{50, 6});
        CHECK(veil::testing::max_abs_diff(l.x, x_ref) <= veil::testing::ulp() / 2);
        CHECK(veil::testing::max_abs_diff(l.y, veil::core::one_hot(y_ref, 2)) == 0.0);
        CHECK(l.label_owner == -1);
        for (int q = 0; q < parties; ++q) {
          CHECK(l.rows[static_cast<std::size_t>(q)] ==
                static_cast<int64_t>(blocks[static_cast<std::size_t>(q)].size()));
          CHECK(l.widths[static_cast<std::size_t>(q)] == 6);
        }
        CHECK(l.rounds == 1);
        CHECK(l.bytes == int64_t{160} * (parties - 1));
      }
    }
  }
}

TEST_CASE("a party without data contributes nothing", "[partitions][vertical][horizontal]") {
  // GIVEN 3 parties where party 0 (say, the model owner) has no file
  const auto samples = make_samples(20, 6, 13);
  TempDir dir("veil_nodata");
  const std::vector<std::size_t> rows = all_rows(samples.size());
  const std::string v1 = dir.write("v1.csv", csv(samples, shuffled(rows, 1), 0, 4, false));
  const std::string v2 = dir.write("v2.csv", csv(samples, shuffled(rows, 2), 4, 6, true));
  const std::string h1 = dir.write("h1.csv", csv(samples, {0, 1, 2, 3, 4, 5, 6}, 0, 6, true));
  const std::string h2 = dir.write("h2.csv", csv(samples, {7, 8, 9, 10, 11, 12}, 0, 6, true));
  // WHEN they share
  const auto out = veil::crypto::launch<std::vector<Loaded>>(test_options(3), [&](Party& p) {
    const std::vector<std::string> vp{"", v1, v2};
    const std::vector<std::string> hp{"", h1, h2};
    const auto r = static_cast<std::size_t>(p.rank());
    const auto before = p.comm().stats();
    const SharedTable v = veil::models::load_vertical(p, vp[r]);
    const Loaded lv = reveal_loaded(p, v, before);
    const SharedTable h = veil::models::load_horizontal(p, hp[r]);
    return std::vector<Loaded>{lv, reveal_loaded(p, h, before)};
  });
  // THEN the data is that of parties 1 and 2 only
  const auto [xv, yv] = vertical_reference(samples);
  CHECK(veil::testing::max_abs_diff(out[0][0].x, xv) <= veil::testing::ulp() / 2);
  CHECK(out[0][0].widths == std::vector<int64_t>{0, 4, 2});
  CHECK(out[0][0].label_owner == 2);
  const auto [xh, yh] =
      horizontal_reference(samples, {{0, 1, 2, 3, 4, 5, 6}, {7, 8, 9, 10, 11, 12}});
  CHECK(veil::testing::max_abs_diff(out[0][1].x, xh) <= veil::testing::ulp() / 2);
  CHECK(out[0][1].rows == std::vector<int64_t>{0, 7, 6});
  CHECK(veil::testing::max_abs_diff(out[0][1].y, veil::core::one_hot(yh, 2)) == 0.0);
}

TEST_CASE("a vertical label owner may hold no feature column", "[partitions][vertical]") {
  // GIVEN party 0 with every feature column and party 1 with only the ids and the labels
  const auto samples = make_samples(30, 6, 16);
  TempDir dir("veil_labelonly");
  const auto rows = all_rows(samples.size());
  const std::string f = dir.write("f.csv", csv(samples, shuffled(rows, 3), 0, 6, false));
  const std::string l = dir.write("l.csv", csv(samples, shuffled(rows, 4), 0, 0, true));
  // WHEN they share
  const auto out = veil::crypto::launch<Loaded>(test_options(2), [&](Party& p) {
    const auto before = p.comm().stats();
    return reveal_loaded(p, veil::models::load_vertical(p, p.rank() == 0 ? f : l), before);
  });
  // THEN X holds party 0's columns and y party 1's labels, both in id order
  const auto [x_ref, y_ref] = vertical_reference(samples);
  CHECK(veil::testing::max_abs_diff(out[1].x, x_ref) <= veil::testing::ulp() / 2);
  CHECK(veil::testing::max_abs_diff(out[1].y, veil::core::one_hot(y_ref, 2)) == 0.0);
  CHECK(out[1].widths == std::vector<int64_t>{6, 0});
  CHECK(out[1].label_owner == 1);
}

// ---- errors on every party, no hang ------------------------------------------------------------

TEST_CASE("vertical mismatches are refused on every party", "[partitions][vertical][errors]") {
  const auto samples = make_samples(20, 6, 14);
  TempDir dir("veil_vbad");
  const auto rows = all_rows(samples.size());
  const std::string a = dir.write("a.csv", csv(samples, shuffled(rows, 1), 0, 2, false));
  const std::string b = dir.write("b.csv", csv(samples, shuffled(rows, 2), 2, 6, true));
  const std::string b_nolabel = dir.write("bn.csv", csv(samples, rows, 2, 6, false));
  const std::string a_label = dir.write("al.csv", csv(samples, rows, 0, 2, true));
  // one id missing; one id replaced (same count)
  std::vector<std::size_t> short_rows(rows.begin(), rows.end() - 1);
  const std::string b_short = dir.write("bs.csv", csv(samples, short_rows, 2, 6, true));
  std::vector<Sample> renamed = samples;
  renamed[5].id = "other";
  const std::string b_renamed = dir.write("br.csv", csv(renamed, rows, 2, 6, true));
  const std::string b_bad = dir.write("bb.csv", "id,f2,label\n" + samples[0].id + ",x,1\n");

  auto run = [&](int parties, const std::vector<std::string>& paths, ShareTableOptions so = {}) {
    return errors_of(parties, [&](Party& p) {
      veil::models::load_vertical(p, paths[static_cast<std::size_t>(p.rank())], {}, so);
    });
  };
  SECTION("a row missing") {
    require_same_error(run(2, {a, b_short}),
                       "[load_vertical] the parties' sample id sets differ: party 0 has 20 rows, "
                       "party 1 has 19 rows");
  }
  SECTION("an id replaced") {
    require_same_error(run(3, {a, b_renamed, ""}),
                       "parties 0 and 1 both have 20 rows but different ids");
  }
  SECTION("the label in two files") {
    require_same_error(run(3, {a_label, b, ""}),
                       "the label column appears in the files of parties 0 and 1");
  }
  SECTION("no label at all") {
    require_same_error(run(2, {a, b_nolabel}), "no party's file has the label column");
    // without require_labels the table loads (inference), y undefined
    ShareTableOptions so;
    so.require_labels = false;
    CHECK(run(2, {a, b_nolabel}, so) == std::vector<std::string>{"", ""});
  }
  SECTION("a wrong total column count") {
    ShareTableOptions so;
    so.features = 5;
    require_same_error(run(2, {a, b}, so),
                       "expected 5 feature columns in all (the model's input width), the parties "
                       "have 6");
  }
  SECTION("a parse error on one party, a missing file on another") {
    const auto e = run(3, {"/nonexistent/veil/a.csv", b_bad, ""});
    require_same_error(e,
                       "[load_vertical] party 0 could not load its table: [read_table_csv] "
                       "cannot open '/nonexistent/veil/a.csv'");
    CHECK_THAT(e[0], Catch::Contains("party 1 could not load its table: [read_table_csv] '" +
                                     b_bad + "' line 2, column 2 ('f2')"));
  }
  SECTION("classes too small for the labels") {
    ShareTableOptions so;
    so.classes = 1;
    require_same_error(run(2, {a, b}, so),
                       "party 1 could not load its table: [load_vertical] '" + b + "' line ");
    CHECK_THAT(run(2, {a, b}, so)[0], Catch::Contains("a label outside [0, 1)"));
    // the same through share_vertical on tables read beforehand
    require_same_error(errors_of(2,
                                 [&](Party& p) {
                                   const auto t =
                                       veil::models::read_table_csv(p.rank() == 0 ? a : b);
                                   veil::models::share_vertical(p, t, so);
                                 }),
                       "[share_vertical] party 1 failed: [share_vertical] '" + b + "' line ");
  }
  SECTION("different options or functions") {
    const auto e = errors_of(2, [&](Party& p) {
      ShareTableOptions so;
      so.classes = p.rank() == 0 ? 2 : 3;
      veil::models::load_vertical(p, p.rank() == 0 ? a : b, {}, so);
    });
    require_same_error(e, "the parties passed different ShareTableOptions");
    const auto f = errors_of(2, [&](Party& p) {
      if (p.rank() == 0) {
        veil::models::load_vertical(p, a);
      } else {
        veil::models::load_horizontal(p, b);
      }
    });
    CHECK_THAT(f[0], Catch::Contains("the parties called different functions"));
    CHECK_THAT(f[1], Catch::Contains("the parties called different functions"));
  }
}

TEST_CASE("horizontal mismatches are refused on every party", "[partitions][horizontal][errors]") {
  const auto samples = make_samples(20, 6, 15);
  TempDir dir("veil_hbad");
  const std::string a = dir.write("a.csv", csv(samples, {0, 1, 2, 3, 4, 5, 6, 7, 8}, 0, 6, true));
  const std::string b = dir.write("b.csv", csv(samples, {9, 10, 11, 12, 13}, 0, 6, true));
  const std::string b5 = dir.write("b5.csv", csv(samples, {9, 10, 11, 12, 13}, 0, 5, true));
  const std::string b_nolabel = dir.write("bn.csv", csv(samples, {9, 10, 11}, 0, 6, false));
  // same count, other names / order
  const std::string b_renamed =
      dir.write("br.csv", "id,f0,f1,f2,f3,f5,f4,label\nq,1,2,3,4,5,6,1\n");
  const std::string b_ragged =
      dir.write("bg.csv", "id,f0,f1,f2,f3,f4,f5,label\nq,1,2,3,4,5,6,1\nr,1,2\n");
  auto run = [&](int parties, const std::vector<std::string>& paths) {
    return errors_of(parties, [&](Party& p) {
      veil::models::load_horizontal(p, paths[static_cast<std::size_t>(p.rank())]);
    });
  };
  SECTION("a different column count") {
    require_same_error(run(2, {a, b5}),
                       "[load_horizontal] the parties' files have different feature columns: "
                       "party 0 has 6, party 1 has 5");
  }
  SECTION("different column names or order") {
    require_same_error(run(3, {a, b, b_renamed}),
                       "parties 0 and 2 both have 6 but with different names or in a different "
                       "order");
  }
  SECTION("labels in some files only") {
    require_same_error(run(3, {a, b_nolabel, b}),
                       "the label column appears in the files of parties 0 and 2 but not in "
                       "those of parties 1");
  }
  SECTION("a ragged row on one party") {
    require_same_error(run(2, {a, b_ragged}),
                       "party 1 could not load its table: [read_table_csv] '" + b_ragged +
                           "' line 3: 3 fields, the header (line 1) has 8 columns");
  }
  SECTION("nobody has data") {
    require_same_error(run(2, {"", ""}), "[load_horizontal] no party has data");
  }
}

// ---- training ----------------------------------------------------------------------------------

namespace {

// Float64 twin of the private training below: softmax regression logits = x W + b, mean
// cross-entropy, plain SGD, the same initial weights and batches.
struct Twin {
  Tensor w;  // [d, C]
  Tensor b;  // [C]
};

void twin_step(
    Twin& m, const Tensor& x, const Tensor& y, const std::vector<int64_t>& rows, double lr) {
  const int64_t d = m.w.size(0);
  const int64_t c = m.w.size(1);
  const auto bsz = static_cast<double>(rows.size());
  std::vector<double> gw(static_cast<std::size_t>(d * c), 0.0);
  std::vector<double> gb(static_cast<std::size_t>(c), 0.0);
  const auto* xp = x.data<double>();
  const auto* yp = y.data<int64_t>();
  auto* wp = m.w.data<double>();
  auto* bp = m.b.data<double>();
  for (const int64_t r : rows) {
    std::vector<double> z(static_cast<std::size_t>(c));
    for (int64_t k = 0; k < c; ++k) {
      double s = bp[k];
      for (int64_t j = 0; j < d; ++j) {
        s += xp[r * d + j] * wp[j * c + k];
      }
      z[static_cast<std::size_t>(k)] = s;
    }
    const double mx = *std::max_element(z.begin(), z.end());
    double sum = 0;
    for (double& v : z) {
      v = std::exp(v - mx);
      sum += v;
    }
    for (int64_t k = 0; k < c; ++k) {
      const double g = (z[static_cast<std::size_t>(k)] / sum - (yp[r] == k ? 1.0 : 0.0)) / bsz;
      gb[static_cast<std::size_t>(k)] += g;
      for (int64_t j = 0; j < d; ++j) {
        gw[static_cast<std::size_t>(j * c + k)] += xp[r * d + j] * g;
      }
    }
  }
  for (int64_t i = 0; i < d * c; ++i) {
    wp[i] -= lr * gw[static_cast<std::size_t>(i)];
  }
  for (int64_t k = 0; k < c; ++k) {
    bp[k] -= lr * gb[static_cast<std::size_t>(k)];
  }
}

double accuracy_of(const Tensor& w, const Tensor& b, const Tensor& x, const Tensor& y) {
  const Tensor logits = veil::core::add(veil::core::matmul(x, w), b);
  const auto pred = veil::core::argmax(logits, 1).to_vector<int64_t>();
  const auto truth = y.to_vector<int64_t>();
  int64_t correct = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) {
    correct += pred[i] == truth[i] ? 1 : 0;
  }
  return static_cast<double>(correct) / static_cast<double>(pred.size());
}

struct Trained {
  Tensor w0, b0;  // the public initial weights
  Tensor w, b;    // revealed after training (test only)
};

constexpr int64_t kBatch = 50;
constexpr int64_t kEpochs = 4;
constexpr double kLr = 1.0;
constexpr uint64_t kSeed = 3;

// Private training on a SharedTable: a public Linear(d, 2) layer, encrypted from party 0, SGD on
// the secret batches in the public BatchOrder.
Trained train_private(Party& p, const SharedTable& t) {
  veil::nn::Linear lin(veil::nn::LinearOptions(t.x.size(1), t.classes).seed(kSeed), p);
  Trained out;
  out.w0 = lin->weight.reveal();  // public: decode only
  out.b0 = lin->bias.reveal();
  lin->encrypt(0);
  veil::optim::SGD opt(lin->parameters(), veil::optim::SGDOptions(kLr));
  const veil::models::BatchOrder order(t.x.size(0), kBatch, kSeed, /*shuffle=*/true);
  const auto xs = t.x.ashare();
  const auto ys = t.y.ashare();
  for (int64_t e = 0; e < kEpochs; ++e) {
    for (const auto& rows : order.epoch(e)) {
      const MpcTensor xb = MpcTensor::from_secret({xs.data.index_select0(rows), xs.frac_bits}, p);
      const MpcTensor yb = MpcTensor::from_secret({ys.data.index_select0(rows), ys.frac_bits}, p);
      opt.zero_grad();
      veil::cross_entropy(lin(xb), yb).backward();
      opt.step();
    }
  }
  out.w = lin->weight.reveal();
  out.b = lin->bias.reveal();
  return out;
}

// The twin on the plaintext data in the same row order, from the same initial weights.
Twin train_twin(const Trained& init, const Tensor& x, const Tensor& y) {
  Twin m{init.w0.clone(), init.b0.clone()};
  const veil::models::BatchOrder order(x.size(0), kBatch, kSeed, /*shuffle=*/true);
  for (int64_t e = 0; e < kEpochs; ++e) {
    for (const auto& rows : order.epoch(e)) {
      twin_step(m, x, y, rows, kLr);
    }
  }
  return m;
}

}  // namespace

TEST_CASE("private training on vertical and horizontal partitions matches a float64 twin",
          "[partitions][train]") {
  // GIVEN 200 separable samples with 6 features, split 2/4 (2 parties) or 2/2/2 (3 parties)
  // by columns, or into row blocks
  const auto samples = make_samples(200, 6, 21);
  for (const bool vertical : {true, false}) {
    for (const int parties : {2, 3}) {
      DYNAMIC_SECTION((vertical ? "vertical, " : "horizontal, ") << parties << " parties") {
        TempDir dir("veil_train");
        std::vector<std::vector<std::size_t>> blocks;
        const auto paths = vertical ? write_vertical(dir, samples, parties)
                                    : write_horizontal(dir, samples, parties, &blocks);
        const auto [x_ref, y_ref] =
            vertical ? vertical_reference(samples) : horizontal_reference(samples, blocks);
        // WHEN the parties load, share and train softmax regression with SGD
        const auto out = veil::crypto::launch<Trained>(test_options(parties), [&](Party& p) {
          const std::string& path = paths[static_cast<std::size_t>(p.rank())];
          const SharedTable t = vertical ? veil::models::load_vertical(p, path)
                                         : veil::models::load_horizontal(p, path);
          return train_private(p, t);
        });
        const Twin twin = train_twin(out[0], x_ref, y_ref);
        // THEN the private weights follow the twin's and both classify the training set alike
        const double acc_private = accuracy_of(out[0].w, out[0].b, x_ref, y_ref);
        const double acc_twin = accuracy_of(twin.w, twin.b, x_ref, y_ref);
        const double dw = std::max(veil::testing::max_abs_diff(out[0].w, twin.w),
                                   veil::testing::max_abs_diff(out[0].b, twin.b));
        INFO("private accuracy " << acc_private << ", twin " << acc_twin
                                 << ", max weight difference " << dw);
        std::printf(
            "partition training (%s, %d parties): private accuracy %.3f, twin %.3f, "
            "max |w - w_twin| %.2e\n",
            vertical ? "vertical" : "horizontal", parties, acc_private, acc_twin, dw);
        // 16 steps of lr 1: each step's gradient differs from the twin's by the secret softmax's
        // error (<= 1e-3 per logit, crypto/protocols/nonlinear.h) times |x| <= 1, plus a few ulp
        // of truncation, so |w - w_twin| <= 16 * 1.1e-3 ~ 0.018 in the worst case.
        CHECK(dw <= 0.02);
        CHECK(acc_twin >= 0.9);
        // A weight error of 0.02 moves a logit by at most 0.02 (|x|_1 + 1) <= 0.14; only samples
        // that close to the twin's boundary may flip: allow 2% of 200 rows.
        CHECK(std::abs(acc_private - acc_twin) <= 0.02);
      }
    }
  }
}
