#pragma once
/// \file
/// Lock-free latency histograms with fixed buckets (1 µs .. 10 s): hitbox::LatencyHistogram records,
/// hitbox::HistogramSnapshot is a plain copy with quantile estimates, rendered by PrometheusWriter.

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace hitbox {

/// Upper bounds of the latency histogram buckets, in nanoseconds (1 µs .. 10 s); a last, implicit bucket
/// is +Inf. Wide enough for an in-process hit (~100 ns lands in the first bucket) and a slow upstream.
inline constexpr std::array<std::int64_t, 22> latency_bucket_bounds_ns = {
    1'000,       2'500,       5'000,         10'000,        25'000,        50'000,        100'000,    250'000,
    500'000,     1'000'000,   2'500'000,     5'000'000,     10'000'000,    25'000'000,    50'000'000, 100'000'000,
    250'000'000, 500'000'000, 1'000'000'000, 2'500'000'000, 5'000'000'000, 10'000'000'000};

/// A snapshot of a LatencyHistogram: per-bucket counts (not cumulative; the last one is +Inf), the count
/// and the sum.
struct HistogramSnapshot {
    static constexpr std::size_t bucket_count = latency_bucket_bounds_ns.size() + 1;
    std::array<std::uint64_t, bucket_count> buckets{};
    std::uint64_t count = 0;
    std::uint64_t sum_ns = 0;

    /// Sum of the recorded durations in seconds.
    double sum_seconds() const noexcept { return static_cast<double>(sum_ns) / 1e9; }

    /// Upper bound of bucket i in seconds (+Inf for the last).
    static double upper_bound_seconds(std::size_t i) noexcept {
        if (i >= latency_bucket_bounds_ns.size()) return std::numeric_limits<double>::infinity();
        return static_cast<double>(latency_bucket_bounds_ns[i]) / 1e9;
    }

    /// Estimated q-quantile (0..1) in seconds, interpolated linearly inside the bucket that holds it (the
    /// way Prometheus' histogram_quantile does); 0 when empty. Accurate to the bucket width only.
    double quantile(double q) const noexcept {
        if (count == 0) return 0;
        q = std::clamp(q, 0.0, 1.0);
        const double rank = q * static_cast<double>(count);
        std::uint64_t below = 0;
        for (std::size_t i = 0; i < bucket_count; ++i) {
            if (buckets[i] == 0) continue;
            if (static_cast<double>(below + buckets[i]) >= rank) {
                const double lo = i == 0 ? 0.0 : upper_bound_seconds(i - 1);
                if (i + 1 == bucket_count) return lo;  // +Inf bucket: the last finite bound
                const double hi = upper_bound_seconds(i);
                const double within = (rank - static_cast<double>(below)) / static_cast<double>(buckets[i]);
                return lo + (hi - lo) * std::clamp(within, 0.0, 1.0);
            }
            below += buckets[i];
        }
        return upper_bound_seconds(bucket_count - 2);
    }

    /// Adds another snapshot's observations.
    HistogramSnapshot& operator+=(const HistogramSnapshot& o) noexcept {
        for (std::size_t i = 0; i < bucket_count; ++i) buckets[i] += o.buckets[i];
        count += o.count;
        sum_ns += o.sum_ns;
        return *this;
    }
};

/// A latency histogram with fixed buckets (latency_bucket_bounds_ns): two relaxed atomic additions per
/// observation (its bucket and the sum; the count is the bucket total). Thread-safe, never blocks.
class LatencyHistogram {
public:
    /// Records one duration (negative durations count as zero).
    void record(std::chrono::nanoseconds d) noexcept {
        const std::int64_t ns = std::max<std::int64_t>(0, d.count());
        std::size_t i = 0;
        while (i < latency_bucket_bounds_ns.size() && ns > latency_bucket_bounds_ns[i]) ++i;
        buckets_[i].fetch_add(1, std::memory_order_relaxed);
        sum_ns_.fetch_add(static_cast<std::uint64_t>(ns), std::memory_order_relaxed);
    }

    /// A copy of the counts (each read on its own; the count is the bucket total).
    HistogramSnapshot snapshot() const noexcept {
        HistogramSnapshot s;
        for (std::size_t i = 0; i < HistogramSnapshot::bucket_count; ++i)
            s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
        s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
        // The count is the bucket total, so a snapshot taken under load stays self-consistent.
        for (auto b : s.buckets) s.count += b;
        return s;
    }

private:
    std::array<std::atomic<std::uint64_t>, HistogramSnapshot::bucket_count> buckets_{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace hitbox
