// BM_NaiveMuxGet: the multiplexer a user could write in an afternoon, as a baseline for RedisBackend's
// shared connection (issue 16): one I/O thread that swaps the request queue, writes the whole batch with
// blocking sends, reads the replies with hiredis's reader and wakes each caller with an atomic
// wait/notify. No timeouts, no reconnects, no decoding, no limits: what hitbox's connection must beat while
// doing all of those. Same server, keys and 100-byte values as bench_redis.cpp (its setup_env).
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

#include <hiredis/hiredis.h>

#include <hitbox/backend/redis.hpp>
#include <hitbox/backend/redis/detail/node_connection.hpp>
#include <hitbox/backend/redis/detail/socket.hpp>

#include "bench_redis_env.hpp"

namespace {

class NaiveMux {
public:
    struct Slot {
        std::atomic<int> done{0};
        redisReply* reply = nullptr;
    };

    explicit NaiveMux(int fd) : fd_(fd), reader_(redisReaderCreate()), io_([this] { run(); }) {}
    ~NaiveMux() {
        stop_ = true;
        pending_.fetch_add(1);
        pending_.notify_one();
        io_.join();
        redisReaderFree(reader_);
        ::close(fd_);
    }

    /// Sends `command` (RESP) and waits for its reply (the caller frees it).
    redisReply* call(const std::string& command) {
        Slot slot;
        {
            std::lock_guard<std::mutex> lk(mu_);
            out_ += command;
            slots_.push_back(&slot);
        }
        pending_.fetch_add(1, std::memory_order_release);
        pending_.notify_one();
        slot.done.wait(0, std::memory_order_acquire);
        return slot.reply;
    }

private:
    void run() {
        std::string buf;
        std::vector<Slot*> batch;
        char rbuf[64 * 1024];
        while (!stop_) {
            const auto seen = pending_.load(std::memory_order_acquire);
            {
                std::lock_guard<std::mutex> lk(mu_);
                buf.swap(out_);
                batch.swap(slots_);
            }
            if (batch.empty()) {
                pending_.wait(seen, std::memory_order_acquire);
                continue;
            }
            for (std::size_t off = 0; off < buf.size();) {
                const auto n = ::send(fd_, buf.data() + off, buf.size() - off, MSG_NOSIGNAL);
                if (n <= 0) return;
                off += static_cast<std::size_t>(n);
            }
            buf.clear();
            for (std::size_t next = 0; next < batch.size();) {
                void* r = nullptr;
                if (redisReaderGetReply(reader_, &r) != REDIS_OK) return;
                if (r == nullptr) {
                    const auto n = ::recv(fd_, rbuf, sizeof rbuf, 0);
                    if (n <= 0) return;
                    redisReaderFeed(reader_, rbuf, static_cast<std::size_t>(n));
                    continue;
                }
                Slot* s = batch[next++];
                s->reply = static_cast<redisReply*>(r);
                s->done.store(1, std::memory_order_release);
                s->done.notify_one();
            }
            batch.clear();
        }
    }

    int fd_;
    redisReader* reader_;
    std::mutex mu_;
    std::string out_;
    std::vector<Slot*> slots_;
    std::atomic<std::uint32_t> pending_{0};
    std::atomic<bool> stop_{false};
    std::thread io_;
};

/// `GET key` framed as RESP for each stored key of the shared benchmark environment.
std::vector<std::string> framed_gets() {
    std::vector<std::string> commands;
    for (const auto& k : bench_redis::env().stored_keys) {
        std::string c;
        hitbox::detail::append_command(c, {"GET", k});
        commands.push_back(std::move(c));
    }
    return commands;
}

NaiveMux* naive_mux() {
    static std::unique_ptr<NaiveMux> mux = [] {
        auto fd = hitbox::detail::connect_socket(bench_redis::env().endpoint, std::chrono::seconds(2));
        if (!fd) return std::unique_ptr<NaiveMux>{};
        // Blocking from here on: the naive design has nothing else to do while it waits.
        ::fcntl(*fd, F_SETFL, ::fcntl(*fd, F_GETFL) & ~O_NONBLOCK);
        return std::make_unique<NaiveMux>(*fd);
    }();
    return mux.get();
}

void BM_NaiveMuxGet(benchmark::State& state) {
    if (!bench_redis::ready(state)) return;
    NaiveMux* mux = naive_mux();
    if (mux == nullptr) {
        state.SkipWithError("connect failed");
        return;
    }
    const std::vector<std::string> commands = framed_gets();
    int i = state.thread_index() * 31;
    for (auto _ : state) {
        redisReply* r = mux->call(commands[static_cast<std::size_t>(i++ % bench_redis::key_count)]);
        if (r == nullptr || r->type != REDIS_REPLY_STRING) {
            if (r) freeReplyObject(r);
            state.SkipWithError("naive GET failed");
            break;
        }
        benchmark::DoNotOptimize(r->str);
        freeReplyObject(r);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NaiveMuxGet)->Setup(bench_redis::setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();

}  // namespace

// BM_RawConnGet: hitbox's shared connection alone (detail::NodeConnection::execute with the same framed GET
// commands, no key encoding, envelope or value decoding), so that BM_RedisGet against BM_NaiveMuxGet can be
// split into what the connection costs and what the backend's layers above it cost.
namespace {
hitbox::detail::NodeConnection* raw_conn() {
    static std::unique_ptr<hitbox::detail::NodeConnection> c = [] {
        auto s = hitbox::detail::make_node_settings(bench_redis::env().endpoint, hitbox::ConnectionOptions{});
        if (!s) return std::unique_ptr<hitbox::detail::NodeConnection>{};
        return std::make_unique<hitbox::detail::NodeConnection>(std::move(*s));
    }();
    return c.get();
}
void BM_RawConnGet(benchmark::State& state) {
    if (!bench_redis::ready(state)) return;
    auto* c = raw_conn();
    if (c == nullptr) {
        state.SkipWithError("bad endpoint");
        return;
    }
    const std::vector<std::string> commands = framed_gets();
    int i = state.thread_index() * 31;
    for (auto _ : state) {
        auto r = c->execute(commands[static_cast<std::size_t>(i++ % bench_redis::key_count)], 1);
        if (!r) {
            state.SkipWithError("raw GET failed");
            break;
        }
        benchmark::DoNotOptimize(r->front()->str);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RawConnGet)->Setup(bench_redis::setup_env)->Threads(1)->Threads(8)->Threads(32)->UseRealTime();
}  // namespace
