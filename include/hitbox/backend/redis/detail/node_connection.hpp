#pragma once
/// \file
/// detail::NodeConnection: the one multiplexed connection to one Redis node, shared by every thread.
///
/// Callers frame commands as RESP (detail::append_command) and hand them to `execute`, which appends them
/// to a shared output buffer and records the caller's reply slot in a FIFO, both under one lock, so the
/// order of slots is the order of bytes on the wire. Replies are parsed with hiredis's reader and the
/// i-th reply goes to the i-th slot.
///
/// - Idle connection: the caller writes its commands and reads the replies itself (the "leader"), like a
///   blocking client: no thread hand-off. Whatever others queue meanwhile, it sends and delivers too.
/// - Busy connection: the caller sends its commands behind those in flight, unless another thread is
///   sending; that thread's loop then sends them with everything else queued meanwhile in one `send`
///   (automatic pipelining: commands never wait for earlier replies, writes coalesce under concurrency).
///   Before it sends, it yields the CPU once (holding the write claim), so callers ready to run queue
///   their commands first and one `send` carries them all. A waiting caller first spins: it yields the
///   CPU a few times, and between yields reads the socket without blocking if nobody has done so for a
///   few microseconds (the I/O thread leaves the socket to spinning callers; it never has to be woken).
///   A caller still waiting after the spin becomes the leader if nobody is reading; otherwise the reader
///   (a leader, a spinning caller, or the I/O thread when no caller reads) delivers replies in order and
///   wakes the callers.
///
/// Callers wait on their own slot with a deadline; a caller that gives up leaves its slot in the FIFO, so
/// a late reply lands there and is discarded: no reply is ever delivered to another caller. Sleeping
/// callers share one futex word (WakeBoard), so the reader wakes all the callers a read answered with one
/// system call.
///
/// The connection is lazy: the first command starts connecting (AUTH and SELECT go first; user commands
/// are held back until they succeed). When the socket drops, every command in flight fails with a
/// connection error and the next command reconnects. A failed connect fails the waiting commands and
/// arms an exponential backoff (with jitter) during which new commands fail at once instead of hammering a
/// dead server. If the server stops answering for twice the command timeout while commands are in flight
/// (a paused or wedged server), the connection is reset.
///
/// The parts it is built from, each in its own header: the transport (plain or TLS byte stream), the reply
/// pipe (bytes in, replies out in FIFO order, under the reply budget), the platform layer (lock, sleeping,
/// polling) and the tuning of the waiting strategy. This file is the link (connect, handshake, backoff,
/// stall reset) and the multiplexer (the claims). doc/internals/connection.md has the table of who may
/// touch what.
///
/// Non-generic code: the Cluster policy reuses one NodeConnection per node.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <deque>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <hitbox/backend/redis/connection_mode.hpp>
#include <hitbox/backend/redis/detail/deadline.hpp>
#include <hitbox/backend/redis/detail/drive_selector.hpp>
#include <hitbox/backend/redis/detail/node_settings.hpp>
#include <hitbox/backend/redis/detail/platform.hpp>
#include <hitbox/backend/redis/detail/reply_pipe.hpp>
#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/backend/redis/detail/socket.hpp>
#include <hitbox/backend/redis/detail/transport.hpp>
#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// Checks `options` and merges its credentials over the URL's (each one set in the options wins).
inline Result<NodeSettings> make_node_settings(RedisEndpoint endpoint, const ConnectionOptions& options) {
    if (options.username) endpoint.username = options.username;
    if (options.password) endpoint.password = options.password;
    if (endpoint.username && !endpoint.password)
        return fail(ErrorKind::config, "a user name is set without a password (Redis ACL AUTH needs both)");
    auto positive = [](std::chrono::milliseconds d) { return d.count() > 0; };
    if (!positive(options.connect_timeout)) return fail(ErrorKind::config, "connect_timeout must be positive");
    if (!positive(options.command_timeout)) return fail(ErrorKind::config, "command_timeout must be positive");
    if (!positive(options.reconnect_backoff_initial) ||
        options.reconnect_backoff_max < options.reconnect_backoff_initial)
        return fail(ErrorKind::config, "reconnect backoff: need 0 < initial <= max");
    if (options.max_reply_bytes == 0) return fail(ErrorKind::config, "max_reply_bytes must be positive");
    const auto& t = options.tuning;
    if (t.spin_yields < 0 || t.lock_spins < 0 || t.max_write_rounds < 1 || t.pump_gap.count() < 0)
        return fail(ErrorKind::config,
                    "tuning: need spin_yields >= 0, lock_spins >= 0, max_write_rounds >= 1, "
                    "pump_gap >= 0");
    auto tls = tls_context_for(endpoint, options);
    if (!tls) return fail(tls.error());
    return NodeSettings{std::move(endpoint),
                        options.connect_timeout,
                        options.command_timeout,
                        options.reconnect_backoff_initial,
                        options.reconnect_backoff_max,
                        options.max_reply_bytes,
                        std::move(*tls),
                        options.tuning,
                        nullptr,
                        DriveSelectorConfig{}};
}

/// One multiplexed, automatically pipelined connection to one Redis node (see the file comment).
class NodeConnection {
public:
    explicit NodeConnection(NodeSettings settings)
        : born_(watch_forks()),
          settings_(std::move(settings)),
          address_(settings_.endpoint.address()),
          mu_(settings_.tuning.spin ? settings_.tuning.lock_spins : 0),
          pipe_(settings_.endpoint.password.value_or(""), settings_.endpoint.username.value_or("")),
          selector_(settings_.tuning.drive, settings_.drive_timing),
          io_drives_(selector_.io_thread()) {
        const auto& ep = settings_.endpoint;
        if (ep.password) {
            if (ep.username)
                append_command(handshake_, {"AUTH", *ep.username, *ep.password});
            else
                append_command(handshake_, {"AUTH", *ep.password});
            handshake_steps_.push_back(Step::auth);
        }
        if (ep.db != 0) {
            const std::string db = std::to_string(ep.db);
            append_command(handshake_, {"SELECT", db});
            handshake_steps_.push_back(Step::select);
        }
        handshake_next_ = handshake_steps_.size();
        rng_ = static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(this)) | 1u;
    }

    NodeConnection(const NodeConnection&) = delete;
    NodeConnection& operator=(const NodeConnection&) = delete;

    /// True in a child of fork() of the process that built this connection.
    bool forked_away() const noexcept { return fork_generation().load(std::memory_order_relaxed) != born_; }

    /// Deletes `c`, except in a child of fork(): there its threads' waits and locks may be mid-use in the
    /// memory copied from the parent (a condition variable a parent thread waited on cannot be destroyed,
    /// glibc waits for that waiter), so it is left as it is, its descriptors to the process's exit.
    static void dispose(NodeConnection* c) noexcept {
        if (c == nullptr) return;
        if (c->forked_away()) {
            c->abandon();
            return;
        }
        delete c;
    }

    ~NodeConnection() {
        if (forked_away()) {
            // The parent's I/O thread does not exist here, and what its threads held at the fork may stay
            // held: touch nothing of theirs (dispose() does not even run this destructor in a child).
            abandon();
            return;
        }
        {
            std::lock_guard<SpinMutex> lk(mu_);
            stopping_ = true;
        }
        if (io_.joinable()) {
            wake_io();
            io_.join();
        }
    }

    /// Sends `count` RESP-formatted commands (concatenated in `commands`) as one unit and waits for their
    /// replies, in order. Error replies are returned as replies; the Result fails only when the
    /// connection does (connection, auth, protocol), on timeout, or after shutdown.
    Result<std::vector<ReplyPtr>> execute(std::string_view commands, std::size_t count) {
        if (count == 0) return std::vector<ReplyPtr>{};
        auto pending = submit_impl(commands, count, true);
        if (!pending) return fail(pending.error());
        auto replies = wait(*pending);
        if (replies || !pending->after_idle || !closed_by_server(replies.error())) return replies;
        // Sent on an idle connection that the server had closed (its idle timeout, CLIENT KILL), before the
        // I/O thread handled the close: the end of file came instead of any reply, so the commands went to
        // a dead connection. Once more on the next one, within the first attempt's deadline. hitbox's
        // commands are safe to repeat (GET, SET, DEL; a lock's SET NX answers "held" if the first took it,
        // and that lock expires by itself).
        const auto deadline = pending->deadline;
        auto again = submit_impl(commands, count, true);
        if (!again) return fail(again.error());
        return wait(*again, deadline);
    }

    /// Commands handed to the connection by `submit`, whose replies `wait` collects.
    struct Pending {
        std::shared_ptr<ReplyBatch> batch;
        std::chrono::steady_clock::time_point deadline;  ///< command timeout (+ connect timeout when it had to connect)
        std::chrono::milliseconds budget;                ///< the time that deadline allows, for the timeout message
        int lead_fd = -1;                                ///< execute only: the caller already holds the read claim
        bool after_idle = false;  ///< queued on a ready connection idle for more than idle_probe_after
    };

    /// The first half of `execute` (count > 0): queues the commands without waiting, so a caller can
    /// have commands in flight on several nodes at once (the Cluster policy's get_many).
    Result<Pending> submit(std::string_view commands, std::size_t count) { return submit_impl(commands, count, false); }

    /// The second half of `execute`: the replies of `pending`, waiting until its deadline (or the earlier
    /// `cap`, for a caller with an overall budget). A caller whose replies are not there after a short
    /// spin reads the socket itself when nobody else does (see the file comment).
    Result<std::vector<ReplyPtr>> wait(Pending& pending,
                                       std::optional<std::chrono::steady_clock::time_point> cap = std::nullopt) {
        const auto deadline = cap ? std::min(*cap, pending.deadline) : pending.deadline;
        int lead_fd = std::exchange(pending.lead_fd, -1);
        if (lead_fd < 0) spin(*pending.batch);
        if (lead_fd < 0 && !pending.batch->done() && !io_drives_.load(std::memory_order_relaxed)) {
            // Still waiting: read the socket itself when nobody else does (no hand-off from the I/O thread).
            std::lock_guard<SpinMutex> lk(mu_);
            if (can_lead_locked()) lead_fd = claim_read_locked();
        }
        if (lead_fd >= 0) lead(*pending.batch, lead_fd, deadline);
        if (auto r = pending.batch->wait(deadline)) return std::move(*r);
        counters_.timeouts.fetch_add(1, std::memory_order_relaxed);
        auto waited = pending.budget;
        if (deadline < pending.deadline)
            waited -= std::chrono::ceil<std::chrono::milliseconds>(pending.deadline - deadline);
        return fail(ErrorKind::timeout,
                    "no reply from " + address_ + " within " + std::to_string(waited.count()) + " ms");
    }

    /// Closes the socket and stops the I/O thread if no command is queued or in flight; true if the
    /// connection is closed now (also when nothing was running), false while commands are in flight.
    /// The next command connects again (and starts a new I/O thread). For a connection that has done
    /// its job, such as a cluster seed whose address the topology does not list. A command submitted by
    /// another thread meanwhile waits for the close (an idle I/O thread stops at once) and reconnects.
    bool close_if_idle() {
        if (forked_away()) return true;  // nothing of the parent's is closed from a child
        {
            std::lock_guard<SpinMutex> lk(mu_);
            if (stopping_ || !pipe_.empty()) return false;
            if (!io_.joinable()) return true;  // nothing runs: closed already
            if (io_idle_exit_) {               // already stopped by itself
                release_io_locked();
                return true;
            }
            stopping_ = true;
            idle_close_ = true;
        }
        wake_io();
        io_.join();
        {
            std::lock_guard<SpinMutex> lk(mu_);
            release_io_locked();
            stopping_ = false;
            idle_close_ = false;
        }
        idle_closed_.notify_all();
        return true;
    }

    /// A snapshot of the counters.
    ConnectionCounters counters() const noexcept {
        ConnectionCounters c;
        c.connect_attempts = counters_.connect_attempts.load(std::memory_order_relaxed);
        c.connects = counters_.connects.load(std::memory_order_relaxed);
        c.drops = counters_.drops.load(std::memory_order_relaxed);
        c.timeouts = counters_.timeouts.load(std::memory_order_relaxed);
        c.commands = counters_.commands.load(std::memory_order_relaxed);
        c.writes = counters_.writes.load(std::memory_order_relaxed);
        c.io_thread_rounds = counters_.io_thread_rounds.load(std::memory_order_relaxed);
        c.drive_switches = counters_.drive_switches.load(std::memory_order_relaxed);
        return c;
    }

    /// "host:port" or "unix:/path"; never credentials.
    const std::string& address() const noexcept { return address_; }
    const NodeSettings& settings() const noexcept { return settings_; }

private:
    using SteadyClock = std::chrono::steady_clock;
    /// The link's life (doc/internals/connection.md). down: no socket, may connect now; backoff: no socket,
    /// commands fail at once until next_attempt_; connecting: the I/O thread opens the transport;
    /// handshaking: AUTH / SELECT sent, their replies awaited; ready: commands flow; closing:
    /// lose_connection waits for every claim to be released before it closes the transport.
    enum class State : std::uint8_t { down, backoff, connecting, handshaking, ready, closing };
    enum class Step : std::uint8_t { auth, select };
    // Who reads the socket: the I/O thread, a leading caller (blocks in poll; the socket is out of the I/O
    // thread's set), or a spinning caller's one non-blocking read.
    enum class Claim : std::uint8_t { none, io, caller, pump };

    /// Why the connection has to go, and whether the next attempt waits (failed connect or handshake).
    struct Failure {
        Error error;
        bool backoff = false;
    };

    static constexpr std::size_t read_chunk = 64 * 1024;
    static constexpr auto flapping_window = std::chrono::seconds(1);
    /// A command on a connection idle for longer than this, whose socket nobody watched meanwhile, first
    /// checks that the server has not closed it (one non-blocking peek).
    static constexpr auto idle_probe_after = std::chrono::milliseconds(1);

    struct AtomicCounters {
        std::atomic<std::uint64_t> connect_attempts{0}, connects{0}, drops{0}, timeouts{0}, commands{0}, writes{0},
            io_thread_rounds{0}, drive_switches{0};
    };

    /// `submit`; with `lead_now` (execute) the caller of an idle connection claims the read before its
    /// commands go out, so no other thread can pick its replies up first.
    Result<Pending> submit_impl(std::string_view commands, std::size_t count, bool lead_now) {
        if (forked_away()) [[unlikely]]  // before any lock: a parent's thread may have held it at the fork
            return fail(ErrorKind::unavailable,
                        "connection to " + address_ +
                            " used in a child process after fork(): it belongs to the parent; build the backend "
                            "in the child");
        const std::uint32_t bit = std::uint32_t{1} << (next_bit_.fetch_add(1, std::memory_order_relaxed) & 31u);
        auto batch = std::make_shared<ReplyBatch>(count, board_, bit);
        bool wake = false;
        bool connecting = false;
        bool after_idle = false;
        int lead_fd = -1;
        SteadyClock::time_point now;
        {
            std::unique_lock<SpinMutex> lk(mu_);
            idle_closed_.wait(lk, [this] { return !idle_close_ && !probe_lost_; });
            now = SteadyClock::now();  // also the start of the deadline (one clock read per command)
            if (unread_locked() && pipe_.empty() && !pending_error_ && quiet_locked(now) && !still_open(sock_)) {
                // The connection was idle (no reply for a while, nobody reading) and the server closed it
                // since: let the I/O thread drop it and queue this command for the next connection instead
                // of failing it on the dead one. The I/O thread may watch the socket and would see the close
                // too, but a busy machine may not have run it yet (a CLIENT KILL or the server's timeout
                // just before a command); when it left the socket unwatched (see lead) nobody else looks.
                pending_error_ = Error(ErrorKind::connection, "connection to " + address_ + " closed while idle");
                probe_lost_ = true;
                wake_io();
                idle_closed_.wait(lk, [this] { return !probe_lost_; });
                now = SteadyClock::now();
            }
            if (stopping_) return fail(ErrorKind::unavailable, "connection to " + address_ + " is shut down");
            if (io_idle_exit_) release_io_locked();  // the I/O thread stopped, idle and disconnected
            if (state_ == State::backoff && now < next_attempt_) return fail(backoff_error_locked(now));
            if (!io_.joinable())
                if (auto started = start_io_locked(); !started) return fail(started.error());
            if (state_ == State::down || state_ == State::backoff) {
                state_ = State::connecting;
                wake = true;
            }
            connecting = state_ != State::ready;
            const bool idle = pipe_.empty();
            after_idle = idle && !connecting && quiet_locked(now);
            if (idle) progress_mark_ = now;
            outbuf_.append(commands);
            batch->queued_at = now;
            pipe_.push(batch);
            if (state_ == State::ready && io_drives_.load(std::memory_order_relaxed)) {
                // The I/O thread drives the connection: it sends these with whatever else queued, once the
                // replies in flight are read (at once if it waits for work). No caller writes or leads.
                wake_driver_locked();
            } else {
                // Write now unless another thread is writing (its loop then sends these too, with whatever else
                // queued meanwhile): commands never wait for the replies of those in flight, so a busy
                // connection pipelines instead of stopping and waiting a round trip per batch. Idle: the caller
                // also claims the read and collects its replies in `wait`.
                if (idle && lead_now && can_lead_locked()) {
                    lead_fd = claim_read_locked();
                    last_lead_ = now;
                } else if (unwatched_locked()) {
                    arm_locked();  // nobody leads: the I/O thread reads these replies
                }
                if (!idle && settings_.tuning.writer_yield && can_write_locked()) {
                    // Busy: hold the write claim and give the CPU away once, so callers that are ready to run
                    // (typically those whose replies just arrived) queue their commands first and one send
                    // carries them all. With an idle CPU this returns at once.
                    writing_ = true;
                    lk.unlock();
                    std::this_thread::yield();
                    lk.lock();
                    writing_ = false;
                    if (closing_locked()) claims_released_.notify_all();
                }
                if (can_write_locked()) write_locked(lk);
            }
            // Under the lock: once it is released, the I/O thread may connect, fail, stop by itself and
            // have its descriptors closed by another caller (release_io_locked) before a late wake.
            if (wake) wake_io();
        }
        counters_.commands.fetch_add(count, std::memory_order_relaxed);
        auto budget = connecting ? saturating_sum(settings_.command_timeout, settings_.connect_timeout)
                                 : settings_.command_timeout;
        return Pending{std::move(batch), deadline_after(now, budget), budget, lead_fd, after_idle};
    }

    /// A waiting caller gives the CPU away a few times while its replies are not there (on a busy machine
    /// they often arrive meanwhile, and a caller that never slept needs no wake-up: on a virtual machine,
    /// waking a sleeping thread costs more than the round trip it waits for), and between yields reads the
    /// socket itself, without blocking, when nobody has read it for `tuning.pump_gap`. While callers spin the
    /// I/O thread leaves the socket to them, so a reply needs no thread woken to be read. With nothing else
    /// to run each yield returns at once, so a spin costs at most a few microseconds of CPU.
    void spin(const ReplyBatch& batch) {
        const int yields = settings_.tuning.spin ? settings_.tuning.spin_yields : 0;
        if (yields == 0) return;
        if (io_drives_.load(std::memory_order_relaxed)) {  // the I/O thread reads: only give the CPU away
            for (int i = 0; i < yields && !batch.done(); ++i) std::this_thread::yield();
            return;
        }
        spinners_.fetch_add(1, std::memory_order_acq_rel);
        for (int i = 0; i < yields && !batch.done(); ++i) {
            std::this_thread::yield();
            if (!batch.done()) pump();
        }
        if (spinners_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            // The last spinner leaves: if the I/O thread left the socket to the spinners, give it back.
            std::lock_guard<SpinMutex> lk(mu_);
            if (!armed_ && read_claim_ == Claim::none && !closing_locked() && state_ == State::ready) arm_locked();
        }
    }

    /// One non-blocking read and delivery by a spinning caller, at most one every `tuning.pump_gap` across all
    /// callers (an empty read is a wasted system call), and only when nobody else holds the read claim.
    void pump() {
        const std::int64_t now =
            std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now().time_since_epoch()).count();
        // The gap may be nanoseconds::max() (one pump, then none): the sum saturates.
        const std::int64_t gap = settings_.tuning.pump_gap.count();
        const std::int64_t until =
            gap > std::numeric_limits<std::int64_t>::max() - now ? std::numeric_limits<std::int64_t>::max() : now + gap;
        auto next = next_pump_.load(std::memory_order_relaxed);
        if (now < next || !next_pump_.compare_exchange_strong(next, until, std::memory_order_relaxed)) return;
        {
            std::lock_guard<SpinMutex> lk(mu_);
            if (!can_read_locked()) return;
            read_claim_ = Claim::pump;
        }
        auto failure = read_and_deliver();
        std::unique_lock<SpinMutex> lk(mu_);
        read_claim_ = Claim::none;
        if (failure) {
            pending_error_ = std::move(failure->error);
            wake_io();
        } else {
            // A send may have found the socket full earlier. The I/O thread may have left the socket to
            // the spinners (and with it the wait for room), so try the rest of the output here.
            resume_write_locked(lk);
            wake_driver_locked();  // commands queued for the I/O thread while this caller read
        }
        if (closing_locked()) claims_released_.notify_all();
    }

    /// Whether anyone may take the read claim now: a live connection nobody reads, with no failure
    /// waiting for the I/O thread (mu_ held).
    bool can_read_locked() const noexcept {
        return state_ == State::ready && sock_ >= 0 && read_claim_ == Claim::none && !closing_locked() &&
               !write_error_ && !pending_error_;
    }

    /// Whether a caller may take the read claim to lead: it also takes over the writing, so nobody may be
    /// writing or waiting for room (mu_ held).
    bool can_lead_locked() const noexcept { return can_read_locked() && !io_writes_ && !writing_; }

    /// Takes the read claim for the calling thread and removes the socket from the I/O thread's set.
    int claim_read_locked() noexcept {
        read_claim_ = Claim::caller;
        disarm_locked();
        return sock_;
    }

    // ---- the transport: one thread at a time when it is TLS (an SSL object is not safe for concurrent
    // use: a writer and a reader take io_mu_ in turn, each for one non-blocking call) ----

    /// `wait`: the transport's read_wait (a plain socket may block up to its slice; TLS never waits).
    IoResult io_read(Transport& t, char* buf, std::size_t n, bool wait = false) {
        if (!settings_.tls) return wait ? t.read_wait(buf, n) : t.read(buf, n);
        std::lock_guard<std::mutex> lk(io_mu_);
        return t.read(buf, n);
    }
    IoResult io_write(Transport& t, const char* buf, std::size_t n) {
        if (!settings_.tls) return t.write(buf, n);
        std::lock_guard<std::mutex> lk(io_mu_);
        return t.write(buf, n);
    }
    /// Decrypted bytes held by TLS (always 0 for plain; read claim only).
    std::size_t io_buffered() {
        if (!settings_.tls || !transport_) return 0;
        std::lock_guard<std::mutex> lk(io_mu_);
        return transport_->buffered();
    }

    // ---- writing (mu_ held on entry and exit) ----

    /// Finishes a send that found the socket full (io_writes_), once the socket has room or someone
    /// tries again (mu_ held on entry and exit).
    void resume_write_locked(std::unique_lock<SpinMutex>& lk) {
        if (!io_writes_ && !write_wants_read_) return;
        if (writing_ || closing_locked() || state_ != State::ready) return;
        io_writes_ = false;
        write_wants_read_ = false;
        write_locked(lk);
    }

    /// lose_connection is waiting for the claims to be released (mu_ held).
    bool closing_locked() const noexcept { return state_ == State::closing; }

    bool can_write_locked() const noexcept {
        return state_ == State::ready && !writing_ && !io_writes_ && !closing_locked() && !outbuf_.empty();
    }

    /// Claims the socket for writing and sends everything queued (with mu_ released during each send),
    /// looping while other threads queue more. On EAGAIN the rest is left to the I/O thread (EPOLLOUT); on
    /// an error the I/O thread is told to drop the connection. One writer at a time: bytes go out in
    /// queue order.
    void write_locked(std::unique_lock<SpinMutex>& lk, bool one_round = false) {
        writing_ = true;
        Transport& out = *transport_;  // replaced only after every claim is released
        for (int round = 0;; ++round) {
            if (wpos_ == wbuf_.size()) {
                wbuf_.clear();
                wpos_ = 0;
                if (outbuf_.empty() || closing_locked() || (one_round && round == 1)) break;
                if (round == settings_.tuning.max_write_rounds) {
                    io_writes_ = true;
                    wake_io();
                    break;
                }
                wbuf_.swap(outbuf_);
            }
            lk.unlock();
            std::optional<Error> err;
            IoStatus blocked = IoStatus::moved;
            while (wpos_ < wbuf_.size()) {
                auto r = io_write(out, wbuf_.data() + wpos_, wbuf_.size() - wpos_);
                if (r.status == IoStatus::moved) {
                    wpos_ += r.bytes;
                } else if (r.status == IoStatus::want_read || r.status == IoStatus::want_write) {
                    blocked = r.status;
                    break;
                } else {
                    err = r.error ? std::move(*r.error)
                                  : Error(ErrorKind::connection, "write to " + address_ + ": connection closed");
                    break;
                }
            }
            lk.lock();
            if (err || blocked != IoStatus::moved) {
                if (err) write_error_ = std::move(err);
                // Socket full: the I/O thread waits for room. TLS that must read first: the next read
                // (whoever reads) resumes the write.
                if (blocked == IoStatus::want_write) io_writes_ = true;
                if (blocked == IoStatus::want_read) write_wants_read_ = true;
                wake_io();
                break;
            }
            counters_.writes.fetch_add(1, std::memory_order_relaxed);
        }
        writing_ = false;
        if (closing_locked()) claims_released_.notify_all();
    }

    // ---- the I/O thread's interest in the socket (mu_ held) ----

    void arm_locked() noexcept {
        if (sock_ < 0 || !waiter_.is_open()) return;
        waiter_.watch(sock_, wants_out_locked());
        armed_ = true;
        armed_out_ = wants_out_locked();
    }

    /// The I/O thread watches for room to write: a send found the socket full, or a TLS read needs to
    /// write first.
    bool wants_out_locked() const noexcept { return io_writes_ || read_wants_write_; }

    void disarm_locked() noexcept {
        if (!armed_) return;
        waiter_.unwatch();
        armed_ = false;
    }

    // ---- caller side ----

    /// In a child of fork(): forget the parent's I/O thread and send nothing on the parent's stream. The
    /// thread does not run here, so it is neither joined nor detached (pthread_detach of a thread this
    /// process never had is undefined; ThreadSanitizer aborts on it): its handle is overwritten with an
    /// empty one, which ends the old handle's lifetime without its destructor ([basic.life]).
    void abandon() noexcept {
        if (io_.joinable()) ::new (static_cast<void*>(&io_)) std::thread();
        if (transport_) transport_->abandon();
    }

    /// Joins an I/O thread that stopped by itself and closes its descriptors (mu_ held; the thread
    /// touches nothing once it set io_idle_exit_).
    void release_io_locked() {
        if (io_.joinable()) io_.join();
        io_idle_exit_ = false;
        waiter_.close();
    }

    Result<void> start_io_locked() {
        if (auto opened = waiter_.open(); !opened) return opened;
        try {
            io_ = std::thread([this] { run(); });
        } catch (const std::system_error& e) {
            return fail(ErrorKind::connection, std::string("cannot start the I/O thread: ") + e.what());
        }
        return {};
    }

    Error backoff_error_locked(SteadyClock::time_point now) const {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(next_attempt_ - now).count();
        ErrorKind kind = last_error_ ? last_error_->kind() : ErrorKind::connection;
        std::string msg = last_error_ ? last_error_->message() : "not connected to " + address_;
        return Error(kind, msg + " (next connection attempt in " + std::to_string(left) + " ms)");
    }

    void wake_io() noexcept { waiter_.wake(); }

    /// While the I/O thread drives (io_drives_), a caller that queued commands wakes it if it waits for
    /// work; not while a leader holds the socket (the leader sends them, and wakes it when it lets go).
    void wake_driver_locked() noexcept {
        if (io_parked_ && read_claim_ != Claim::caller && io_drives_.load(std::memory_order_relaxed)) {
            io_parked_ = false;
            wake_io();
        }
    }

    /// The leader's loop: reads and delivers until its own batch is answered or its deadline passes, then
    /// gives the socket back to the I/O thread (which takes over any replies still due).
    void lead(const ReplyBatch& mine, int fd, SteadyClock::time_point deadline) {
        std::optional<Failure> failure;
        while (!mine.done()) {
            const int ms = remaining_ms(deadline);
            if (ms <= 0) break;
            pollfd p{fd, POLLIN, 0};
            {
                // The socket is out of the I/O thread's set while we lead: writes it would do are ours.
                std::unique_lock<SpinMutex> lk(mu_);
                if (can_write_locked()) write_locked(lk);
                if (wants_out_locked()) p.events |= POLLOUT;
            }
            // A plain socket with nothing to send and a wait longer than the transport's slice: one blocking
            // read waits for the replies and takes them (no poll before it: at one caller, a third of the
            // system calls per command). It returns within the slice when nothing comes.
            if (p.events == POLLIN && ms >= Transport::wait_slice.count() && transport_->can_wait()) {
                if ((failure = read_and_deliver(true))) break;
                continue;
            }
            // TLS may hold decrypted bytes that no poll would announce: read them first.
            const int rc = io_buffered() > 0 ? 1 : ::poll(&p, 1, ms);
            if (rc == 1 && io_buffered() > 0) p.revents |= POLLIN;
            if (rc < 0 && errno != EINTR) {
                failure = Failure{Error(ErrorKind::connection, "poll on " + address_ + ": " + errno_text(errno))};
                break;
            }
            if (rc <= 0) continue;
            if (p.revents & POLLOUT) {
                std::unique_lock<SpinMutex> lk(mu_);
                if (read_wants_write_) {
                    read_wants_write_ = false;
                    p.revents |= POLLIN;
                }
                resume_write_locked(lk);
            }
            if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && (failure = read_and_deliver())) break;
        }
        std::lock_guard<SpinMutex> lk(mu_);
        read_claim_ = Claim::none;
        if (failure) {
            pending_error_ = std::move(failure->error);
            wake_io();
        } else if (!closing_locked() && (!pipe_.empty() || wants_out_locked())) {
            arm_locked();
            wake_driver_locked();  // commands queued for the I/O thread after this leader's last send
        }
        // Otherwise the socket stays out of the I/O thread's set: the next command on this idle connection
        // leads again without two epoll_ctl calls (the cost of one round trip's worth of system calls at one
        // thread). The I/O thread watches it again at its next wake-up (within a command timeout), a caller
        // that only queues does at once, and a command after more than idle_probe_after checks first that
        // the server has not closed it meanwhile (submit_impl).
        if (closing_locked()) claims_released_.notify_all();
    }

    /// The socket is out of the I/O thread's set and nobody reads it: no leader, no spinning caller (mu_
    /// held). Whoever queues a command then, or the I/O thread when it wakes, puts it back.
    bool unwatched_locked() const noexcept { return !armed_ && unread_locked(); }

    /// Nothing happened on the connection for more than idle_probe_after before `now`: no lead and no reply
    /// (mu_ held).
    bool quiet_locked(SteadyClock::time_point now) const noexcept {
        return now - std::max(last_lead_, progress_mark_) > idle_probe_after;
    }

    /// The connection is ready and nobody reads its socket now: no reader, no spinning caller (mu_ held).
    bool unread_locked() const noexcept {
        return state_ == State::ready && sock_ >= 0 && read_claim_ == Claim::none && !closing_locked() &&
               spinners_.load(std::memory_order_relaxed) == 0;
    }

    /// Whether the server has not closed `fd`: no end of file and no error pending. Bytes waiting (a TLS
    /// session ticket, a stray reply) count as open: the next read deals with them as before.
    static bool still_open(int fd) noexcept {
        char c;
        const auto n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
        return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
    }

    // ---- the I/O thread: connects, watches the socket when no caller does, drops broken connections ----

    /// Whether the I/O thread drives the connection now (mu_ held): it is its turn (io_drives_), replies are
    /// due, nobody else holds the socket, and nothing waits for the usual loop (a failure, a full socket).
    bool can_drive_locked() const noexcept {
        return io_drives_.load(std::memory_order_relaxed) && !stopping_ && state_ == State::ready && sock_ >= 0 &&
               !pipe_.empty() && read_claim_ == Claim::none && !pending_error_ && !write_error_ &&
               !wants_out_locked() && !write_wants_read_;
    }

    /// One round of the I/O thread driving a busy connection (io_drives_): sends what queued, waits for
    /// replies (or a wake-up), reads and delivers them, which also sends what queued meanwhile and wakes
    /// their callers. False when it does not drive now: nothing in flight, not ready, a caller holds the
    /// socket, a failure to act on, or a send that waits for room; the usual wait then follows.
    bool drive_step() {
        int fd = -1;
        int timeout_ms = 0;
        {
            std::unique_lock<SpinMutex> lk(mu_);
            if (!can_drive_locked()) return false;
            // The read claim first: no spinning caller left from the callers' turn may read the replies of
            // this send while it goes out, which would leave this thread waiting for replies that came.
            read_claim_ = Claim::io;
            fd = sock_;
            // One send of what queued: what queues during it goes out after the replies (read_and_deliver).
            if (can_write_locked()) write_locked(lk, true);
            if (write_error_ || wants_out_locked() || write_wants_read_ || closing_locked()) {
                read_claim_ = Claim::none;  // the usual loop acts on it
                if (closing_locked()) claims_released_.notify_all();
                return false;
            }
            timeout_ms = poll_timeout_locked();
        }
        const bool readable = io_buffered() > 0 || waiter_.wait_on(fd, timeout_ms).readable;
        std::optional<Failure> failure;
        if (readable) failure = read_and_deliver();
        counters_.io_thread_rounds.fetch_add(1, std::memory_order_relaxed);
        bool stalled = false;
        {
            std::lock_guard<SpinMutex> lk(mu_);
            read_claim_ = Claim::none;
            if (closing_locked()) claims_released_.notify_all();
            stalled = !failure && stalled_locked(SteadyClock::now());  // the stall reset applies here too
        }
        if (failure)
            lose_connection(failure->error, failure->backoff);
        else if (stalled)
            reset_stalled();
        return true;
    }

    void run() {
        for (;;) {
            if (drive_step()) continue;
            std::optional<Failure> failure;
            bool connect_now = false;
            int timeout_ms = -1;
            {
                std::unique_lock<SpinMutex> lk(mu_);
                if (stopping_) break;
                if ((state_ == State::down || state_ == State::backoff) && pipe_.empty() && !pending_error_ &&
                    !write_error_) {
                    // Nothing to watch and nothing to do: stop (the next command starts a new thread), so
                    // a node nobody uses holds no thread and no descriptor. Past this point the thread
                    // touches nothing of *this.
                    io_idle_exit_ = true;
                    return;
                }
                if (pending_error_) {
                    failure = Failure{std::move(*pending_error_)};
                    pending_error_.reset();
                } else if (write_error_) {
                    failure = Failure{std::move(*write_error_)};
                    write_error_.reset();
                }
                connect_now = !failure && state_ == State::connecting;
                if (armed_ && armed_out_ != wants_out_locked()) arm_locked();
                if (unwatched_locked()) arm_locked();  // left out by the last leader: watch it again
                timeout_ms = poll_timeout_locked();
                // A leader or spinning caller that let the socket go since drive_step looked, while this
                // thread was not waiting yet, did not wake it: look again instead of waiting.
                if (!failure && !connect_now && can_drive_locked()) continue;
                io_parked_ = !failure && !connect_now;
            }
            if (failure) {
                lose_connection(failure->error, failure->backoff);
                continue;
            }
            if (connect_now) {
                open_connection();
                continue;
            }
            const auto [readable, writable] = waiter_.wait(timeout_ms);
            {
                std::lock_guard<SpinMutex> lk(mu_);
                io_parked_ = false;
            }
            bool read_now = readable;
            if (writable) {
                std::unique_lock<SpinMutex> lk(mu_);
                if (read_wants_write_) {
                    read_wants_write_ = false;
                    read_now = true;
                }
                resume_write_locked(lk);
            }
            if (read_now) {
                {
                    std::lock_guard<SpinMutex> lk(mu_);
                    if (read_claim_ == Claim::pump) {  // waiting callers read: leave the socket to them
                        disarm_locked();
                        continue;
                    }
                    if (read_claim_ != Claim::none || sock_ < 0) continue;  // a leader reads
                    read_claim_ = Claim::io;
                }
                auto f = read_and_deliver();
                {
                    std::lock_guard<SpinMutex> lk(mu_);
                    read_claim_ = Claim::none;
                }
                if (f) {
                    lose_connection(f->error, f->backoff);
                    continue;
                }
            }
            check_deadlines();
        }
        lose_connection(Error(ErrorKind::unavailable, "connection to " + address_ + " is shut down"), false);
    }

    int poll_timeout_locked() const {
        auto now = SteadyClock::now();
        auto until = [&](SteadyClock::time_point t) { return std::max(1, clamp_ms(now, t)); };
        if (state_ == State::handshaking) return until(handshake_deadline_);
        if (state_ != State::ready) return -1;
        if (!pipe_.empty()) return until(deadline_after(progress_mark_, stall_timeout()));
        // Callers write (and lead) without waking this thread, so look again within a command timeout: a
        // stall is noticed at most one command timeout late.
        return std::max(1, clamp_ms(settings_.command_timeout));
    }

    std::chrono::milliseconds stall_timeout() const { return saturating_twice(settings_.command_timeout); }

    void open_connection() {
        counters_.connect_attempts.fetch_add(1, std::memory_order_relaxed);
        const auto started = SteadyClock::now();
        auto where = connect_address();
        if (!where) {
            lose_connection(where.error(), true);
            return;
        }
        auto opened = open_transport(*where, settings_.tls.get(), deadline_after(started, settings_.connect_timeout),
                                     settings_.connect_timeout);
        if (!opened) {
            lose_connection(opened.error(), true);
            return;
        }
        // The read buffer exists from the first connect on: a node that is never used costs none.
        if (rbuf_.empty()) rbuf_.resize(read_chunk);
        const bool reader_ok = pipe_.reset(settings_.max_reply_bytes);
        {
            std::lock_guard<SpinMutex> lk(mu_);
            transport_ = std::move(*opened);
            sock_ = transport_->fd();
            if (!handshake_steps_.empty()) state_ = State::handshaking;
            arm_locked();
        }
        if (!reader_ok) {
            lose_connection(Error(ErrorKind::connection, "out of memory creating a reply reader"), true);
            return;
        }
        if (handshake_steps_.empty()) {
            become_ready();
            return;
        }
        // A few hundred bytes to a fresh socket: the send buffer always has room.
        auto sent = io_write(*transport_, handshake_.data(), handshake_.size());
        if (sent.status != IoStatus::moved || sent.bytes != handshake_.size()) {
            lose_connection(Error(ErrorKind::connection, "connect to " + address_ + ": cannot send the handshake"),
                            true);
            return;
        }
        handshake_next_ = 0;
        handshake_deadline_ = deadline_after(started, settings_.connect_timeout);
    }

    /// The address of this connect: the endpoint source's answer with the node's credentials and database,
    /// or the fixed endpoint.
    Result<RedisEndpoint> connect_address() const {
        if (!settings_.source) return settings_.endpoint;
        auto answer = settings_.source->endpoint();
        if (!answer) return fail(answer.error());
        RedisEndpoint where = settings_.endpoint;
        where.transport = answer->transport;
        where.host = std::move(answer->host);
        where.port = answer->port;
        where.path = std::move(answer->path);
        where.tls = answer->tls;
        return where;
    }

    /// Marks the connection usable and writes what callers queued while it was being established.
    void become_ready() {
        std::unique_lock<SpinMutex> lk(mu_);
        state_ = State::ready;
        ready_since_ = SteadyClock::now();
        progress_mark_ = ready_since_;
        served_ = false;
        counters_.connects.fetch_add(1, std::memory_order_relaxed);
        if (can_write_locked()) write_locked(lk);
    }

    /// The failure for a reply the reader refused (too large, not RESP): the connection is reset.
    Failure reply_failure(const Error& e) const {
        return Failure{Error(e.kind(), "reply from " + address_ + ": " + e.message() + "; connection reset")};
    }

    /// The end of file from the server, and whether `e` is it (execute's one repeat after an idle close).
    Error closed_by_server_error() const {
        return Error(ErrorKind::connection, "connection to " + address_ + " closed by the server");
    }
    bool closed_by_server(const Error& e) const {
        return e.kind() == ErrorKind::connection &&
               e.message() == "connection to " + address_ + " closed by the server";
    }

    /// The error a server sends before it closes a connection it will not serve (Redis at `maxclients`).
    static bool refused_connection(std::string_view server_text) noexcept {
        return server_text.starts_with("ERR max number of clients reached");
    }
    Failure refusal(std::string_view server_text) const {
        return Failure{Error(ErrorKind::connection,
                             "connection to " + address_ + " refused by the server: " + std::string(server_text)),
                       true};
    }

    /// Checks one handshake reply (I/O thread, while connecting).
    std::optional<Failure> handshake_reply(const redisReply& r) {
        const Step step = handshake_steps_[handshake_next_++];
        if (r.type != REDIS_REPLY_ERROR && r.type != REDIS_REPLY_STATUS)
            return Failure{Error(ErrorKind::protocol, "unexpected reply to the handshake from " + address_), true};
        if (r.type == REDIS_REPLY_ERROR) {
            const auto& ep = settings_.endpoint;
            std::string server(reply_text(r));  // scrubbed of the credentials when it was read
            if (refused_connection(server)) return refusal(server);
            if (step == Step::auth) {
                // The user name is a credential too: messages say which kind of user, never its name.
                std::string who = ep.username ? "the configured ACL user" : "the default user";
                return Failure{
                    Error(ErrorKind::auth, "authentication to " + address_ + " as " + who + " failed: " + server),
                    true};
            }
            // A user without permission to SELECT (NOPERM) is a credentials problem; anything else (a database
            // index out of range) is the configuration's.
            const ErrorKind kind = error_reply_kind(server) == ErrorKind::auth ? ErrorKind::auth : ErrorKind::config;
            return Failure{Error(kind, "SELECT " + std::to_string(ep.db) + " on " + address_ + " failed: " + server),
                           true};
        }
        if (handshake_next_ == handshake_steps_.size()) become_ready();
        return std::nullopt;
    }

    /// The reader's step (the read claim held, mu_ not held): reads what is available, parses replies,
    /// sends what queued up meanwhile, then wakes the callers whose replies are complete. A failure is
    /// returned for the I/O thread to act on.
    std::optional<Failure> read_and_deliver(bool wait_first = false) {
        Transport& in = *transport_;  // replaced only after every claim is released
        // At most 16 reads from the socket per step; bytes TLS already holds decrypted are always taken
        // (no poll would announce them). `wait_first` (a leader on a plain socket): the first read may wait
        // for bytes up to the transport's slice.
        for (int round = 0; round < 16 || io_buffered() > 0; ++round) {
            auto r = io_read(in, rbuf_.data(), rbuf_.size(), wait_first && round == 0);
            if (r.status == IoStatus::moved) {
                // Bytes buffered and not yet parsed, with the objects of the reply in progress, are cut
                // off at the limit instead of buffering whatever the peer sends.
                if (auto fed = pipe_.feed(rbuf_.data(), r.bytes); !fed) return reply_failure(fed.error());
                if (r.bytes < rbuf_.size() && io_buffered() == 0) break;
                continue;
            }
            if (r.status == IoStatus::closed) return Failure{closed_by_server_error()};
            if (r.status == IoStatus::want_read) break;
            if (r.status == IoStatus::want_write) {  // TLS must write first: watch for room
                std::lock_guard<SpinMutex> lk(mu_);
                read_wants_write_ = true;
                if (armed_) arm_locked();
                wake_io();
                break;
            }
            return Failure{r.error ? std::move(*r.error)
                                   : Error(ErrorKind::connection, "read from " + address_ + " failed")};
        }
        got_.clear();
        for (;;) {
            auto next = pipe_.next();  // scrubbed: server text never carries the credentials further
            if (!next) return reply_failure(next.error());
            ReplyPtr reply = std::move(*next);
            if (!reply) break;
            if (handshake_next_ < handshake_steps_.size()) {
                if (auto f = handshake_reply(*reply)) return f;
                continue;
            }
            // A server at maxclients answers the first command with this error and closes: the connection
            // was refused, not the command (and it must not count as served, or nothing backs off).
            if (reply->type == REDIS_REPLY_ERROR && refused_connection(reply_text(*reply)))
                return refusal(reply_text(*reply));
            got_.push_back(std::move(reply));
        }
        done_.clear();
        bool unexpected = false;
        {
            std::unique_lock<SpinMutex> lk(mu_);
            unexpected = !pipe_.deliver(got_, done_);
            // Progress is a reply completed, not bytes read: a server that trickles bytes without ever
            // finishing a reply, or a read that found nothing, does not hold the stall reset off.
            if (!got_.empty()) {
                progress_mark_ = SteadyClock::now();
                served_ = true;
            }
            if (!done_.empty()) observe_drive_locked();
            // Send what queued up during the round trip before waking the callers.
            if (write_wants_read_) {
                write_wants_read_ = false;
                resume_write_locked(lk);
            }
            if (!unexpected && can_write_locked()) write_locked(lk, io_drives_.load(std::memory_order_relaxed));
        }
        got_.clear();
        complete_all(done_, std::nullopt);
        done_.clear();
        if (unexpected) return Failure{Error(ErrorKind::protocol, "unexpected reply from " + address_)};
        return std::nullopt;
    }

    /// Feeds the batches just completed to the selector of who drives the busy connection (mu_ held). Only
    /// ConnectionDrive::adaptive measures: with a held driver this is skipped on every delivery.
    void observe_drive_locked() {
        if (!selector_.adaptive()) return;
        std::chrono::nanoseconds waited{0};
        for (const auto& b : done_) waited += progress_mark_ - b->queued_at;
        if (!selector_.observe(progress_mark_, done_.size(), waited)) return;
        io_drives_.store(selector_.io_thread(), std::memory_order_relaxed);
        counters_.drive_switches.fetch_add(1, std::memory_order_relaxed);
        wake_driver_locked();
    }

    void check_deadlines() {
        const auto now = SteadyClock::now();
        if (sock_ >= 0 && handshake_next_ < handshake_steps_.size() && now >= handshake_deadline_) {
            lose_connection(Error(ErrorKind::connection, "connect to " + address_ + ": no handshake reply within " +
                                                             std::to_string(settings_.connect_timeout.count()) + " ms"),
                            true);
            return;
        }
        bool stalled = false;
        {
            std::lock_guard<SpinMutex> lk(mu_);
            stalled = stalled_locked(now);
        }
        if (stalled) reset_stalled();
    }

    /// Commands are in flight and no reply has completed for twice the command timeout (mu_ held). Bytes
    /// that never complete a reply are not progress.
    bool stalled_locked(SteadyClock::time_point now) const {
        return state_ == State::ready && !pipe_.empty() && now >= deadline_after(progress_mark_, stall_timeout());
    }

    /// I/O thread: drops a stalled connection; its callers get a timeout error.
    void reset_stalled() {
        lose_connection(
            Error(ErrorKind::timeout, "no reply from " + address_ + " for " + std::to_string(stall_timeout().count()) +
                                          " ms; connection reset"),
            false);
    }

    std::chrono::milliseconds jittered(std::chrono::milliseconds d) {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        auto half = d.count() / 2;
        return std::chrono::milliseconds(half + static_cast<std::int64_t>(rng_ % static_cast<std::uint64_t>(half + 1)));
    }

    /// I/O thread: closes the socket (after any writer or leader has let go of it, so its descriptor is
    /// never reused under them) and fails every command in flight or queued with `error`. `backoff`: the
    /// failure was a connect or handshake; delay the next attempt. A connection that dies within a second
    /// of being established without having answered a command is treated the same way, so a server that
    /// accepts and drops is not hammered; one that was answering (a killed client, a restart) is
    /// reconnected at once.
    void lose_connection(const Error& error, bool backoff) {
        {
            // A writer in send() or a leader in poll() returns at once.
            std::lock_guard<SpinMutex> lk(mu_);
            if (transport_) transport_->shutdown();
        }
        std::deque<std::shared_ptr<ReplyBatch>> failed;
        std::unique_ptr<Transport> gone;
        {
            std::unique_lock<SpinMutex> lk(mu_);
            const bool was_ready = state_ == State::ready;
            state_ = State::closing;
            claims_released_.wait(
                lk, [&] { return !writing_ && read_claim_ != Claim::caller && read_claim_ != Claim::pump; });
            disarm_locked();
            gone = std::move(transport_);
            sock_ = -1;
            wbuf_.clear();
            wpos_ = 0;
            io_writes_ = false;
            write_error_.reset();
            write_wants_read_ = false;
            read_wants_write_ = false;
            pending_error_.reset();
            const auto now = SteadyClock::now();
            if (was_ready && !stopping_) counters_.drops.fetch_add(1, std::memory_order_relaxed);
            if (backoff || (was_ready && !served_ && now - ready_since_ < flapping_window)) {
                backoff_ = backoff_.count() == 0 ? settings_.backoff_initial
                                                 : std::min(saturating_twice(backoff_), settings_.backoff_max);
                next_attempt_ = deadline_after(now, jittered(backoff_));
            } else {
                backoff_ = std::chrono::milliseconds(0);
                next_attempt_ = now;
            }
            last_error_ = error;
            state_ = next_attempt_ > now ? State::backoff : State::down;
            failed = pipe_.take_all();
            outbuf_.clear();
            probe_lost_ = false;
        }
        idle_closed_.notify_all();  // callers that found the idle socket closed now connect again
        gone.reset();               // closes the socket (after the TLS close_notify, if any)
        pipe_.close();
        handshake_next_ = handshake_steps_.size();
        if (error.kind() == ErrorKind::capacity && failed.size() > 1) {
            // Only the first batch waited for the reply that outgrew max_reply_bytes (the reader's only
            // capacity error); the others lost their connection with it.
            std::deque<std::shared_ptr<ReplyBatch>> others(std::next(failed.begin()), failed.end());
            failed.resize(1);
            complete_all(failed, error);
            complete_all(others, Error(ErrorKind::connection, "connection to " + address_ +
                                                                  " reset: the reply to another command exceeded "
                                                                  "max_reply_bytes"));
            return;
        }
        complete_all(failed, error);
    }

    template <class Batches>
    void complete_all(Batches& batches, const std::optional<Error>& error) {
        ReplyPipe::complete_all(batches, error, board_);
    }

    const std::uint32_t born_;  // fork_generation() when this connection was built
    const NodeSettings settings_;
    const std::string address_;
    std::string handshake_;  // AUTH / SELECT, formatted; holds the password: never printed
    std::vector<Step> handshake_steps_;

    mutable SpinMutex mu_;  // guards the fields up to waiter_
    State state_ = State::down;
    bool stopping_ = false;
    bool idle_close_ = false;    // close_if_idle is stopping the I/O thread; new commands wait for it
    bool io_idle_exit_ = false;  // the I/O thread stopped by itself (disconnected, nothing queued)
    bool probe_lost_ = false;    // a caller found the unwatched idle socket closed; new commands wait for the drop
    SteadyClock::time_point last_lead_{};  // when the last caller took the read claim to lead
    std::condition_variable_any idle_closed_;
    std::string outbuf_;  // commands queued, not yet claimed by a writer
    ReplyPipe pipe_;      // the batches in wire order (mu_); its reader belongs to the read claim
    SteadyClock::time_point next_attempt_{};
    SteadyClock::time_point progress_mark_{};  // last bytes read, or when the FIFO became non-empty
    SteadyClock::time_point ready_since_{};
    bool served_ = false;  // a command was answered since ready_since_ (mu_)
    std::chrono::milliseconds backoff_{0};
    std::optional<Error> last_error_;
    std::unique_ptr<Transport> transport_;  // set and reset by the I/O thread under mu_, with every claim released
    int sock_ = -1;                         // transport_'s descriptor, or -1
    bool writing_ = false;                  // a thread holds the write claim (and wbuf_)
    Claim read_claim_ = Claim::none;        // who reads (owns rbuf_, pipe_'s reader, got_, done_)
    bool io_writes_ = false;                // the I/O thread finishes the writing (socket full, or a quota used)
    bool armed_ = false;                    // the socket is in the I/O thread's epoll set
    bool armed_out_ = false;                // ... with EPOLLOUT
    std::optional<Error> write_error_;      // a writer's transport error, for the I/O thread to act on
    bool write_wants_read_ = false;         // a TLS write waits for a read (the next read resumes it)
    bool read_wants_write_ = false;         // a TLS read waits for room to write (watch for writability)
    std::optional<Error> pending_error_;    // a leader's read failure, for the I/O thread to act on
    std::condition_variable_any claims_released_;
    std::thread io_;
    WakeBoard board_;                         // where callers sleep until their replies are delivered
    std::atomic<std::uint32_t> next_bit_{0};  // the wake bit of the next batch
    std::atomic<int> spinners_{0};            // callers in spin()
    DriveSelector selector_;                  // who drives the busy connection (mu_)
    std::atomic<bool> io_drives_;             // selector_.io_thread(), for lock-free reads (written under mu_)
    bool io_parked_ = false;                  // the I/O thread waits in its usual wait (mu_)
    std::atomic<std::int64_t> next_pump_{0};  // steady_clock ns before which no spinner reads
    IoWaiter waiter_;                         // the I/O thread's wait for the socket and for wake-ups
    std::mutex io_mu_;                        // TLS only: one transport call at a time

    // Owned by the write claim.
    std::string wbuf_;
    std::size_t wpos_ = 0;

    // Owned by the read claim (the I/O thread alone while connecting).
    std::vector<char> rbuf_;
    std::vector<ReplyPtr> got_;
    std::vector<std::shared_ptr<ReplyBatch>> done_;
    std::size_t handshake_next_ = 0;

    // I/O thread only.
    SteadyClock::time_point handshake_deadline_{};
    std::uint64_t rng_ = 1;

    AtomicCounters counters_;
};

}  // namespace hitbox::detail
