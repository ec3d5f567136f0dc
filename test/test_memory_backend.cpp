// MemoryBackend: builder validation, typed get/set/remove, bounds, expiry with a manual clock, overwrite
// semantics, type mismatch, scan resistance, weighers and concurrent readers and writers.
#include <catch2/catch.hpp>

#include <malloc.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/core/concepts.hpp>

#include "support/sanitizers.hpp"
#include "support/test_backends.hpp"
#include "support/test_types.hpp"

using namespace std::chrono_literals;
using hitbox::CacheKey;
using hitbox::CacheValue;
using hitbox::ErrorKind;

static_assert(hitbox::Backend<hitbox::MemoryBackend>);
static_assert(hitbox::Backend<hitbox::BasicMemoryBackend<hitbox::ManualClock>>);
static_assert(std::is_nothrow_move_constructible_v<hitbox::MemoryBackend>);

namespace {

CacheKey key(int i) { return CacheKey("k", 0, {{"id", std::to_string(i)}}); }

using ManualMemory = hitbox::BasicMemoryBackend<hitbox::ManualClock>;

ManualMemory manual_backend(hitbox::ManualClock clock, std::uint64_t max_entries, std::size_t shards = 1) {
    auto built = hitbox::MemoryBackend::builder().max_entries(max_entries).shards(shards).clock(clock).build();
    REQUIRE(built);
    return std::move(*built);
}

/// A value whose content can be checked against its key: "<id>:<version>:<padding>#<checksum>".
std::string make_value(int id, int version) {
    std::string s =
        std::to_string(id) + ":" + std::to_string(version) + ":" + std::string(static_cast<std::size_t>(id % 50), 'x');
    unsigned sum = 0;
    for (char c : s) sum = sum * 31 + static_cast<unsigned char>(c);
    return s + "#" + std::to_string(sum);
}

bool value_matches(int id, const std::string& v) {
    auto hash = v.rfind('#');
    if (hash == std::string::npos) return false;
    unsigned sum = 0;
    for (std::size_t i = 0; i < hash; ++i) sum = sum * 31 + static_cast<unsigned char>(v[i]);
    return v.substr(hash + 1) == std::to_string(sum) && v.rfind(std::to_string(id) + ":", 0) == 0;
}

}  // namespace

TEST_CASE("MemoryBackend builder requires exactly one valid bound") {
    auto none = hitbox::MemoryBackend::builder().build();
    REQUIRE_FALSE(none);
    CHECK(none.error().kind() == ErrorKind::config);
    CHECK(none.error().message().find("max_entries") != std::string::npos);

    auto both = hitbox::MemoryBackend::builder().max_entries(10).max_bytes(1000).build();
    REQUIRE_FALSE(both);
    CHECK(both.error().kind() == ErrorKind::config);

    CHECK_FALSE(hitbox::MemoryBackend::builder().max_entries(0).build());
    CHECK_FALSE(hitbox::MemoryBackend::builder().max_bytes(0).build());
    CHECK_FALSE(hitbox::MemoryBackend::builder().max_entries(100).shards(3).build());
    CHECK_FALSE(hitbox::MemoryBackend::builder().max_entries(2).shards(4).build());
    CHECK_FALSE(hitbox::MemoryBackend::builder().max_entries(100).label("").build());
    CHECK_FALSE(hitbox::MemoryBackend::builder().max_entries(100).cleanup_interval(0ms).build());

    auto ok = hitbox::MemoryBackend::builder().max_entries(10'000).build();
    REQUIRE(ok);
    CHECK(ok->label() == "memory");
    CHECK(ok->shard_count() >= 1);
    auto labelled = hitbox::MemoryBackend::builder().max_entries(10).label("l1").build();
    REQUIRE(labelled);
    CHECK(labelled->label() == "l1");
    CHECK(labelled->shard_count() == 1);  // 10 entries are too few to split
}

TEST_CASE("MemoryBackend stores typed values with their times, and removes them") {
    hitbox::ManualClock clock;
    auto memory = manual_backend(clock, 100);
    const auto now = clock.now();
    CacheValue<hitbox_test::Profile> value{hitbox_test::sample_profile(), now + 60s, now + 45s, now - 1s};

    auto missing = memory.get<hitbox_test::Profile>(key(1));
    REQUIRE(missing);
    CHECK_FALSE(missing->has_value());

    REQUIRE(memory.set(key(1), value));
    auto found = memory.get<hitbox_test::Profile>(key(1));
    REQUIRE(found);
    REQUIRE(found->has_value());
    CHECK(**found == value);  // data and created/stale/expire, to the millisecond

    // A key built again from the same parts finds the same entry.
    CHECK(memory.get<hitbox_test::Profile>(CacheKey("k", 0, {{"id", "1"}}))->has_value());

    auto removed = memory.remove(key(1));
    REQUIRE(removed);
    CHECK(*removed);
    CHECK_FALSE(memory.get<hitbox_test::Profile>(key(1))->has_value());
    CHECK_FALSE(*memory.remove(key(1)));

    auto s = memory.stats();
    CHECK(s.hits == 2);
    CHECK(s.misses == 2);
    CHECK(s.entries == 0);
    CHECK(s.weighted_bytes == 0);
}

TEST_CASE("MemoryBackend moves values in through the rvalue overload") {
    hitbox::ManualClock clock;
    auto memory = manual_backend(clock, 100);
    std::string big(100'000, 'z');
    const char* buffer = big.data();
    CacheValue<std::string> value{std::move(big), std::nullopt, std::nullopt, clock.now()};
    REQUIRE(memory.set(key(1), std::move(value)));
    CHECK(value.data.empty());  // moved from
    auto hit = memory.get<std::string>(key(1));
    REQUIRE(hit);
    REQUIRE(hit->has_value());
    CHECK((*hit)->data.size() == 100'000);
    CHECK((*hit)->data.data() != buffer);  // the caller got a copy; the stored string is the moved buffer
}

TEST_CASE("MemoryBackend reports a type mismatch and keeps the entry") {
    hitbox::ManualClock clock;
    auto memory = manual_backend(clock, 100);
    REQUIRE(memory.set(key(1), CacheValue<std::string>{"text", std::nullopt, std::nullopt, clock.now()}));

    auto wrong = memory.get<int>(key(1));
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().kind() == ErrorKind::type_mismatch);
    CHECK(wrong.error().backend() == "memory");
    CHECK(wrong.error().message().find("std::string") != std::string::npos);
    CHECK(wrong.error().message().find("int") != std::string::npos);

    auto right = memory.get<std::string>(key(1));
    REQUIRE(right);
    REQUIRE(right->has_value());
    CHECK((*right)->data == "text");

    // Overwriting with another type is allowed; the old type then mismatches.
    REQUIRE(memory.set(key(1), CacheValue<int>{7, std::nullopt, std::nullopt, clock.now()}));
    CHECK((*memory.get<int>(key(1)))->data == 7);
    CHECK(memory.get<std::string>(key(1)).error().kind() == ErrorKind::type_mismatch);
    CHECK(memory.stats().entries == 1);
}

TEST_CASE("MemoryBackend read_with hands the live entry to a function in place") {
    hitbox::ManualClock clock;
    auto memory = manual_backend(clock, 100);
    const auto start = clock.now();
    REQUIRE(memory.set(key(1), CacheValue<std::string>{"text", start + 10ms, start + 5ms, start}));

    int calls = 0;
    const std::string* seen = nullptr;
    auto look = [&](const CacheValue<std::string>& v) {
        ++calls;
        seen = &v.data;
        CHECK(v.data == "text");
        CHECK(v.expire == start + 10ms);
        CHECK(v.stale == start + 5ms);
    };
    auto hit = memory.read_with<std::string>(key(1), look);
    REQUIRE(hit);
    CHECK(*hit);
    CHECK(calls == 1);
    // The same object both times: the function sees the stored entry, not a copy.
    const std::string* first = seen;
    REQUIRE(*memory.read_with<std::string>(key(1), look));
    CHECK(seen == first);

    auto absent = memory.read_with<std::string>(key(2), look);
    REQUIRE(absent);
    CHECK_FALSE(*absent);
    auto wrong = memory.read_with<int>(key(1), [&](const CacheValue<int>&) { ++calls; });
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().kind() == ErrorKind::type_mismatch);

    clock.advance(10ms);
    auto expired = memory.read_with<std::string>(key(1), look);
    REQUIRE(expired);
    CHECK_FALSE(*expired);
    CHECK(calls == 2);
    CHECK(memory.stats().hits == 2);
    CHECK(memory.stats().misses == 3);
}

TEST_CASE("MemoryBackend expiry follows the clock to the millisecond") {
    hitbox::ManualClock clock;
    auto memory = manual_backend(clock, 100);
    const auto start = clock.now();
    REQUIRE(memory.set(key(1), CacheValue<int>{1, start + 1500ms, std::nullopt, start}));
    REQUIRE(memory.set(key(2), CacheValue<int>{2, std::nullopt, std::nullopt, start}));

    clock.advance(1499ms);
    CHECK(memory.get<int>(key(1))->has_value());
    clock.advance(1ms);
    CHECK_FALSE(memory.get<int>(key(1))->has_value());  // expired at exactly its expire time
    CHECK(memory.get<int>(key(2))->has_value());        // no expiry: stays

    // Not yet reclaimed, but never returned and not "removed" as a live entry.
    CHECK(memory.stats().entries == 2);
    CHECK_FALSE(*memory.remove(key(1)));
    CHECK(memory.stats().expirations == 1);
    CHECK(memory.stats().entries == 1);

    clock.advance(std::chrono::hours(24 * 365));
    CHECK(memory.get<int>(key(2))->has_value());
}

TEST_CASE("MemoryBackend reclaims expired entries without anyone reading them") {
    hitbox::ManualClock clock;

    SECTION("cleanup() reclaims them") {
        auto memory = manual_backend(clock, 1000, 4);
        for (int i = 0; i < 100; ++i)
            REQUIRE(memory.set(key(i), CacheValue<int>{i, clock.now() + std::chrono::milliseconds(10 + i), std::nullopt,
                                                       clock.now()}));
        clock.advance(60ms);  // keys 0..50 expire (expire <= now)
        CHECK(memory.cleanup() == 51);
        auto s = memory.stats();
        CHECK(s.expirations == 51);
        CHECK(s.entries == 49);
        CHECK(s.hits == 0);
        CHECK(s.misses == 0);
    }

    SECTION("writes of other keys reclaim them, in any shard") {
        auto memory = manual_backend(clock, 1000, 8);
        REQUIRE(memory.set(key(-1), CacheValue<int>{0, clock.now() + 5ms, std::nullopt, clock.now()}));
        clock.advance(5ms);
        // Every write sweeps a little of one other shard, round robin: 8 writes visit every shard.
        for (int i = 0; i < 8; ++i)
            REQUIRE(memory.set(key(i), CacheValue<int>{i, std::nullopt, std::nullopt, clock.now()}));
        auto s = memory.stats();
        CHECK(s.expirations == 1);
        CHECK(s.entries == 8);
        CHECK(s.misses == 0);
    }

    SECTION("the background thread reclaims them") {
        auto built = hitbox::MemoryBackend::builder().max_entries(100).clock(clock).cleanup_interval(5ms).build();
        REQUIRE(built);
        auto memory = std::move(*built);
        REQUIRE(memory.set(key(1), CacheValue<int>{1, clock.now() + 1s, std::nullopt, clock.now()}));
        clock.advance(1s);
        // A real thread runs on its own schedule: poll, bounded to 5 s.
        auto deadline = std::chrono::steady_clock::now() + 5s;
        while (memory.stats().expirations == 0 && std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(1ms);
        CHECK(memory.stats().expirations == 1);
        CHECK(memory.stats().entries == 0);
    }
}

TEST_CASE("MemoryBackend overwrite replaces value, type and expiry") {
    hitbox::ManualClock clock;
    auto memory = manual_backend(clock, 100);
    const auto t0 = clock.now();

    REQUIRE(memory.set(key(1), CacheValue<std::string>{"short", t0 + 10ms, std::nullopt, t0}));
    REQUIRE(memory.set(key(1), CacheValue<std::string>{"long", t0 + 10s, std::nullopt, t0}));
    clock.advance(1s);
    auto v = memory.get<std::string>(key(1));
    REQUIRE(v->has_value());
    CHECK((*v)->data == "long");
    CHECK((*v)->expire == t0 + 10s);
    CHECK(memory.cleanup() == 0);  // the old expiry does not linger in the expiry index

    REQUIRE(memory.set(key(1), CacheValue<std::string>{"forever", std::nullopt, std::nullopt, t0}));
    clock.advance(1h);
    CHECK((*memory.get<std::string>(key(1)))->data == "forever");

    REQUIRE(memory.set(key(1), CacheValue<std::string>{"soon", clock.now() + 1ms, std::nullopt, t0}));
    clock.advance(1ms);
    CHECK_FALSE(memory.get<std::string>(key(1))->has_value());

    // Writing an already expired value stores nothing and drops the old value.
    REQUIRE(memory.set(key(2), CacheValue<int>{1, std::nullopt, std::nullopt, t0}));
    REQUIRE(memory.set(key(2), CacheValue<int>{2, clock.now(), std::nullopt, t0}));
    CHECK_FALSE(memory.get<int>(key(2))->has_value());

    auto s = memory.stats();
    CHECK(s.entries == 0);      // key 2 is gone; expired key 1 was reclaimed by the writes to its shard
    CHECK(s.expirations == 1);  // key 1 ("soon")
}

TEST_CASE("MemoryBackend honours max_entries under 10x over-insertion") {
    for (std::size_t shards : {std::size_t{1}, std::size_t{8}}) {
        hitbox::ManualClock clock;
        auto memory = manual_backend(clock, 1000, shards);
        std::uint64_t peak = 0;
        for (int i = 0; i < 10'000; ++i) {
            REQUIRE(memory.set(key(i), CacheValue<int>{i, std::nullopt, std::nullopt, clock.now()}));
            if (i % 3 == 0) (void)memory.get<int>(key(i / 2));  // some reads, so admission has counts to use
            peak = std::max(peak, memory.stats().entries);
        }
        auto s = memory.stats();
        CHECK(peak <= 1000);
        CHECK(s.entries == 1000);  // one bound for the whole cache: uneven shards borrow from each other
        CHECK(s.entries + s.evictions == 10'000);
        int present = 0;
        for (int i = 0; i < 10'000; ++i) present += memory.get<int>(key(i))->has_value() ? 1 : 0;
        CHECK(static_cast<std::uint64_t>(present) == s.entries);
    }
}

TEST_CASE("MemoryBackend honours max_bytes under 10x over-insertion") {
    hitbox::ManualClock clock;
    const std::uint64_t max_bytes = 256 * 1024;
    auto built = hitbox::MemoryBackend::builder().max_bytes(max_bytes).shards(2).clock(clock).build();
    REQUIRE(built);
    auto memory = std::move(*built);
    std::uint64_t written = 0;
    std::uint64_t peak = 0;
    for (int i = 0; written < 10 * max_bytes; ++i) {
        std::string payload(static_cast<std::size_t>(200 + (i * 37) % 1800), 'a');
        CacheValue<std::string> value{payload, std::nullopt, std::nullopt, clock.now()};
        written += hitbox::DefaultWeigher{}(key(i), payload);
        REQUIRE(memory.set(key(i), value));
        peak = std::max(peak, memory.stats().weighted_bytes);
    }
    auto s = memory.stats();
    CHECK(peak <= max_bytes);
    CHECK(s.weighted_bytes <= max_bytes);
    CHECK(s.weighted_bytes >= max_bytes * 9 / 10);
    CHECK(s.evictions > 0);

    // One entry may take most of the bound, whatever its shard: the other shards make room. It is larger
    // than the admission window, so it must win TinyLFU admission: a key written again soon does.
    const std::size_t big_size = max_bytes * 3 / 4;
    int writes = 0;
    bool stored = false;
    while (!stored && writes < 4) {
        ++writes;
        REQUIRE(memory.set(
            key(-1), CacheValue<std::string>{std::string(big_size, 'b'), std::nullopt, std::nullopt, clock.now()}));
        auto big = memory.get<std::string>(key(-1));
        REQUIRE(big);
        stored = big->has_value() && (*big)->data.size() == big_size;
        CHECK(memory.stats().weighted_bytes <= max_bytes);
    }
    CHECK(stored);

    // A value heavier than the bound is refused with a capacity error, and the old value is gone.
    REQUIRE(memory.set(key(0), CacheValue<std::string>{"small", std::nullopt, std::nullopt, clock.now()}));
    auto huge = memory.set(
        key(0), CacheValue<std::string>{std::string(max_bytes, 'h'), std::nullopt, std::nullopt, clock.now()});
    REQUIRE_FALSE(huge);
    CHECK(huge.error().kind() == ErrorKind::capacity);
    CHECK_FALSE(memory.get<std::string>(key(0))->has_value());
}

TEST_CASE("DefaultWeigher counts node, key and owned heap memory") {
    const CacheKey k = key(1);
    hitbox::DefaultWeigher w;
    const std::size_t small = w(k, std::string("ab"));
    const std::size_t large = w(k, std::string(1000, 'x'));
    CHECK(large - small >= 1000);
    CHECK(large - small <= 1100);
    CHECK(small >= sizeof(CacheValue<std::string>));

    CHECK(hitbox::heap_bytes(42) == 0);
    CHECK(hitbox::heap_bytes(std::string("sso")) == 0);
    std::vector<std::string> v{std::string(100, 'a'), std::string(200, 'b')};
    CHECK(hitbox::heap_bytes(v) >= v.capacity() * sizeof(std::string) + 300);
    std::map<int, int> m{{1, 1}, {2, 2}};
    CHECK(hitbox::heap_bytes(m) >= 2 * sizeof(std::pair<const int, int>));
    auto profile = hitbox_test::sample_profile(std::string(500, 'n'));
    CHECK(hitbox::heap_bytes(profile) >= 500);  // Hana structs are walked member by member
    CHECK(hitbox::heap_bytes(std::optional<std::string>{}) == 0);
}

TEST_CASE("MemoryBackend uses a custom weigher for max_bytes") {
    hitbox::ManualClock clock;
    auto built = hitbox::MemoryBackend::builder()
                     .max_bytes(1000)
                     .shards(1)
                     .clock(clock)
                     .weigher([](const CacheKey&, const auto& v) { return hitbox::heap_bytes(v) > 0 ? v.size() : 1; })
                     .build();
    REQUIRE(built);
    auto memory = std::move(*built);
    for (int i = 0; i < 30; ++i)
        REQUIRE(memory.set(key(i),
                           CacheValue<std::string>{std::string(100, 'q'), std::nullopt, std::nullopt, clock.now()}));
    auto s = memory.stats();
    CHECK(s.weighted_bytes == s.entries * 100);
    CHECK(s.entries == 10);
}

TEST_CASE("MemoryBackend: an overwrite that grows an entry keeps max_bytes once it returns") {
    hitbox::ManualClock clock;
    for (std::size_t shards : {1, 2}) {
        auto built = hitbox::MemoryBackend::builder()
                         .max_bytes(1000)
                         .shards(shards)
                         .clock(clock)
                         .weigher([](const CacheKey&, const std::string& v) { return v.size(); })
                         .build();
        REQUIRE(built);
        auto memory = std::move(*built);
        for (int i = 0; i < 20; ++i)
            REQUIRE(memory.set(key(i),
                               CacheValue<std::string>{std::string(10, 'a'), std::nullopt, std::nullopt, clock.now()}));
        // Each stored key in turn (read first, so the order holds it dear) grows to nearly the whole bound.
        for (int i = 0; i < 20; ++i) {
            auto held = memory.get<std::string>(key(i));
            REQUIRE(held);
            if (!held->has_value()) continue;
            REQUIRE(memory.set(
                key(i), CacheValue<std::string>{std::string(995, 'b'), std::nullopt, std::nullopt, clock.now()}));
            INFO("shards " << shards << ", key " << i);
            CHECK(memory.stats().weighted_bytes <= 1000);
            auto grown = memory.get<std::string>(key(i));
            REQUIRE(grown);
            CHECK(grown->has_value());  // the entry written last is the one kept
            REQUIRE(memory.set(key(i),
                               CacheValue<std::string>{std::string(10, 'a'), std::nullopt, std::nullopt, clock.now()}));
            for (int j = 20; j < 40; ++j)
                REQUIRE(memory.set(
                    key(j), CacheValue<std::string>{std::string(10, 'a'), std::nullopt, std::nullopt, clock.now()}));
        }
    }
}

TEST_CASE("MemoryBackend keeps a hot set through a scan of one-time keys") {
    hitbox::ManualClock clock;
    auto memory = manual_backend(clock, 1000, 1);
    auto read_or_fill = [&](int id) {
        auto hit = memory.get<int>(key(id));
        REQUIRE(hit);
        if (!hit->has_value())
            REQUIRE(memory.set(key(id), CacheValue<int>{id, std::nullopt, std::nullopt, clock.now()}));
    };
    // 500 hot keys, each read 8 times.
    for (int round = 0; round < 8; ++round)
        for (int id = 0; id < 500; ++id) read_or_fill(id);
    // A scan of 10 000 keys seen once (10x the capacity): a plain LRU would now hold only scan keys.
    for (int id = 100'000; id < 110'000; ++id) read_or_fill(id);

    int hot_left = 0;
    for (int id = 0; id < 500; ++id) hot_left += memory.get<int>(key(id))->has_value() ? 1 : 0;
    CHECK(hot_left >= 480);
    CHECK(memory.stats().rejected_admissions > 8'000);
    CHECK(memory.stats().entries <= 1000);
}

TEST_CASE("MemoryBackend handles are shared by copies and emptied by moves") {
    auto built = hitbox::MemoryBackend::builder().max_entries(100).build();
    REQUIRE(built);
    hitbox::MemoryBackend a = std::move(*built);
    hitbox::MemoryBackend b = a;
    REQUIRE(a.set(key(1), CacheValue<int>{5}));
    CHECK((*b.get<int>(key(1)))->data == 5);

    hitbox::MemoryBackend c = std::move(a);
    CHECK((*c.get<int>(key(1)))->data == 5);
    auto gone = a.get<int>(key(1));  // NOLINT(bugprone-use-after-move): the moved-from handle reports it
    REQUIRE_FALSE(gone);
    CHECK(gone.error().kind() == ErrorKind::unavailable);
    CHECK_FALSE(a.set(key(1), CacheValue<int>{1}));
    CHECK(a.label().empty());
    c.clear();
    CHECK(b.stats().entries == 0);
}

TEST_CASE("MemoryBackend: concurrent readers and writers see only whole, matching values") {
    auto built = hitbox::MemoryBackend::builder().max_entries(2000).shards(8).build();
    REQUIRE(built);
    auto memory = std::move(*built);
    constexpr int keys = 4000;  // twice the bound: evictions race with reads
    std::vector<CacheKey> ks;
    for (int i = 0; i < keys; ++i) ks.push_back(key(i));

    std::atomic<bool> failed{false};
    std::atomic<std::uint64_t> reads{0}, read_hits{0}, checked{0};
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    constexpr int ops_per_thread = 200'000;

    auto writer = [&](unsigned seed) {
        std::uint32_t x = seed;
        for (int op = 0; op < ops_per_thread && std::chrono::steady_clock::now() < deadline; ++op) {
            x = x * 1664525u + 1013904223u;
            int id = static_cast<int>((x >> 8) % keys);
            if (op % 10 == 9) {
                if (!memory.remove(ks[static_cast<std::size_t>(id)])) failed = true;
            } else if (!memory.set(ks[static_cast<std::size_t>(id)],
                                   CacheValue<std::string>{make_value(id, op), hitbox::Clock::now() + 60s})) {
                failed = true;
            }
        }
    };
    auto reader = [&](unsigned seed) {
        std::uint32_t x = seed;
        for (int op = 0; op < ops_per_thread && std::chrono::steady_clock::now() < deadline; ++op) {
            x = x * 1664525u + 1013904223u;
            int id = static_cast<int>((x >> 8) % keys);
            auto r = memory.get<std::string>(ks[static_cast<std::size_t>(id)]);
            reads.fetch_add(1);
            if (!r) {
                failed = true;
                continue;
            }
            if (r->has_value()) {
                read_hits.fetch_add(1);
                if (!value_matches(id, (*r)->data)) failed = true;
                checked.fetch_add(1);
            }
        }
    };
    std::vector<std::thread> threads;
    threads.emplace_back(writer, 1u);
    threads.emplace_back(writer, 2u);
    threads.emplace_back(reader, 3u);
    threads.emplace_back(reader, 4u);
    threads.emplace_back(reader, 5u);
    for (auto& t : threads) t.join();

    CHECK_FALSE(failed.load());
    CHECK(checked.load() > 0);
    auto s = memory.stats();
    CHECK(s.hits == read_hits.load());
    CHECK(s.hits + s.misses == reads.load());
    CHECK(s.entries <= 2000);
    CHECK(s.evictions > 0);
    for (int i = 0; i < keys; ++i) {
        auto r = memory.get<std::string>(ks[static_cast<std::size_t>(i)]);
        REQUIRE(r);
        if (r->has_value()) CHECK(value_matches(i, (*r)->data));
    }
}

TEST_CASE("Shard lock: readers never see a writer's half-done update, writers exclude each other") {
    hitbox::detail::RwLock lock;
    std::uint64_t a = 0, b = 0;  // plain fields: the lock alone must order them
    std::atomic<bool> torn{false};
    std::atomic<std::uint64_t> reads{0};
    constexpr int writes_per_writer = 20'000;
    auto writer = [&] {
        for (int i = 0; i < writes_per_writer; ++i) {
            std::unique_lock guard(lock);
            ++a;
            ++b;
        }
    };
    std::atomic<bool> done{false};
    auto reader = [&] {
        while (!done.load()) {
            hitbox::detail::ReadGuard guard(lock);
            if (a != b) torn = true;
            guard.slot().hits.fetch_add(1, std::memory_order_relaxed);
            reads.fetch_add(1);
        }
    };
    std::vector<std::thread> readers;
    for (int i = 0; i < 3; ++i) readers.emplace_back(reader);
    std::thread w1(writer), w2(writer);
    w1.join();
    w2.join();
    done = true;
    for (auto& t : readers) t.join();
    CHECK_FALSE(torn.load());
    CHECK(a == 2u * writes_per_writer);
    CHECK(b == a);
    CHECK(lock.hits() == reads.load());
    CHECK(lock.try_lock());
    lock.unlock();
}

// ---- callbacks that throw, weights and durations at the edges ---------------------------------------

TEST_CASE("MemoryBackend: a throwing weigher fails set, stores nothing") {
    hitbox::ManualClock clock;
    auto weigher = [](const CacheKey&, const std::string& v) -> std::size_t {
        if (v == "unweighable") throw std::runtime_error("cannot weigh");
        return v.size() + 100;
    };
    auto built = hitbox::MemoryBackend::builder().max_bytes(1 << 20).shards(1).clock(clock).weigher(weigher).build();
    REQUIRE(built);
    auto& m = *built;
    const CacheKey fresh{"w", 1, {{"k", "fresh"}}};
    const CacheKey held{"w", 1, {{"k", "held"}}};

    auto refused = m.set(fresh, CacheValue<std::string>("unweighable", clock.now() + 60s, std::nullopt, clock.now()));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind() == ErrorKind::unavailable);
    CHECK(refused.error().what() == "[memory] unavailable: weigher threw: cannot weigh");
    CHECK(m.stats().entries == 0);
    CHECK(m.stats().weighted_bytes == 0);
    CHECK(*m.get<std::string>(fresh) == std::nullopt);

    // Over an existing entry: the failed set leaves neither value behind (as a capacity error does).
    REQUIRE(m.set(held, CacheValue<std::string>("ok", clock.now() + 60s, std::nullopt, clock.now())));
    CHECK(m.stats().weighted_bytes == 102);
    CHECK_FALSE(m.set(held, CacheValue<std::string>("unweighable", clock.now() + 60s, std::nullopt, clock.now())));
    CHECK(m.stats().entries == 0);
    CHECK(m.stats().weighted_bytes == 0);
    CHECK(*m.get<std::string>(held) == std::nullopt);
    // The backend works on.
    REQUIRE(m.set(held, CacheValue<std::string>("again", clock.now() + 60s, std::nullopt, clock.now())));
    CHECK(m.get<std::string>(held)->value().data == "again");
}

TEST_CASE("MemoryBackend: a throwing copy fails set and get") {
    using hitbox_test::ThrowingCopy;
    hitbox::ManualClock clock;
    auto m = manual_backend(clock, 100);
    const CacheKey k{"copy", 1, {{"k", "1"}}};
    const CacheValue<ThrowingCopy> v(ThrowingCopy(7), clock.now() + 60s, std::nullopt, clock.now());
    {
        ThrowingCopy::Refusing refusing;
        auto stored = m.set(k, v);  // the const& overload copies the value into the entry
        REQUIRE_FALSE(stored);
        CHECK(stored.error().kind() == ErrorKind::unavailable);
        CHECK(stored.error().message() == "storing a copy of the value threw: copy refused");
    }
    CHECK(m.stats().entries == 0);
    CHECK(m.stats().weighted_bytes == 0);

    REQUIRE(m.set(k, v));
    {
        ThrowingCopy::Refusing refusing;
        auto got = m.get<ThrowingCopy>(k);
        REQUIRE_FALSE(got);
        CHECK(got.error().kind() == ErrorKind::unavailable);
        CHECK(got.error().message() == "copying the value out threw: copy refused");
    }
    // The failed get is a miss, not a hit.
    CHECK(m.stats().hits == 0);
    CHECK(m.stats().misses == 1);
    auto got = m.get<ThrowingCopy>(k);
    REQUIRE(got);
    REQUIRE(*got);
    CHECK((*got)->data.n == 7);
    CHECK(m.stats().hits == 1);
}

TEST_CASE("MemoryBackend: SIZE_MAX weights under max_bytes(UINT64_MAX)") {
    constexpr std::uint64_t cap = std::uint64_t{1} << 56;  // where bounds and weights saturate
    auto weigher = [](const CacheKey& key, const std::string&) -> std::size_t {
        return key.parts().front().value == std::optional<std::string>("huge") ? SIZE_MAX : 100;
    };
    for (std::size_t shards : {std::size_t{1}, std::size_t{4}}) {
        CAPTURE(shards);
        hitbox::ManualClock clock;
        auto built =
            hitbox::MemoryBackend::builder().max_bytes(UINT64_MAX).shards(shards).clock(clock).weigher(weigher).build();
        REQUIRE(built);
        auto& m = *built;
        auto put = [&](const char* name) {
            return m.set(CacheKey{"w", 1, {{"k", name}}},
                         CacheValue<std::string>(name, std::nullopt, std::nullopt, clock.now()));
        };
        auto has = [&](const char* name) { return m.get<std::string>(CacheKey{"w", 1, {{"k", name}}})->has_value(); };
        REQUIRE(put("a"));
        REQUIRE(put("b"));
        CHECK(m.stats().weighted_bytes == 200);
        REQUIRE(put("huge"));  // weighs the whole (saturated) bound: stored, counted as 2^56
        for (int round = 0; round < 3; ++round) {
            const auto s = m.stats();
            const std::uint64_t expected = (has("huge") ? cap : 0) + (has("a") ? 100 : 0) + (has("b") ? 100 : 0);
            CHECK(s.weighted_bytes == expected);
            CHECK(s.weighted_bytes <= cap);
            CHECK(s.entries == std::uint64_t{has("huge")} + has("a") + has("b"));
            REQUIRE(put(round == 1 ? "huge" : "a"));  // overwrites: the deltas stay exact
        }
        CHECK(m.remove(CacheKey{"w", 1, {{"k", "huge"}}}));
        CHECK(m.stats().weighted_bytes == (has("a") ? 100u : 0u) + (has("b") ? 100u : 0u));
        m.clear();
        CHECK(m.stats().weighted_bytes == 0);
        CHECK(m.stats().entries == 0);
        REQUIRE(put("a"));
        CHECK(m.stats().weighted_bytes == 100);
    }
}

TEST_CASE("MemoryBackend: huge weights under max_entries saturate weighted_bytes, never wrap") {
    // Under an entry bound the weigher's bytes are only reported. 300 entries of 2^56 bytes (where weights
    // clamp) sum past 2^64: the report stays at UINT64_MAX instead of wrapping to a small number.
    constexpr std::uint64_t cap = std::uint64_t{1} << 56;
    auto weigher = [](const CacheKey&, const std::string& v) -> std::size_t { return v == "small" ? 7 : SIZE_MAX; };
    for (std::size_t shards : {std::size_t{1}, std::size_t{4}}) {
        CAPTURE(shards);
        auto built = hitbox::MemoryBackend::builder().max_entries(1000).shards(shards).weigher(weigher).build();
        REQUIRE(built);
        auto& m = *built;
        auto key = [](int i) { return CacheKey{"w", 1, {{"k", std::to_string(i)}}}; };
        REQUIRE(m.set(key(0), CacheValue<std::string>("small")));
        REQUIRE(m.set(key(1), CacheValue<std::string>("huge")));
        CHECK(m.stats().weighted_bytes == cap + 7);
        for (int i = 2; i < 300; ++i) REQUIRE(m.set(key(i), CacheValue<std::string>("huge")));
        CHECK(m.stats().entries == 300);
        CHECK(m.stats().weighted_bytes == UINT64_MAX);  // 299 * 2^56 + 7 wrapped to about 2^63 before
        for (int i = 2; i < 300; ++i) REQUIRE(m.remove(key(i)));
        CHECK(m.stats().weighted_bytes == cap + 7);                // the exact sum is kept underneath
        REQUIRE(m.set(key(1), CacheValue<std::string>("small")));  // an overwrite that shrinks
        CHECK(m.stats().weighted_bytes == 14);
        m.clear();
        CHECK(m.stats().weighted_bytes == 0);
    }
}

namespace {
/// A value that says it owns more heap than there is.
struct Enormous {
    int n = 0;
    friend std::size_t hitbox_heap_bytes(const Enormous&) { return SIZE_MAX; }
};
}  // namespace

TEST_CASE("DefaultWeigher saturates instead of wrapping") {
    const CacheKey k{"w", 1, {{"k", "1"}}};
    CHECK(hitbox::DefaultWeigher{}(k, Enormous{}) == SIZE_MAX);  // wrapped to 343 before
    CHECK(hitbox::heap_bytes(std::pair<Enormous, std::string>{}) == SIZE_MAX);
    CHECK(hitbox::heap_bytes(std::vector<Enormous>(3)) == SIZE_MAX);
    CHECK(hitbox::heap_bytes(std::make_unique<Enormous>()) == SIZE_MAX);
    auto built = hitbox::MemoryBackend::builder().max_bytes(1 << 20).build();
    REQUIRE(built);
    auto refused = built->set(k, CacheValue<Enormous>(Enormous{1}));
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind() == ErrorKind::capacity);
    CHECK(built->stats().entries == 0);
}

TEST_CASE("MemoryBackend: max_entries(UINT64_MAX) over 1024 shards reserves a bounded amount up front") {
#if defined(__GLIBC__) && !HITBOX_TEST_ASAN && !HITBOX_TEST_TSAN
    const auto in_use = [] {
        const struct mallinfo2 m = mallinfo2();
        return m.uordblks + m.hblkhd;
    };
    const std::size_t before = in_use();
#endif
    auto built = hitbox::MemoryBackend::builder().max_entries(UINT64_MAX).shards(1024).build();
    REQUIRE(built);
#if defined(__GLIBC__) && !HITBOX_TEST_ASAN && !HITBOX_TEST_TSAN
    // Each shard reserved for 2^20 entries before (about 40 MB each, 40 GB in all); the store as a whole
    // now reserves for at most 2^20.
    CHECK(in_use() - before < std::size_t{128} << 20);
#endif
    REQUIRE(built->set(CacheKey{"n", 1}, CacheValue<int>(1)));
    CHECK(built->get<int>(CacheKey{"n", 1})->value().data == 1);
}

TEST_CASE("MemoryBackend: max_entries(UINT64_MAX) builds and works") {
    auto built = hitbox::MemoryBackend::builder().max_entries(UINT64_MAX).shards(2).build();
    REQUIRE(built);
    for (int i = 0; i < 100; ++i) REQUIRE(built->set(CacheKey{"n", 1, {{"i", std::to_string(i)}}}, CacheValue<int>(i)));
    CHECK(built->stats().entries == 100);
    CHECK(built->get<int>(CacheKey{"n", 1, {{"i", "42"}}})->value().data == 42);
}

TEST_CASE("MemoryBackend: far-future expiry, cleanup_interval max()") {
    const CacheKey k{"far", 1, {{"k", "1"}}};
    {
        // System clock: the coarse-clock shortcut subtracts from the expiry.
        auto m =
            hitbox::MemoryBackend::builder().max_entries(10).cleanup_interval(std::chrono::milliseconds::max()).build();
        REQUIRE(m);
        REQUIRE(m->set(k, CacheValue<int>(1, hitbox::TimePoint::max() - 1ms)));
        CHECK(m->get<int>(k)->has_value());
        REQUIRE(m->set(k, CacheValue<int>(2, hitbox::TimePoint::max())));
        CHECK(m->get<int>(k)->value().data == 2);
        CHECK(m->cleanup() == 0);
        // A past expiry far back is already expired: nothing stored.
        REQUIRE(m->set(k, CacheValue<int>(3, hitbox::TimePoint::min())));
        CHECK_FALSE(m->get<int>(k)->has_value());
    }
    // An interval past the steady clock's range: the reaper sleeps without limit and still stops at once.
    const auto started = std::chrono::steady_clock::now();
    {
        auto m = hitbox::MemoryBackend::builder()
                     .max_entries(10)
                     .cleanup_interval(std::chrono::milliseconds::max() - 1ms)
                     .build();
        REQUIRE(m);
        REQUIRE(m->set(k, CacheValue<int>(4, hitbox::Clock::now() + 60s)));
    }
    CHECK(std::chrono::steady_clock::now() - started < 5s);
}

TEST_CASE("MemoryBackend: cleanup_interval takes max() of any duration type as never") {
    const auto started = std::chrono::steady_clock::now();
    {
        auto s = hitbox::MemoryBackend::builder().max_entries(10).cleanup_interval(std::chrono::seconds::max()).build();
        auto h = hitbox::MemoryBackend::builder().max_entries(10).cleanup_interval(std::chrono::hours::max()).build();
        auto d = hitbox::MemoryBackend::builder()
                     .max_entries(10)
                     .cleanup_interval(std::chrono::duration<double>::max())
                     .build();
        REQUIRE(s);  // these wrapped to a negative count: "cleanup_interval must be positive"
        REQUIRE(h);
        REQUIRE(d);
        CHECK(h->set(CacheKey{"k", 1}, CacheValue<int>(1, hitbox::Clock::now() + 60s)));
    }
    CHECK(std::chrono::steady_clock::now() - started < 5s);
    // Below a millisecond rounds up to one; a negative interval is still refused.
    CHECK(hitbox::MemoryBackend::builder().max_entries(10).cleanup_interval(std::chrono::microseconds(10)).build());
    CHECK_FALSE(hitbox::MemoryBackend::builder().max_entries(10).cleanup_interval(-std::chrono::hours(1)).build());
}
