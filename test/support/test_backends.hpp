#pragma once
// Reusable test doubles that are Backends (policies, not mocks): use them wherever a test needs a tier
// whose behaviour it controls.
//
//   CountingBackend   typed values in a map, counts every call, honours expiry through a clock policy
//                     (ManualClock in tests), optional hooks run before each call (latches, delays).
//   FailingBackend    a CountingBackend whose get / set / remove fail on demand, with a chosen error kind,
//                     for a number of calls or until healed.
//   EnvelopeBackend   a byte-storing tier: keeps EntryCodec envelopes (like Redis does) and counts encodes
//                     and decodes, to check which tier serializes.
//
// All three are handles: copies share one store, counters and switches, so a test can move a copy into a
// composition and keep inspecting its own. Thread-safe.

#include <any>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include <hitbox/backend/redis/envelope.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/value.hpp>

namespace hitbox_test {

/// The three Backend operations, for failure switches and hooks.
enum class Op : std::uint8_t { get = 0, set = 1, remove = 2 };

/// A snapshot of a test backend's call counters.
struct BackendCounts {
    std::uint64_t gets = 0;
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t sets = 0;
    std::uint64_t removes = 0;
    std::uint64_t errors = 0;  ///< calls that returned an error (injected or type mismatch)
};

namespace detail {

/// Counters, failure switches and hooks shared by every test backend.
struct Instrumentation {
    explicit Instrumentation(std::string l) : label(std::move(l)) {}

    std::string label;
    std::atomic<std::uint64_t> gets{0}, hits{0}, misses{0}, sets{0}, removes{0}, errors{0};
    std::mutex switch_mutex;
    std::optional<hitbox::Error> failure[3];
    long failures_left[3] = {0, 0, 0};  // < 0: until healed
    std::function<void(const hitbox::CacheKey&)> hook[3];

    BackendCounts counts() const {
        return {gets.load(), hits.load(), misses.load(), sets.load(), removes.load(), errors.load()};
    }

    /// Runs the hook for `op` (outside any lock) and returns the injected error, if this call must fail.
    std::optional<hitbox::Error> before(Op op, const hitbox::CacheKey& key) {
        const auto i = static_cast<int>(op);
        std::function<void(const hitbox::CacheKey&)> h;
        {
            std::lock_guard lock(switch_mutex);
            h = hook[i];
        }
        if (h) h(key);
        std::lock_guard lock(switch_mutex);
        if (!failure[i] || failures_left[i] == 0) return std::nullopt;
        if (failures_left[i] > 0) --failures_left[i];
        errors.fetch_add(1);
        return failure[i];
    }
};

}  // namespace detail

/// A Backend storing CacheValue<T> objects (std::any) in a map: no serialization, like an in-process tier.
/// A get of a key stored as another type is a type_mismatch error; an entry expired by the clock is a
/// miss (and is erased), as the Backend laws require.
///
/// \code
/// hitbox::ManualClock clock;
/// hitbox_test::BasicCountingBackend<hitbox::ManualClock> l1{"memory", clock};
/// l1.on(hitbox_test::Op::get, [&](const hitbox::CacheKey&) { latch.wait(); });   // block inside get
/// \endcode
template <hitbox::ClockSource Clock = hitbox::SystemClock>
class BasicCountingBackend {
public:
    explicit BasicCountingBackend(std::string label = "counting", Clock clock = {})
        : s_(std::make_shared<State>(std::move(label))), clock_(std::move(clock)) {}

    template <class T>
    hitbox::Result<std::optional<hitbox::CacheValue<T>>> get(const hitbox::CacheKey& key) {
        s_->gets.fetch_add(1);
        if (auto e = s_->before(Op::get, key)) return hitbox::fail(*e);
        std::lock_guard lock(s_->mutex);
        auto it = s_->map.find(key);
        if (it == s_->map.end()) {
            s_->misses.fetch_add(1);
            return std::optional<hitbox::CacheValue<T>>{};
        }
        const auto* v = std::any_cast<hitbox::CacheValue<T>>(&it->second);
        if (!v) {
            s_->errors.fetch_add(1);
            return hitbox::fail(hitbox::ErrorKind::type_mismatch, "stored as another type", s_->label);
        }
        if (v->state(clock_.now()) == hitbox::EntryState::Expired) {
            s_->map.erase(it);
            s_->misses.fetch_add(1);
            return std::optional<hitbox::CacheValue<T>>{};
        }
        s_->hits.fetch_add(1);
        return std::optional<hitbox::CacheValue<T>>(*v);
    }

    template <class T>
    hitbox::Result<void> set(const hitbox::CacheKey& key, const hitbox::CacheValue<T>& value) {
        s_->sets.fetch_add(1);
        if (auto e = s_->before(Op::set, key)) return hitbox::fail(*e);
        std::lock_guard lock(s_->mutex);
        s_->map.insert_or_assign(key, std::any(value));
        return {};
    }

    hitbox::Result<bool> remove(const hitbox::CacheKey& key) {
        s_->removes.fetch_add(1);
        if (auto e = s_->before(Op::remove, key)) return hitbox::fail(*e);
        std::lock_guard lock(s_->mutex);
        return s_->map.erase(key) > 0;
    }

    std::string_view label() const noexcept { return s_->label; }

    /// Call counters so far.
    BackendCounts counts() const { return s_->counts(); }

    /// The stored entry as it is, without counting, hooks or expiry; nullopt when absent or of another type.
    template <class T>
    std::optional<hitbox::CacheValue<T>> peek(const hitbox::CacheKey& key) const {
        std::lock_guard lock(s_->mutex);
        auto it = s_->map.find(key);
        if (it == s_->map.end()) return std::nullopt;
        const auto* v = std::any_cast<hitbox::CacheValue<T>>(&it->second);
        if (!v) return std::nullopt;
        return *v;
    }

    bool contains(const hitbox::CacheKey& key) const {
        std::lock_guard lock(s_->mutex);
        return s_->map.count(key) != 0;
    }

    std::size_t size() const {
        std::lock_guard lock(s_->mutex);
        return s_->map.size();
    }

    /// Runs `hook` at the start of every `op` (before the failure switch and the store), outside any lock:
    /// block on a latch, sleep, record the thread. An empty function removes the hook.
    void on(Op op, std::function<void(const hitbox::CacheKey&)> hook) {
        std::lock_guard lock(s_->switch_mutex);
        s_->hook[static_cast<int>(op)] = std::move(hook);
    }

protected:
    struct State : detail::Instrumentation {
        using detail::Instrumentation::Instrumentation;
        mutable std::mutex mutex;
        std::unordered_map<hitbox::CacheKey, std::any> map;
    };

    std::shared_ptr<State> s_;
    Clock clock_;
};

using CountingBackend = BasicCountingBackend<>;

/// A CountingBackend whose operations fail on demand. Injected errors carry the backend's label.
///
/// \code
/// hitbox_test::FailingBackend l2{"redis"};
/// l2.fail(hitbox_test::Op::get, hitbox::ErrorKind::connection, "refused");   // every get fails
/// l2.fail(hitbox_test::Op::set, hitbox::ErrorKind::timeout, "slow", 1);        // the next set fails
/// l2.heal();                                                                  // back to normal
/// \endcode
template <hitbox::ClockSource Clock = hitbox::SystemClock>
class BasicFailingBackend : public BasicCountingBackend<Clock> {
public:
    using BasicCountingBackend<Clock>::BasicCountingBackend;

    /// Makes `op` fail with (kind, message): `times` calls, or every call until healed when times < 0.
    void fail(Op op, hitbox::ErrorKind kind = hitbox::ErrorKind::connection, std::string message = "injected failure",
              long times = -1) {
        std::lock_guard lock(this->s_->switch_mutex);
        const auto i = static_cast<int>(op);
        this->s_->failure[i] = hitbox::Error(kind, std::move(message), this->s_->label);
        this->s_->failures_left[i] = times;
    }

    /// Makes get, set and remove fail.
    void fail_all(hitbox::ErrorKind kind = hitbox::ErrorKind::connection, std::string message = "injected failure") {
        for (Op op : {Op::get, Op::set, Op::remove}) fail(op, kind, message);
    }

    /// Stops injecting failures for `op`.
    void heal(Op op) {
        std::lock_guard lock(this->s_->switch_mutex);
        this->s_->failure[static_cast<int>(op)].reset();
        this->s_->failures_left[static_cast<int>(op)] = 0;
    }

    /// Stops injecting failures for every operation.
    void heal() {
        for (Op op : {Op::get, Op::set, Op::remove}) heal(op);
    }
};

using FailingBackend = BasicFailingBackend<>;

/// A byte-storing Backend: values are kept as EntryCodec envelopes (as RedisBackend stores them), so
/// every set encodes and every hit decodes; both are counted. Honours expiry through the clock.
template <class Codec = hitbox::EntryCodec<>, hitbox::ClockSource Clock = hitbox::SystemClock>
class BasicEnvelopeBackend {
public:
    explicit BasicEnvelopeBackend(std::string label = "bytes", Clock clock = {}, Codec codec = {})
        : s_(std::make_shared<State>(std::move(label))), clock_(std::move(clock)), codec_(std::move(codec)) {}

    template <class T>
    hitbox::Result<std::optional<hitbox::CacheValue<T>>> get(const hitbox::CacheKey& key) {
        s_->gets.fetch_add(1);
        if (auto e = s_->before(Op::get, key)) return hitbox::fail(*e);
        std::string bytes;
        {
            std::lock_guard lock(s_->mutex);
            auto it = s_->map.find(codec_.key(key));
            if (it == s_->map.end()) {
                s_->misses.fetch_add(1);
                return std::optional<hitbox::CacheValue<T>>{};
            }
            bytes = it->second;
        }
        s_->decodes.fetch_add(1);
        auto v = codec_.template decode<T>(bytes);
        if (!v) {
            s_->errors.fetch_add(1);
            return hitbox::fail(v.error().in(s_->label));
        }
        if (v->state(clock_.now()) == hitbox::EntryState::Expired) {
            s_->misses.fetch_add(1);
            return std::optional<hitbox::CacheValue<T>>{};
        }
        s_->hits.fetch_add(1);
        return std::optional<hitbox::CacheValue<T>>(std::move(*v));
    }

    template <class T>
    hitbox::Result<void> set(const hitbox::CacheKey& key, const hitbox::CacheValue<T>& value) {
        s_->sets.fetch_add(1);
        if (auto e = s_->before(Op::set, key)) return hitbox::fail(*e);
        s_->encodes.fetch_add(1);
        auto bytes = codec_.encode(value);
        if (!bytes) return hitbox::fail(bytes.error().in(s_->label));
        std::lock_guard lock(s_->mutex);
        s_->map.insert_or_assign(codec_.key(key), std::move(*bytes));
        return {};
    }

    hitbox::Result<bool> remove(const hitbox::CacheKey& key) {
        s_->removes.fetch_add(1);
        if (auto e = s_->before(Op::remove, key)) return hitbox::fail(*e);
        std::lock_guard lock(s_->mutex);
        return s_->map.erase(codec_.key(key)) > 0;
    }

    std::string_view label() const noexcept { return s_->label; }
    BackendCounts counts() const { return s_->counts(); }
    std::uint64_t encodes() const { return s_->encodes.load(); }
    std::uint64_t decodes() const { return s_->decodes.load(); }

    /// The stored envelope bytes, or nullopt.
    std::optional<std::string> raw(const hitbox::CacheKey& key) const {
        std::lock_guard lock(s_->mutex);
        auto it = s_->map.find(codec_.key(key));
        if (it == s_->map.end()) return std::nullopt;
        return it->second;
    }

    void on(Op op, std::function<void(const hitbox::CacheKey&)> hook) {
        std::lock_guard lock(s_->switch_mutex);
        s_->hook[static_cast<int>(op)] = std::move(hook);
    }

private:
    struct State : detail::Instrumentation {
        using detail::Instrumentation::Instrumentation;
        std::atomic<std::uint64_t> encodes{0}, decodes{0};
        mutable std::mutex mutex;
        std::unordered_map<std::string, std::string> map;
    };

    std::shared_ptr<State> s_;
    Clock clock_;
    Codec codec_;
};

using EnvelopeBackend = BasicEnvelopeBackend<>;

static_assert(hitbox::Backend<CountingBackend>);
static_assert(hitbox::Backend<FailingBackend>);
static_assert(hitbox::Backend<EnvelopeBackend>);

/// A value whose copy constructor throws std::runtime_error("copy refused") while `refuse` is set (moves
/// never throw): a user type that fails to copy, for the paths that copy values (a tier storing one,
/// a tier handing one out, the cache front handing one to each caller).
struct ThrowingCopy {
    static inline std::atomic<bool> refuse{false};

    int n = 0;

    ThrowingCopy() = default;
    explicit ThrowingCopy(int v) : n(v) {}
    ThrowingCopy(const ThrowingCopy& o) : n(o.n) {
        if (refuse.load()) throw std::runtime_error("copy refused");
    }
    ThrowingCopy(ThrowingCopy&&) noexcept = default;
    ThrowingCopy& operator=(const ThrowingCopy& o) {
        if (refuse.load()) throw std::runtime_error("copy refused");
        n = o.n;
        return *this;
    }
    ThrowingCopy& operator=(ThrowingCopy&&) noexcept = default;
    friend bool operator==(const ThrowingCopy&, const ThrowingCopy&) = default;

    /// Sets `refuse` for one scope.
    struct Refusing {
        Refusing() { refuse = true; }
        ~Refusing() { refuse = false; }
        Refusing(const Refusing&) = delete;
        Refusing& operator=(const Refusing&) = delete;
    };
};

}  // namespace hitbox_test
