#pragma once
// Test support: real redis-server processes on free 127.0.0.1 ports, each in its own temporary directory,
// stopped and cleaned up by the destructor (and killed by the kernel if the test process dies first).
// Used by the redis suite, the benchmarks and the example runner; the cluster and fault tests build on it.

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

namespace hitbox_test {

/// The full path of `name` found in PATH, or nullopt.
inline std::optional<std::string> find_executable(std::string_view name) {
    const char* path = std::getenv("PATH");
    std::string_view rest = path ? path : "/usr/local/bin:/usr/bin:/bin";
    while (!rest.empty()) {
        auto colon = rest.find(':');
        auto dir = rest.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view{} : rest.substr(colon + 1);
        if (dir.empty()) continue;
        std::string candidate = std::string(dir) + "/" + std::string(name);
        if (::access(candidate.c_str(), X_OK) == 0) return candidate;
    }
    return std::nullopt;
}

/// True when the environment says we run in CI (`CI=true`).
inline bool in_ci() {
    const char* ci = std::getenv("CI");
    return ci != nullptr && std::string_view(ci) == "true";
}

/// Ends the program unless redis-server and redis-cli are installed: exit 77 (meson: skipped), or exit 1
/// under CI=true, where a missing server is a failure. Call it from a namespace-scope initializer.
inline bool require_redis_server() {
    if (find_executable("redis-server") && find_executable("redis-cli")) return true;
    std::fprintf(stderr, "redis-server / redis-cli not found in PATH: %s\n",
                 in_ci() ? "FAILING (CI=true requires them)" : "skipping (exit 77)");
    std::exit(in_ci() ? 1 : 77);
}

/// What a child process printed and how it ended.
struct CommandResult {
    int exit_code = -1;  ///< the exit status, or -1 when it was killed (by a signal or the time limit)
    std::string output;  ///< stdout (and stderr when asked), without the trailing newline
};

/// Runs `argv` (found in PATH) with `input` on stdin. With `limit`, a child still running after it is
/// killed (exit_code -1), so a hung tool never hangs the test.
inline CommandResult run_command(const std::vector<std::string>& argv, std::string_view input = {},
                                 std::optional<std::chrono::milliseconds> limit = std::nullopt,
                                 bool with_stderr = false) {
    int in_pipe[2], out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        ::close(in_pipe[0]);
        ::close(in_pipe[1]);
        throw std::runtime_error("pipe failed");
    }
    std::vector<char*> cargv;  // built before fork: the child only execs
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::dup2(in_pipe[0], 0);
        ::dup2(out_pipe[1], 1);
        if (with_stderr) ::dup2(out_pipe[1], 2);
        ::close(in_pipe[0]);
        ::close(in_pipe[1]);
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        ::execvp(cargv[0], cargv.data());
        ::_exit(127);
    }
    ::close(in_pipe[0]);
    ::close(out_pipe[1]);
    std::size_t off = 0;
    while (off < input.size()) {
        auto n = ::write(in_pipe[1], input.data() + off, input.size() - off);
        if (n <= 0) break;
        off += static_cast<std::size_t>(n);
    }
    ::close(in_pipe[1]);
    const auto deadline = std::chrono::steady_clock::now() + limit.value_or(std::chrono::milliseconds(0));
    bool killed = false;
    std::string out;
    char buf[4096];
    for (;;) {
        if (limit) {
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            pollfd p{out_pipe[0], POLLIN, 0};
            const int ready = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count()) + 1) : 0;
            if (ready < 0 && errno == EINTR) continue;
            if (ready == 0) {  // time is up: the child's stdout stays open only while it runs
                ::kill(pid, SIGKILL);
                killed = true;
                break;
            }
        }
        auto n = ::read(out_pipe[0], buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(out_pipe[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return {killed || !WIFEXITED(status) ? -1 : WEXITSTATUS(status), std::move(out)};
}

/// TLS on a test server: its one port speaks TLS only (`port 0`, `tls-port` on the picked port).
struct RedisServerTls {
    std::string cert_file;            ///< the server's certificate (PEM)
    std::string key_file;             ///< its key
    std::string ca_cert_file;         ///< CAs that sign client certificates (tls-ca-cert-file, required by Redis)
    std::string auth_clients = "no";  ///< tls-auth-clients: "no", "yes" (mutual TLS) or "optional"
    std::string client_cert_file;     ///< for redis-cli (readiness check, cli()) when clients must show one
    std::string client_key_file;      ///< its key
    bool cluster = false;             ///< tls-cluster yes: the cluster bus over TLS too
    bool replication = false;         ///< tls-replication yes: a replica connects to its master over TLS
};

/// What kind of server to start.
struct RedisServerOptions {
    std::optional<std::string> acl_user{};      ///< with acl_password: an ACL user with every permission
    std::optional<std::string> acl_password{};  ///< the default user is then disabled
    std::optional<std::string> requirepass{};   ///< password of the default user (legacy AUTH <password>)
    std::vector<std::string> extra_config{};    ///< raw redis.conf lines
    bool cluster_bus = false;                   ///< pick a port <= 55535 whose +10000 twin is free too
    bool die_with_parent = true;                ///< the kernel kills the server when the starting thread exits
    std::optional<RedisServerTls> tls{};        ///< a TLS-only server; redis-cli talks to it with --tls
};

/// One redis-server process. Not copyable; the destructor kills it and removes its directory.
class RedisServer {
public:
    explicit RedisServer(RedisServerOptions options = {}) : options_(std::move(options)) {
        std::signal(SIGPIPE, SIG_IGN);
        char tmpl[] = "/tmp/hitbox-redis-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
        dir_ = tmpl;
        std::string last_error;
        for (int attempt = 0; attempt < 5; ++attempt) {
            port_ = pick_port();
            try {
                start();
                return;
            } catch (const std::exception& e) {  // most likely someone took the port in between
                last_error = e.what();
            }
        }
        std::filesystem::remove_all(dir_);
        throw std::runtime_error("cannot start redis-server: " + last_error);
    }

    RedisServer(const RedisServer&) = delete;
    RedisServer& operator=(const RedisServer&) = delete;

    ~RedisServer() {
        kill();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    std::uint16_t port() const noexcept { return port_; }
    /// `redis://127.0.0.1:PORT/` (no credentials), `rediss://` for a TLS server.
    std::string url() const {
        return (options_.tls ? "rediss://127.0.0.1:" : "redis://127.0.0.1:") + std::to_string(port_) + "/";
    }
    /// The server's unix socket.
    std::string unix_socket() const { return (dir_ / "redis.sock").string(); }
    const std::filesystem::path& dir() const noexcept { return dir_; }
    pid_t pid() const noexcept { return pid_; }
    bool running() const noexcept { return pid_ > 0; }

    /// Starts the server (again) on the same port and waits until it answers PING.
    void start() {
        if (pid_ > 0) return;
        write_config();
        const std::string conf = (dir_ / "redis.conf").string();  // built before fork: the child only execs
        pid_t pid = ::fork();
        if (pid < 0) throw std::runtime_error("fork failed");
        if (pid == 0) {
            if (options_.die_with_parent) ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            int devnull = ::open("/dev/null", O_RDWR);
            if (devnull >= 0) {
                ::dup2(devnull, 0);
                ::dup2(devnull, 1);
                ::dup2(devnull, 2);
            }
            ::execlp("redis-server", "redis-server", conf.c_str(), static_cast<char*>(nullptr));
            ::_exit(127);
        }
        pid_ = pid;
        paused_ = false;
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (std::chrono::steady_clock::now() < deadline) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = -1;
                throw std::runtime_error("redis-server exited at start: " + log_tail());
            }
            if (answers_ping()) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        kill();
        throw std::runtime_error("redis-server did not answer PING within 10 s: " + log_tail());
    }

    /// Graceful stop (SIGTERM, then SIGKILL after 5 s); start() brings it back on the same port.
    void stop() { terminate(SIGTERM); }
    /// Crash: SIGKILL.
    void kill() { terminate(SIGKILL); }
    /// SIGSTOP: the server keeps its sockets but answers nothing.
    void pause() {
        if (pid_ > 0 && !paused_) ::kill(pid_, SIGSTOP);
        paused_ = true;
    }
    /// SIGCONT.
    void resume() {
        if (pid_ > 0 && paused_) ::kill(pid_, SIGCONT);
        paused_ = false;
    }

    /// Runs `redis-cli -h 127.0.0.1 -p PORT [auth] args...` with `input` on stdin; returns its stdout
    /// without the trailing newline. `-x` as first arg reads the last argument from stdin.
    std::string cli(const std::vector<std::string>& args, std::string_view input = {}) const {
        std::vector<std::string> argv = cli_base();
        if (options_.acl_user && options_.acl_password) {
            argv.insert(argv.end(),
                        {"--user", *options_.acl_user, "--pass", *options_.acl_password, "--no-auth-warning"});
        } else if (options_.requirepass) {
            argv.insert(argv.end(), {"-a", *options_.requirepass, "--no-auth-warning"});
        }
        argv.insert(argv.end(), args.begin(), args.end());
        return run_capture(argv, input);
    }

    /// The last lines of the server's log (for failure messages).
    std::string log_tail() const {
        std::ifstream in(dir_ / "redis.log");
        std::string line, out;
        std::vector<std::string> lines;
        while (std::getline(in, line)) lines.push_back(line);
        for (std::size_t i = lines.size() > 10 ? lines.size() - 10 : 0; i < lines.size(); ++i) out += lines[i] + "\n";
        return out;
    }

private:
    /// `redis-cli -h 127.0.0.1 -p PORT`, with `--tls` for a TLS server. The certificate is not checked
    /// (--insecure): a test server may carry an expired or misnamed one on purpose.
    std::vector<std::string> cli_base() const {
        std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port_)};
        if (options_.tls) {
            argv.insert(argv.end(), {"--tls", "--insecure"});
            if (!options_.tls->ca_cert_file.empty()) argv.insert(argv.end(), {"--cacert", options_.tls->ca_cert_file});
            if (!options_.tls->client_cert_file.empty())
                argv.insert(argv.end(),
                            {"--cert", options_.tls->client_cert_file, "--key", options_.tls->client_key_file});
        }
        return argv;
    }

    static bool port_free(std::uint16_t port) {
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return false;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
        ::close(fd);
        return ok;
    }

    std::uint16_t pick_port() const {
        for (int i = 0; i < 200; ++i) {
            int fd = ::socket(AF_INET, SOCK_STREAM, 0);
            if (fd < 0) throw std::runtime_error("socket failed");
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            a.sin_port = 0;
            socklen_t len = sizeof a;
            if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
                ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
                ::close(fd);
                throw std::runtime_error("cannot bind a loopback port");
            }
            ::close(fd);
            auto port = ntohs(a.sin_port);
            if (!options_.cluster_bus) return port;
            if (port <= 55535 && port_free(static_cast<std::uint16_t>(port + 10000))) return port;
        }
        throw std::runtime_error("no free port pair found");
    }

    void write_config() const {
        std::ofstream conf(dir_ / "redis.conf");
        if (options_.tls) {
            const auto& t = *options_.tls;
            conf << "port 0\n"
                 << "tls-port " << port_ << "\n"
                 << "tls-cert-file " << t.cert_file << "\n"
                 << "tls-key-file " << t.key_file << "\n"
                 << "tls-ca-cert-file " << t.ca_cert_file << "\n"
                 << "tls-auth-clients " << t.auth_clients << "\n";
            if (t.cluster) conf << "tls-cluster yes\n";
            if (t.replication) conf << "tls-replication yes\n";
            // The cluster bus and replication always ask the connecting node for a certificate: a node shows
            // this client certificate (a server certificate made for serverAuth only would be refused).
            if ((t.cluster || t.replication) && !t.client_cert_file.empty())
                conf << "tls-client-cert-file " << t.client_cert_file << "\n"
                     << "tls-client-key-file " << t.client_key_file << "\n";
        } else {
            conf << "port " << port_ << "\n";
        }
        conf << "bind 127.0.0.1\n"
             << "protected-mode no\n"
             << "dir " << dir_.string() << "\n"
             << "save \"\"\n"
             << "appendonly no\n"
             << "daemonize no\n"
             << "logfile " << (dir_ / "redis.log").string() << "\n"
             << "unixsocket " << unix_socket() << "\n"
             << "unixsocketperm 700\n";
        if (options_.acl_user && options_.acl_password) {
            conf << "user default off\n"
                 << "user " << *options_.acl_user << " on >" << *options_.acl_password << " ~* &* +@all\n";
        }
        if (options_.requirepass) conf << "requirepass " << *options_.requirepass << "\n";
        for (const auto& line : options_.extra_config) conf << line << "\n";
    }

    bool answers_ping() const {
        if (options_.tls) {  // redis-cli speaks TLS; bounded, so a server stuck in a handshake is retried
            auto argv = cli_base();
            argv.push_back("PING");
            const auto r = run_command(argv, {}, std::chrono::milliseconds(2000), true);  // quiet while it starts
            return r.output == "PONG" || r.output.rfind("NOAUTH", 0) == 0;
        }
        int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return false;
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port_);
        bool ok = false;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
            const char ping[] = "PING\r\n";
            if (::send(fd, ping, sizeof ping - 1, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof ping - 1)) {
                pollfd p{fd, POLLIN, 0};
                char c = 0;
                // Any reply (+PONG, or -NOAUTH on a protected server) means it is serving.
                ok = ::poll(&p, 1, 500) == 1 && ::recv(fd, &c, 1, 0) == 1 && (c == '+' || c == '-');
            }
        }
        ::close(fd);
        return ok;
    }

    void terminate(int sig) {
        if (pid_ <= 0) return;
        if (paused_) ::kill(pid_, SIGCONT);
        paused_ = false;
        ::kill(pid_, sig);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        int status = 0;
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        pid_ = -1;
    }

    static std::string run_capture(const std::vector<std::string>& argv, std::string_view input) {
        return run_command(argv, input).output;
    }

    RedisServerOptions options_;
    std::filesystem::path dir_;
    std::uint16_t port_ = 0;
    pid_t pid_ = -1;
    bool paused_ = false;
};

}  // namespace hitbox_test
