// Compose<L1, L2, Offload>: read / write / refill policies, label paths, nesting, failures, lifetime.
// Tiers are test doubles (support/test_backends.hpp) on a ManualClock; InlineOffload makes background work
// deterministic, OffloadManager runs the same cases on real threads.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/compose/compose.hpp>
#include <hitbox/offload/inline_offload.hpp>
#include <hitbox/offload/offload_manager.hpp>

#include "support/manual_memory.hpp"
#include "support/test_backends.hpp"
#include "support/test_types.hpp"

using namespace std::chrono_literals;
using hitbox::CacheKey;
using hitbox::CacheValue;
using hitbox::ErrorKind;
using hitbox_test::Op;

namespace {

using Tier = hitbox_test::BasicFailingBackend<hitbox::ManualClock>;
using Str = CacheValue<std::string>;

const CacheKey key{"user", 1, {{"id", "42"}}};

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

/// A one-shot signal with a bounded wait, for steering which tier finishes first.
class Signal {
public:
    void open() {
        {
            std::lock_guard lock(m_);
            open_ = true;
        }
        cv_.notify_all();
    }
    bool wait(std::chrono::milliseconds limit = 10s) {
        std::unique_lock lock(m_);
        return cv_.wait_for(lock, limit, [&] { return open_; });
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool open_ = false;
};

enum class State { hit, miss, error };

const char* name(State s) { return s == State::hit ? "hit" : s == State::miss ? "miss" : "error"; }

/// Two tiers on one manual clock: L1 "l1" and L2 "l2", each put in `state` for `key`. L1's value expires
/// sooner than L2's, so a Parallel read that finds both prefers L2.
struct TwoTiers {
    hitbox::ManualClock clock;
    hitbox::TimePoint t0 = clock.now();
    Tier l1{"l1", clock};
    Tier l2{"l2", clock};
    Str in_l1{"from-l1", t0 + 30s, std::nullopt, t0};
    Str in_l2{"from-l2", t0 + 60s, t0 + 45s, t0 - 1s};

    void prepare(State s1, State s2) {
        if (s1 == State::hit) REQUIRE(l1.set(key, in_l1));
        if (s2 == State::hit) REQUIRE(l2.set(key, in_l2));
        if (s1 == State::error) l1.fail(Op::get, ErrorKind::connection, "l1 down");
        if (s2 == State::error) l2.fail(Op::get, ErrorKind::timeout, "l2 slow");
    }
};

// Each policy test runs twice: with the static policy, and with Dynamic<P>, which is the run-time policy of
// P's mode carrying P's members (DynamicRead{ReadMode::race, loser, steal_after} for RaceRead, ...). Both must
// behave alike in every case: the dynamic policies are what hitbox::make_backend builds.
template <class P>
struct Dynamic {};

template <class C>
struct case_traits {
    using policy = C;
    static constexpr bool dynamic = false;
};
template <class P>
struct case_traits<Dynamic<P>> {
    using policy = P;
    static constexpr bool dynamic = true;
};
/// The static policy whose behaviour a case checks.
template <class C>
using fixed_policy = typename case_traits<C>::policy;

template <hitbox::ReadPolicy P>
hitbox::DynamicRead to_dynamic(const P& p) {
    hitbox::DynamicRead out{.mode = P::mode};
    if constexpr (requires { p.loser; }) out.loser = p.loser, out.steal_after = p.steal_after;
    return out;
}
template <hitbox::WritePolicy P>
hitbox::DynamicWrite to_dynamic(const P& p) {
    hitbox::DynamicWrite out{.mode = P::mode};
    if constexpr (requires { p.loser; }) out.loser = p.loser, out.steal_after = p.steal_after;
    return out;
}
template <hitbox::RefillPolicy P>
hitbox::DynamicRefill to_dynamic(const P& p) {
    if constexpr (P::enabled)
        return {.enabled = true, .offloaded = p.offloaded};
    else
        return {.enabled = false};
}

/// The policy case C runs: `p` itself, or its run-time twin.
template <class C, class P>
auto policy_for(const P& p) {
    if constexpr (case_traits<C>::dynamic)
        return to_dynamic(p);
    else
        return p;
}

/// compose(l1, l2, offload) with case C's three policies (the defaults but for `read` / `write` / `refill`):
/// all static, or all run-time.
template <class C, class L1, class L2, class O, class R = hitbox::SequentialRead,
          class W = hitbox::OptimisticParallelWrite, class F = hitbox::RefillAlways>
auto compose_case(L1 l1, L2 l2, O& offload, R read = {}, W write = {}, F refill = {}) {
    auto out = hitbox::compose(std::move(l1), std::move(l2), offload)
                   .with_read(policy_for<C>(read))
                   .with_write(policy_for<C>(write))
                   .with_refill(policy_for<C>(refill));
    static_assert(std::is_same_v<typename decltype(out)::read_policy, hitbox::DynamicRead> == case_traits<C>::dynamic);
    return out;
}

template <class ReadP>
constexpr bool is_race = std::is_same_v<ReadP, hitbox::RaceRead>;
template <class ReadP>
constexpr bool is_parallel = std::is_same_v<ReadP, hitbox::ParallelRead>;

/// One cell of the read matrix, with an offload that runs on the caller (deterministic) or a manager.
template <class Case, class Off>
void check_read(State s1, State s2, Off& offload, bool threaded) {
    using ReadP = fixed_policy<Case>;
    INFO("L1 " << name(s1) << ", L2 " << name(s2));
    TwoTiers t;
    t.prepare(s1, s2);
    auto tiers = compose_case<Case>(t.l1, t.l2, offload, ReadP{});
    auto found = tiers.template lookup<std::string>(key);
    if constexpr (requires { offload.wait_all(1s); }) REQUIRE(offload.wait_all(10s));

    if (s1 == State::error && s2 == State::error) {
        REQUIRE_FALSE(found);
        CHECK(found.error().kind() == ErrorKind::unavailable);
        CHECK(contains(found.error().what(), "[cache.l1] connection: l1 down"));
        CHECK(contains(found.error().what(), "[cache.l2] timeout: l2 slow"));
        CHECK(tiers.stats().unavailable == 1);
        return;
    }
    REQUIRE(found);
    const bool both_hit = s1 == State::hit && s2 == State::hit;
    std::string expect_source;
    if (both_hit)
        expect_source = is_parallel<ReadP> ? "cache.l2" : "cache.l1";
    else if (s1 == State::hit)
        expect_source = "cache.l1";
    else if (s2 == State::hit)
        expect_source = "cache.l2";
    if (is_race<ReadP> && threaded && both_hit) {
        // Either tier may win a real race; the answer must match its source.
        REQUIRE(found->hit());
        CHECK(found->value->data == (found->source == "cache.l1" ? "from-l1" : "from-l2"));
        expect_source = found->source;
    }
    CHECK(found->source == expect_source);
    CHECK(found->hit() == !expect_source.empty());
    if (expect_source == "cache.l1") CHECK(*found->value == t.in_l1);
    if (expect_source == "cache.l2") {
        CHECK(*found->value == t.in_l2);
        // Refill (default Always): L1 now holds L2's entry with the same times.
        CHECK(t.l1.peek<std::string>(key) == std::optional<Str>(t.in_l2));
        CHECK(tiers.stats().refills == 1);
    } else {
        CHECK(tiers.stats().refills == 0);
    }
    // A failing tier is a miss: counted, and listed when it was consulted and its answer was used.
    CHECK(tiers.stats().l1_read_errors == (s1 == State::error ? 1u : 0u));
    const bool l2_consulted = is_parallel<ReadP> || s1 != State::hit;
    if (l2_consulted && !is_race<ReadP>) CHECK(tiers.stats().l2_read_errors == (s2 == State::error ? 1u : 0u));
    std::size_t expect_errors = (s1 == State::error ? 1 : 0) + (l2_consulted && s2 == State::error ? 1 : 0);
    if (is_race<ReadP> && threaded)  // a finished loser's error is listed, one still running is not
        CHECK(found->errors.size() <= std::size_t(s1 == State::error) + std::size_t(s2 == State::error));
    else
        CHECK(found->errors.size() == expect_errors);
    // Sequential never reads L2 after an L1 hit; Race and Parallel always start it.
    const auto l2_gets = t.l2.counts().gets;
    if (std::is_same_v<ReadP, hitbox::SequentialRead>) CHECK(l2_gets == (s1 == State::hit ? 0u : 1u));
    if (is_parallel<ReadP>) CHECK(l2_gets == 1);
    if (is_race<ReadP>) CHECK(l2_gets <= 1);
}

}  // namespace

TEMPLATE_TEST_CASE("Read policies over hit / miss / error in each tier", "", hitbox::SequentialRead, hitbox::RaceRead,
                   hitbox::ParallelRead, Dynamic<hitbox::SequentialRead>, Dynamic<hitbox::RaceRead>,
                   Dynamic<hitbox::ParallelRead>) {
    auto s1 = GENERATE(State::hit, State::miss, State::error);
    auto s2 = GENERATE(State::hit, State::miss, State::error);
    SECTION("offload on the caller") {
        hitbox::InlineOffload offload;
        check_read<TestType>(s1, s2, offload, false);
    }
    SECTION("offload on worker threads") {
        hitbox::OffloadManager offload{{.workers = 2}};
        check_read<TestType>(s1, s2, offload, true);
    }
}

namespace {

enum class WState { ok, error };

template <class Case, class Off>
void check_write(WState s1, WState s2, Off& offload) {
    using WriteP = fixed_policy<Case>;
    INFO("L1 " << (s1 == WState::ok ? "ok" : "error") << ", L2 " << (s2 == WState::ok ? "ok" : "error"));
    hitbox::ManualClock clock;
    Tier l1{"l1", clock}, l2{"l2", clock};
    if (s1 == WState::error) l1.fail(Op::set, ErrorKind::connection, "l1 down");
    if (s2 == WState::error) l2.fail(Op::set, ErrorKind::timeout, "l2 slow");
    auto tiers = compose_case<Case>(l1, l2, offload, hitbox::SequentialRead{}, WriteP{});
    const Str value{"v", clock.now() + 60s, clock.now() + 30s, clock.now()};
    auto stored = tiers.store(key, value);
    if constexpr (requires { offload.wait_all(1s); }) REQUIRE(offload.wait_all(10s));

    const bool l1_has = l1.peek<std::string>(key) == std::optional<Str>(value);
    const bool l2_has = l2.peek<std::string>(key) == std::optional<Str>(value);
    CHECK(l1_has == (s1 == WState::ok));

    if constexpr (std::is_same_v<WriteP, hitbox::SequentialWrite>) {
        if (s1 == WState::error) {
            REQUIRE_FALSE(stored);
            CHECK(stored.error().kind() == ErrorKind::connection);
            CHECK(stored.error().backend() == "cache.l1");
            CHECK(l2.counts().sets == 0);  // write-through stops at the first tier that fails
        } else if (s2 == WState::error) {
            REQUIRE_FALSE(stored);
            CHECK(stored.error().kind() == ErrorKind::timeout);
            CHECK(stored.error().backend() == "cache.l2");
        } else {
            REQUIRE(stored);
            CHECK(stored->written == std::vector<std::string>{"cache.l1", "cache.l2"});
        }
        return;
    }
    if (s1 == WState::error && s2 == WState::error) {
        REQUIRE_FALSE(stored);
        CHECK(stored.error().kind() == ErrorKind::unavailable);
        CHECK(stored.error().backend() == "cache");
        CHECK(contains(stored.error().message(), "[cache.l1] connection: l1 down"));
        CHECK(contains(stored.error().message(), "[cache.l2] timeout: l2 slow"));
        CHECK(tiers.stats().unavailable == 1);
        return;
    }
    REQUIRE(stored);
    CHECK(l2_has == (s2 == WState::ok));
    CHECK(tiers.stats().l1_write_errors == (s1 == WState::error ? 1u : 0u));
    CHECK(tiers.stats().l2_write_errors == (s2 == WState::error ? 1u : 0u));
    if constexpr (std::is_same_v<WriteP, hitbox::OptimisticParallelWrite>) {
        std::vector<std::string> written;
        if (s1 == WState::ok) written.push_back("cache.l1");
        if (s2 == WState::ok) written.push_back("cache.l2");
        CHECK(stored->written == written);
        // The failure is reported even though the write succeeded.
        REQUIRE(stored->errors.size() == (s1 == WState::error || s2 == WState::error ? 1u : 0u));
        if (s1 == WState::error) CHECK(stored->errors[0].backend() == "cache.l1");
        if (s2 == WState::error) CHECK(stored->errors[0].backend() == "cache.l2");
    } else {
        // Race: the first success is reported, and the loser too when it has finished by the time the call
        // returns (its error, or its tier among those written); one still running finishes in the background.
        std::vector<std::string> ok_tiers, failed_tiers;
        (s1 == WState::ok ? ok_tiers : failed_tiers).push_back("cache.l1");
        (s2 == WState::ok ? ok_tiers : failed_tiers).push_back("cache.l2");
        std::vector<std::string> error_tiers;
        for (const auto& e : stored->errors) error_tiers.emplace_back(e.backend());
        if constexpr (hitbox::offload_runs_on_caller<Off>) {
            // On the caller both halves have run when the call returns: the report is complete.
            CHECK(stored->written == ok_tiers);
            CHECK(error_tiers == failed_tiers);
        } else {
            REQUIRE_FALSE(stored->written.empty());
            for (const auto& w : stored->written) CHECK(std::count(ok_tiers.begin(), ok_tiers.end(), w) == 1);
            for (const auto& e : error_tiers) CHECK(std::count(failed_tiers.begin(), failed_tiers.end(), e) == 1);
        }
    }
}

}  // namespace

TEMPLATE_TEST_CASE("Write policies over success / error in each tier", "", hitbox::SequentialWrite,
                   hitbox::OptimisticParallelWrite, hitbox::RaceWrite, Dynamic<hitbox::SequentialWrite>,
                   Dynamic<hitbox::OptimisticParallelWrite>, Dynamic<hitbox::RaceWrite>) {
    auto s1 = GENERATE(WState::ok, WState::error);
    auto s2 = GENERATE(WState::ok, WState::error);
    SECTION("offload on the caller") {
        hitbox::InlineOffload offload;
        check_write<TestType>(s1, s2, offload);
    }
    SECTION("offload on worker threads") {
        hitbox::OffloadManager offload{{.workers = 2}};
        check_write<TestType>(s1, s2, offload);
    }
}

TEST_CASE("Compose is a Backend and get/set/remove behave as one") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    auto tiers = hitbox::compose(l1, l2, offload);
    static_assert(hitbox::Backend<decltype(tiers)>);
    static_assert(std::is_same_v<decltype(tiers), hitbox::Compose<Tier, Tier, hitbox::InlineOffload>>);
    CHECK(tiers.label() == "cache");

    auto miss = tiers.get<std::string>(key);
    REQUIRE(miss);
    CHECK_FALSE(miss->has_value());

    const Str value{"hello", clock.now() + 60s, std::nullopt, clock.now()};
    REQUIRE(tiers.set(key, value));
    CHECK(l1.peek<std::string>(key) == std::optional<Str>(value));
    CHECK(l2.peek<std::string>(key) == std::optional<Str>(value));

    auto hit = tiers.get<std::string>(key);
    REQUIRE(hit);
    REQUIRE(hit->has_value());
    CHECK(**hit == value);
    CHECK(l2.counts().gets == 1);  // only the miss reached L2

    // A typed read of another type is an error from each tier, never a wrong value.
    auto wrong = tiers.get<int>(key);
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().kind() == ErrorKind::unavailable);
    CHECK(contains(wrong.error().message(), "type_mismatch"));

    auto removed = tiers.remove(key);
    REQUIRE(removed);
    CHECK(*removed);
    CHECK_FALSE(l1.contains(key));
    CHECK_FALSE(l2.contains(key));
    auto again = tiers.remove(key);
    REQUIRE(again);
    CHECK_FALSE(*again);
}

TEMPLATE_TEST_CASE("A hit in L1 is the L1 call and nothing else", "", hitbox::SequentialRead,
                   Dynamic<hitbox::SequentialRead>) {
    hitbox::OffloadManager offload{{.workers = 1}};
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    REQUIRE(l1.set(key, Str{"v", clock.now() + 60s, std::nullopt, clock.now()}));
    auto tiers = compose_case<TestType>(l1, l2, offload);
    for (int i = 0; i < 10; ++i) REQUIRE(tiers.template get<std::string>(key)->has_value());
    CHECK(l1.counts().gets == 10);
    CHECK(l2.counts().gets == 0);
    CHECK(offload.counters().spawned == 0);
    CHECK(tiers.stats() == hitbox::ComposeStats{});
}

TEST_CASE("Refill carries the remaining TTL and the original created / stale times") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    const auto t0 = clock.now();
    Tier l1{"memory", clock}, l2{"redis", clock};
    const Str original{"v", t0 + 60s, t0 + 30s, t0};
    REQUIRE(l2.set(key, original));
    auto tiers = hitbox::compose(l1, l2, offload);

    clock.advance(20s);
    auto found = tiers.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->source == "cache.redis");
    auto refilled = l1.peek<std::string>(key);
    REQUIRE(refilled);
    CHECK(*refilled == original);  // same created, stale and expire: not a fresh TTL
    CHECK(refilled->ttl(clock.now()) == std::optional<std::chrono::milliseconds>(40s));

    auto next = tiers.lookup<std::string>(key);
    REQUIRE(next);
    CHECK(next->source == "cache.memory");

    clock.advance(41s);  // past the original expiry: gone from both tiers at the same moment
    auto later = tiers.lookup<std::string>(key);
    REQUIRE(later);
    CHECK_FALSE(later->hit());
}

TEST_CASE("A stale L2 hit is returned stale and refilled stale") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    const auto t0 = clock.now();
    Tier l1{"memory", clock}, l2{"redis", clock};
    REQUIRE(l2.set(key, Str{"old", t0 + 60s, t0 + 30s, t0}));
    auto tiers = hitbox::compose(l1, l2, offload);
    clock.advance(45s);
    auto found = tiers.get<std::string>(key);
    REQUIRE(found);
    REQUIRE(found->has_value());
    CHECK((*found)->state(clock.now()) == hitbox::EntryState::Stale);
    auto in_l1 = l1.peek<std::string>(key);
    REQUIRE(in_l1);
    CHECK(in_l1->state(clock.now()) == hitbox::EntryState::Stale);
    CHECK(in_l1->stale == std::optional<hitbox::TimePoint>(t0 + 30s));
    CHECK(in_l1->expire == std::optional<hitbox::TimePoint>(t0 + 60s));
}

TEMPLATE_TEST_CASE("RefillNever leaves L1 alone", "", hitbox::RefillNever, Dynamic<hitbox::RefillNever>) {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    REQUIRE(l2.set(key, Str{"v", clock.now() + 60s, std::nullopt, clock.now()}));
    auto tiers = compose_case<TestType>(l1, l2, offload, hitbox::SequentialRead{}, hitbox::OptimisticParallelWrite{},
                                        hitbox::RefillNever{});
    REQUIRE(tiers.template get<std::string>(key)->has_value());
    REQUIRE(tiers.template get<std::string>(key)->has_value());
    CHECK_FALSE(l1.contains(key));
    CHECK(l1.counts().sets == 0);
    CHECK(l2.counts().gets == 2);
    CHECK(tiers.stats().refills == 0);
}

TEST_CASE("A refill L1 refuses is counted and listed, and the read still succeeds") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    REQUIRE(l2.set(key, Str{"v", clock.now() + 60s, std::nullopt, clock.now()}));
    l1.fail(Op::set, ErrorKind::capacity, "full");
    auto tiers = hitbox::compose(l1, l2, offload);
    auto found = tiers.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->hit());
    REQUIRE(found->errors.size() == 1);
    CHECK(found->errors[0].what() == "[cache.memory] capacity: full");
    CHECK(tiers.stats().refill_errors == 1);
}

TEMPLATE_TEST_CASE("Offloaded refill: inline, on a manager with dedup, and disabled", "", hitbox::RefillAlways,
                   Dynamic<hitbox::RefillAlways>) {
    hitbox::ManualClock clock;
    const Str value{"v", clock.now() + 60s, std::nullopt, clock.now()};
    const auto offloaded = policy_for<TestType>(hitbox::RefillAlways{.offloaded = true});

    SECTION("InlineOffload runs the refill before the read returns") {
        hitbox::InlineOffload offload;
        Tier l1{"memory", clock}, l2{"redis", clock};
        REQUIRE(l2.set(key, value));
        auto tiers = hitbox::compose(l1, l2, offload).with_refill(offloaded);
        REQUIRE(tiers.template get<std::string>(key)->has_value());
        CHECK(l1.peek<std::string>(key) == std::optional<Str>(value));
        CHECK(offload.counters().spawned == 1);
        CHECK(tiers.stats().refills == 1);
    }
    SECTION("OffloadManager refills in the background and deduplicates per key") {
        hitbox::OffloadManager offload{{.workers = 1}};
        Tier l1{"memory", clock}, l2{"redis", clock};
        REQUIRE(l2.set(key, value));
        Signal blocker_started, release;
        REQUIRE(offload.spawn(hitbox::OffloadKind::custom, "", [&] {
            blocker_started.open();
            release.wait();
        }));
        REQUIRE(blocker_started.wait());
        auto tiers = hitbox::compose(l1, l2, offload).with_refill(offloaded);
        REQUIRE(tiers.template get<std::string>(key)->has_value());  // refill queued behind the blocker
        REQUIRE(tiers.template get<std::string>(key)->has_value());  // same key: the second refill is a duplicate
        CHECK_FALSE(l1.contains(key));
        CHECK(tiers.stats().refills == 1);
        CHECK(tiers.stats().refills_dropped == 1);
        CHECK(offload.counters().deduplicated == 1);
        release.open();
        REQUIRE(offload.wait_all(10s));
        CHECK(l1.peek<std::string>(key) == std::optional<Str>(value));
        CHECK(l1.counts().sets == 1);
    }
    SECTION("NoOffload: background work is disabled, refills are dropped and counted") {
        hitbox::NoOffload offload;
        Tier l1{"memory", clock}, l2{"redis", clock};
        REQUIRE(l2.set(key, value));
        auto tiers = hitbox::compose(l1, l2, offload).with_refill(offloaded);
        REQUIRE(tiers.template get<std::string>(key)->has_value());
        CHECK_FALSE(l1.contains(key));
        CHECK(tiers.stats().refills_dropped == 1);
        CHECK(offload.counters().rejected == 1);
    }
}

namespace {
/// A value whose copy throws once a shared budget of copies is spent (moves are free and never throw).
struct CopyBudget {
    static inline int left = 1 << 30;
    int n = 0;
    CopyBudget() = default;
    explicit CopyBudget(int v) : n(v) {}
    CopyBudget(const CopyBudget& o) : n(o.n) {
        if (left-- <= 0) throw std::runtime_error("copy budget spent");
    }
    CopyBudget& operator=(const CopyBudget& o) {
        if (left-- <= 0) throw std::runtime_error("copy budget spent");
        n = o.n;
        return *this;
    }
    CopyBudget(CopyBudget&&) noexcept = default;
    CopyBudget& operator=(CopyBudget&&) noexcept = default;
};
}  // namespace

TEST_CASE("A value whose copy throws anywhere in a read with an offloaded refill: no exception leaves get") {
    hitbox::ManualClock clock;
    bool refill_failed_with_value = false;
    for (int budget = 0; budget < 12; ++budget) {
        CAPTURE(budget);
        hitbox::InlineOffload offload;
        Tier l1{"memory", clock}, l2{"redis", clock};
        CopyBudget::left = 1 << 30;
        REQUIRE(l2.set(key, CacheValue<CopyBudget>{CopyBudget{7}, clock.now() + 60s, std::nullopt, clock.now()}));
        auto tiers = hitbox::compose(l1, l2, offload).with_refill(hitbox::RefillAlways{.offloaded = true});
        CopyBudget::left = budget;
        hitbox::Result<std::optional<CacheValue<CopyBudget>>> got;
        REQUIRE_NOTHROW(got = tiers.get<CopyBudget>(key));
        CopyBudget::left = 1 << 30;
        if (got && *got) {
            CHECK((*got)->data.n == 7);
            if (tiers.stats().refill_errors == 1 && !l1.contains(key)) refill_failed_with_value = true;
        } else if (!got) {
            CHECK(got.error().kind() == ErrorKind::unavailable);
        }
    }
    // Some budget ran out exactly at the refill's copy of the value: the read still answered.
    CHECK(refill_failed_with_value);
}

TEST_CASE("Each tier keeps its own format: refills do not re-serialize, writes serialize only for bytes") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier objects{"memory", clock};
    hitbox_test::BasicEnvelopeBackend<hitbox::EntryCodec<>, hitbox::ManualClock> bytes{"redis", clock};
    auto tiers = hitbox::compose(objects, bytes, offload);
    const auto profile = hitbox_test::sample_profile();
    const CacheValue<hitbox_test::Profile> value{profile, clock.now() + 60s, std::nullopt, clock.now()};

    REQUIRE(tiers.set(key, value));
    CHECK(bytes.encodes() == 1);  // one serialization, for the tier that stores bytes
    auto raw = bytes.raw(key);
    REQUIRE(raw);
    CHECK(hitbox::parse_envelope(*raw).has_value());  // L2 holds its envelope
    CHECK(objects.peek<hitbox_test::Profile>(key) == std::optional<CacheValue<hitbox_test::Profile>>(value));

    REQUIRE(objects.remove(key));
    auto found = tiers.lookup<hitbox_test::Profile>(key);
    REQUIRE(found);
    CHECK(found->source == "cache.redis");
    CHECK(bytes.decodes() == 1);
    CHECK(bytes.encodes() == 1);  // the refill handed L1 the decoded object
    CHECK(objects.peek<hitbox_test::Profile>(key) == std::optional<CacheValue<hitbox_test::Profile>>(value));
}

TEST_CASE("Three tiers: refill cascades and label paths") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier a{"memory", clock}, b{"near", clock}, c{"far", clock};
    auto tiers = hitbox::compose(a, b, c, offload);
    static_assert(
        std::is_same_v<decltype(tiers), hitbox::Compose<Tier, hitbox::Compose<Tier, Tier, hitbox::InlineOffload>,
                                                        hitbox::InlineOffload>>);
    CHECK(tiers.label() == "cache");
    CHECK(tiers.l2().label().empty());  // the inner level of a fold is transparent in paths

    const Str value{"deep", clock.now() + 60s, clock.now() + 30s, clock.now()};
    REQUIRE(c.set(key, value));
    clock.advance(10s);
    auto found = tiers.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->source == "cache.far");
    CHECK(b.peek<std::string>(key) == std::optional<Str>(value));
    CHECK(a.peek<std::string>(key) == std::optional<Str>(value));
    CHECK(tiers.stats().refills == 1);
    CHECK(tiers.l2().stats().refills == 1);

    auto second = tiers.lookup<std::string>(key);
    REQUIRE(second);
    CHECK(second->source == "cache.memory");
    REQUIRE(a.remove(key));
    auto third = tiers.lookup<std::string>(key);
    REQUIRE(third);
    CHECK(third->source == "cache.near");
    CHECK(c.counts().gets == 1);

    auto stored = tiers.store(key, value);
    REQUIRE(stored);
    CHECK(stored->written == std::vector<std::string>{"cache.memory", "cache.near", "cache.far"});
}

TEST_CASE("Four tiers: a hit in the last tier refills every tier above it") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier a{"t1", clock}, b{"t2", clock}, c{"t3", clock}, d{"t4", clock};
    auto tiers = hitbox::compose(a, b, c, d, offload);
    const Str value{"v", clock.now() + 60s, std::nullopt, clock.now()};
    REQUIRE(d.set(key, value));
    auto found = tiers.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->source == "cache.t4");
    for (Tier* t : {&a, &b, &c}) CHECK(t->peek<std::string>(key) == std::optional<Str>(value));

    // Every tier failing: the error names each leaf by its path.
    for (Tier* t : {&a, &b, &c, &d}) t->fail(Op::get, ErrorKind::connection, std::string(t->label()) + " down");
    auto failed = tiers.get<std::string>(key);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().kind() == ErrorKind::unavailable);
    for (std::string leaf : {"t1", "t2", "t3", "t4"})
        CHECK(contains(failed.error().message(), "[cache." + leaf + "] connection: " + leaf + " down"));

    for (Tier* t : {&a, &b, &c, &d}) t->heal();
    auto removed = tiers.remove(key);
    REQUIRE(removed);
    CHECK(*removed);
    for (Tier* t : {&a, &b, &c, &d}) CHECK_FALSE(t->contains(key));
}

TEST_CASE("Explicitly nested compositions compose their labels into paths") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier local{"memory", clock}, inner_l1{"near", clock}, redis{"redis", clock};
    hitbox::Compose inner{inner_l1,
                          redis,
                          offload,
                          hitbox::SequentialRead{},
                          hitbox::OptimisticParallelWrite{},
                          hitbox::RefillAlways{},
                          std::string("inner")};
    auto outer = hitbox::compose(local, std::move(inner), offload).with_label("outer");
    CHECK(outer.label() == "outer");
    REQUIRE(redis.set(key, Str{"v", clock.now() + 60s, std::nullopt, clock.now()}));
    auto found = outer.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->source == "outer.inner.redis");

    local.fail(Op::get, ErrorKind::connection, "a");
    inner_l1.fail(Op::get, ErrorKind::decode, "b");
    redis.fail(Op::get, ErrorKind::timeout, "c");
    auto failed = outer.get<std::string>(key);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().what() ==
          "[outer] unavailable: every tier failed to read: [outer.memory] connection: a; "
          "[outer.inner.near] decode: b; [outer.inner.redis] timeout: c");
}

TEST_CASE("Both tiers failing names each tier's error") {
    hitbox::InlineOffload offload;
    hitbox_test::FailingBackend l1{"memory"}, l2{"redis"};
    l1.fail(Op::get, ErrorKind::connection, "refused");
    l2.fail(Op::get, ErrorKind::timeout, "no reply within 250 ms");
    auto tiers = hitbox::compose(l1, l2, offload);
    auto r = tiers.get<std::string>(key);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == ErrorKind::unavailable);
    CHECK(r.error().backend() == "cache");
    CHECK(r.error().what() ==
          "[cache] unavailable: every tier failed to read: [cache.memory] connection: refused; "
          "[cache.redis] timeout: no reply within 250 ms");
    CHECK(tiers.stats().l1_read_errors == 1);
    CHECK(tiers.stats().l2_read_errors == 1);
}

TEST_CASE("An L1 error is counted and treated as a miss") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    REQUIRE(l2.set(key, Str{"v", clock.now() + 60s, std::nullopt, clock.now()}));
    l1.fail(Op::get, ErrorKind::connection, "flaky", 1);
    auto tiers = hitbox::compose(l1, l2, offload);
    auto r = tiers.get<std::string>(key);
    REQUIRE(r);
    REQUIRE(r->has_value());
    CHECK(tiers.stats().l1_read_errors == 1);
    CHECK(l1.contains(key));  // refilled despite the failed read
    auto again = tiers.lookup<std::string>(key);
    REQUIRE(again);
    CHECK(again->source == "cache.memory");
}

TEST_CASE("Deletes go to every tier, L2 first; a failed delete is an error naming the tier") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    std::mutex m;
    std::vector<std::string> order;
    l1.on(Op::remove, [&](const CacheKey&) {
        std::lock_guard lock(m);
        order.push_back("memory");
    });
    l2.on(Op::remove, [&](const CacheKey&) {
        std::lock_guard lock(m);
        order.push_back("redis");
    });
    auto tiers = hitbox::compose(l1, l2, offload);
    REQUIRE(l1.set(key, Str{"v"}));
    auto removed = tiers.remove(key);
    REQUIRE(removed);
    CHECK(*removed);  // present in one tier is enough
    CHECK(order == std::vector<std::string>{"redis", "memory"});

    REQUIRE(tiers.set(key, Str{"v"}));
    l2.fail(Op::remove, ErrorKind::connection, "gone");
    auto failed = tiers.remove(key);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().kind() == ErrorKind::connection);
    CHECK(failed.error().backend() == "cache.redis");
    CHECK_FALSE(l1.contains(key));  // L1 was still cleared
    CHECK(tiers.stats().remove_errors == 1);
    CHECK(tiers.stats().unavailable == 0);  // one tier of two failed: not "unavailable"

    l1.fail(Op::remove, ErrorKind::timeout, "slow");
    auto both = tiers.remove(key);
    REQUIRE_FALSE(both);
    CHECK(both.error().kind() == ErrorKind::unavailable);
    CHECK(both.error().message().starts_with("every tier failed to remove: "));
    CHECK(tiers.stats().unavailable == 1);
}

TEST_CASE("Of three tiers two fail a delete: the error says two, and the composition was not unavailable") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    Tier a{"a", clock}, b{"b", clock}, c{"c", clock};
    b.fail(Op::remove, ErrorKind::connection, "refused");
    c.fail(Op::remove, ErrorKind::timeout, "slow");
    auto tiers = hitbox::compose(std::ref(a), std::ref(b), std::ref(c), offload);
    REQUIRE(a.set(key, Str{"v"}));
    auto r = tiers.remove(key);
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == ErrorKind::unavailable);
    CHECK(r.error().message().starts_with("2 tiers failed to remove: "));
    CHECK(contains(r.error().message(), "[cache.b] connection: refused"));
    CHECK(contains(r.error().message(), "[cache.c] timeout: slow"));
    CHECK_FALSE(a.contains(key));
    CHECK(tiers.stats().unavailable == 0);
    a.fail(Op::remove, ErrorKind::timeout, "slow too");
    auto all = tiers.remove(key);
    REQUIRE_FALSE(all);
    CHECK(all.error().message().starts_with("every tier failed to remove: "));
    CHECK(tiers.stats().unavailable == 1);
    // A sequential write that L1 took and L2 refused failed by its policy, not in every tier.
    auto seq = hitbox::compose(std::ref(a), std::ref(b), offload).with_write(hitbox::SequentialWrite{});
    b.fail(Op::set, ErrorKind::connection, "refused");
    CHECK_FALSE(seq.set(key, Str{"v"}));
    CHECK(seq.stats().unavailable == 0);
}

TEST_CASE("Tiers can be held by reference, pointer, shared_ptr or unique_ptr") {
    hitbox::InlineOffload offload;
    hitbox_test::CountingBackend l1{"memory"}, l2{"redis"};
    const Str value{"v"};
    SECTION("std::reference_wrapper and raw pointer") {
        auto tiers = hitbox::compose(std::ref(l1), &l2, offload);
        REQUIRE(tiers.set(key, value));
        CHECK(&tiers.l1() == &l1);
        CHECK(&tiers.l2() == &l2);
    }
    SECTION("shared_ptr and unique_ptr") {
        auto shared = std::make_shared<hitbox_test::CountingBackend>(l1);
        auto tiers = hitbox::compose(shared, std::make_unique<hitbox_test::CountingBackend>(l2), offload);
        REQUIRE(tiers.set(key, value));
        CHECK(&tiers.l1() == shared.get());
    }
    CHECK(l1.peek<std::string>(key) == std::optional<Str>(value));
    CHECK(l2.peek<std::string>(key) == std::optional<Str>(value));
}

TEST_CASE("hitbox::lookup and hitbox::store work on any Backend") {
    hitbox_test::FailingBackend plain{"redis"};
    REQUIRE(hitbox::store(plain, key, Str{"v"}));
    auto found = hitbox::lookup<std::string>(plain, key);
    REQUIRE(found);
    CHECK(found->source == "redis");
    auto missing = hitbox::lookup<std::string>(plain, CacheKey{"other"});
    REQUIRE(missing);
    CHECK(missing->source.empty());
    plain.fail(Op::get, ErrorKind::timeout, "slow");
    auto failed = hitbox::lookup<std::string>(plain, key);
    REQUIRE_FALSE(failed);
    CHECK(failed.error().backend() == "redis");

    hitbox::InlineOffload offload;
    hitbox_test::FailingBackend l1{"memory"};
    auto tiers = hitbox::compose(l1, plain, offload);
    REQUIRE(l1.set(key, Str{"v"}));
    auto traced = hitbox::lookup<std::string>(tiers, key);
    REQUIRE(traced);
    CHECK(traced->source == "cache.memory");
}

TEMPLATE_TEST_CASE("Race read on workers: the first hit wins, the loser is offloaded or dropped", "", hitbox::RaceRead,
                   Dynamic<hitbox::RaceRead>) {
    hitbox::ManualClock clock;
    const Str value{"v", clock.now() + 60s, std::nullopt, clock.now()};

    SECTION("a slow L1 loses to an L2 hit; the loser finishes in the background") {
        hitbox::OffloadManager offload{{.workers = 2}};
        Tier l1{"memory", clock}, l2{"redis", clock};
        REQUIRE(l1.set(key, value));
        REQUIRE(l2.set(key, value));
        Signal release;
        l1.on(Op::get, [&](const CacheKey&) { release.wait(); });
        auto tiers =
            hitbox::compose(l1, l2, offload).with_read(policy_for<TestType>(hitbox::RaceRead{.steal_after = 10s}));
        auto found = tiers.template lookup<std::string>(key);
        REQUIRE(found);
        CHECK(found->source == "cache.redis");  // L1 is still blocked: L2 answered first
        CHECK(tiers.stats().race_losers_offloaded == 1);
        release.open();
        REQUIRE(offload.wait_all(10s));
        CHECK(l1.counts().hits == 1);  // the loser ran to completion
    }
    SECTION("a loser that has not started is never run when dropped") {
        hitbox::OffloadManager offload{{.workers = 1}};
        Tier l1{"memory", clock}, l2{"redis", clock};
        REQUIRE(l1.set(key, value));
        Signal started, release;
        REQUIRE(offload.spawn(hitbox::OffloadKind::custom, "", [&] {
            started.open();
            release.wait();
        }));
        REQUIRE(started.wait());
        auto tiers = hitbox::compose(l1, l2, offload)
                         .with_read(policy_for<TestType>(
                             hitbox::RaceRead{.loser = hitbox::RaceLoser::drop, .steal_after = 0us}));
        auto found = tiers.template lookup<std::string>(key);  // the caller runs L1 itself: the worker is busy
        REQUIRE(found);
        CHECK(found->source == "cache.memory");
        CHECK(tiers.stats().race_losers_dropped == 1);
        release.open();
        REQUIRE(offload.wait_all(10s));
        CHECK(l2.counts().gets == 0);
    }
    SECTION("with InlineOffload the loser runs on the caller; with RaceLoser::drop it does not run") {
        hitbox::InlineOffload offload;
        Tier l1{"memory", clock}, l2{"redis", clock};
        REQUIRE(l1.set(key, value));
        auto offloaded =
            hitbox::compose(std::ref(l1), std::ref(l2), offload).with_read(policy_for<TestType>(hitbox::RaceRead{}));
        REQUIRE(offloaded.template get<std::string>(key)->has_value());
        CHECK(l2.counts().gets == 1);
        CHECK(offloaded.stats().race_losers_offloaded == 1);
        auto dropped = hitbox::compose(std::ref(l1), std::ref(l2), offload)
                           .with_read(policy_for<TestType>(hitbox::RaceRead{.loser = hitbox::RaceLoser::drop}));
        REQUIRE(dropped.template get<std::string>(key)->has_value());
        CHECK(l2.counts().gets == 1);
        CHECK(dropped.stats().race_losers_dropped == 1);
    }
}

TEST_CASE("Race write on workers returns on the first success; the loser still writes") {
    hitbox::OffloadManager offload{{.workers = 2}};
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    Signal release;
    l1.on(Op::set, [&](const CacheKey&) { release.wait(); });
    auto tiers = hitbox::compose(l1, l2, offload).with_write(hitbox::RaceWrite{.steal_after = 10s});
    const Str value{"v", clock.now() + 60s, std::nullopt, clock.now()};
    auto stored = tiers.store(key, value);
    REQUIRE(stored);
    CHECK(stored->written == std::vector<std::string>{"cache.redis"});
    CHECK_FALSE(l1.contains(key));
    release.open();
    REQUIRE(offload.wait_all(10s));
    CHECK(l1.peek<std::string>(key) == std::optional<Str>(value));
}

TEST_CASE("A refill never brings back a value removed or overwritten while it was on its way") {
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    const Str old_value{"old", clock.now() + 60s, std::nullopt, clock.now()};
    const Str new_value{"new", clock.now() + 60s, std::nullopt, clock.now()};

    SECTION("a remove while the refill writes L1: the refill is taken back") {
        hitbox::InlineOffload offload;
        auto tiers = hitbox::compose(std::ref(l1), std::ref(l2), offload);
        REQUIRE(l2.set(key, old_value));
        Signal writing, removed;
        l1.on(Op::set, [&](const CacheKey&) {  // the refill stops before it writes L1
            writing.open();
            removed.wait();
        });
        std::thread reader([&] { REQUIRE(tiers.get<std::string>(key)->has_value()); });
        REQUIRE(writing.wait());
        auto gone = tiers.remove(key);
        REQUIRE(gone);
        CHECK(*gone);
        removed.open();
        reader.join();
        l1.on(Op::set, nullptr);
        CHECK_FALSE(l1.contains(key));  // held "old" until its expiry before
        CHECK_FALSE(tiers.get<std::string>(key)->has_value());
        CHECK(tiers.stats().superseded == 1);
    }
    SECTION("an offloaded refill that runs after a remove does not write") {
        hitbox::OffloadManager offload{{.workers = 1}};
        auto tiers =
            hitbox::compose(std::ref(l1), std::ref(l2), offload).with_refill(hitbox::RefillAlways{.offloaded = true});
        REQUIRE(l2.set(key, old_value));
        Signal started, release;
        REQUIRE(offload.spawn(hitbox::OffloadKind::custom, "", [&] {  // the only worker is busy
            started.open();
            release.wait();
        }));
        REQUIRE(started.wait());
        REQUIRE(tiers.get<std::string>(key)->has_value());  // the refill is queued
        REQUIRE(tiers.remove(key));
        release.open();
        REQUIRE(offload.wait_all(10s));
        CHECK(l1.counts().sets == 0);
        CHECK_FALSE(tiers.get<std::string>(key)->has_value());
        CHECK(tiers.stats().superseded == 1);
    }
    SECTION("a set while the refill writes L1: L1 does not keep the older value") {
        hitbox::InlineOffload offload;
        auto tiers = hitbox::compose(std::ref(l1), std::ref(l2), offload);
        REQUIRE(l2.set(key, old_value));
        Signal writing, written;
        std::atomic<bool> first{true};
        l1.on(Op::set, [&](const CacheKey&) {
            if (!first.exchange(false)) return;  // only the refill's write waits
            writing.open();
            written.wait();
        });
        std::thread reader([&] { REQUIRE(tiers.get<std::string>(key)->has_value()); });
        REQUIRE(writing.wait());
        REQUIRE(tiers.set(key, new_value));  // L1 and L2 take "new"; then the refill writes "old" over L1's
        written.open();
        reader.join();
        l1.on(Op::set, nullptr);
        auto got = tiers.get<std::string>(key);
        REQUIRE(got->has_value());
        CHECK((*got)->data == "new");  // "old" from L1 before, while L2 held "new"
    }
}

TEST_CASE("A Race write's slower half does not land after a later remove or set of the key") {
    hitbox::OffloadManager offload{{.workers = 2}};
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    Signal release;
    std::atomic<bool> slow{true};
    l2.on(Op::set, [&](const CacheKey&) {
        if (slow) release.wait();
    });
    auto tiers = hitbox::compose(std::ref(l1), std::ref(l2), offload).with_write(hitbox::RaceWrite{.steal_after = 10s});
    const Str v1{"v1", clock.now() + 60s, std::nullopt, clock.now()};
    const Str v2{"v2", clock.now() + 60s, std::nullopt, clock.now()};

    SECTION("remove") {
        auto stored = tiers.store(key, v1);
        REQUIRE(stored);
        CHECK(stored->written == std::vector<std::string>{"cache.memory"});  // L2's write still waits
        auto gone = tiers.remove(key);
        REQUIRE(gone);
        CHECK(*gone);
        release.open();
        REQUIRE(offload.wait_all(10s));
        CHECK_FALSE(l2.contains(key));  // held the removed "v1" for its whole ttl before
        CHECK_FALSE(tiers.get<std::string>(key)->has_value());
        CHECK(tiers.stats().superseded == 1);
    }
    SECTION("set") {
        REQUIRE(tiers.set(key, v1));  // L2's write of v1 waits
        slow = false;
        REQUIRE(tiers.set(key, v2));  // returns with L1's success; L2 takes v2 when a worker is free
        release.open();
        REQUIRE(offload.wait_all(10s));
        auto in_l2 = l2.peek<std::string>(key);
        CHECK((!in_l2 || in_l2->data == "v2"));  // never the older v1 (before: v1 for its whole ttl)
        CHECK(tiers.stats().superseded >= 1);
    }
}

TEST_CASE("A Race read while a Race write's slower half is on its way does not refill L1 with the older value") {
    hitbox::OffloadManager offload{{.workers = 2}};
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    const Str v1{"v1", clock.now() + 60s, std::nullopt, clock.now()};
    const Str v2{"v2", clock.now() + 60s, std::nullopt, clock.now()};
    REQUIRE(l2.set(key, v1));
    Signal release;
    l2.on(Op::set, [&](const CacheKey&) { release.wait(); });  // L2 takes v2 late
    auto tiers = hitbox::compose(std::ref(l1), std::ref(l2), offload)
                     .with_read(hitbox::RaceRead{})
                     .with_write(hitbox::RaceWrite{.steal_after = 10s});
    REQUIRE(tiers.set(key, v2));                                                   // L1 won with v2
    l1.on(Op::get, [&](const CacheKey&) { std::this_thread::sleep_for(100ms); });  // L2's old v1 answers first
    auto read = tiers.get<std::string>(key);
    REQUIRE(read);
    l1.on(Op::get, nullptr);
    release.open();
    REQUIRE(offload.wait_all(10s));
    l2.on(Op::set, nullptr);
    CHECK(l2.peek<std::string>(key)->data == "v2");
    CHECK(l1.peek<std::string>(key)->data == "v2");  // v1 (refilled over v2) before, for its whole ttl
    CHECK(tiers.stats().superseded >= 1);
}

TEST_CASE("RaceRead: an L1 entry kept past its expiry does not win over a fresh L2 entry") {
    hitbox::InlineOffload offload;
    hitbox::ManualClock clock;
    auto l1 = hitbox_test::manual_memory(clock);  // a tier that holds entries past expiry for fail-safe
    Tier l2{"redis", clock};
    const auto t0 = clock.now();
    Str kept{"old", t0 + 10s, std::nullopt, t0};
    kept.retain = t0 + 1h;  // fail-safe: kept past its expiry
    REQUIRE(l1.set(key, kept));
    clock.advance(20s);
    const Str fresh{"fresh from another instance", clock.now() + 60s, std::nullopt, clock.now()};
    REQUIRE(l2.set(key, fresh));
    auto tiers = hitbox::compose(std::ref(l1), std::ref(l2), offload).with_read(hitbox::RaceRead{});
    auto found = tiers.lookup<std::string>(key);
    REQUIRE(found);
    REQUIRE(found->value);
    CHECK(found->value->data == "fresh from another instance");  // "old" before
    CHECK(found->source == "cache.redis");
    auto refilled = l1.get<std::string>(key);
    REQUIRE(refilled);
    REQUIRE(*refilled);
    CHECK((*refilled)->data == "fresh from another instance");
    // With nothing in L2, the kept entry is still what a race read answers.
    REQUIRE(l2.remove(key));
    REQUIRE(l1.set(key, kept));
    auto only_kept = tiers.lookup<std::string>(key);
    REQUIRE(only_kept);
    REQUIRE(only_kept->value);
    CHECK(only_kept->value->data == "old");
}

TEST_CASE("Parallel read runs L2 while L1 is slow, and prefers the longer-lived value") {
    hitbox::OffloadManager offload{{.workers = 1}};
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    const Str short_lived{"old", clock.now() + 10s, std::nullopt, clock.now()};
    const Str long_lived{"new", std::nullopt, std::nullopt, clock.now()};  // never expires
    REQUIRE(l1.set(key, short_lived));
    REQUIRE(l2.set(key, long_lived));
    Signal l2_done;
    std::atomic<bool> l2_on_worker{false};
    const auto caller = std::this_thread::get_id();
    l2.on(Op::get, [&](const CacheKey&) {
        l2_on_worker = std::this_thread::get_id() != caller;
        l2_done.open();
    });
    l1.on(Op::get, [&](const CacheKey&) { l2_done.wait(); });  // L1 answers only after L2 has been asked
    auto tiers = hitbox::compose(l1, l2, offload).with_read(hitbox::ParallelRead{});
    auto found = tiers.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->source == "cache.redis");
    CHECK(found->value->data == "new");
    CHECK(l2_on_worker);
    l1.on(Op::get, nullptr);
    CHECK(l1.peek<std::string>(key) == std::optional<Str>(long_lived));  // refilled with the winner
}

TEST_CASE("Destroying a composition turns its queued background work into no-ops") {
    hitbox::OffloadManager offload{{.workers = 1}};
    hitbox::ManualClock clock;
    Tier l1{"memory", clock}, l2{"redis", clock};
    REQUIRE(l2.set(key, Str{"v", clock.now() + 60s, std::nullopt, clock.now()}));
    Signal started, release;
    REQUIRE(offload.spawn(hitbox::OffloadKind::custom, "", [&] {
        started.open();
        release.wait();
    }));
    REQUIRE(started.wait());
    {
        auto tiers = hitbox::compose(l1, l2, offload).with_refill(hitbox::RefillAlways{.offloaded = true});
        REQUIRE(tiers.get<std::string>(key)->has_value());
        CHECK(tiers.stats().refills == 1);
    }  // destroyed with the refill still queued
    release.open();
    REQUIRE(offload.wait_all(10s));
    CHECK(l1.counts().sets == 0);
    CHECK(offload.counters().completed == 2);
}

TEST_CASE("Moving a composition keeps its tiers, policies and counters") {
    hitbox::InlineOffload offload;
    hitbox_test::FailingBackend l1{"memory"}, l2{"redis"};
    l1.fail(Op::get, ErrorKind::connection, "x", 1);
    auto tiers = hitbox::compose(l1, l2, offload);
    REQUIRE(tiers.get<std::string>(key));
    auto moved = std::move(tiers).with_label("users");
    CHECK(moved.label() == "users");
    CHECK(moved.stats().l1_read_errors == 1);
    REQUIRE(moved.set(key, Str{"v"}));
    auto found = moved.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->source == "users.memory");
    auto raced = std::move(moved).with_policies(
        hitbox::ComposePolicies<hitbox::RaceRead, hitbox::SequentialWrite, hitbox::RefillNever>{});
    static_assert(std::is_same_v<decltype(raced)::read_policy, hitbox::RaceRead>);
    static_assert(std::is_same_v<decltype(raced)::write_policy, hitbox::SequentialWrite>);
    CHECK(raced.label() == "users");
    REQUIRE(raced.get<std::string>(key)->has_value());
}

TEST_CASE("Concurrent readers and writers on every policy combination stay consistent") {
    hitbox::OffloadManager offload{{.workers = 2, .max_queue = 64}};
    hitbox_test::CountingBackend l1{"memory"}, l2{"redis"};
    auto run = [&](auto tiers) {
        std::vector<std::thread> threads;
        std::atomic<int> wrong{0}, failures{0};
        for (int t = 0; t < 4; ++t)
            threads.emplace_back([&, t] {
                for (int i = 0; i < 200; ++i) {
                    CacheKey k{"k", 0, {{"n", std::to_string((i + t) % 16)}}};
                    if (i % 3 == 0) {
                        if (!tiers.set(k, Str{"value-" + std::to_string((i + t) % 16)})) ++failures;
                    } else if (i % 7 == 0) {
                        if (!tiers.remove(k)) ++failures;
                    } else {
                        auto r = tiers.template get<std::string>(k);
                        if (!r)
                            ++failures;
                        else if (*r && (*r)->data != "value-" + std::to_string((i + t) % 16))
                            ++wrong;
                    }
                }
            });
        for (auto& th : threads) th.join();
        CHECK(wrong == 0);
        CHECK(failures == 0);
    };
    run(hitbox::compose(std::ref(l1), std::ref(l2), offload));
    run(hitbox::compose(std::ref(l1), std::ref(l2), offload)
            .with_read(hitbox::RaceRead{.steal_after = 50us})
            .with_write(hitbox::RaceWrite{.steal_after = 50us}));
    run(hitbox::compose(std::ref(l1), std::ref(l2), offload)
            .with_read(hitbox::ParallelRead{})
            .with_write(hitbox::SequentialWrite{})
            .with_refill(hitbox::RefillAlways{.offloaded = true}));
    REQUIRE(offload.wait_all(30s));
}

TEST_CASE("Race and Parallel calls made from the offload's own worker cannot deadlock it") {
    hitbox::OffloadManager offload{{.workers = 1}};
    hitbox_test::CountingBackend l1{"memory"}, l2{"redis"};
    REQUIRE(l2.set(key, Str{"v"}));
    auto race = hitbox::compose(l1, l2, offload).with_read(hitbox::RaceRead{}).with_write(hitbox::RaceWrite{});
    auto parallel = hitbox::compose(l1, l2, offload).with_read(hitbox::ParallelRead{});
    std::atomic<int> done{0};
    // The only worker runs this task; the tier calls it hands to the pool can only run on the caller.
    REQUIRE(offload.spawn(hitbox::OffloadKind::revalidate, "k", [&] {
        auto a = race.lookup<std::string>(key);
        auto b = parallel.lookup<std::string>(key);
        auto c = race.set(CacheKey{"other"}, Str{"w"});
        auto d = parallel.set(CacheKey{"other"}, Str{"w"});
        if (a && a->hit() && b && b->hit() && c && d) ++done;
    }));
    REQUIRE(offload.wait_all(10s));
    CHECK(done == 1);
}

// ---- callbacks that throw, durations at the edges -----------------------------------------------------

TEST_CASE("A tier that throws is a failing tier on get, set and remove") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    Tier l1{"memory", clock}, l2{"redis", clock};
    hitbox::Compose tiers{l1, l2, offload};
    const Str value("v", clock.now() + 60s, std::nullopt, clock.now());
    for (Op op : {Op::get, Op::set, Op::remove})
        l1.on(op, [](const CacheKey&) { throw std::runtime_error("l1 on fire"); });

    // The write reaches L2; L1's exception is its error.
    auto stored = tiers.store(key, value);
    REQUIRE(stored);
    CHECK(stored->written == std::vector<std::string>{"cache.redis"});
    REQUIRE(stored->errors.size() == 1);
    CHECK(stored->errors[0].what() == "[cache.memory] unavailable: write threw: l1 on fire");
    // A read on the hit path (get) and a traced one (lookup) go on to L2.
    auto got = tiers.get<std::string>(key);
    REQUIRE(got);
    REQUIRE(*got);
    CHECK((*got)->data == "v");
    auto found = tiers.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->source == "cache.redis");
    REQUIRE_FALSE(found->errors.empty());
    CHECK(found->errors[0].what() == "[cache.memory] unavailable: read threw: l1 on fire");
    CHECK(tiers.stats().l1_read_errors == 2);
    // Remove: L2's key goes; the call fails with L1's error.
    auto removed = tiers.remove(key);
    REQUIRE_FALSE(removed);
    CHECK(removed.error().what() == "[cache.memory] unavailable: remove threw: l1 on fire");
    CHECK_FALSE(l2.contains(key));
}

TEST_CASE("Race with steal_after max(): refused calls run on the caller") {
    hitbox::ManualClock clock;
    hitbox::OffloadManager offload{{.workers = 1}};
    Tier l1{"memory", clock}, l2{"redis", clock};
    REQUIRE(l2.set(key, Str("from l2", clock.now() + 60s, std::nullopt, clock.now())));
    offload.shutdown(0ms);  // refuses every task from now on
    constexpr auto forever = std::chrono::microseconds::max();
    auto tiers = hitbox::Compose{l1, l2, offload}
                     .with_read(hitbox::RaceRead{.steal_after = forever})
                     .with_write(hitbox::RaceWrite{.steal_after = forever});
    const auto started = std::chrono::steady_clock::now();
    auto got = tiers.get<std::string>(key);
    REQUIRE(got);
    REQUIRE(*got);
    CHECK((*got)->data == "from l2");
    CHECK(tiers.set(key, Str("both", clock.now() + 60s, std::nullopt, clock.now())));
    CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("A far-future expiry refills L1 with the same time") {
    hitbox::ManualClock clock;
    hitbox::InlineOffload offload;
    Tier l1{"memory", clock}, l2{"redis", clock};
    hitbox::Compose tiers{l1, l2, offload};
    const auto far = hitbox::TimePoint::max() - 1ms;
    REQUIRE(l2.set(key, Str("far", far, far - 1ms, clock.now())));
    auto found = tiers.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->source == "cache.redis");
    REQUIRE(l1.peek<std::string>(key));
    CHECK(l1.peek<std::string>(key)->expire == far);
    CHECK(l1.peek<std::string>(key)->stale == far - 1ms);
    CHECK(found->value->ttl(clock.now()) == far - clock.now());
    CHECK(found->value->ttl(hitbox::TimePoint::min()) == std::chrono::milliseconds::max());
}
