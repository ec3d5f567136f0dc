#pragma once
/// \file
/// The loader side of the cache front: what a loader may return (LoaderFor) and how its answer, or its
/// exception, becomes one Result<std::optional<V>> (call_loader); the outcome a load publishes to the
/// callers waiting for it (Loaded) and the guard that finishes a load's flight whatever happens
/// (LeadGuard). The single-flight table itself is cache/detail/flight.hpp. Everything that decides how an
/// upstream is called (timeouts, fail-safe values, a breaker) belongs here.
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include <hitbox/cache/detail/flight.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/metrics.hpp>

namespace hitbox {

namespace detail {

/// Tag for "deduce the value type from the loader".
struct DeduceValue {};

template <class R>
struct loader_value {
    using type = R;
};
template <class U>
struct loader_value<std::optional<U>> {
    using type = U;
};
template <class U>
struct loader_value<Result<U>> {
    using type = typename loader_value<U>::type;
};

template <class T, class F>
using cache_value_t = std::conditional_t<std::is_same_v<T, DeduceValue>,
                                         typename loader_value<std::remove_cvref_t<std::invoke_result_t<F&>>>::type, T>;

template <class R, class V>
inline constexpr bool loader_returns = std::is_same_v<R, Result<std::optional<V>>> || std::is_same_v<R, Result<V>> ||
                                       std::is_same_v<R, std::optional<V>> || std::is_convertible_v<R, V>;

/// A loader for values of type V: callable with no arguments, returning V (or something convertible),
/// std::optional<V>, Result<V> or Result<std::optional<V>>.
template <class F, class V>
concept LoaderFor = std::invocable<F&> && loader_returns<std::remove_cvref_t<std::invoke_result_t<F&>>, V>;

inline Error upstream_error(Error e) { return e.backend().empty() ? e.in("upstream") : e; }

/// A loader's answer in one shape: a value, std::nullopt (not found), or an error.
template <class V, class R>
Result<std::optional<V>> to_outcome(R&& r) {
    using D = std::remove_cvref_t<R>;
    if constexpr (std::is_same_v<D, Result<std::optional<V>>>) {
        if (!r) return fail(upstream_error(r.error()));
        return std::move(*r);
    } else if constexpr (std::is_same_v<D, Result<V>>) {
        if (!r) return fail(upstream_error(r.error()));
        return std::optional<V>(std::move(*r));
    } else if constexpr (std::is_same_v<D, std::optional<V>>) {
        return std::forward<R>(r);
    } else {
        return std::optional<V>(V(std::forward<R>(r)));
    }
}

/// Calls the loader; an exception becomes an `unavailable` error from "upstream".
template <class V, class F>
Result<std::optional<V>> call_loader(F& loader) noexcept {
    try {
        return to_outcome<V>(std::invoke(loader));
    } catch (const std::exception& e) {
        return fail(ErrorKind::unavailable, std::string("loader threw: ") + e.what(), "upstream");
    } catch (...) {
        return fail(ErrorKind::unavailable, "loader threw an exception that is not a std::exception", "upstream");
    }
}

/// A caller's loader seen through its value type only. The miss path of the cache front (coalescing,
/// timeouts, fail-safe, the lock, background refreshes) takes this instead of the loader's own type, so
/// its code is instantiated once per value type, not once per loader: a user's translation unit compiles
/// it once however many lambdas it passes. Refers to the loader (valid during the call); take() makes an
/// owning copy for work that outlives the call.
template <class V>
class LoaderRef {
public:
    /// The owning form: callable from any thread, as long as needed.
    using Owned = std::function<Result<std::optional<V>>()>;

    /// Refers to `f`; F is its forwarding type (an rvalue loader is moved, not copied, by take()).
    template <class F>
    static LoaderRef of(F&& f) noexcept {
        using Obj = std::remove_reference_t<F>;
        LoaderRef r;
        r.object_ = const_cast<void*>(static_cast<const void*>(std::addressof(f)));
        r.call_ = [](void* p) noexcept { return call_loader<V>(*static_cast<Obj*>(p)); };
        r.take_ = [](void* p) -> std::shared_ptr<Owned> {
            using L = std::decay_t<F>;
            if constexpr (std::is_constructible_v<L, F&&>) {
                auto held = std::make_shared<L>(std::forward<F>(*static_cast<Obj*>(p)));
                return std::make_shared<Owned>([held] { return call_loader<V>(*held); });
            } else {
                (void)p;
                return nullptr;  // a const move-only loader cannot be kept
            }
        };
        return r;
    }

    /// Calls the loader (or, once taken, the owned copy); an exception is an `unavailable` error.
    Result<std::optional<V>> operator()() noexcept {
        if (owned_) return (*owned_)();
        return call_(object_);
    }

    /// An owning copy of the loader (moved from it when the caller handed it over as an rvalue); null when
    /// the loader cannot be kept. Throws what the copy throws. Afterwards this reference calls the copy.
    std::shared_ptr<Owned> take() {
        if (!owned_) owned_ = take_(object_);
        return owned_;
    }

private:
    LoaderRef() = default;
    void* object_ = nullptr;
    Result<std::optional<V>> (*call_)(void*) noexcept = nullptr;
    std::shared_ptr<Owned> (*take_)(void*) = nullptr;
    std::shared_ptr<Owned> owned_;
};

/// The source of an answer that came from the loader.
inline constexpr std::string_view upstream_source = "upstream";

/// Marks, for the calling thread, the key whose loader it runs (a chain of stack frames, no allocation), so
/// that a loader asking its own cache for its own key is told so instead of waiting for itself.
class LoadingHere {
public:
    LoadingHere(const FlightTable& table, const CacheKey& key) noexcept : table_(&table), key_(&key), prev_(top_) {
        top_ = this;
    }
    LoadingHere(const LoadingHere&) = delete;
    LoadingHere& operator=(const LoadingHere&) = delete;
    ~LoadingHere() { top_ = prev_; }

    /// Whether this thread is inside a loader of `key` for `table`.
    static bool active(const FlightTable& table, const CacheKey& key) noexcept {
        for (const LoadingHere* p = top_; p != nullptr; p = p->prev_)
            if (p->table_ == &table && *p->key_ == key) return true;
        return false;
    }

private:
    const FlightTable* table_;
    const CacheKey* key_;
    const LoadingHere* prev_;
    static inline thread_local const LoadingHere* top_ = nullptr;
};

/// Finishes the flight a caller leads when an exception leaves its load before it published anything:
/// the failure is handed to a waiter or, past the retries, the waiters are told to load on their own
/// (a null outcome). So no key stays in flight and nobody waits for a load that will never finish.
class LeadGuard {
public:
    LeadGuard(FlightTable& table, const CacheKey& key, std::shared_ptr<Flight> flight, std::size_t retries) noexcept
        : table_(table), key_(key), flight_(std::move(flight)), retries_(retries) {}
    LeadGuard(const LeadGuard&) = delete;
    LeadGuard& operator=(const LeadGuard&) = delete;
    ~LeadGuard() {
        if (flight_) table_.finish(key_, flight_, nullptr, false, retries_);
    }

    /// Publishes the outcome of the load (see FlightTable::finish); the guard has nothing left to do.
    void finish(std::shared_ptr<const void> outcome, bool ok) {
        auto flight = std::move(flight_);
        table_.finish(key_, flight, std::move(outcome), ok, retries_);
    }

    /// The flight, for a load that goes on past its caller: whoever takes it must finish it.
    std::shared_ptr<Flight> release() noexcept { return std::move(flight_); }
    bool leads() const noexcept { return flight_ != nullptr; }
    const std::shared_ptr<Flight>& flight() const noexcept { return flight_; }

private:
    FlightTable& table_;
    const CacheKey& key_;
    std::shared_ptr<Flight> flight_;
    std::size_t retries_;
};

/// A load outcome as the flight publishes it to waiters.
template <class V>
struct Loaded {
    Result<std::optional<V>> result;
    CacheStatus status = CacheStatus::Miss;
    std::string_view source;     // a path the cache owns, or upstream_source
    std::optional<Error> cause;  // a stale or fail-safe value served instead of a load: the load's error
    bool fail_safe = false;      // the value is past its logical expiry (fail-safe)
    bool late = false;           // answered at a timeout: the load goes on in the background
};

/// A loader call that runs on a thread of its own, so that its caller can stop waiting (soft and hard
/// timeouts). The caller waits on `cv`; if it gives up first (`abandoned`), the thread finishes the load:
/// writes the result and ends the key's flight (`flight`, taken from the caller's LeadGuard).
template <class V>
struct TimedLoad {
    std::mutex mutex;
    std::condition_variable cv;
    bool done = false;
    bool abandoned = false;
    bool handed = false;  // after abandoned: the caller has written what it writes and handed the flight over
    Result<std::optional<V>> result{std::optional<V>{}};
    std::chrono::nanoseconds took{};
    std::shared_ptr<Flight> flight;  // set with `abandoned`: the flight the thread must finish
};

}  // namespace detail

}  // namespace hitbox
