#pragma once
/// \file
/// What the cache front tells about the errors it survives: hitbox::CacheOp, hitbox::CacheErrorEvent (what
/// an error handler receives) and the default handler, a rate-limited line to std::clog.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <string>
#include <string_view>

#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/key_format/url_encoded.hpp>

namespace hitbox {

/// The operation a backend or loader error happened in.
enum class CacheOp : std::uint8_t {
    read,        ///< reading a tier (treated as a miss)
    write,       ///< writing a loaded value or a "not found" (the value is still served)
    revalidate,  ///< a background refresh whose loader failed (the stale entry stays)
};

/// Stable lower-case name ("read", "write", "revalidate").
constexpr std::string_view to_string(CacheOp op) noexcept {
    switch (op) {
        case CacheOp::read: return "read";
        case CacheOp::write: return "write";
        case CacheOp::revalidate: return "revalidate";
    }
    return "unknown";
}

/// What the error handler is told. The references are valid during the call only.
struct CacheErrorEvent {
    CacheOp op;
    const CacheKey& key;
    const Error& error;
};

namespace detail {

/// The default error handler: one line to std::clog per second at most; the lines skipped are counted.
inline void log_cache_error(const CacheErrorEvent& e) {
    static std::atomic<std::int64_t> next_ms{0};
    static std::atomic<std::uint64_t> skipped{0};
    const std::int64_t now =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count();
    std::int64_t next = next_ms.load(std::memory_order_relaxed);
    if (now < next || !next_ms.compare_exchange_strong(next, now + 1000, std::memory_order_relaxed)) {
        skipped.fetch_add(1, std::memory_order_relaxed);
        return;
    }
    std::string key = UrlEncoded{}.encode(e.key);
    if (key.size() > 120) key = key.substr(0, 120) + "...";
    std::string line =
        "hitbox cache: " + std::string(to_string(e.op)) + " failed for key " + key + ": " + e.error.what();
    if (auto n = skipped.exchange(0, std::memory_order_relaxed))
        line += " (" + std::to_string(n) + " more cache errors not shown)";
    std::clog << line << '\n';
}

}  // namespace detail

}  // namespace hitbox
