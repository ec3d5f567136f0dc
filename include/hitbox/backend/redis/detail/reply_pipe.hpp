#pragma once
/// \file
/// detail::ReplyPipe: the connection's reply side. Bytes in, replies out in FIFO order to the batches of
/// commands that asked for them, under the reply-size budget (ReplyReader), with server text scrubbed of
/// the connection's secrets. It knows no socket, thread or clock: tests feed it bytes split anywhere and
/// check what each batch received (test_reply_pipe).
///
/// Two sides with different owners (see doc/internals/connection.md):
/// - the reader side (`reset`, `feed`, `next`) belongs to whoever holds the connection's read claim;
/// - the FIFO (`push`, `deliver`, `take_all`, `empty`) is guarded by the connection's lock.
///
/// Non-generic code.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/backend/redis/detail/platform.hpp>
#include <hitbox/backend/redis/detail/reply_reader.hpp>
#include <hitbox/backend/redis/detail/resp.hpp>
#include <hitbox/core/error.hpp>

namespace hitbox::detail {

/// The reply slot of one submission of `expected` commands. One atomic word is the handshake between
/// the reader and the waiter: a wake-up system call happens only if the waiter sleeps.
class ReplyBatch {
public:
    ReplyBatch(std::size_t expected, WakeBoard& board, std::uint32_t bit)
        : expected_(expected), board_(&board), bit_(bit) {
        replies_.reserve(expected);
    }

    /// When the batch was queued (set by the connection under its lock, read by the reader that delivers
    /// it): the latency the connection measures to choose who drives its socket.
    std::chrono::steady_clock::time_point queued_at{};

    /// True once the replies (or an error) are published.
    bool done() const noexcept { return state_.load(std::memory_order_acquire) == done_state; }

    /// Reader: stores the next reply; true once all have arrived.
    bool add(ReplyPtr reply) {
        replies_.push_back(std::move(reply));
        return replies_.size() == expected_;
    }

    /// Reader: publishes the replies, or `error` instead. Returns the waiter's bit when it sleeps (the
    /// caller then wakes it through the board, together with others), else 0.
    [[nodiscard]] std::uint32_t complete(std::optional<Error> error) {
        error_ = std::move(error);
        return state_.exchange(done_state, std::memory_order_acq_rel) == sleeping ? bit_ : 0u;
    }

    /// Caller: the replies, the error, or nullopt when `deadline` passed first (the slot
    /// is then abandoned: whatever arrives later is dropped with it).
    std::optional<Result<std::vector<ReplyPtr>>> wait(std::chrono::steady_clock::time_point deadline) {
        for (;;) {
            std::uint32_t s = state_.load(std::memory_order_acquire);
            if (s == done_state) {
                if (error_) return Result<std::vector<ReplyPtr>>(fail(*error_));
                return Result<std::vector<ReplyPtr>>(std::move(replies_));
            }
            if (s == pending && !state_.compare_exchange_strong(s, sleeping, std::memory_order_acq_rel)) continue;
            if (std::chrono::steady_clock::now() >= deadline) {
                std::uint32_t expect = sleeping;
                if (state_.compare_exchange_strong(expect, abandoned, std::memory_order_acq_rel)) return std::nullopt;
                continue;  // completed meanwhile
            }
            // A completion after this read bumps the counter before its wake, so the sleep below either
            // sees the new count and returns at once, or is woken.
            const std::uint32_t seen = board_->sequence();
            if (state_.load(std::memory_order_acquire) == done_state) continue;
            board_->sleep(seen, bit_, deadline);
        }
    }

private:
    static constexpr std::uint32_t pending = 0, sleeping = 1, done_state = 2, abandoned = 3;

    std::size_t expected_;
    WakeBoard* board_;
    std::uint32_t bit_;
    std::vector<ReplyPtr> replies_;
    std::optional<Error> error_;
    std::atomic<std::uint32_t> state_{pending};
};

/// The reply side of one connection (see the file comment).
class ReplyPipe {
public:
    using BatchPtr = std::shared_ptr<ReplyBatch>;

    /// `password` and `username` are scrubbed from server text (a user name only with 3+ characters, so
    /// that short names do not mask ordinary letters).
    ReplyPipe(std::string password, std::string username)
        : password_(std::move(password)), username_(username.size() >= 3 ? std::move(username) : std::string()) {}

    // ---- reader side (the read claim) ----

    /// A fresh reader for a new connection's byte stream; false when it cannot be created.
    bool reset(std::size_t max_reply_bytes) {
        reader_ = std::make_unique<ReplyReader>(max_reply_bytes);
        if (reader_->ok()) return true;
        reader_.reset();
        return false;
    }
    /// Drops the reader (and any partial reply) with the connection.
    void close() noexcept { reader_.reset(); }

    /// Received bytes; a `capacity` error once the reply in progress outgrows the budget.
    Result<void> feed(const char* data, std::size_t n) { return reader_->feed(data, n); }

    /// The next complete reply, scrubbed, or nullptr; an error when the stream is broken.
    Result<ReplyPtr> next() {
        auto r = reader_->next();
        if (r && *r) scrub_secrets(**r, {password_, username_});
        return r;
    }

    // ---- FIFO (the connection's lock) ----

    /// A batch whose commands just went into the output, in wire order.
    void push(BatchPtr batch) { fifo_.push_back(std::move(batch)); }
    /// No batch waits for replies.
    bool empty() const noexcept { return fifo_.empty(); }

    /// Hands `replies` in order to the batches at the front; each batch that is complete moves to `done`.
    /// False when a reply arrived that no batch asked for (the stream is out of step: reset it).
    bool deliver(std::vector<ReplyPtr>& replies, std::vector<BatchPtr>& done) {
        for (auto& reply : replies) {
            if (fifo_.empty()) return false;
            if (fifo_.front()->add(std::move(reply))) {
                done.push_back(std::move(fifo_.front()));
                fifo_.pop_front();
            }
        }
        return true;
    }

    /// Every batch still waiting (the connection is lost: they all fail).
    std::deque<BatchPtr> take_all() noexcept { return std::exchange(fifo_, {}); }

    /// Publishes `error` (or the replies they hold) to every batch of `batches`, then wakes their
    /// sleeping callers with one call.
    template <class Batches>
    static void complete_all(Batches& batches, const std::optional<Error>& error, WakeBoard& board) {
        std::uint32_t sleepers = 0;
        for (auto& b : batches) sleepers |= b->complete(error);
        board.wake(sleepers);
    }

private:
    std::string password_, username_;
    std::unique_ptr<ReplyReader> reader_;
    std::deque<BatchPtr> fifo_;
};

}  // namespace hitbox::detail
