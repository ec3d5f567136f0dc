#pragma once
/// \file
/// hitbox::ByteStats, the counters of a byte-storing tier (ByteBackend, RedisBackend), its Prometheus export
/// (the `hitbox_write_stats` customization point, see hitbox::ExportableStats) and the striped live counters
/// behind them. Needs no hiredis.

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <hitbox/core/error.hpp>
#include <hitbox/core/linkage.hpp>
#include <hitbox/core/prometheus.hpp>

namespace hitbox {

/// A snapshot of a byte tier's counters (ByteBackend, so RedisBackend; shared by its copies). Plain values:
/// copy, diff, export.
struct ByteStats {
    std::uint64_t reads = 0;      ///< keys looked up (get, each key of get_many, read), failed ones too
    std::uint64_t writes = 0;     ///< entries written (set, each of set_many, write), expired and failed too
    std::uint64_t removes = 0;    ///< remove calls
    std::uint64_t hits = 0;       ///< lookups that returned a value
    std::uint64_t misses = 0;     ///< lookups of a missing (or expired) key
    std::uint64_t bytes_in = 0;   ///< stored bytes received (envelope + payload; keys and the store's framing excluded)
    std::uint64_t bytes_out = 0;  ///< stored bytes sent (envelope + payload)
    std::array<std::uint64_t, error_kind_count> errors{};  ///< failed operations, indexed by ErrorKind

    /// Failures of one kind.
    std::uint64_t errors_of(ErrorKind kind) const noexcept { return errors[static_cast<std::size_t>(kind)]; }
    /// Failures of every kind.
    std::uint64_t error_total() const noexcept {
        std::uint64_t n = 0;
        for (auto e : errors) n += e;
        return n;
    }
};

/// `hitbox_backend_{read,write,read_bytes,write_bytes,hits,misses}_total` and
/// `hitbox_backend_errors_total{kind}` (kinds with no failure left out), labelled `backend`.
HITBOX_LIB_INLINE void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const ByteStats& s);

namespace detail {

/// The live counters behind ByteStats, striped: each thread counts into one of `stripe_count` cache-line
/// aligned copies (threads are dealt out in the order they first count), so threads on different cores do
/// not fight over one cache line for every operation; a snapshot adds the stripes up.
struct ByteCounters {
    struct alignas(64) Stripe {
        std::atomic<std::uint64_t> reads{0}, writes{0}, removes{0}, hits{0}, misses{0}, bytes_in{0}, bytes_out{0};
        std::array<std::atomic<std::uint64_t>, error_kind_count> errors{};
    };
    static constexpr std::size_t stripe_count = 16;
    std::array<Stripe, stripe_count> stripes;

    /// The calling thread's stripe.
    Stripe& local() noexcept {
        static std::atomic<std::size_t> next{0};
        thread_local const std::size_t index = next.fetch_add(1, std::memory_order_relaxed) % stripe_count;
        return stripes[index];
    }

    static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
        c.fetch_add(n, std::memory_order_relaxed);
    }

    ByteStats snapshot() const noexcept {
        ByteStats s;
        auto sum = [&](const std::atomic<std::uint64_t> Stripe::*field) {
            std::uint64_t n = 0;
            for (const auto& stripe : stripes) n += (stripe.*field).load(std::memory_order_relaxed);
            return n;
        };
        s.reads = sum(&Stripe::reads);
        s.writes = sum(&Stripe::writes);
        s.removes = sum(&Stripe::removes);
        s.hits = sum(&Stripe::hits);
        s.misses = sum(&Stripe::misses);
        s.bytes_in = sum(&Stripe::bytes_in);
        s.bytes_out = sum(&Stripe::bytes_out);
        for (const auto& stripe : stripes)
            for (std::size_t i = 0; i < error_kind_count; ++i)
                s.errors[i] += stripe.errors[i].load(std::memory_order_relaxed);
        return s;
    }
};

}  // namespace detail

}  // namespace hitbox

// The definitions: included here in a header-only build, compiled once into the hitbox library otherwise.
#if !HITBOX_COMPILED_LIB
#include <hitbox/backend/detail/byte_stats_impl.hpp>
#endif
