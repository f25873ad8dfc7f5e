// veil-run: starts the N parties of a program, and the dealer, as local processes (like torchrun).
//
//   veil-run -n 3 -- ./build/tools/veil-train --epochs 1
//
// Every party runs PROGRAM ARGS... with RANK, WORLD_SIZE, VEIL_PEERS, VEIL_DEALER, VEIL_TLS_DIR,
// VEIL_TIMEOUT_MS and VEIL_CONNECT_TIMEOUT_MS set (see comm/config.h); the dealer runs
// veil-dealer from veil-run's own directory with RANK=N. veil-run writes a throw-away PKI into a
// private temporary directory (removed at exit), picks free loopback ports, prefixes every line
// of output with "[rank i] " or "[dealer] ", and when one process fails stops the others
// (SIGTERM to each process group, SIGKILL after a grace period) and exits with the first
// failure's code (128 + signal for a signal). It never waits forever: a process that ignores
// SIGTERM is killed, and --max-seconds bounds the whole run.

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "comm/config.h"
#include "comm/tls.h"
#include "core/error.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kUsageError = 2;        // bad command line
constexpr int kSetupError = 1;        // could not prepare or start the processes
constexpr int kTimedOut = 124;        // --max-seconds reached (as timeout(1))
constexpr size_t kMaxLine = 1 << 16;  // longer lines are printed in pieces

// ---- signals: a self-pipe wakes poll() on SIGCHLD, SIGINT, SIGTERM, SIGHUP -------------------

volatile std::sig_atomic_t g_stop_signal = 0;  // NOLINT: written by the signal handler only
int g_wake_fd = -1;                            // NOLINT: write end of the self-pipe

extern "C" void on_signal(int sig) {
  if (sig != SIGCHLD && g_stop_signal == 0) {
    g_stop_signal = sig;
  }
  const int saved = errno;
  const char byte = 0;
  [[maybe_unused]] const ssize_t n = write(g_wake_fd, &byte, 1);
  errno = saved;
}

void install_handler(int sig, void (*handler)(int)) {
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(sig, &sa, nullptr);
}

std::string signal_name(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", sig);
}

// ---- small POSIX helpers ---------------------------------------------------------------------

// The text of an errno value (thread-safe, unlike strerror).
std::string os_error(int e) {
  return std::generic_category().message(e);
}

void write_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;  // EPIPE and friends: the reader is gone; keep managing the processes
    }
    done += static_cast<size_t>(n);
  }
}

void note(const std::string& text) {
  write_all(STDERR_FILENO, "[veil-run] " + text + "\n");
}

void close_fd(int& fd) {
  if (fd >= 0) {
    close(fd);
    fd = -1;
  }
}

// Removes a directory tree when it goes out of scope.
class TempDirGuard {
 public:
  TempDirGuard() = default;
  explicit TempDirGuard(std::string path) : path_(std::move(path)) {}
  ~TempDirGuard() {
    if (!path_.empty()) {
      std::error_code ec;
      fs::remove_all(path_, ec);
    }
  }
  TempDirGuard(const TempDirGuard&) = delete;
  TempDirGuard& operator=(const TempDirGuard&) = delete;
  TempDirGuard& operator=(TempDirGuard&& other) noexcept {
    std::swap(path_, other.path_);
    return *this;
  }

 private:
  std::string path_;
};

// Free TCP ports on 127.0.0.1: bind port 0 `count` times (all sockets held open, so the ports
// differ) and read back what the kernel chose.
std::vector<int> free_loopback_ports(int count) {
  std::vector<int> fds;
  std::vector<int> ports;
  std::string error;
  for (int i = 0; i < count && error.empty(); ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      error = os_error(errno);
      break;
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    // NOLINTNEXTLINE(cppcoreguidelines-pro-type-reinterpret-cast): the sockets API
    auto* sa = reinterpret_cast<sockaddr*>(&addr);
    if (bind(fd, sa, sizeof(addr)) != 0 || getsockname(fd, sa, &len) != 0) {
      error = os_error(errno);
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (const int fd : fds) {
    close(fd);
  }
  if (!error.empty()) {
    throw veil::IoError(fmt::format("[veil-run] cannot find a free loopback port: {}", error));
  }
  return ports;
}

// The directory of this executable (/proc/self/exe), or "" when unknown.
fs::path own_directory() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? fs::path() : exe.parent_path();
}

// ---- children --------------------------------------------------------------------------------

// One pipe from a child (its stdout or stderr) and the unfinished line read from it.
struct Stream {
  int fd = -1;         // read end; -1 once closed
  int target = -1;     // STDOUT_FILENO or STDERR_FILENO of veil-run
  std::string buffer;  // bytes after the last newline
};

struct Child {
  std::string name;    // "rank 1" or "dealer"
  std::string prefix;  // "[rank 1] " or "[dealer] "
  bool is_dealer = false;
  pid_t pid = -1;  // also the process group id
  bool running = false;
  int status = 0;  // waitpid status once !running
  Clock::time_point ended;
  Stream out;
  Stream err;
};

// Prints every complete line in the buffer with the prefix; at EOF also the unfinished rest.
void flush_lines(Stream& s, const std::string& prefix, bool eof) {
  size_t start = 0;
  std::string text;
  while (true) {
    const size_t nl = s.buffer.find('\n', start);
    if (nl == std::string::npos) {
      break;
    }
    text += prefix;
    text.append(s.buffer, start, nl + 1 - start);
    start = nl + 1;
  }
  s.buffer.erase(0, start);
  if (!s.buffer.empty() && (eof || s.buffer.size() >= kMaxLine)) {
    text += prefix + s.buffer + "\n";
    s.buffer.clear();
  }
  if (!text.empty()) {
    write_all(s.target, text);
  }
}

// Reads what is available; closes the stream at EOF or on error.
void drain(Stream& s, const std::string& prefix) {
  char chunk[1 << 14];
  while (s.fd >= 0) {
    const ssize_t n = read(s.fd, chunk, sizeof(chunk));
    if (n > 0) {
      s.buffer.append(chunk, static_cast<size_t>(n));
      flush_lines(s, prefix, false);
      if (static_cast<size_t>(n) < sizeof(chunk)) {
        return;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      return;
    }
    flush_lines(s, prefix, true);
    close_fd(s.fd);
  }
}

// fork + execvp with the given environment; stdout/stderr to fresh pipes, stdin from /dev/null,
// the child in its own process group. Exec failures show up as exit code 127 (not found) or 126.
void spawn(Child& child,
           const std::vector<std::string>& argv,
           const std::vector<std::string>& env,
           int dev_null) {
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    throw veil::IoError(fmt::format("[veil-run] pipe: {}", os_error(errno)));
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int e = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    throw veil::IoError(fmt::format("[veil-run] pipe: {}", os_error(e)));
  }
  std::vector<char*> c_argv;
  for (const auto& a : argv) {
    c_argv.push_back(const_cast<char*>(a.c_str()));  // NOLINT: execvpe takes char* const*
  }
  c_argv.push_back(nullptr);
  std::vector<char*> c_env;
  for (const auto& e : env) {
    c_env.push_back(const_cast<char*>(e.c_str()));  // NOLINT: as above
  }
  c_env.push_back(nullptr);
  const std::string exec_error_prefix = fmt::format("veil-run: cannot execute '{}': ", argv[0]);

  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    for (const int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) {
      close(fd);
    }
    throw veil::IoError(fmt::format("[veil-run] fork: {}", os_error(e)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec. If veil-run dies (even by SIGKILL), the
    // child gets SIGTERM instead of living on as an orphan.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) {
      _exit(128 + SIGTERM);
    }
    setpgid(0, 0);
    dup2(dev_null, STDIN_FILENO);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    struct sigaction sa {};
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE}) {
      sigaction(sig, &sa, nullptr);
    }
    execvpe(c_argv[0], c_argv.data(), c_env.data());
    const int e = errno;
    const char* reason = std::strerror(e);  // NOLINT(concurrency-mt-unsafe): one thread
    [[maybe_unused]] ssize_t n =
        write(STDERR_FILENO, exec_error_prefix.data(), exec_error_prefix.size());
    n = write(STDERR_FILENO, reason, std::strlen(reason));
    n = write(STDERR_FILENO, "\n", 1);
    _exit(e == ENOENT ? 127 : 126);
  }
  // Parent: also set the group (whichever of the two runs first wins; both agree).
  setpgid(pid, pid);
  close(out_pipe[1]);
  close(err_pipe[1]);
  for (const int fd : {out_pipe[0], err_pipe[0]}) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  child.pid = pid;
  child.running = true;
  child.out.fd = out_pipe[0];
  child.out.target = STDOUT_FILENO;
  child.err.fd = err_pipe[0];
  child.err.target = STDERR_FILENO;
}

// SIGTERM/SIGKILL to every child's process group (exited children too: their stray
// grandchildren may still run in that group).
void signal_all(const std::vector<Child>& children, int sig) {
  for (const auto& c : children) {
    if (c.pid > 0) {
      kill(-c.pid, sig);
      if (c.running) {
        kill(c.pid, sig);  // in case the child has not joined its group yet
      }
    }
  }
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return 1;
}

std::string describe(int status) {
  if (WIFEXITED(status)) {
    return fmt::format("exit code {}", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return fmt::format("killed by {}", signal_name(WTERMSIG(status)));
  }
  return "stopped";
}

bool failed(int status) {
  return !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}

// ---- the command line ------------------------------------------------------------------------

struct Options {
  int parties = 2;
  bool dealer = true;
  int base_port = 0;
  int64_t timeout_ms = veil::comm::SessionConfig{}.timeout.count();
  int64_t connect_timeout_ms = veil::comm::SessionConfig{}.connect_timeout.count();
  std::string tls_dir;
  bool insecure_plaintext = false;
  double max_seconds = 0;
  double grace_seconds = 5;
  std::string dealer_program;
  std::vector<std::string> command;
};

class UsageFormatter : public CLI::Formatter {
 public:
  std::string make_usage(const CLI::App* /*app*/, std::string name) const override {
    return "Usage: " + name + " -n N [OPTIONS] -- PROGRAM [ARGS...]\n";
  }
};

// The variables veil-run decides for its children; the caller's values are not passed on.
constexpr std::array<std::string_view, 9> kOwnedVariables = {"RANK",
                                                             "WORLD_SIZE",
                                                             "VEIL_PEERS",
                                                             "VEIL_DEALER",
                                                             "VEIL_TLS_DIR",
                                                             "VEIL_TIMEOUT_MS",
                                                             "VEIL_CONNECT_TIMEOUT_MS",
                                                             "VEIL_INSECURE_PLAINTEXT",
                                                             "VEIL_CONFIG"};

// The environment of endpoint `rank`: veil-run's own, minus every variable veil-run decides,
// plus this session's values.
std::vector<std::string> child_environment(int rank,
                                           const Options& o,
                                           const veil::comm::SessionConfig& config) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string entry(*e);
    const std::string name = entry.substr(0, entry.find('='));
    if (std::find(kOwnedVariables.begin(), kOwnedVariables.end(), name) == kOwnedVariables.end()) {
      env.push_back(entry);
    }
  }
  std::string peers;
  for (const auto& p : config.parties) {
    peers += (peers.empty() ? "" : ",") + p;
  }
  env.push_back(fmt::format("RANK={}", rank));
  env.push_back(fmt::format("WORLD_SIZE={}", config.world_size));
  env.push_back("VEIL_PEERS=" + peers);
  if (config.dealer) {
    env.push_back("VEIL_DEALER=" + *config.dealer);
  }
  if (config.insecure_plaintext) {
    env.emplace_back("VEIL_INSECURE_PLAINTEXT=1");
  } else {
    env.push_back("VEIL_TLS_DIR=" + config.tls_dir);
  }
  env.push_back(fmt::format("VEIL_TIMEOUT_MS={}", o.timeout_ms));
  env.push_back(fmt::format("VEIL_CONNECT_TIMEOUT_MS={}", o.connect_timeout_ms));
  return env;
}

// ---- supervision -------------------------------------------------------------------------------

enum class Phase { kRunning, kStopping, kKilling };

struct Outcome {
  std::optional<size_t> first_failure;  // index into children
  int stop_signal = 0;                  // SIGINT/SIGTERM/SIGHUP received by veil-run
  bool timed_out = false;
  bool dealer_stopped = false;  // the dealer outlived the parties and was stopped
  bool gave_up = false;         // some process could not be reaped even after SIGKILL
};

Outcome supervise(std::vector<Child>& children, const Options& o, int wake_read_fd) {
  using std::chrono::duration;
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  const auto start = Clock::now();
  const auto grace = duration_cast<Clock::duration>(duration<double>(o.grace_seconds));
  const std::optional<Clock::time_point> max_deadline =
      o.max_seconds > 0
          ? std::optional(start + duration_cast<Clock::duration>(duration<double>(o.max_seconds)))
          : std::nullopt;
  constexpr auto kLinger = std::chrono::seconds(1);  // stray output holders after all exited
  constexpr auto kAfterKill = std::chrono::seconds(2);

  Outcome outcome;
  Phase phase = Phase::kRunning;
  Clock::time_point phase_deadline{};
  std::optional<Clock::time_point> parties_done;
  std::optional<Clock::time_point> all_done;

  const auto begin_stop = [&](Clock::time_point now) {
    if (phase == Phase::kRunning) {
      phase = Phase::kStopping;
      phase_deadline = now + grace;
      signal_all(children, SIGTERM);
    }
  };

  std::vector<pollfd> fds;
  std::vector<Stream*> streams;
  while (true) {
    // Reap every child that has ended.
    for (size_t i = 0; i < children.size(); ++i) {
      Child& c = children[i];
      if (!c.running) {
        continue;
      }
      int status = 0;
      const pid_t r = waitpid(c.pid, &status, WNOHANG);
      if (r == c.pid || (r < 0 && errno == ECHILD)) {
        c.running = false;
        c.status = r == c.pid ? status : 0;
        c.ended = Clock::now();
        if (failed(c.status) && phase == Phase::kRunning && !outcome.first_failure) {
          outcome.first_failure = i;
        }
      }
    }
    const auto now = Clock::now();
    const bool any_running =
        std::any_of(children.begin(), children.end(), [](const Child& c) { return c.running; });
    const bool any_open = std::any_of(children.begin(), children.end(), [](const Child& c) {
      return c.out.fd >= 0 || c.err.fd >= 0;
    });
    if (!any_running && !any_open) {
      break;
    }
    if (phase == Phase::kRunning) {
      if (g_stop_signal != 0) {
        outcome.stop_signal = g_stop_signal;
        begin_stop(now);
      } else if (outcome.first_failure) {
        begin_stop(now);
      } else if (max_deadline && now >= *max_deadline) {
        outcome.timed_out = true;
        begin_stop(now);
      } else {
        const bool parties_running =
            std::any_of(children.begin(), children.end(),
                        [](const Child& c) { return c.running && !c.is_dealer; });
        if (!parties_running && any_running) {
          // Only the dealer is left: it normally ends when the parties disconnect.
          parties_done = parties_done.value_or(now);
          if (now >= *parties_done + grace) {
            outcome.dealer_stopped = true;
            begin_stop(now);
          }
        }
        if (!any_running) {
          // Everyone exited, yet a pipe is open: a stray grandchild holds it.
          all_done = all_done.value_or(now);
          if (now >= *all_done + kLinger) {
            begin_stop(now);
          }
        }
      }
    } else if (phase == Phase::kStopping && now >= phase_deadline) {
      signal_all(children, SIGKILL);
      phase = Phase::kKilling;
      phase_deadline = now + kAfterKill;
    } else if (phase == Phase::kKilling && now >= phase_deadline) {
      outcome.gave_up = any_running;
      break;
    }

    // Wait for output, a signal, or the next deadline (at most 250 ms: reaping is cheap).
    auto wait = std::chrono::duration_cast<Clock::duration>(milliseconds(250));
    const auto consider = [&wait, now](Clock::time_point t) {
      wait = std::max(Clock::duration::zero(), std::min(wait, t - now));
    };
    if (phase != Phase::kRunning) {
      consider(phase_deadline);
    } else {
      if (max_deadline) {
        consider(*max_deadline);
      }
      if (parties_done) {
        consider(*parties_done + grace);
      }
      if (all_done) {
        consider(*all_done + kLinger);
      }
    }
    fds.clear();
    streams.clear();
    fds.push_back(pollfd{wake_read_fd, POLLIN, 0});
    for (auto& c : children) {
      for (Stream* s : {&c.out, &c.err}) {
        if (s->fd >= 0) {
          fds.push_back(pollfd{s->fd, POLLIN, 0});
          streams.push_back(s);
        }
      }
    }
    const auto timeout_ms = duration_cast<milliseconds>(wait).count() + 1;
    const int ready = poll(fds.data(), fds.size(), static_cast<int>(timeout_ms));
    if (ready <= 0) {
      continue;  // timeout or EINTR
    }
    if ((fds[0].revents & POLLIN) != 0) {
      char bytes[64];
      while (read(wake_read_fd, bytes, sizeof(bytes)) > 0) {
      }
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        Stream* s = streams[i - 1];
        const auto owner = std::find_if(children.begin(), children.end(),
                                        [s](const Child& c) { return &c.out == s || &c.err == s; });
        drain(*s, owner->prefix);
      }
    }
  }
  // Whatever is still buffered (only when giving up on open pipes).
  for (auto& c : children) {
    for (Stream* s : {&c.out, &c.err}) {
      if (s->fd >= 0) {
        flush_lines(*s, c.prefix, true);
        close_fd(s->fd);
      }
    }
  }
  return outcome;
}

std::string seconds_since(Clock::time_point start, Clock::time_point end) {
  return fmt::format("{:.1f} s", std::chrono::duration<double>(end - start).count());
}

int run(const Options& o) {
  // Signals first, so a Ctrl-C during setup still removes the temporary directory.
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) {
    note(fmt::format("error: pipe: {}", os_error(errno)));
    return kSetupError;
  }
  g_wake_fd = wake[1];
  for (const int sig : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) {
    install_handler(sig, on_signal);
  }
  install_handler(SIGPIPE, SIG_IGN);

  TempDirGuard temp_dir;
  std::vector<Child> children;
  Outcome outcome;
  const auto start = Clock::now();
  try {
    veil::comm::SessionConfig config;
    config.world_size = o.parties;
    const int endpoints = o.parties + (o.dealer ? 1 : 0);
    std::vector<int> ports;
    if (o.base_port > 0) {
      VEIL_CHECK(o.base_port + endpoints - 1 <= 65535,
                 "[veil-run] --base-port {} leaves no room for {} ports", o.base_port, endpoints);
      for (int i = 0; i < endpoints; ++i) {
        ports.push_back(o.base_port + i);
      }
    } else {
      ports = free_loopback_ports(endpoints);
    }
    for (int i = 0; i < o.parties; ++i) {
      config.parties.push_back(fmt::format("127.0.0.1:{}", ports[static_cast<size_t>(i)]));
    }
    if (o.dealer) {
      config.dealer = fmt::format("127.0.0.1:{}", ports.back());
    }
    config.timeout = std::chrono::milliseconds(o.timeout_ms);
    config.connect_timeout = std::chrono::milliseconds(o.connect_timeout_ms);
    config.insecure_plaintext = o.insecure_plaintext;

    std::string dealer_program;
    if (o.dealer) {
      dealer_program = o.dealer_program;
      if (dealer_program.empty()) {
        dealer_program = (own_directory() / "veil-dealer").string();
      }
      if (access(dealer_program.c_str(), X_OK) != 0) {
        note(fmt::format(
            "error: the dealer program '{}' was not found or is not executable; build veil-dealer, "
            "pass --dealer-program PATH, or run without a dealer (--no-dealer)",
            dealer_program));
        return kSetupError;
      }
    }

    if (o.insecure_plaintext) {
      note("WARNING: --insecure-plaintext: parties talk over unencrypted, unauthenticated TCP");
    } else if (!o.tls_dir.empty()) {
      config.tls_dir = o.tls_dir;
      for (int r = 0; r < endpoints; ++r) {
        const auto files = veil::comm::tls_files_in(o.tls_dir, r, o.parties);
        for (const auto& f : {files.ca_cert, files.cert, files.key}) {
          if (!fs::exists(f)) {
            note(fmt::format("error: --tls-dir: '{}' does not exist (layout: comm/tls.h)", f));
            return kSetupError;
          }
        }
      }
    } else {
      std::string pattern = (fs::temp_directory_path() / "veil-run-XXXXXX").string();
      if (mkdtemp(pattern.data()) == nullptr) {
        throw veil::IoError(fmt::format("[veil-run] cannot create a temporary directory '{}': {}",
                                        pattern, os_error(errno)));
      }
      temp_dir = TempDirGuard(pattern);
      veil::comm::generate_test_pki(pattern, o.parties, o.dealer);
      config.tls_dir = pattern;
    }
    config.validate();
    if (g_stop_signal != 0) {
      return 128 + g_stop_signal;
    }

    const int dev_null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (dev_null < 0) {
      throw veil::IoError(fmt::format("[veil-run] cannot open /dev/null: {}", os_error(errno)));
    }
    children.resize(static_cast<size_t>(endpoints));
    try {
      for (int r = 0; r < endpoints; ++r) {
        Child& c = children[static_cast<size_t>(r)];
        c.is_dealer = r == o.parties;
        c.name = c.is_dealer ? "dealer" : fmt::format("rank {}", r);
        c.prefix = "[" + c.name + "] ";
        const std::vector<std::string> argv =
            c.is_dealer ? std::vector<std::string>{dealer_program} : o.command;
        spawn(c, argv, child_environment(r, o, config), dev_null);
      }
    } catch (...) {
      close(dev_null);
      signal_all(children, SIGKILL);
      for (auto& c : children) {
        if (c.running) {
          waitpid(c.pid, nullptr, 0);
        }
        close_fd(c.out.fd);
        close_fd(c.err.fd);
      }
      throw;
    }
    close(dev_null);
    outcome = supervise(children, o, wake[0]);
  } catch (const veil::Error& e) {
    std::string what = e.what();
    const std::string own = "[veil-run] ";
    if (what.compare(0, own.size(), own) == 0) {
      what.erase(0, own.size());
    }
    note("error: " + what);
    return kSetupError;
  } catch (const std::exception& e) {
    note(fmt::format("error: {}", e.what()));
    return kSetupError;
  }

  // One line of summary, and the exit code.
  const auto end = Clock::now();
  const int n_parties = o.parties;
  const std::string who = fmt::format("{} parties{}", n_parties, o.dealer ? " and the dealer" : "");
  int code = 0;
  if (outcome.first_failure) {
    const Child& c = children[*outcome.first_failure];
    code = exit_code_of(c.status);
    note(fmt::format("{} failed first ({}) after {}; stopped the other processes", c.name,
                     describe(c.status), seconds_since(start, c.ended)));
  } else if (outcome.stop_signal != 0) {
    code = 128 + outcome.stop_signal;
    note(fmt::format("received {}; stopped all processes ({})", signal_name(outcome.stop_signal),
                     seconds_since(start, end)));
  } else if (outcome.timed_out) {
    code = kTimedOut;
    note(fmt::format("--max-seconds {} reached; stopped all processes", o.max_seconds));
  } else if (outcome.dealer_stopped) {
    note(
        fmt::format("all {} parties exited successfully; the dealer was still running {} s later "
                    "and was stopped ({})",
                    n_parties, o.grace_seconds, seconds_since(start, end)));
  } else {
    note(fmt::format("all {} exited successfully ({})", who, seconds_since(start, end)));
  }
  if (outcome.gave_up) {
    note("warning: some processes did not end even after SIGKILL");
  }
  return code;
}

int veil_run_main(int argc, char** argv) {
  Options o;
  CLI::App app{"veil-run: runs PROGRAM as N MPC parties, plus the dealer, in local processes.",
               "veil-run"};
  app.formatter(std::make_shared<UsageFormatter>());
  app.add_option("-n,--parties", o.parties, "number of parties (2..256)")
      ->required()
      ->check(CLI::Range(2, 256));
  app.add_flag("--dealer,!--no-dealer", o.dealer,
               "also start the dealer (veil-dealer next to veil-run; default: on)");
  app.add_option("--dealer-program", o.dealer_program,
                 "the dealer executable (default: veil-dealer in veil-run's directory)");
  app.add_option("--base-port", o.base_port,
                 "listen on 127.0.0.1:P+rank (dealer: P+N) instead of free ports chosen by the "
                 "kernel")
      ->check(CLI::Range(1, 65535));
  app.add_option("--timeout-ms", o.timeout_ms, "receive timeout of every party (VEIL_TIMEOUT_MS)")
      ->check(CLI::Range(int64_t{1}, int64_t{2147483647}));
  app.add_option("--connect-timeout-ms", o.connect_timeout_ms,
                 "how long parties retry to reach each other (VEIL_CONNECT_TIMEOUT_MS)")
      ->check(CLI::Range(int64_t{1}, int64_t{2147483647}));
  app.add_option("--tls-dir", o.tls_dir,
                 "use this PKI directory (comm/tls.h layout) instead of a throw-away one");
  app.add_flag("--insecure-plaintext", o.insecure_plaintext,
               "INSECURE: no TLS between the processes (debugging only)");
  app.add_option("--max-seconds", o.max_seconds,
                 "stop everything after this many seconds and exit 124 (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  std::string make_pki;
  app.add_option("--make-pki", make_pki,
                 "only write a fresh CA and certificates for -n parties and the dealer into this "
                 "directory (for deployments across machines), then exit");
  app.add_option("--grace-seconds", o.grace_seconds,
                 "after SIGTERM, wait this long before SIGKILL (default 5)")
      ->check(CLI::Range(0.0, 3600.0));
  app.footer(
      "Everything after '--' is the program and its arguments. Party i runs it with RANK=i,\n"
      "WORLD_SIZE=N, VEIL_PEERS, VEIL_DEALER, VEIL_TLS_DIR (or VEIL_INSECURE_PLAINTEXT=1),\n"
      "VEIL_TIMEOUT_MS and VEIL_CONNECT_TIMEOUT_MS; the dealer runs with RANK=N. Output lines\n"
      "are prefixed with '[rank i] ' or '[dealer] '. When a process fails, the others get\n"
      "SIGTERM (SIGKILL after --grace-seconds).\n"
      "Exit code: the first failing process's code (128+signal when it was killed by a signal);\n"
      "124 when --max-seconds is reached; 128+signal when veil-run itself is interrupted; 1 when\n"
      "the processes could not be started; 2 for a bad command line; 0 when all succeeded.");

  // Split at the first "--": veil-run's options before it, the program after it.
  std::vector<std::string> own_args;
  bool have_separator = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (!have_separator && arg == "--") {
      have_separator = true;
      continue;
    }
    (have_separator ? o.command : own_args).push_back(arg);
  }
  if (!have_separator) {
    // Also accept "veil-run -n 2 PROGRAM ARGS": options end at the first positional argument.
    app.prefix_command();
  }
  try {
    std::reverse(own_args.begin(), own_args.end());  // CLI11 parses a reversed vector
    app.parse(own_args);
    if (!have_separator) {
      o.command = app.remaining();
    }
    if (!make_pki.empty()) {
      veil::comm::generate_test_pki(make_pki, o.parties, /*with_dealer=*/true);
      note(fmt::format("wrote a CA and certificates for {} parties and the dealer to {}", o.parties,
                       make_pki));
      return 0;
    }
    if (o.command.empty()) {
      throw CLI::ValidationError("PROGRAM", "no PROGRAM given after '--'");
    }
    if (!o.tls_dir.empty() && o.insecure_plaintext) {
      throw CLI::ValidationError("--tls-dir",
                                 "--tls-dir and --insecure-plaintext exclude each other");
    }
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : kUsageError;
  }
  return run(o);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return veil_run_main(argc, argv);
  } catch (const std::exception& e) {
    note(fmt::format("error: {}", e.what()));
    return kSetupError;
  }
}
