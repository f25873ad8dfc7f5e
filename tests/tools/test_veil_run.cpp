// veil-run as a user runs it, on small shell programs: output prefixes, the environment of each
// party, exit codes, stopping the others after a failure, signals, and the time limit. Every run
// is wrapped in timeout(1), so a hang fails the test instead of hanging it.

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/harness/temp_dir.h"
#include "tests/harness/tools.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

std::string binary() {
  return veil::testing::tool_path("veil-run");
}

bool skip_without_binary() {
  if (!fs::exists(binary())) {
    std::puts("SKIPPED: veil-run was not built");
    return true;
  }
  return false;
}

using veil::testing::TempDir;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::stringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
  }
  return lines;
}

struct RunResult {
  int code = -1;  // veil-run's exit code (124 also when the 60 s watchdog fired)
  std::string out;
  std::string err;
  double seconds = 0;
};

// Runs `[env] veil-run ARGS` under a 60 s watchdog with stdout and stderr captured.
RunResult run_veil_run(const TempDir& dir, const std::string& args, const std::string& env = "") {
  const std::string out = dir.file("stdout.txt");
  const std::string err = dir.file("stderr.txt");
  const std::string cmd = env + " timeout -k 5 60 " + binary() + " " + args + " > " + out + " 2> " +
                          err + " < /dev/null";
  const auto start = std::chrono::steady_clock::now();
  const int status =
      std::system(cmd.c_str());  // NOLINT(cert-env33-c,concurrency-mt-unsafe): a CLI test
  RunResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

// Whether a process still runs (a zombie waiting for its parent counts as ended).
bool process_running(const std::string& pid_text) {
  std::ifstream in("/proc/" + pid_text + "/stat");
  std::string stat;
  if (!in || !std::getline(in, stat)) {
    return false;
  }
  const auto paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 >= stat.size()) {
    return false;
  }
  const char state = stat[paren + 2];
  return state != 'Z' && state != 'X';
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) {
    s.pop_back();
  }
  return s;
}

}  // namespace

TEST_CASE("veil-run prefixes every line with the rank and exits 0", "[tools][veil-run]") {
  if (skip_without_binary()) {
    return;
  }
  TempDir dir("veil_test_run");
  // GIVEN a program that writes to stdout, to stderr, and ends without a newline
  const std::string prog =
      dir.script("p.sh", "echo hello $RANK\necho \"to stderr $RANK\" >&2\nprintf 'no newline'\n");
  // WHEN three parties run it
  const RunResult r = run_veil_run(dir, "-n 3 --no-dealer -- /bin/sh " + prog);
  // THEN every line carries its rank, on the stream it was written to
  CHECK(r.code == 0);
  const auto out = lines_of(r.out);
  CHECK(out.size() == 6);
  for (const auto& line : out) {
    CHECK_THAT(line, Catch::StartsWith("[rank "));
  }
  const std::set<std::string> got(out.begin(), out.end());
  for (int rank = 0; rank < 3; ++rank) {
    CHECK(got.count("[rank " + std::to_string(rank) + "] hello " + std::to_string(rank)) == 1);
    CHECK(got.count("[rank " + std::to_string(rank) + "] no newline") == 1);
    CHECK_THAT(r.err, Catch::Contains("[rank " + std::to_string(rank) + "] to stderr " +
                                      std::to_string(rank) + "\n"));
  }
  CHECK_THAT(r.err, Catch::Contains("[veil-run] all 3 parties exited successfully"));
}

TEST_CASE("veil-run sets RANK, WORLD_SIZE, VEIL_PEERS and a private TLS directory",
          "[tools][veil-run]") {
  if (skip_without_binary()) {
    return;
  }
  TempDir dir("veil_test_run");
  const std::string prog = dir.script(
      "env.sh",
      "echo \"ENV $RANK $WORLD_SIZE $VEIL_PEERS ${VEIL_DEALER-unset} ${VEIL_CONFIG-unset} "
      "$VEIL_TIMEOUT_MS $VEIL_CONNECT_TIMEOUT_MS $VEIL_TLS_DIR\"\n"
      "test -f \"$VEIL_TLS_DIR/ca.pem\" && test -f \"$VEIL_TLS_DIR/party-$RANK.key\" && "
      "echo tls-ok\n");
  // GIVEN a caller whose own environment has stale session variables
  const RunResult r = run_veil_run(
      dir, "-n 3 --no-dealer --timeout-ms 4321 --connect-timeout-ms 1234 -- /bin/sh " + prog,
      "RANK=7 WORLD_SIZE=9 VEIL_CONFIG=/nonexistent.json VEIL_DEALER=x:1");
  REQUIRE(r.code == 0);
  // THEN each party sees its own rank and the same session
  std::map<int, std::vector<std::string>> fields;
  for (const auto& line : lines_of(r.out)) {
    const auto pos = line.find("] ENV ");
    if (pos == std::string::npos) {
      continue;
    }
    std::stringstream in(line.substr(pos + 6));
    std::vector<std::string> f;
    std::string word;
    while (in >> word) {
      f.push_back(word);
    }
    REQUIRE(f.size() == 8);
    fields[std::stoi(f[0])] = f;
    CHECK_THAT(line, Catch::StartsWith("[rank " + f[0] + "] "));
  }
  REQUIRE(fields.size() == 3);
  const std::string peers = fields[0][2];
  std::set<std::string> ports;
  std::stringstream in(peers);
  std::string address;
  while (std::getline(in, address, ',')) {
    CHECK_THAT(address, Catch::StartsWith("127.0.0.1:"));
    ports.insert(address.substr(10));
  }
  CHECK(ports.size() == 3);  // three distinct ports
  for (const auto& [rank, f] : fields) {
    CHECK(f[1] == "3");
    CHECK(f[2] == peers);
    CHECK(f[3] == "unset");  // --no-dealer: no VEIL_DEALER, even though the caller had one
    CHECK(f[4] == "unset");  // VEIL_CONFIG is not passed on
    CHECK(f[5] == "4321");
    CHECK(f[6] == "1234");
    CHECK(f[7] == fields[0][7]);
  }
  for (int rank = 0; rank < 3; ++rank) {
    CHECK_THAT(r.out, Catch::Contains("[rank " + std::to_string(rank) + "] tls-ok\n"));
  }
  CHECK(lines_of(r.out).size() == 6);
  // AND the throw-away PKI is gone afterwards
  CHECK_FALSE(fs::exists(fields[0][7]));
}

TEST_CASE("veil-run --base-port uses consecutive ports", "[tools][veil-run]") {
  if (skip_without_binary()) {
    return;
  }
  TempDir dir("veil_test_run");
  const RunResult r =
      run_veil_run(dir,
                   "-n 2 --no-dealer --insecure-plaintext --base-port 47110 -- /bin/sh -c "
                   "'echo \"$VEIL_PEERS $VEIL_INSECURE_PLAINTEXT ${VEIL_TLS_DIR-none}\"'");
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("[rank 0] 127.0.0.1:47110,127.0.0.1:47111 1 none"));
  CHECK_THAT(r.out, Catch::Contains("[rank 1] 127.0.0.1:47110,127.0.0.1:47111 1 none"));
  CHECK_THAT(r.err, Catch::Contains("WARNING"));
}

TEST_CASE("veil-run stops the others after the first failure and returns its code",
          "[tools][veil-run]") {
  if (skip_without_binary()) {
    return;
  }
  TempDir dir("veil_test_run");
  const std::string ready = dir.file("pid0");
  // GIVEN rank 0 sleeping for 30 s, and rank 1 failing with code 3 once rank 0 is asleep
  const std::string prog = dir.script("fail.sh", "if [ \"$RANK\" = 0 ]; then echo $$ > " + ready +
                                                     ".tmp; mv " + ready + ".tmp " + ready +
                                                     "; exec sleep 30; fi\n"
                                                     "while [ ! -s " +
                                                     ready + " ]; do sleep 0.05; done\nexit 3\n");
  // WHEN veil-run runs them
  const RunResult r = run_veil_run(dir, "-n 2 --no-dealer -- /bin/sh " + prog);
  // THEN it returns rank 1's code quickly, and the sleeper is gone
  CHECK(r.code == 3);
  CHECK(r.seconds < 10);
  REQUIRE(fs::exists(ready));
  CHECK_FALSE(process_running(trimmed(read_file(ready))));
  CHECK_THAT(r.err, Catch::Contains("[veil-run] rank 1 failed first (exit code 3)"));
}

TEST_CASE("veil-run reports a party killed by a signal as 128 + signal", "[tools][veil-run]") {
  if (skip_without_binary()) {
    return;
  }
  TempDir dir("veil_test_run");
  const std::string ready = dir.file("ready");
  const std::string prog = dir.script("kill.sh", "if [ \"$RANK\" = 0 ]; then touch " + ready +
                                                     "; exec sleep 30; fi\nwhile [ ! -e " + ready +
                                                     " ]; do sleep 0.05; done\nkill -KILL $$\n");
  const RunResult r = run_veil_run(dir, "-n 2 --no-dealer -- /bin/sh " + prog);
  CHECK(r.code == 128 + 9);
  CHECK(r.seconds < 10);
  CHECK_THAT(r.err, Catch::Contains("rank 1 failed first (killed by SIGKILL)"));
}

TEST_CASE("veil-run kills a process that ignores SIGTERM, and its grandchildren",
          "[tools][veil-run]") {
  if (skip_without_binary()) {
    return;
  }
  TempDir dir("veil_test_run");
  const std::string grandchild = dir.file("grandchild");
  // GIVEN rank 0 ignoring SIGTERM with a background grandchild, and rank 1 failing with code 4
  const std::string prog = dir.script(
      "stubborn.sh", "if [ \"$RANK\" = 0 ]; then\n  trap '' TERM\n  sleep 30 &\n  echo $! > " +
                         grandchild + ".tmp; mv " + grandchild + ".tmp " + grandchild +
                         "\n  while :; do sleep 0.1; done\nfi\nwhile [ ! -s " + grandchild +
                         " ]; do sleep 0.05; done\nexit 4\n");
  const RunResult r = run_veil_run(dir, "-n 2 --no-dealer --grace-seconds 1 -- /bin/sh " + prog);
  // THEN SIGKILL after the grace period ends them all
  CHECK(r.code == 4);
  CHECK(r.seconds < 10);
  REQUIRE(fs::exists(grandchild));
  CHECK_FALSE(process_running(trimmed(read_file(grandchild))));
}

TEST_CASE("veil-run stops everything on SIGTERM and at --max-seconds", "[tools][veil-run]") {
  if (skip_without_binary()) {
    return;
  }
  TempDir dir("veil_test_run");
  SECTION("--max-seconds") {
    const RunResult r = run_veil_run(dir, "-n 2 --no-dealer --max-seconds 0.5 -- sleep 30");
    CHECK(r.code == 124);
    CHECK(r.seconds < 10);
    CHECK_THAT(r.err, Catch::Contains("--max-seconds 0.5 reached"));
  }
  SECTION("SIGTERM to veil-run") {
    const std::string pids = dir.file("pids");
    const std::string prog = dir.script("sleep.sh", "echo $$ >> " + pids + "\nexec sleep 30\n");
    const std::string code_file = dir.file("code");
    // veil-run in the background; SIGTERM once both parties have started
    const std::string cmd = "timeout -k 5 60 " + binary() + " -n 2 --no-dealer -- /bin/sh " + prog +
                            " > /dev/null 2>&1 < /dev/null & pid=$!; i=0; "
                            "while [ \"$(cat " +
                            pids +
                            " 2>/dev/null | wc -l)\" -lt 2 ] && "
                            "[ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
                            "kill -TERM $pid; wait $pid; echo $? > " +
                            code_file;
    const auto start = std::chrono::steady_clock::now();
    std::system(cmd.c_str());  // NOLINT(cert-env33-c,concurrency-mt-unsafe): a CLI test
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    CHECK(trimmed(read_file(code_file)) == "143");
    CHECK(seconds < 10);
    const auto started = lines_of(read_file(pids));
    CHECK(started.size() == 2);
    for (const auto& pid : started) {
      CHECK_FALSE(process_running(pid));
    }
  }
}

TEST_CASE("veil-run exit codes for bad input", "[tools][veil-run]") {
  if (skip_without_binary()) {
    return;
  }
  TempDir dir("veil_test_run");
  // a program that does not exist: 127, as in a shell
  CHECK(run_veil_run(dir, "-n 2 --no-dealer -- /nonexistent/program").code == 127);
  // bad command lines: 2
  CHECK(run_veil_run(dir, "-n 2 --no-dealer --").code == 2);
  CHECK(run_veil_run(dir, "-n 1 --no-dealer -- true").code == 2);
  CHECK(run_veil_run(dir, "--no-dealer -- true").code == 2);
  CHECK(run_veil_run(dir, "-n 2 --no-such-option -- true").code == 2);
  CHECK(run_veil_run(dir, "-n 2 --tls-dir /x --insecure-plaintext -- true").code == 2);
  // setup failures: 1, with a message
  const RunResult no_dealer = run_veil_run(dir, "-n 2 --dealer-program /nonexistent -- true");
  CHECK(no_dealer.code == 1);
  CHECK_THAT(no_dealer.err, Catch::Contains("--no-dealer"));
  const RunResult bad_tls = run_veil_run(dir, "-n 2 --no-dealer --tls-dir /nonexistent -- true");
  CHECK(bad_tls.code == 1);
  CHECK_THAT(bad_tls.err, Catch::Contains("ca.pem"));
  // without '--', options end at the program
  const RunResult no_separator = run_veil_run(dir, "-n 2 --no-dealer /bin/echo -n x");
  CHECK(no_separator.code == 0);
  CHECK_THAT(no_separator.out, Catch::Contains("[rank 1] x"));
}

TEST_CASE("veil-run starts the dealer with RANK = N", "[tools][veil-run]") {
  if (skip_without_binary()) {
    return;
  }
  TempDir dir("veil_test_run");
  // GIVEN a stand-in dealer program that prints what it was given
  const std::string dealer =
      dir.script("dealer",
                 "#!/bin/sh\necho \"dealer $RANK $WORLD_SIZE $VEIL_DEALER\"\n"
                 "test -f \"$VEIL_TLS_DIR/dealer.key\" && echo dealer-tls-ok\n");
  const RunResult r =
      run_veil_run(dir, "-n 2 --dealer-program " + dealer + " -- /bin/sh -c 'echo $VEIL_DEALER'");
  CHECK(r.code == 0);
  const auto lines = lines_of(r.out);
  std::string address;
  for (const auto& line : lines) {
    if (line.rfind("[rank 0] ", 0) == 0) {
      address = line.substr(9);
    }
  }
  CHECK_THAT(address, Catch::StartsWith("127.0.0.1:"));
  CHECK_THAT(r.out, Catch::Contains("[dealer] dealer 2 2 " + address + "\n"));
  CHECK_THAT(r.out, Catch::Contains("[dealer] dealer-tls-ok"));
  CHECK_THAT(r.err, Catch::Contains("all 2 parties and the dealer exited successfully"));

  SECTION("a dealer that outlives the parties is stopped, and the run still succeeds") {
    const std::string lingering = dir.script("dealer2", "#!/bin/sh\nexec sleep 30\n");
    const RunResult s =
        run_veil_run(dir, "-n 2 --grace-seconds 0.5 --dealer-program " + lingering + " -- true");
    CHECK(s.code == 0);
    CHECK(s.seconds < 10);
    CHECK_THAT(s.err, Catch::Contains("the dealer was still running"));
  }
}
