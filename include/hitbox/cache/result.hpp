#pragma once
/// \file
/// hitbox::CacheResult<T>: what get_or_compute answers (value, status, source, error, backend errors).
#include <optional>
#include <string_view>
#include <vector>

#include <hitbox/core/error.hpp>
#include <hitbox/core/metrics.hpp>

namespace hitbox {

/// The answer of get_or_compute. Result-like: `if (r) use(*r);` tests for a value.
///
/// | outcome | value | status | source | error |
/// |---|---|---|---|---|
/// | fresh entry | the value | Hit | tier label path ("cache.memory") | nullopt |
/// | cached "not found" | nullopt | Hit | tier label path | nullopt |
/// | stale entry served | the value | Stale | tier label path | nullopt |
/// | loaded | the value | Miss | "upstream" | nullopt |
/// | loader said not found | nullopt | Miss | "upstream" | nullopt |
/// | load failed | nullopt | Miss | "upstream" | the loader's error (an exception: kind unavailable, backend "upstream") |
/// | load failed, stale entry held (Revalidate) | the stale value | Stale | tier label path | the loader's error |
/// | load failed, expired entry held (fail_safe_max) | the expired value, `fail_safe` | Stale | tier label path | the loader's error |
/// | loader past soft_timeout, stale or expired entry held | that value (`fail_safe` if expired) | Stale | tier label path | nullopt |
/// | loader past hard_timeout, nothing held | nullopt | Miss | "upstream" | kind timeout |
/// | invalid policy | nullopt | Miss | "" | kind config |
/// | a value's copy threw (handing it to this caller) | nullopt | Miss | "" | kind unavailable, message "... threw: ..." |
///
/// Backend errors never make a call fail (fail-open): they are listed in `backend_errors`, counted and
/// reported to the cache's error handler. A tier (or its weigher, or the value's copy into it) that
/// throws is such an error too: kind unavailable, message "read threw: ..." or "write threw: ...",
/// attributed to the backend.
template <class T>
struct CacheResult {
    /// The value; nullopt when not found, or when the load failed and nothing stale was held.
    std::optional<T> value;
    CacheStatus status = CacheStatus::Miss;
    /// Label path of the tier that answered ("cache.memory"), or "upstream" when the loader did (or
    /// failed). A view of a string the cache owns: valid while the cache exists.
    std::string_view source;
    /// Why no value could be produced (the loader's error), or a config error for an invalid policy.
    std::optional<Error> error;
    /// Backend read and write errors this call survived, each attributed to its tier's label path.
    std::vector<Error> backend_errors;
    /// The value is past its logical expiry, served by fail-safe (CachePolicy::fail_safe_max) because the
    /// load failed or ran past its timeout.
    bool fail_safe = false;

    /// No error: a value, or a clean "not found".
    bool ok() const noexcept { return !error.has_value(); }
    /// A value is present.
    bool found() const noexcept { return value.has_value(); }
    explicit operator bool() const noexcept { return value.has_value(); }
    T& operator*() & { return *value; }
    const T& operator*() const& { return *value; }
    T&& operator*() && { return std::move(*value); }
    T* operator->() { return &*value; }
    const T* operator->() const { return &*value; }
};

}  // namespace hitbox
