#include "launcher.h"

#include "densenet/distributed/environment.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>

extern char** environ;

namespace densenet::cli {
namespace {

const char* const kLauncherFlags[] = {"--nproc-per-node", "--nnodes",      "--node-rank",
                                      "--master-addr",    "--master-port", "--gpus"};

std::string dashed(std::string flag) {
  for (char& c : flag) c = c == '_' ? '-' : c;
  return flag;
}

volatile std::sig_atomic_t forwarded_signal = 0;

extern "C" void on_launcher_signal(int signal) {
  forwarded_signal = signal;
}

// A TCP port that is free now on the loopback interface (the kernel's choice), for a one-node
// run's store. Another program may take it before rank 0 binds it; rank 0 then says so.
int64_t free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::runtime_error(std::string("cannot open a socket: ") + strerror(errno));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    close(fd);
    throw std::runtime_error(std::string("cannot find a free port: ") + strerror(errno));
  }
  close(fd);
  return ntohs(address.sin_port);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return "was killed by signal " + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "ended with wait status " + std::to_string(status);
}

// The ranks' standard error, read by the launcher and passed on line by line, each error line
// once: a mistake every rank finds (a batch larger than the data, say) is one line, not one per
// rank. Lines are whole: a rank writes each one with a single write() below PIPE_BUF, which a
// pipe keeps in one piece.
class RankErrors {
 public:
  explicit RankErrors(int fd) : fd_(fd) {}
  int fd() const { return fd_; }
  bool open() const { return fd_ >= 0; }
  // From now on error lines are dropped: once a rank has failed, the others' errors (a lost
  // peer, a store gone) are what stopping them caused, not news.
  void quiet() { quiet_ = true; }

  // Reads what is there (the descriptor is non-blocking) and prints the complete lines; at end
  // of file, also the last partial line, and closes.
  void drain() {
    char buffer[4096];
    while (fd_ >= 0) {
      const ssize_t n = read(fd_, buffer, sizeof(buffer));
      if (n > 0) {
        pending_.append(buffer, static_cast<size_t>(n));
        print_lines();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (!pending_.empty()) print(pending_ + "\n");
      pending_.clear();
      close(fd_);
      fd_ = -1;
    }
  }

 private:
  void print_lines() {
    for (size_t end = pending_.find('\n'); end != std::string::npos; end = pending_.find('\n')) {
      print(pending_.substr(0, end + 1));
      pending_.erase(0, end + 1);
    }
  }
  void print(const std::string& line) {
    const bool error = line.find(": error: ") != std::string::npos;
    if (error && (quiet_ || !printed_.insert(line).second)) return;
    std::fwrite(line.data(), 1, line.size(), stderr);
    std::fflush(stderr);
  }

  int fd_;
  std::string pending_;
  std::set<std::string> printed_;  // the error lines passed on
  bool quiet_ = false;
};

// After a rank failed, the others get this long to end on SIGTERM before SIGKILL. They cannot
// finish a step without the failed rank, so they only need to fail their collective and exit;
// a checkpoint being written stays intact when killed (writes are atomic).
constexpr std::chrono::seconds kStopGrace{5};

int exit_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

}  // namespace

bool is_launcher_flag(const std::string& name) {
  const std::string flag = dashed(name);
  for (const char* known : kLauncherFlags) {
    if (flag == known) return true;
  }
  return false;
}

std::vector<std::string> arguments_for_ranks(const std::string& device) {
  std::ifstream file("/proc/self/cmdline", std::ios::binary);
  const std::string text((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<std::string> all;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\0', start);
    all.push_back(text.substr(start, end - start));
    if (end == std::string::npos) break;
    start = end + 1;
  }
  std::vector<std::string> args;
  for (size_t i = 1; i < all.size(); ++i) {
    const std::string& arg = all[i];
    const size_t equals = arg.find('=');
    const std::string flag = arg.substr(0, equals);
    if (is_launcher_flag(flag) || (!device.empty() && flag == "--device")) {
      if (equals == std::string::npos) ++i;  // the value is the next argument
      continue;
    }
    args.push_back(arg);
  }
  if (!device.empty()) {
    args.push_back("--device");
    args.push_back(device);
  }
  return args;
}

int launch_local_ranks(const LaunchOptions& options, const std::vector<std::string>& args) {
  const int64_t local_world_size = options.nproc_per_node;
  const int64_t world_size = local_world_size * options.nnodes;
  const int64_t port = options.master_port > 0 ? options.master_port
                       : options.nnodes == 1   ? free_port()
                                               : 29500;

  std::vector<std::string> argv_strings = {"densenet"};
  argv_strings.insert(argv_strings.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& arg : argv_strings) argv.push_back(arg.data());
  argv.push_back(nullptr);

  // Signals are forwarded from the wait loop, not the handler: waitpid returns EINTR.
  struct sigaction action {};
  action.sa_handler = on_launcher_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = 0;  // no SA_RESTART
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);

  // Each rank's environment is built before fork: between fork and exec the child of a
  // process with threads may only make async-signal-safe calls (no malloc).
  std::vector<std::string> inherited;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    inherited.emplace_back(*variable);
  }
  std::vector<std::vector<std::string>> environments;
  for (int64_t local = 0; local < local_world_size; ++local) {
    distributed::Environment rank;
    rank.rank = options.node_rank * local_world_size + local;
    rank.world_size = world_size;
    rank.local_rank = local;
    rank.local_world_size = local_world_size;
    rank.master_addr = options.master_addr;
    rank.master_port = port;
    environments.push_back(distributed::rank_environment(inherited, rank, options.visible_devices));
  }

  int error_pipe[2];
  if (pipe2(error_pipe, O_CLOEXEC) != 0) {
    std::fprintf(stderr, "densenet train: error: cannot create a pipe for the ranks: %s\n",
                 strerror(errno));
    return 1;
  }
  std::vector<pid_t> pids(static_cast<size_t>(local_world_size), 0);
  for (int64_t local = 0; local < local_world_size; ++local) {
    const int64_t rank = options.node_rank * local_world_size + local;
    std::vector<char*> envp;
    for (std::string& variable : environments[static_cast<size_t>(local)]) {
      envp.push_back(variable.data());
    }
    envp.push_back(nullptr);
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) {
      std::fprintf(stderr, "densenet train: error: cannot start rank %lld: %s\n",
                   static_cast<long long>(rank), strerror(errno));
      for (const pid_t started : pids) {
        if (started > 0) kill(started, SIGKILL);
      }
      return 1;
    }
    if (pid == 0) {
      // The child, in its own process group: a terminal's Ctrl-C reaches it once, forwarded.
      setpgid(0, 0);
      // A launcher killed outright (kill -9) takes its ranks with it.
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      signal(SIGINT, SIG_DFL);
      signal(SIGTERM, SIG_DFL);
      // Standard error goes through the launcher (RankErrors). A launcher gone leaves the pipe
      // without a reader: ignored SIGPIPE (as Python's interpreter does for torch's ranks) makes
      // a late message fail quietly instead of killing the rank while it saves its checkpoint.
      dup2(error_pipe[1], STDERR_FILENO);
      signal(SIGPIPE, SIG_IGN);
      execve("/proc/self/exe", argv.data(), envp.data());
      static const char message[] = "densenet train: error: cannot run a rank (execve failed)\n";
      (void)!write(STDERR_FILENO, message, sizeof(message) - 1);
      _exit(127);
    }
    pids[static_cast<size_t>(local)] = pid;
  }

  close(error_pipe[1]);
  fcntl(error_pipe[0], F_SETFL, fcntl(error_pipe[0], F_GETFL) | O_NONBLOCK);
  RankErrors errors(error_pipe[0]);

  int result = 0;
  size_t running = pids.size();
  bool ending = false;  // a rank failed: the others are being stopped
  int user_signal = 0;  // the last signal forwarded (Ctrl-C, SIGTERM): a rank it ends is no fault
  std::chrono::steady_clock::time_point end_deadline;
  while (running > 0) {
    // Waits for the ranks' output or 50 ms; a signal ends the wait early (no SA_RESTART).
    pollfd ready{errors.fd(), POLLIN, 0};
    if (poll(&ready, errors.open() ? 1 : 0, 50) > 0) errors.drain();
    if (const int signal = forwarded_signal; signal != 0) {
      forwarded_signal = 0;
      user_signal = signal;
      for (const pid_t child : pids) {
        if (child > 0) kill(child, signal);
      }
    }
    if (ending && std::chrono::steady_clock::now() > end_deadline) {
      for (const pid_t child : pids) {
        if (child > 0) kill(child, SIGKILL);
      }
      end_deadline = std::chrono::steady_clock::now() + std::chrono::hours(1);
    }
    int status = 0;
    const pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid < 0 && errno != EINTR) break;  // no children left
    if (pid <= 0) continue;
    int64_t local = 0;
    while (local < local_world_size && pids[static_cast<size_t>(local)] != pid) ++local;
    if (local == local_world_size) continue;
    pids[static_cast<size_t>(local)] = 0;
    --running;
    if (exit_code(status) != 0 && result == 0) {
      result = exit_code(status);
      // Interrupted: it stopped on the signal (130, 143), or the signal ended it before it could
      // (a rank still starting).
      const bool interrupted =
          (WIFEXITED(status) && (result == 130 || result == 143)) ||
          (WIFSIGNALED(status) && user_signal != 0 && WTERMSIG(status) == user_signal);
      if (!interrupted) {
        // A rank that exits with 1 or 2 has said why itself; one ended otherwise has not.
        const bool said = WIFEXITED(status) && (result == 1 || result == 2);
        errors.drain();  // its last lines first
        if (!said) {
          std::fprintf(stderr, "densenet train: rank %lld (pid %d) %s; stopping the other ranks\n",
                       static_cast<long long>(options.node_rank * local_world_size + local),
                       static_cast<int>(pid), describe_status(status).c_str());
        }
        errors.quiet();
        // SIGCONT: a stopped rank (SIGSTOP) acts on SIGTERM only once it runs again.
        for (const pid_t child : pids) {
          if (child > 0) kill(child, SIGTERM);
          if (child > 0) kill(child, SIGCONT);
        }
        ending = true;
        end_deadline = std::chrono::steady_clock::now() + kStopGrace;
      }
    }
  }
  // What the ranks wrote last: every write end is closed once they have all ended.
  while (errors.open()) {
    pollfd ready{errors.fd(), POLLIN, 0};
    if (poll(&ready, 1, 1000) <= 0) break;  // a process the ranks started still holds it
    errors.drain();
  }
  return result;
}

}  // namespace densenet::cli
