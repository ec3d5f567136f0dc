#pragma once
/// \file
/// detail::DriveSelector: who drives a busy connection's socket, chosen at run time from measured throughput.
///
/// Two strategies serve a busy connection (doc/internals/connection.md):
/// - callers: a caller writes its own commands, spins, reads the socket itself between yields and leads
///   when nobody reads. No thread hand-off, but every waiting caller stays runnable, and with many of them
///   they take the CPU from the reads and writes they wait for.
/// - io_thread: callers only queue and wait (a few yields, then sleep); the I/O thread alone writes what
///   queued, waits for the replies, reads them and wakes their callers, in a loop. Each reply costs a
///   wake-up, which on some virtual machines costs more than a round trip; with many callers that cost is
///   shared by a whole batch and the loop runs without competition.
/// Which one is faster depends on the machine (the cost of a wake-up, of a yield, the number of cores) and
/// on how many callers wait at once, so the selector measures instead of guessing: it keeps one strategy
/// for a while (`hold` epochs), then tries the other one briefly (a warm-up, then a measured probe), and
/// switches if the probe completed more batches per second than the held epochs since the last probe, by
/// `margin`. Throughput, not latency: the latency a reader sees ends at delivery, before a sleeping caller
/// is woken, and would favour the I/O thread. A probe that loses doubles the time to the next one (up to
/// `hold_max` epochs), so a machine where one strategy always wins pays little for asking; a probe that
/// wins is itself re-checked after `hold_after_switch` epochs, so a lucky one costs little. Below
/// `min_concurrency` callers waiting on average (Little's law: summed latency / elapsed time) it uses the
/// callers' strategy without probing: one or two callers lead themselves.
///
/// It knows no socket, thread or clock: the connection feeds it each delivery's completed batches and
/// their summed latency, under the connection's lock, and asks who drives (test_drive_selector).
///
/// Non-generic code.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include <hitbox/backend/redis/connection_mode.hpp>

namespace hitbox::detail {

/// The selector's timing (DriveSelector): long enough for the I/O thread's strategy to settle before it is
/// measured (on the 2-core VMs it needs tens of milliseconds after a switch); tests shorten it.
struct DriveSelectorConfig {
    std::chrono::nanoseconds epoch{std::chrono::milliseconds(16)};    ///< one measurement of the holder
    std::chrono::nanoseconds warmup{std::chrono::milliseconds(100)};  ///< after a switch, not measured
    std::chrono::nanoseconds probe{std::chrono::milliseconds(50)};    ///< the other strategy, measured
    int hold_min = 16;                                                ///< epochs before the first probe
    int hold_max = 256;                                               ///< epochs between losing probes
    int hold_after_switch = 2;     ///< epochs before the switched-from strategy is probed again
    double margin = 0.10;          ///< a probe must complete this much more
    double min_concurrency = 2.0;  ///< callers waiting, on average
};

class DriveSelector {
public:
    using Clock = std::chrono::steady_clock;

    using Config = DriveSelectorConfig;

    explicit DriveSelector(ConnectionDrive policy = ConnectionDrive::callers, Config config = {}) noexcept
        : policy_(policy), config_(config), io_(policy == ConnectionDrive::io_thread), hold_(config.hold_min) {}

    /// Whether it measures (ConnectionDrive::adaptive); otherwise `observe` changes nothing.
    bool adaptive() const noexcept { return policy_ == ConnectionDrive::adaptive; }

    /// True while the I/O thread drives a busy connection.
    bool io_thread() const noexcept { return io_; }

    /// Probes started and switches made so far (for counters and tests).
    std::uint64_t probes() const noexcept { return probes_; }
    std::uint64_t switches() const noexcept { return switches_; }

    /// One delivery at `now`: `batches` batches completed, `latency` their summed time from queued to
    /// delivered. Returns true when the driver changed.
    bool observe(Clock::time_point now, std::size_t batches, std::chrono::nanoseconds latency) noexcept {
        if (!adaptive()) return false;
        if (!started_) {
            started_ = true;
            start_phase(Phase::hold, now);
        }
        const bool before = io_;
        if (phase_ == Phase::warmup) {
            if (now - phase_start_ >= config_.warmup) start_phase(Phase::probe, now);
            return false;
        }
        batches_ += batches;
        latency_ += std::max(latency, std::chrono::nanoseconds::zero());
        const auto elapsed = now - phase_start_;
        if (phase_ == Phase::hold) {
            if (elapsed < config_.epoch) return false;
            const double concurrency = seconds(latency_) / seconds(elapsed);
            if (concurrency < config_.min_concurrency || batches_ == 0) {
                // Few callers at once: they lead themselves. A later busy spell starts probing afresh.
                io_ = false;
                hold_ = config_.hold_min;
                restart_hold(now);
                return io_ != before;
            }
            held_batches_ += batches_;
            held_time_ += elapsed;
            if (++held_ >= hold_) {
                io_ = !io_;
                ++probes_;
                start_phase(Phase::warmup, now);
            } else {
                start_phase(Phase::hold, now);
            }
            return io_ != before;
        }
        // Phase::probe
        if (elapsed < config_.probe) return false;
        const bool won = rate(batches_, elapsed) > rate(held_batches_, held_time_) * (1.0 + config_.margin);
        if (won) {
            // A probe is short and the machine noisy: let the strategy it displaced try again soon, so a
            // lucky probe costs two epochs, not a full hold.
            ++switches_;
            hold_ = config_.hold_after_switch;
        } else {
            io_ = !io_;
            hold_ = std::min(hold_ * 2, config_.hold_max);
        }
        restart_hold(now);
        return io_ != before;
    }

private:
    enum class Phase : std::uint8_t { hold, warmup, probe };

    static double seconds(std::chrono::nanoseconds d) noexcept { return static_cast<double>(d.count()) * 1e-9; }
    /// Batches completed per second.
    static double rate(std::uint64_t batches, std::chrono::nanoseconds over) noexcept {
        return over.count() <= 0 ? 0.0 : static_cast<double>(batches) / seconds(over);
    }
    /// A new hold of the strategy in force, measured from nothing.
    void restart_hold(Clock::time_point now) noexcept {
        held_ = 0;
        held_batches_ = 0;
        held_time_ = std::chrono::nanoseconds::zero();
        start_phase(Phase::hold, now);
    }
    void start_phase(Phase p, Clock::time_point now) noexcept {
        phase_ = p;
        phase_start_ = now;
        batches_ = 0;
        latency_ = std::chrono::nanoseconds::zero();
    }

    ConnectionDrive policy_;
    Config config_;
    bool io_;
    bool started_ = false;
    Phase phase_ = Phase::hold;
    Clock::time_point phase_start_{};
    std::uint64_t batches_ = 0;
    std::chrono::nanoseconds latency_{0};
    std::uint64_t held_batches_ = 0;         // batches of the holding strategy's epochs since the last probe
    std::chrono::nanoseconds held_time_{0};  // ... and those epochs' length
    int held_ = 0;                           // epochs measured since the last probe
    int hold_;                               // epochs to hold before the next probe
    std::uint64_t probes_ = 0, switches_ = 0;
};

}  // namespace hitbox::detail
