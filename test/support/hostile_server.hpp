#pragma once
// Test support: a misbehaving RESP server on a free 127.0.0.1 port, scripted by the test. Each accepted
// connection runs the test's handler on a thread of its own; the handler reads commands and answers with
// whatever bytes the test wants (huge or endless arrays, trickled or frozen replies, error texts that echo
// secrets, bogus CLUSTER SLOTS, MOVED storms). A protocol peer for the hostile suite, not a stand-in for
// Redis behaviour: everything Redis itself does is tested against real redis-server processes.
//
// `peak_rss_growth_kb` runs a scenario in a forked child and reports how far its resident set grew, so
// memory bounds are measured without polluting the test process.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <csignal>

#include "sanitizers.hpp"

namespace hitbox_test {

/// RESP encoders for handlers.
inline std::string resp_simple(std::string_view s) { return "+" + std::string(s) + "\r\n"; }
inline std::string resp_error(std::string_view s) { return "-" + std::string(s) + "\r\n"; }
inline std::string resp_int(long long v) { return ":" + std::to_string(v) + "\r\n"; }
inline std::string resp_bulk(std::string_view s) {
    return "$" + std::to_string(s.size()) + "\r\n" + std::string(s) + "\r\n";
}
inline std::string resp_nil() { return "$-1\r\n"; }
inline std::string resp_array_header(long long n) { return "*" + std::to_string(n) + "\r\n"; }

/// One accepted connection, as the handler sees it.
class HostileConn {
public:
    HostileConn(int fd, const std::atomic<bool>& stop) : fd_(fd), stop_(&stop) {}

    /// The next command (a RESP array of bulk strings, or an inline command), or nullopt once the peer
    /// closed, the server stops, or `timeout` passed without a whole command.
    std::optional<std::vector<std::string>> read_command(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            if (auto cmd = parse()) return cmd;
            if (!fill(deadline)) return std::nullopt;
        }
    }

    /// Sends all of `bytes` (false once the peer is gone or the server stops).
    bool send(std::string_view bytes) {
        std::size_t off = 0;
        while (off < bytes.size()) {
            if (stopping()) return false;
            pollfd p{fd_, POLLOUT, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            const auto n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
            if (n <= 0) return false;
            off += static_cast<std::size_t>(n);
        }
        sent_ += bytes.size();
        return true;
    }

    /// Sleeps up to `d`, returning early (false) when the server stops.
    bool pause(std::chrono::milliseconds d) const {
        const auto until = std::chrono::steady_clock::now() + d;
        while (std::chrono::steady_clock::now() < until) {
            if (stopping()) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        return !stopping();
    }

    /// Holds the connection open, answering nothing, until the peer closes it or the server stops.
    void hold() {
        char buf[4096];
        while (!stopping()) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 20) == 1 && ::recv(fd_, buf, sizeof buf, 0) <= 0) return;
        }
    }

    bool stopping() const noexcept { return stop_->load(); }
    std::size_t bytes_sent() const noexcept { return sent_; }

private:
    bool fill(std::chrono::steady_clock::time_point deadline) {
        char buf[16 * 1024];
        while (!stopping()) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 20) != 1) continue;
            const auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) return false;
            in_.append(buf, static_cast<std::size_t>(n));
            return true;
        }
        return false;
    }

    // One whole command from in_, consumed; nullopt if it is not all there yet.
    std::optional<std::vector<std::string>> parse() {
        if (in_.empty()) return std::nullopt;
        std::size_t pos = 0;
        auto line = [&]() -> std::optional<std::string> {
            const auto eol = in_.find("\r\n", pos);
            if (eol == std::string::npos) return std::nullopt;
            std::string l = in_.substr(pos, eol - pos);
            pos = eol + 2;
            return l;
        };
        std::vector<std::string> args;
        if (in_[0] != '*') {  // inline command
            auto l = line();
            if (!l) return std::nullopt;
            std::size_t start = 0;
            while (start < l->size()) {
                auto sp = l->find(' ', start);
                if (sp == std::string::npos) sp = l->size();
                if (sp > start) args.push_back(l->substr(start, sp - start));
                start = sp + 1;
            }
        } else {
            auto head = line();
            if (!head) return std::nullopt;
            const long n = std::stol(head->substr(1));
            for (long i = 0; i < n; ++i) {
                auto len = line();
                if (!len) return std::nullopt;
                const auto size = static_cast<std::size_t>(std::stoul(len->substr(1)));
                if (in_.size() < pos + size + 2) return std::nullopt;
                args.push_back(in_.substr(pos, size));
                pos += size + 2;
            }
        }
        in_.erase(0, pos);
        return args;
    }

    int fd_;
    const std::atomic<bool>* stop_;
    std::string in_;
    std::size_t sent_ = 0;
};

/// Upper-cased first argument of a command ("" for none).
inline std::string command_name(const std::vector<std::string>& cmd) {
    std::string name = cmd.empty() ? std::string() : cmd[0];
    for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return name;
}

/// A tiny well-behaved store for handlers that misbehave only on some commands: answers AUTH, SELECT,
/// PING, GET, SET (with PX), DEL and EXISTS; anything else gets an error reply.
class TinyStore {
public:
    std::string answer(const std::vector<std::string>& cmd) {
        const auto name = command_name(cmd);
        std::lock_guard<std::mutex> lk(mu_);
        if (name == "AUTH" || name == "SELECT") return resp_simple("OK");
        if (name == "PING") return resp_simple("PONG");
        if (name == "GET" && cmd.size() == 2) {
            auto it = data_.find(cmd[1]);
            return it == data_.end() ? resp_nil() : resp_bulk(it->second);
        }
        if (name == "SET" && cmd.size() >= 3) {
            data_[cmd[1]] = cmd[2];
            return resp_simple("OK");
        }
        if ((name == "DEL" || name == "UNLINK" || name == "EXISTS") && cmd.size() >= 2) {
            long long n = 0;
            for (std::size_t i = 1; i < cmd.size(); ++i) {
                auto it = data_.find(cmd[i]);
                if (it == data_.end()) continue;
                ++n;
                if (name != "EXISTS") data_.erase(it);
            }
            return resp_int(n);
        }
        return resp_error("ERR unknown command '" + name + "'");
    }

private:
    std::mutex mu_;
    std::map<std::string, std::string> data_;
};

/// The server: listens on 127.0.0.1 (a free port), runs `handler` for every accepted connection on its
/// own thread (at most `max_connections` at once; more are closed at once). The destructor stops every
/// handler (their reads and sends return) and joins the threads.
class HostileServer {
public:
    using Handler = std::function<void(HostileConn&)>;

    explicit HostileServer(Handler handler, int max_connections = 64)
        : handler_(std::move(handler)), max_connections_(max_connections) {
        std::signal(SIGPIPE, SIG_IGN);
        listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        if (listen_fd_ < 0) throw std::runtime_error("socket failed");
        int one = 1;
        ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_fd_, 64) != 0 ||
            ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            ::close(listen_fd_);
            throw std::runtime_error("bind/listen failed");
        }
        port_ = ntohs(a.sin_port);
        acceptor_ = std::thread([this] { accept_loop(); });
    }

    HostileServer(const HostileServer&) = delete;
    HostileServer& operator=(const HostileServer&) = delete;

    ~HostileServer() { stop(); }

    /// Stops accepting, ends every handler and closes every connection.
    void stop() {
        if (stop_.exchange(true)) return;
        acceptor_.join();
        std::vector<std::thread> ts;
        {
            std::lock_guard<std::mutex> lk(mu_);
            ts.swap(threads_);
        }
        for (auto& t : ts) t.join();
        ::close(listen_fd_);
    }

    std::uint16_t port() const noexcept { return port_; }
    std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    std::string url() const { return "redis://" + address() + "/"; }
    /// Connections accepted so far.
    int accepted() const noexcept { return accepted_.load(); }

private:
    void accept_loop() {
        while (!stop_) {
            pollfd p{listen_fd_, POLLIN, 0};
            if (::poll(&p, 1, 20) != 1) continue;
            const int fd = ::accept(listen_fd_, nullptr, nullptr);
            if (fd < 0) continue;
            if (live_.load() >= max_connections_) {
                ::close(fd);
                continue;
            }
            ++accepted_;
            ++live_;
            std::lock_guard<std::mutex> lk(mu_);
            threads_.emplace_back([this, fd] {
                HostileConn conn(fd, stop_);
                try {
                    handler_(conn);
                } catch (...) {  // a handler's parse failure ends its connection, nothing else
                }
                ::close(fd);
                --live_;
            });
        }
    }

    Handler handler_;
    int max_connections_;
    int listen_fd_ = -1;
    std::uint16_t port_ = 0;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::atomic<int> live_{0};
    std::mutex mu_;
    std::vector<std::thread> threads_;
    std::thread acceptor_;
};

/// A handler that answers every command as TinyStore does, except that `misbehave` may take over a
/// command: it returns true when it has answered (or decided to answer nothing) itself.
inline HostileServer::Handler store_except(
    std::shared_ptr<TinyStore> store, std::function<bool(HostileConn&, const std::vector<std::string>&)> misbehave) {
    return [store = std::move(store), misbehave = std::move(misbehave)](HostileConn& c) {
        while (auto cmd = c.read_command()) {
            if (misbehave(c, *cmd)) continue;
            if (!c.send(store->answer(*cmd))) return;
        }
    };
}

/// A field of /proc/self/status in kB ("VmRSS", "VmHWM"), or -1.
inline long proc_status_kb(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    const std::string prefix = std::string(field) + ":";
    while (std::getline(in, line))
        if (line.compare(0, prefix.size(), prefix) == 0) return std::stol(line.substr(prefix.size()));
    return -1;
}

/// Result of a scenario run in a child process.
struct ChildRun {
    int exit_code = -1;       ///< the scenario's return value (or 128 + signal when it died of one)
    long rss_growth_kb = -1;  ///< peak resident set during the scenario minus the resident set before it
};

/// Runs `scenario` in a forked child (its return value is the child's exit code) and measures how far
/// the child's peak resident set grew over its resident set at the start (the peak is reset first through
/// /proc/self/clear_refs). Only this thread exists in the child: the scenario starts whatever it needs,
/// servers included (fork a process with no other thread running: another thread may hold a lock, of
/// malloc or a sanitizer, that the child would wait for forever). A child still running after `limit` is
/// killed (exit code -1).
/// Under ThreadSanitizer, which does not support threads started in the child of a threaded process, the
/// scenario runs in this process and no growth is measured.
inline ChildRun run_in_child(const std::function<int()>& scenario,
                             std::chrono::milliseconds limit = std::chrono::seconds(60)) {
#if HITBOX_TEST_TSAN
    return ChildRun{scenario(), -1};
#endif
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        ::close(fds[0]);
        {
            std::ofstream clear("/proc/self/clear_refs");
            clear << "5";
        }
        const long before = proc_status_kb("VmRSS");
        int code = 99;
        try {
            code = scenario();
        } catch (...) {
            code = 98;
        }
        const long growth = proc_status_kb("VmHWM") - before;
        [[maybe_unused]] auto n = ::write(fds[1], &growth, sizeof growth);
        ::_exit(code);
    }
    ::close(fds[1]);
    ChildRun out;
    long growth = -1;
    pollfd p{fds[0], POLLIN, 0};
    const bool answered = ::poll(&p, 1, static_cast<int>(limit.count())) == 1;
    if (answered && ::read(fds[0], &growth, sizeof growth) == static_cast<ssize_t>(sizeof growth))
        out.rss_growth_kb = growth;
    ::close(fds[0]);
    if (!answered) ::kill(pid, SIGKILL);  // hung: never wait for it
    int status = 0;
    ::waitpid(pid, &status, 0);
    out.exit_code = !answered ? -1 : WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return out;
}

}  // namespace hitbox_test
