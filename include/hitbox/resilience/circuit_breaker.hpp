#pragma once
/// \file
/// hitbox::CircuitBreaker<Tier>: a tier that stops calling the tier it wraps while that tier keeps failing.
///
/// A Redis that accepts connections but answers slowly costs every call its full command timeout; a dead
/// one costs every call a connect attempt or a backoff error. After `failures` counted errors within
/// `window`, the breaker **opens**: for `cool_down` every call returns at once with an `unavailable` error
/// ("circuit open") without touching the tier, so a composition treats the tier as a miss and the other
/// tiers and the loader keep serving. Then one call is let through as a **probe**: its success closes the
/// breaker, its failure opens it for another cool-down. Counted errors are those that say the tier is
/// unhealthy (connection, timeout, cluster_down, tls, unavailable by default), not those that say an entry
/// is bad (decode, type_mismatch, ...).
///
/// \code
/// auto redis = hitbox::RedisBackend<>::builder().connection(...).build();
/// auto tiers = hitbox::compose(std::move(*memory),
///                              hitbox::circuit_breaker(std::move(*redis), {.failures = 5, .cool_down = 5s}),
///                              offload);
/// \endcode
///
/// Cost while closed: one relaxed atomic load per call (and a lock only when an error is counted).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/prometheus.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox {

/// A set of error kinds (which errors a breaker counts).
class ErrorKinds {
public:
    constexpr ErrorKinds() noexcept = default;
    constexpr ErrorKinds(std::initializer_list<ErrorKind> kinds) noexcept {
        for (auto k : kinds) bits_ |= bit(k);
    }
    constexpr bool contains(ErrorKind k) const noexcept { return (bits_ & bit(k)) != 0; }

private:
    static constexpr std::uint32_t bit(ErrorKind k) noexcept { return std::uint32_t{1} << static_cast<unsigned>(k); }
    std::uint32_t bits_ = 0;
};

/// The settings of a CircuitBreaker. Every duration may be `max()` (saturating: a window of max() counts
/// every failure ever, a cool-down of max() never probes again); a negative one counts as 0 (a window of 0
/// opens only on `failures` errors within one clock tick, a cool-down of 0 probes with the next call).
struct BreakerOptions {
    /// Counted errors within `window` that open it (0 or 1: the first). The breaker keeps the time of each
    /// of the last `failures`, so a larger value counts as `max_failures`.
    std::uint32_t failures = 5;
    static constexpr std::uint32_t max_failures = 65'536;
    std::chrono::milliseconds window = std::chrono::seconds(10);
    std::chrono::milliseconds cool_down = std::chrono::seconds(5);  ///< how long calls skip the tier
    /// The errors that count against the tier.
    ErrorKinds trips_on = {ErrorKind::connection, ErrorKind::timeout, ErrorKind::cluster_down, ErrorKind::tls,
                           ErrorKind::unavailable};
};

/// Where a breaker stands.
enum class BreakerState : std::uint8_t {
    closed,     ///< calls reach the tier
    open,       ///< calls fail at once until the cool-down ends
    half_open,  ///< one probe call is on its way to the tier; the others still fail at once
};

/// Stable lower-case name ("closed", "open", "half_open"), used in metrics.
constexpr std::string_view to_string(BreakerState s) noexcept {
    switch (s) {
        case BreakerState::closed: return "closed";
        case BreakerState::open: return "open";
        case BreakerState::half_open: return "half_open";
    }
    return "unknown";
}

/// A snapshot of a breaker's counters.
struct BreakerStats {
    BreakerState state = BreakerState::closed;
    std::uint64_t failures = 0;         ///< counted errors from the tier
    std::uint64_t opened = 0;           ///< times it opened (including after a failed probe)
    std::uint64_t short_circuited = 0;  ///< calls answered without reaching the tier
    std::uint64_t probes = 0;           ///< calls let through after a cool-down
};

/// `hitbox_breaker_state{backend}` (gauge: 0 closed, 1 open, 2 half open) and
/// `hitbox_breaker_{failures,opened,short_circuited,probes}_total{backend}`.
inline void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const BreakerStats& s) {
    const PrometheusWriter::Labels labels = {{"backend", backend}};
    out.gauge("hitbox_breaker_state", "Circuit breaker state per backend: 0 closed, 1 open, 2 half open.", labels,
              static_cast<double>(static_cast<int>(s.state)));
    out.counter("hitbox_breaker_failures_total", "Errors counted against a tier by its circuit breaker.", labels,
                s.failures);
    out.counter("hitbox_breaker_opened_total", "Times a circuit breaker opened.", labels, s.opened);
    out.counter("hitbox_breaker_short_circuited_total", "Calls a circuit breaker answered without the tier.", labels,
                s.short_circuited);
    out.counter("hitbox_breaker_probes_total", "Calls a circuit breaker let through after its cool-down.", labels,
                s.probes);
}

/// The stats of a tier behind a CircuitBreaker: the tier's own and the breaker's, exported together.
template <class S>
struct BreakerTierStats {
    S tier;
    BreakerStats breaker;
};

template <class S>
void hitbox_write_stats(PrometheusWriter& out, std::string_view backend, const BreakerTierStats<S>& s) {
    write_backend_stats(out, backend, s.tier);
    hitbox_write_stats(out, backend, s.breaker);
}

namespace detail {

/// The state a breaker and its copies share.
class BreakerCore {
public:
    explicit BreakerCore(const BreakerOptions& o)
        : options_(normalized(o)), times_(std::clamp<std::uint32_t>(o.failures, 1, BreakerOptions::max_failures)) {}

    /// What a call may do now.
    enum class Admit : std::uint8_t { pass, probe, reject };

    /// `now()` gives the time; it is read only when the breaker is not closed.
    template <class Now>
    Admit admit(Now&& now) {
        auto s = state_.load(std::memory_order_acquire);
        if (s == BreakerState::closed) return Admit::pass;
        if (s == BreakerState::half_open) {
            short_circuited_.fetch_add(1, std::memory_order_relaxed);
            return Admit::reject;
        }
        std::lock_guard<std::mutex> lk(mu_);
        s = state_.load(std::memory_order_relaxed);
        if (s == BreakerState::open && cool_down_over_locked(now())) {
            state_.store(BreakerState::half_open, std::memory_order_release);
            probes_.fetch_add(1, std::memory_order_relaxed);
            return Admit::probe;
        }
        if (s == BreakerState::closed) return Admit::pass;
        short_circuited_.fetch_add(1, std::memory_order_relaxed);
        return Admit::reject;
    }

    /// Whether a call admitted as `admitted` that returned `counted` (its counted error, or nullptr) has
    /// anything to record: not a passed call that succeeded, the common case.
    static bool worth_recording(Admit admitted, const Error* counted) noexcept {
        return counted != nullptr || admitted != Admit::pass;
    }

    /// The outcome of a call that reached the tier: `counted` is its counted error (kept for the
    /// rejection message), nullptr when it succeeded or its error does not count.
    void record(Admit admitted, const Error* counted, TimePoint now) {
        const bool failed = counted != nullptr;
        std::lock_guard<std::mutex> lk(mu_);
        if (failed) last_error_ = *counted;
        if (admitted == Admit::probe) {
            if (failed) {
                failures_.fetch_add(1, std::memory_order_relaxed);
                open_locked(now);
            } else {
                count_ = 0;
                state_.store(BreakerState::closed, std::memory_order_release);
            }
            return;
        }
        failures_.fetch_add(1, std::memory_order_relaxed);
        if (state_.load(std::memory_order_relaxed) != BreakerState::closed) return;
        // The last `failures` failure times, oldest first at next_: open when the oldest of them is
        // within the window.
        times_[next_] = now;
        next_ = (next_ + 1) % times_.size();
        if (count_ < times_.size()) ++count_;
        if (count_ < times_.size()) return;
        const TimePoint oldest = times_[next_];
        if (saturating_sub(now, oldest) <= options_.window) open_locked(now);
    }

    /// A probe that neither succeeded nor failed (its tier threw): open again.
    void abandon_probe(TimePoint now) {
        std::lock_guard<std::mutex> lk(mu_);
        open_locked(now);
    }

    Error rejection(TimePoint now) const {
        std::lock_guard<std::mutex> lk(mu_);
        std::string msg = "circuit breaker open after " + std::to_string(times_.size()) + " failures within " +
                          std::to_string(options_.window.count()) + " ms";
        if (state_.load(std::memory_order_relaxed) == BreakerState::half_open) {
            msg += "; a probe is on its way";
        } else if (options_.cool_down != std::chrono::milliseconds::max()) {
            const auto left = saturating_sub(saturating_add(opened_at_, options_.cool_down), now);
            msg += "; next probe in " + std::to_string(std::max<std::int64_t>(left.count(), 0)) + " ms";
        }
        if (last_error_)
            msg += " (last: " + std::string(to_string(last_error_->kind())) + ": " + last_error_->message() + ")";
        return Error(ErrorKind::unavailable, std::move(msg));
    }

    bool counts(const Error& e) const noexcept { return options_.trips_on.contains(e.kind()); }

    BreakerStats stats() const noexcept {
        BreakerStats s;
        s.state = state_.load(std::memory_order_acquire);
        s.failures = failures_.load(std::memory_order_relaxed);
        s.opened = opened_.load(std::memory_order_relaxed);
        s.short_circuited = short_circuited_.load(std::memory_order_relaxed);
        s.probes = probes_.load(std::memory_order_relaxed);
        return s;
    }

    const BreakerOptions& options() const noexcept { return options_; }

private:
    static BreakerOptions normalized(BreakerOptions o) noexcept {
        o.window = std::max(o.window, std::chrono::milliseconds::zero());
        o.cool_down = std::max(o.cool_down, std::chrono::milliseconds::zero());
        return o;
    }

    bool cool_down_over_locked(TimePoint now) const noexcept {
        if (now < opened_at_) return true;  // the wall clock went back: do not stay open for the jump
        return saturating_sub(now, opened_at_) >= options_.cool_down;
    }

    void open_locked(TimePoint now) noexcept {
        opened_at_ = now;
        count_ = 0;
        opened_.fetch_add(1, std::memory_order_relaxed);
        state_.store(BreakerState::open, std::memory_order_release);
    }

    BreakerOptions options_;
    std::atomic<BreakerState> state_{BreakerState::closed};
    std::atomic<std::uint64_t> failures_{0}, opened_{0}, short_circuited_{0}, probes_{0};
    mutable std::mutex mu_;
    std::vector<TimePoint> times_;     // ring of the latest failure times (mu_)
    std::size_t next_ = 0;             // (mu_)
    std::size_t count_ = 0;            // (mu_)
    TimePoint opened_at_{};            // (mu_)
    std::optional<Error> last_error_;  // (mu_)
};

}  // namespace detail

/// A tier wrapped by a circuit breaker (see the file comment). Models Backend; get_many / set_many and
/// the raw layer (read / write / codec) are there when the tier has them. Copies share the breaker.
template <Backend Tier, ClockSource C = SystemClock>
class CircuitBreaker {
public:
    using tier_type = Tier;

    explicit CircuitBreaker(Tier tier, BreakerOptions options = {}, C clock = {})
        : tier_(std::move(tier)), core_(std::make_shared<detail::BreakerCore>(options)), clock_(std::move(clock)) {}

    CircuitBreaker(const CircuitBreaker&) = default;
    CircuitBreaker& operator=(const CircuitBreaker&) = default;
    /// Moving copies (tiers and clocks are handles): a breaker moved from is still a working breaker on the
    /// same state, never an empty one that a later call would trip over. A tier that cannot be copied is
    /// moved, and the breaker moved from answers as that tier's moved-from object does.
    CircuitBreaker(CircuitBreaker&& other) noexcept(nothrow_move_)
        : tier_(kept_(other.tier_)), core_(other.core_), clock_(other.clock_) {}
    CircuitBreaker& operator=(CircuitBreaker&& other) {
        tier_ = kept_(other.tier_);
        core_ = other.core_;
        clock_ = other.clock_;
        return *this;
    }
    ~CircuitBreaker() = default;

    template <class T>
    Result<std::optional<CacheValue<T>>> get(const CacheKey& key) {
        return guarded([&] { return tier_.template get<T>(key); });
    }

    template <class T>
    Result<void> set(const CacheKey& key, const CacheValue<T>& value) {
        return guarded([&] { return tier_.template set<T>(key, value); });
    }

    Result<bool> remove(const CacheKey& key) {
        return guarded([&] { return tier_.remove(key); });
    }

    /// One admission for the whole batch; one counted failure when any result has a counted error.
    template <class T>
        requires requires(Tier& t, std::span<const CacheKey> k) { t.template get_many<T>(k); }
    std::vector<Result<std::optional<CacheValue<T>>>> get_many(std::span<const CacheKey> keys) {
        return guarded_many(keys.size(), [&] { return tier_.template get_many<T>(keys); });
    }

    template <class T>
        requires requires(Tier& t, std::span<const std::pair<CacheKey, CacheValue<T>>> e) { t.template set_many<T>(e); }
    std::vector<Result<void>> set_many(std::span<const std::pair<CacheKey, CacheValue<T>>> entries) {
        return guarded_many(entries.size(), [&] { return tier_.template set_many<T>(entries); });
    }

    /// The raw layer of a byte tier (for AnyBackend), behind the same breaker.
    auto read(const CacheKey& key) requires requires(Tier& t) { t.read(key); }
    {
        return guarded([&] { return tier_.read(key); });
    }
    template <class Expect, class Decompress>
    auto read_payload(const CacheKey& key, const Expect& expect, Decompress&& decompress) requires requires(Tier& t) {
        t.read_payload(key, expect, decompress);
    }
    {
        return guarded([&] { return tier_.read_payload(key, expect, decompress); });
    }
    auto error_counter() const requires requires(const Tier& t) { t.error_counter(); }
    { return tier_.error_counter(); }
    template <class Ttl>
    auto write(const CacheKey& key, std::string_view envelope, Ttl ttl) requires requires(Tier& t) {
        t.write(key, envelope, ttl);
    }
    {
        return guarded([&] { return tier_.write(key, envelope, ttl); });
    }
    decltype(auto) codec() const requires requires(const Tier& t) { t.codec(); }
    { return tier_.codec(); }

    /// The tier's lock (hitbox::LockingBackend), behind the same breaker.
    template <class Rep, class Period>
    Result<bool> try_lock(const CacheKey& key, std::string_view token,
                          std::chrono::duration<Rep, Period> ttl) requires LockingBackend<Tier> {
        const std::chrono::milliseconds ms = detail::saturating_ms(ttl);
        return guarded([&] { return tier_.try_lock(key, token, ms); });
    }
    Result<bool> unlock(const CacheKey& key, std::string_view token) requires LockingBackend<Tier> {
        return guarded([&] { return tier_.unlock(key, token); });
    }

    std::string_view label() const noexcept { return tier_.label(); }

    /// The breaker's counters and state.
    BreakerStats breaker_stats() const noexcept { return core_->stats(); }
    /// The wrapped tier's stats and the breaker's (exported together by prometheus_text); the breaker's
    /// alone when the tier has none.
    auto stats() const {
        if constexpr (requires(const Tier& t) { t.stats(); })
            return BreakerTierStats<std::decay_t<decltype(tier_.stats())>>{tier_.stats(), core_->stats()};
        else
            return core_->stats();
    }

    /// The wrapped tier's duration histograms (hitbox::ReportsDurations), when it has them.
    auto durations() const requires ReportsDurations<Tier> { return tier_.durations(); }

    /// The wrapped tier (its connection, stats, ...).
    Tier& tier() noexcept { return tier_; }
    const Tier& tier() const noexcept { return tier_; }
    const BreakerOptions& options() const noexcept { return core_->options(); }

private:
    using Admit = detail::BreakerCore::Admit;

    /// Runs `call` unless the breaker rejects it, and records its outcome. Closed and successful, this
    /// costs one atomic load: the clock is read only when there is something to decide or record.
    template <class F>
    auto guarded(F&& call) -> decltype(call()) {
        const auto admitted = admit();
        if (admitted == Admit::reject) return fail(core_->rejection(clock_.now()).in(tier_.label()));
        auto r = run_(admitted, call);
        finish(admitted, r || !core_->counts(r.error()) ? nullptr : &r.error());
        return r;
    }

    template <class F>
    auto guarded_many(std::size_t n, F&& call) -> decltype(call()) {
        const auto admitted = admit();
        if (admitted == Admit::reject) {
            decltype(call()) out;
            out.reserve(n);
            const Error e = core_->rejection(clock_.now()).in(tier_.label());
            for (std::size_t i = 0; i < n; ++i) out.push_back(fail(e));
            return out;
        }
        auto rs = run_(admitted, call);
        const Error* first = nullptr;
        for (const auto& r : rs)
            if (!r && core_->counts(r.error())) {
                first = &r.error();
                break;
            }
        finish(admitted, first);
        return rs;
    }

    Admit admit() {
        return core_->admit([this] { return clock_.now(); });
    }

    void finish(Admit admitted, const Error* counted) {
        if (detail::BreakerCore::worth_recording(admitted, counted)) core_->record(admitted, counted, clock_.now());
    }

    /// Calls the tier. An exception it throws goes on to the caller (a composition or the cache front
    /// turns it into an `unavailable` error), and on its way counts here as that error: a tier that keeps
    /// throwing opens the breaker like one that keeps failing (when `trips_on` has `unavailable`, as by
    /// default). A probe that threw never leaves the breaker half open.
    template <class F>
    auto run_(Admit admitted, F& call) -> decltype(call()) {
        try {
            return call();
        } catch (...) {
            try {
                threw_(admitted);
            } catch (...) {  // out of memory while recording: the tier's own exception still goes on
            }
            throw;
        }
    }

    /// In a handler: records the exception being handled as the tier's `unavailable` error.
    void threw_(Admit admitted) {
        const Error e = detail::exception_error("the tier", std::string(tier_.label()));
        if (core_->counts(e))
            core_->record(admitted, &e, clock_.now());
        else if (admitted == Admit::probe)
            core_->abandon_probe(clock_.now());
    }

    static constexpr bool nothrow_move_ =
        (std::is_copy_constructible_v<Tier>
             ? std::is_nothrow_copy_constructible_v<Tier>
             : std::is_nothrow_move_constructible_v<Tier>)&&std::is_nothrow_copy_constructible_v<C>;

    /// What a move takes of the other breaker's tier: a copy when there can be one.
    static decltype(auto) kept_(Tier& tier) noexcept {
        if constexpr (std::is_copy_constructible_v<Tier>)
            return static_cast<const Tier&>(tier);
        else
            return std::move(tier);
    }

    Tier tier_;
    std::shared_ptr<detail::BreakerCore> core_;
    [[no_unique_address]] C clock_;
};

/// `CircuitBreaker<Tier>{std::move(tier), options}`.
template <class Tier>
CircuitBreaker<std::decay_t<Tier>> circuit_breaker(Tier&& tier, BreakerOptions options = {}) {
    return CircuitBreaker<std::decay_t<Tier>>(std::forward<Tier>(tier), options);
}

}  // namespace hitbox
