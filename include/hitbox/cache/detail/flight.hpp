#pragma once
// Internal: the cache front's in-process single-flight table. Plain classes (not templates): every Cache
// shares this code. One Flight per key being loaded; loaders publish a type-erased outcome, waiters take
// it. See hitbox/cache.hpp for the contract.

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <typeinfo>
#include <unordered_map>
#include <utility>

#include <hitbox/core/clock.hpp>
#include <hitbox/core/key.hpp>

namespace hitbox::detail {

/// One key's load in progress. Guarded by its shard's mutex.
struct Flight {
    explicit Flight(const std::type_info& t) : type(&t) {}

    const std::type_info* type;                               // the value type of its loads (outcomes are Loaded<T>)
    std::condition_variable cv;                               // waiters wait here for an outcome or a hand-off
    std::size_t loaders = 0;                                  // loader calls running for this flight
    std::size_t waiters = 0;                                  // callers waiting for an outcome
    std::size_t handoffs = 0;                                 // a failed load hands the next attempt to one waiter
    std::size_t failures = 0;                                 // failed loads so far
    std::size_t retried = 0;                                  // hand-offs given after failures (at most `retries`)
    std::size_t lock_waiting = 0;                             // loaders waiting for another instance's stampede lock
    std::chrono::steady_clock::time_point lock_wait_ended{};  // when one last stopped waiting for it
    std::uint64_t generation = 0;                             // bumped by every publish
    std::shared_ptr<const void> outcome;                      // the last published outcome
};

/// What a caller is to do for a key it missed.
struct FlightTicket {
    enum class Role : std::uint8_t {
        lead,  // load, then finish(): a new flight, an extra loader under the limit, or a hand-off taken
        wait,  // call wait()
        solo,  // load without coalescing (a flight of another value type holds the key)
        skip,  // try_lead found a load in progress: nothing to do
    };
    Role role = Role::solo;
    std::shared_ptr<Flight> flight;
    std::uint64_t generation = 0;  // for wait: the generation seen on arrival
    bool recheck = false;          // for lead of a new flight: a load of this shard finished since the caller
                                   // read the cache, so read it again before loading
};

/// The answer of wait().
struct FlightWait {
    enum class Kind : std::uint8_t {
        outcome,  // `outcome` holds the published result
        handoff,  // the previous load failed: this caller is the retrying loader now (call finish())
        timeout,  // waited too long: this caller loads too (call finish())
    };
    Kind kind = Kind::timeout;
    std::shared_ptr<const void> outcome;
    bool past_give_up = false;  // timeout at the caller's own give-up point: it answers, it does not load
};

/// Sharded map of flights. `epoch(key)` is read before the cache lookup; a load that retires a flight
/// bumps its shard's epoch after writing the cache, so a caller that missed the cache just before that
/// write and arrives after the flight is gone re-reads the cache instead of loading a second time.
class FlightTable {
public:
    static constexpr std::size_t shard_count = 64;

    /// The shard's epoch; read it before the cache lookup.
    std::uint64_t epoch(const CacheKey& key) const noexcept {
        return shard_(key).epoch.load(std::memory_order_acquire);
    }

    /// Joins the load of `key`, or starts it. `limit`: loader calls allowed at once for the key (>= 1).
    FlightTicket enter(const CacheKey& key, const std::type_info& type, std::size_t limit, std::uint64_t seen_epoch) {
        Shard& s = shard_(key);
        std::lock_guard lock(s.mutex);
        auto [it, fresh] = s.flights.try_emplace(key);
        FlightTicket t;
        if (fresh) {
            it->second = std::make_shared<Flight>(type);
            it->second->loaders = 1;
            t.role = FlightTicket::Role::lead;
            t.flight = it->second;
            t.recheck = s.epoch.load(std::memory_order_relaxed) != seen_epoch;
            return t;
        }
        Flight& f = *it->second;
        if (*f.type != type) return t;  // solo
        t.flight = it->second;
        if (f.handoffs > 0) {  // a retry is due: this caller takes it
            --f.handoffs;
            ++f.loaders;
            t.role = FlightTicket::Role::lead;
        } else if (f.loaders < limit && f.failures == 0) {
            ++f.loaders;
            t.role = FlightTicket::Role::lead;
        } else {
            ++f.waiters;
            t.role = FlightTicket::Role::wait;
            t.generation = f.generation;
        }
        return t;
    }

    /// Starts the load of `key` only when nobody is loading it (background revalidation).
    FlightTicket try_lead(const CacheKey& key, const std::type_info& type) {
        Shard& s = shard_(key);
        std::lock_guard lock(s.mutex);
        FlightTicket t;
        auto [it, fresh] = s.flights.try_emplace(key);
        if (!fresh) {
            t.role = FlightTicket::Role::skip;
            return t;
        }
        it->second = std::make_shared<Flight>(type);
        it->second->loaders = 1;
        t.role = FlightTicket::Role::lead;
        t.flight = it->second;
        return t;
    }

    /// Waits (at most `timeout`; without limit for milliseconds::max()) for the outcome of the flight the
    /// ticket joined. On a timeout the caller becomes one of the flight's loaders, unless `load_on_timeout`
    /// is false: then it leaves the flight (a hand-off still makes it a loader).
    FlightWait wait(const CacheKey& key, const FlightTicket& ticket, std::chrono::milliseconds timeout,
                    bool load_on_timeout = true,
                    std::chrono::steady_clock::time_point give_up_at = std::chrono::steady_clock::time_point::max()) {
        Shard& s = shard_(key);
        Flight& f = *ticket.flight;
        std::unique_lock lock(s.mutex);
        const auto answered = [&] { return f.generation != ticket.generation || f.handoffs > 0; };
        // Loaders that only wait for another instance's stampede lock have not started this process's
        // load: a waiter that would load on its timeout waits with them (up to one more timeout), and its
        // timeout starts again when one of them loads (or gives up), so that this process still sends one
        // load, not one per waiter.
        const auto parked = [&] { return f.lock_waiting > 0 && f.lock_waiting >= f.loaders; };
        // milliseconds::max() (any timeout past the steady clock's range) waits without limit. Nothing
        // below waits past `give_up_at` (the caller's soft or hard timeout, when it has one).
        const auto capped = [&](std::chrono::steady_clock::time_point t) { return std::min(t, give_up_at); };
        auto deadline = capped(deadline_after(timeout));
        bool gave_up = false;
        for (;;) {
            wait_until_deadline(f.cv, lock, deadline, answered);
            if (answered() || !load_on_timeout) break;
            if (std::chrono::steady_clock::now() >= give_up_at) {
                gave_up = true;
                break;
            }
            if (parked()) {
                // At most one more timeout: a leader whose own limit is longer (another policy, or max())
                // does not hold this waiter for ever; past it the waiter loads as before. Once the leader
                // stops waiting, the loop waits a full timeout more (the give-up point still caps it).
                wait_until_deadline(f.cv, lock, capped(deadline_after(timeout)),
                                    [&] { return answered() || !parked(); });
                if (!answered() && parked() && std::chrono::steady_clock::now() < give_up_at) break;
                deadline = capped(deadline_after(timeout));
                continue;
            }
            // A loader stopped waiting for the lock just before this waiter's timeout: the timeout counts
            // from then (the load it started is the one to wait for).
            if (f.lock_wait_ended != std::chrono::steady_clock::time_point{}) {
                const auto restarted = capped(deadline_after(f.lock_wait_ended, timeout));
                if (restarted > std::chrono::steady_clock::now()) {
                    deadline = restarted;
                    continue;
                }
            }
            break;
        }
        --f.waiters;
        FlightWait w;
        if (f.generation != ticket.generation) {
            w.kind = FlightWait::Kind::outcome;
            w.outcome = f.outcome;
            return w;
        }
        // A hand-off or a timeout: either way this caller loads now (unless it leaves on a timeout).
        w.kind = f.handoffs > 0 ? FlightWait::Kind::handoff : FlightWait::Kind::timeout;
        w.past_give_up = gave_up && f.handoffs == 0;
        if (f.handoffs > 0) {
            --f.handoffs;
        } else if (!load_on_timeout || gave_up) {
            if (f.loaders == 0 && f.waiters == 0) retire_(s, key, ticket.flight);
            return w;
        }
        ++f.loaders;
        return w;
    }

    /// A loader of the flight is done. A success (`ok`: a value, a "not found", or a cache hit found on
    /// re-check) is published to every waiter and retires the flight. A failure hands the next attempt to
    /// one waiter while fewer than `retries` hand-offs happened; otherwise, once no loader is left, the
    /// failure is published to the waiters. Returns true when the failure was handed off.
    bool finish(const CacheKey& key, const std::shared_ptr<Flight>& flight, std::shared_ptr<const void> outcome,
                bool ok, std::size_t retries) {
        Shard& s = shard_(key);
        Flight& f = *flight;
        bool handed_off = false;
        {
            std::lock_guard lock(s.mutex);
            --f.loaders;
            if (ok) {
                publish_(f, std::move(outcome));
                retire_(s, key, flight);
            } else {
                ++f.failures;
                if (f.loaders == 0) {
                    // Hand-offs are counted, not failures: with concurrency > 1 several loads can fail
                    // in one round, and that is still one round before the retry.
                    if (f.waiters > 0 && f.retried < retries) {
                        ++f.retried;
                        f.handoffs = 1;
                        handed_off = true;
                    } else {
                        publish_(f, std::move(outcome));
                        retire_(s, key, flight);
                    }
                }
            }
            if (f.loaders == 0 && f.waiters == 0 && f.handoffs == 0) retire_(s, key, flight);
        }
        f.cv.notify_all();
        return handed_off;
    }

    /// A loader of the flight starts (on) or stops (off) waiting for another instance's stampede lock.
    void lock_wait(const CacheKey& key, const std::shared_ptr<Flight>& flight, bool on) {
        Shard& s = shard_(key);
        {
            std::lock_guard lock(s.mutex);
            if (on) {
                ++flight->lock_waiting;
            } else {
                --flight->lock_waiting;
                flight->lock_wait_ended = std::chrono::steady_clock::now();
            }
        }
        if (!on) flight->cv.notify_all();
    }

    /// Keys with a load in progress (for stats; takes every shard lock in turn).
    std::size_t in_flight() const {
        std::size_t n = 0;
        for (const auto& s : shards_) {
            std::lock_guard lock(s.mutex);
            n += s.flights.size();
        }
        return n;
    }

private:
    struct alignas(64) Shard {
        mutable std::mutex mutex;
        std::unordered_map<CacheKey, std::shared_ptr<Flight>> flights;
        std::atomic<std::uint64_t> epoch{0};
    };

    static void publish_(Flight& f, std::shared_ptr<const void> outcome) {
        f.outcome = std::move(outcome);
        ++f.generation;
    }

    /// Removes the flight from the map (if it is still the key's flight) and bumps the epoch.
    static void retire_(Shard& s, const CacheKey& key, const std::shared_ptr<Flight>& flight) {
        auto it = s.flights.find(key);
        if (it == s.flights.end() || it->second != flight) return;
        s.flights.erase(it);
        s.epoch.fetch_add(1, std::memory_order_release);
    }

    Shard& shard_(const CacheKey& key) const noexcept {
        // The key hash's high bits: the low bits also pick buckets inside the shard's map.
        return shards_[(key.hash() >> 20) % shard_count];
    }

    mutable std::array<Shard, shard_count> shards_;
};

}  // namespace hitbox::detail
