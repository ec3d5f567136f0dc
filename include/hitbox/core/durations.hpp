#pragma once
/// \file
/// Duration histograms of a tier's stages (the Rust hitbox's `hitbox_backend_{read,write}_duration_seconds`
/// and `hitbox_backend_{serialize,deserialize,compress,decompress}_duration_seconds`): hitbox::TierStage,
/// the opt-in switch hitbox::DurationHistograms, the snapshot hitbox::DurationStats with its Prometheus
/// export (the `hitbox_write_stats` customization point), and the live, striped histograms behind it.
///
/// Off by default: a tier built without them holds a null pointer and its operations read no clock. On
/// (`.duration_histograms()` on the MemoryBackend and RedisBackend builders), each timed stage costs two
/// steady-clock reads and two relaxed atomic additions in the calling thread's stripe.

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <utility>

#include <hitbox/core/histogram.hpp>
#include <hitbox/core/linkage.hpp>
#include <hitbox/core/prometheus.hpp>

namespace hitbox {

/// A stage of a tier's work that a duration histogram times.
enum class TierStage : std::uint8_t {
    read,         ///< one store round trip of a lookup (a get_many batch is one); a memory tier's lookup
    write,        ///< one store round trip of a write (a set_many batch is one); a memory tier's insert
    serialize,    ///< the value format encoding a value
    deserialize,  ///< the value format decoding a value
    compress,     ///< the compressor packing a payload
    decompress,   ///< the compressor unpacking a payload
};

/// Number of TierStage values.
inline constexpr std::size_t tier_stage_count = 6;

/// Stable lower-case name of a stage ("read", "write", "serialize", ...).
constexpr std::string_view to_string(TierStage s) noexcept {
    switch (s) {
        case TierStage::read: return "read";
        case TierStage::write: return "write";
        case TierStage::serialize: return "serialize";
        case TierStage::deserialize: return "deserialize";
        case TierStage::compress: return "compress";
        case TierStage::decompress: return "decompress";
    }
    return "unknown";
}

/// Whether a tier records duration histograms. Off (the default) costs a null-pointer test per operation.
enum class DurationHistograms : bool { off = false, on = true };

/// A snapshot of a tier's duration histograms (`tier.durations()`). Plain values: copy, diff, export.
/// `enabled` is false for a tier built without them (every histogram empty, nothing exported).
struct DurationStats {
    bool enabled = false;
    std::string_view format;      ///< the value format's name ("binary", "json"); empty for a typed tier
    std::string_view compressor;  ///< the compressor's name ("zstd", "passthrough"); empty for a typed tier
    std::array<HistogramSnapshot, tier_stage_count> stages{};

    /// The histogram of one stage.
    const HistogramSnapshot& operator[](TierStage s) const noexcept { return stages[static_cast<std::size_t>(s)]; }
    HistogramSnapshot& operator[](TierStage s) noexcept { return stages[static_cast<std::size_t>(s)]; }
};

/// `hitbox_backend_{read,write}_duration_seconds{backend}`, and for a byte tier
/// `hitbox_backend_{serialize,deserialize}_duration_seconds{backend,format}` and
/// `hitbox_backend_{compress,decompress}_duration_seconds{backend,compressor}`; nothing when not enabled.
/// Every stage the tier has is written when enabled, observed or not, so rates start at zero.
HITBOX_LIB_INLINE void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const DurationStats& s);

namespace detail {

/// The live histograms behind DurationStats, striped as the byte counters are (each thread records into
/// one of `stripe_count` cache-line aligned copies), so timing a memory tier's hits from many cores does
/// not make every hit fight over one bucket. About 18 KiB, allocated only when enabled.
class StageTimers {
public:
    static constexpr std::size_t stripe_count = 16;

    /// Records `took` for `stage` in the calling thread's stripe.
    void record(TierStage stage, std::chrono::nanoseconds took) noexcept {
        local_().stages[static_cast<std::size_t>(stage)].record(took);
    }

    /// The stripes added up.
    DurationStats snapshot(std::string_view format = {}, std::string_view compressor = {}) const noexcept {
        DurationStats s;
        s.enabled = true;
        s.format = format;
        s.compressor = compressor;
        for (const auto& stripe : stripes_)
            for (std::size_t i = 0; i < tier_stage_count; ++i) s.stages[i] += stripe.stages[i].snapshot();
        return s;
    }

private:
    struct alignas(64) Stripe {
        std::array<LatencyHistogram, tier_stage_count> stages;
    };

    Stripe& local_() noexcept {
        static std::atomic<std::size_t> next{0};
        thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed) % stripe_count;
        return stripes_[index];
    }

    std::array<Stripe, stripe_count> stripes_;
};

/// Timers for a tier built with `on`, or null.
inline std::shared_ptr<StageTimers> make_stage_timers(DurationHistograms on) {
    return on == DurationHistograms::on ? std::make_shared<StageTimers>() : nullptr;
}

/// Times one stage from its construction to its destruction (when `f` throws too).
class StageClock {
public:
    StageClock(StageTimers& timers, TierStage stage) noexcept
        : timers_(timers), stage_(stage), start_(std::chrono::steady_clock::now()) {}
    ~StageClock() { timers_.record(stage_, std::chrono::steady_clock::now() - start_); }
    StageClock(const StageClock&) = delete;
    StageClock& operator=(const StageClock&) = delete;

private:
    StageTimers& timers_;
    TierStage stage_;
    std::chrono::steady_clock::time_point start_;
};

/// Records the time since `start` as `stage` (out of line: the callers are hit paths).
[[gnu::noinline, gnu::cold]] inline void record_since(StageTimers* timers, TierStage stage,
                                                      std::chrono::steady_clock::time_point start) noexcept {
    timers->record(stage, std::chrono::steady_clock::now() - start);
}

/// Times one stage from its construction to its destruction when `timers` is not null; with null timers it
/// reads no clock and costs two pointer tests. For a function whose body must stay one piece (a hit path).
class OptionalStageClock {
public:
    OptionalStageClock(StageTimers* timers, TierStage stage) noexcept : timers_(timers), stage_(stage) {
        if (timers_ != nullptr) [[unlikely]]
            start_ = std::chrono::steady_clock::now();
    }
    ~OptionalStageClock() {
        if (timers_ != nullptr) [[unlikely]]
            record_since(timers_, stage_, start_);
    }
    OptionalStageClock(const OptionalStageClock&) = delete;
    OptionalStageClock& operator=(const OptionalStageClock&) = delete;

private:
    StageTimers* timers_;
    TierStage stage_;
    std::chrono::steady_clock::time_point start_{};
};

/// `f()` timed: kept out of line, so that a hit path with the histograms off compiles to what it was.
template <class F>
[[gnu::noinline]] decltype(auto) timed_call(StageTimers& timers, TierStage stage, F&& f) {
    const StageClock clock(timers, stage);
    return std::forward<F>(f)();
}

/// Runs `f()` and, when `timers` is not null, records how long it took as `stage` (also when it throws).
/// With null timers this is `f()` after one pointer test: no clock is read. The result is not moved.
template <class F>
decltype(auto) timed(StageTimers* timers, TierStage stage, F&& f) {
    if (timers == nullptr) [[likely]]
        return std::forward<F>(f)();
    return timed_call(*timers, stage, std::forward<F>(f));
}

}  // namespace detail

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/core/detail/durations_impl.hpp>
#endif
