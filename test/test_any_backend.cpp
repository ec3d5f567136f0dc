// hitbox::AnyBackend and hitbox::AnyValue: typed reads and writes through the erasure, object and bytes
// forms, byte tiers (envelopes compatible with the static RedisBackend codec), compositions of erased
// tiers, the Cache front on top, and errors instead of crashes.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/any_backend.hpp>
#include <hitbox/hitbox.hpp>

#include "support/test_backends.hpp"
#include "support/test_types.hpp"

using namespace std::chrono_literals;
using hitbox::AnyBackend;
using hitbox::AnyValue;
using hitbox::CacheKey;
using hitbox::CacheValue;
using hitbox::ErrorKind;
using hitbox_test::Profile;

namespace {

/// A byte tier with the raw layer RedisBackend has (read / write of envelopes, codec()), over a map: the
/// test double for "Redis" here; the redis suite runs the same through a real server (test_config_factory_redis.cpp).
template <class Fmt = hitbox::BinaryFormat, class Comp = hitbox::PassthroughCompressor>
class ByteTier {
public:
    using value_format = Fmt;
    using compressor_type = Comp;
    using codec_type = hitbox::EntryCodec<hitbox::Bitcode, Fmt, Comp>;

    explicit ByteTier(std::string label = "bytes", Comp comp = {}, Fmt format = {})
        : s_(std::make_shared<State>()), codec_(hitbox::Bitcode{}, format, comp), label_(std::move(label)) {}

    hitbox::Result<std::optional<std::string>> read(const CacheKey& key) {
        std::lock_guard lock(s_->mutex);
        ++s_->reads;
        if (s_->fail_reads) return hitbox::fail(ErrorKind::connection, "injected", label_);
        auto it = s_->map.find(codec_.key(key));
        if (it == s_->map.end()) return std::optional<std::string>{};
        return std::optional<std::string>(it->second);
    }
    hitbox::Result<void> write(const CacheKey& key, std::string_view envelope,
                               std::optional<std::chrono::milliseconds> ttl) {
        if (auto parsed = hitbox::parse_envelope(envelope); !parsed) return hitbox::fail(parsed.error());
        std::lock_guard lock(s_->mutex);
        ++s_->writes;
        s_->last_ttl = ttl;
        if (ttl && ttl->count() <= 0) {
            s_->map.erase(codec_.key(key));
            return {};
        }
        s_->map[codec_.key(key)] = std::string(envelope);
        return {};
    }
    hitbox::Result<bool> remove(const CacheKey& key) {
        std::lock_guard lock(s_->mutex);
        ++s_->removes;
        return s_->map.erase(codec_.key(key)) > 0;
    }
    // The typed side, as the static RedisBackend does it: the same codec over the same bytes.
    template <class T>
    hitbox::Result<std::optional<CacheValue<T>>> get(const CacheKey& key) {
        auto raw = read(key);
        if (!raw) return hitbox::fail(raw.error());
        if (!*raw) return std::optional<CacheValue<T>>{};
        auto v = codec_.template decode<T>(**raw);
        if (!v) return hitbox::fail(v.error());
        return std::optional<CacheValue<T>>(std::move(*v));
    }
    template <class T>
    hitbox::Result<void> set(const CacheKey& key, const CacheValue<T>& value) {
        auto blob = codec_.encode(value);
        if (!blob) return hitbox::fail(blob.error());
        std::optional<std::chrono::milliseconds> ttl;
        if (value.expire) ttl = *value.expire - hitbox::Clock::now();
        return write(key, *blob, ttl);
    }
    std::string_view label() const noexcept { return label_; }
    const codec_type& codec() const noexcept { return codec_; }

    std::size_t size() const {
        std::lock_guard lock(s_->mutex);
        return s_->map.size();
    }
    int writes() const {
        std::lock_guard lock(s_->mutex);
        return s_->writes;
    }
    std::optional<std::chrono::milliseconds> last_ttl() const {
        std::lock_guard lock(s_->mutex);
        return s_->last_ttl;
    }
    void fail_reads(bool on) {
        std::lock_guard lock(s_->mutex);
        s_->fail_reads = on;
    }
    void put_raw(const CacheKey& key, std::string bytes) {
        std::lock_guard lock(s_->mutex);
        s_->map[codec_.key(key)] = std::move(bytes);
    }

private:
    struct State {
        std::mutex mutex;
        std::map<std::string, std::string> map;
        int reads = 0, writes = 0, removes = 0;
        bool fail_reads = false;
        std::optional<std::chrono::milliseconds> last_ttl;
    };
    std::shared_ptr<State> s_;
    codec_type codec_;
    std::string label_;
};

/// Copyable, not serializable by any format: memory tiers must still hold it.
struct Opaque {
    std::shared_ptr<int> handle;
    int tag = 0;
};

hitbox::MemoryBackend memory(std::string label = "memory") {
    return *hitbox::MemoryBackend::builder().max_entries(1000).label(std::move(label)).build();
}

const CacheKey key{"user", 1, {{"id", "42"}}};

}  // namespace

TEST_CASE("AnyBackend over a MemoryBackend: typed set and get, misses, removes, label") {
    AnyBackend any(memory());
    static_assert(hitbox::Backend<AnyBackend>);
    CHECK(any.label() == "memory");
    CHECK(any.target_type() == typeid(hitbox::MemoryBackend));

    auto miss = any.get<Profile>(key);
    REQUIRE(miss);
    CHECK_FALSE(miss->has_value());

    const auto now = hitbox::Clock::now();
    const CacheValue<Profile> v{hitbox_test::sample_profile(), now + 60s, now + 30s, now};
    REQUIRE(any.set(key, v));
    auto hit = any.get<Profile>(key);
    REQUIRE(hit);
    REQUIRE(hit->has_value());
    CHECK(**hit == v);  // data and all three times

    auto removed = any.remove(key);
    REQUIRE(removed);
    CHECK(*removed);
    auto gone = any.get<Profile>(key);
    REQUIRE(gone);
    CHECK_FALSE(gone->has_value());
}

TEST_CASE("AnyBackend: a read as another type is a type_mismatch error naming both types") {
    AnyBackend any(memory());
    REQUIRE(any.set(key, CacheValue<std::string>{"hello"}));
    auto wrong = any.get<int>(key);
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().kind() == ErrorKind::type_mismatch);
    CHECK(wrong.error().message() == "entry holds std::string, read as int");
    CHECK(wrong.error().backend() == "memory");
    auto right = any.get<std::string>(key);
    REQUIRE(right);
    CHECK((*right)->data == "hello");
}

TEST_CASE("AnyBackend over memory holds values no format can serialize, and copies share the store") {
    AnyBackend any(memory());
    AnyBackend copy = any;
    auto handle = std::make_shared<int>(7);
    REQUIRE(any.set(key, CacheValue<Opaque>{Opaque{handle, 3}}));
    auto hit = copy.get<Opaque>(key);
    REQUIRE(hit);
    REQUIRE(hit->has_value());
    CHECK((*hit)->data.handle == handle);
    CHECK((*hit)->data.tag == 3);
}

TEST_CASE("AnyBackend honours the wrapped tier's clock: expired entries are misses") {
    hitbox::ManualClock clock;
    auto mem = *hitbox::MemoryBackend::builder().max_entries(100).clock(clock).build();
    AnyBackend any(mem);
    REQUIRE(any.set(key, CacheValue<int>{5, clock.now() + 10s, std::nullopt, clock.now()}));
    REQUIRE(any.get<int>(key)->has_value());
    clock.advance(10s);
    auto later = any.get<int>(key);
    REQUIRE(later);
    CHECK_FALSE(later->has_value());
}

TEST_CASE("AnyBackend over a byte tier writes the same envelope the static codec writes") {
    ByteTier<hitbox::JsonFormat> tier;
    AnyBackend any(tier);
    CHECK(any.label() == "bytes");
    const auto now = hitbox::Clock::now();
    const CacheValue<Profile> v{hitbox_test::sample_profile(), now + 60s, now + 30s, now};
    REQUIRE(any.set(key, v));
    REQUIRE(tier.size() == 1);
    REQUIRE(tier.last_ttl());
    CHECK(*tier.last_ttl() > 55s);
    CHECK(*tier.last_ttl() <= 60s);

    // The typed (static) side reads what the erased side wrote ...
    auto typed = tier.get<Profile>(key);
    REQUIRE(typed);
    REQUIRE(typed->has_value());
    CHECK(**typed == v);
    // ... and the erased side reads what the typed side wrote.
    const CacheKey other{"user", 1, {{"id", "43"}}};
    const CacheValue<Profile> w{hitbox_test::sample_profile("Grace"), now + 90s, std::nullopt, now};
    REQUIRE(tier.set(other, w));
    auto erased = any.get<Profile>(other);
    REQUIRE(erased);
    REQUIRE(erased->has_value());
    CHECK(**erased == w);
}

TEST_CASE("AnyBackend over a compressed byte tier round-trips through the compressor") {
    ByteTier<hitbox::BinaryFormat, hitbox::PassthroughCompressor> plain;
    AnyBackend any(plain);
    REQUIRE(any.set(key, CacheValue<std::string>{hitbox_test::binary_string()}));
    auto back = any.get<std::string>(key);
    REQUIRE(back);
    REQUIRE(back->has_value());
    CHECK((*back)->data == hitbox_test::binary_string());
}

TEST_CASE("AnyBackend over a byte tier reads and writes with the tier's own format object (its limits)") {
    using Nested = std::vector<std::vector<std::vector<int>>>;  // three levels
    const Nested deep{{{1, 2}, {3}}, {{4}}};
    ByteTier<hitbox::BinaryFormat> strict("bytes", {}, hitbox::BinaryFormat{.max_nesting = 2});
    ByteTier<hitbox::BinaryFormat> roomy("bytes", {}, hitbox::BinaryFormat{});
    AnyBackend any_strict(strict);
    // max_nesting bounds decodes: the static tier refuses the entry, and so does the erased one now (it
    // decoded with BinaryFormat{} and answered a hit).
    REQUIRE(roomy.set(key, CacheValue<Nested>{deep}));
    strict.put_raw(key, *roomy.read(key).value());
    auto typed = strict.get<Nested>(key);
    REQUIRE_FALSE(typed);
    CHECK(typed.error().kind() == ErrorKind::decode);
    auto read = any_strict.get<Nested>(key);
    REQUIRE_FALSE(read);
    CHECK(read.error().kind() == ErrorKind::decode);
    // What the erased side writes, the static side reads alike.
    REQUIRE(any_strict.set(key, CacheValue<Nested>{deep}));
    CHECK_FALSE(strict.get<Nested>(key));
    CHECK_FALSE(any_strict.get<Nested>(key));
    // Within the limit, the same tier reads and writes.
    const CacheKey flat{"flat", 1};
    REQUIRE(any_strict.set(flat, CacheValue<std::vector<int>>{{1, 2, 3}}));
    CHECK((*any_strict.get<std::vector<int>>(flat))->data == std::vector<int>{1, 2, 3});
}

TEST_CASE("AnyBackend over a byte tier: errors are errors, not crashes") {
    ByteTier<hitbox::BinaryFormat> tier;
    AnyBackend any(tier);

    SECTION("a type the tier's format cannot serialize is an encode error, nothing is written") {
        auto r = any.set(key, CacheValue<Opaque>{Opaque{}});
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::encode);
        CHECK(r.error().message().find("binary format cannot encode") != std::string::npos);
        CHECK(r.error().backend() == "bytes");
        CHECK(tier.size() == 0);
    }
    SECTION("RawFormat refuses a non-trivial type at run time") {
        ByteTier<hitbox::RawFormat> raw;
        AnyBackend r(raw);
        auto bad = r.set(key, CacheValue<Profile>{hitbox_test::sample_profile()});
        REQUIRE_FALSE(bad);
        CHECK(bad.error().kind() == ErrorKind::encode);
        REQUIRE(r.set(key, CacheValue<hitbox_test::Point>{{1, 2, 0.5}}));
        auto p = r.get<hitbox_test::Point>(key);
        REQUIRE(p);
        CHECK((*p)->data == hitbox_test::Point{1, 2, 0.5});
    }
    SECTION("corrupt bytes are a decode error") {
        tier.put_raw(key, "not an envelope");
        auto r = any.get<int>(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::decode);
        CHECK(r.error().backend() == "bytes");
    }
    SECTION("an envelope of another format is a decode error naming both") {
        hitbox::EntryCodec<hitbox::Bitcode, hitbox::JsonFormat> json;
        tier.put_raw(key, *json.encode(CacheValue<int>{1}));
        auto r = any.get<int>(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::decode);
        CHECK(r.error().message().find("format id 2") != std::string::npos);
    }
    SECTION("bytes that are not the type read are a decode error") {
        REQUIRE(any.set(key, CacheValue<std::string>{"abc"}));
        auto r = any.get<Profile>(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::decode);
    }
    SECTION("an expired envelope is a miss; an expired write deletes the key") {
        REQUIRE(any.set(key, CacheValue<int>{1, hitbox::Clock::now() + 60s}));
        REQUIRE(tier.size() == 1);
        REQUIRE(any.set(key, CacheValue<int>{2, hitbox::Clock::now() - 1s}));
        CHECK(tier.size() == 0);
        hitbox::EntryCodec<> codec;
        tier.put_raw(key, *codec.encode(CacheValue<int>{3, hitbox::Clock::now() - 1s}));
        auto r = any.get<int>(key);
        REQUIRE(r);
        CHECK_FALSE(r->has_value());
    }
    SECTION("a tier error passes through with its label") {
        tier.fail_reads(true);
        auto r = any.get<int>(key);
        REQUIRE_FALSE(r);
        CHECK(r.error().kind() == ErrorKind::connection);
        CHECK(r.error().backend() == "bytes");
    }
}

TEST_CASE("AnyValue: bytes are decoded once per type, then shared; re-encoding needs the type") {
    hitbox::BinaryFormat fmt;
    auto v = AnyValue::encoded(hitbox::BinaryFormat::id, *fmt.encode(std::string("payload")));
    CHECK(v.type() == nullptr);
    CHECK(v.format_id() == hitbox::BinaryFormat::id);

    auto json = v.encode(hitbox::JsonFormat::id);
    REQUIRE_FALSE(json);  // type unknown until read
    CHECK(json.error().kind() == ErrorKind::encode);
    auto same = v.encode(hitbox::BinaryFormat::id);
    REQUIRE(same);  // the bytes themselves, no re-encoding
    CHECK(*same == *fmt.encode(std::string("payload")));

    auto first = v.get<std::string>();
    REQUIRE(first);
    CHECK(**first == "payload");
    AnyValue copy = v;
    auto second = copy.get<std::string>();
    REQUIRE(second);
    CHECK(*second == *first);  // the same decoded object
    CHECK(copy.type() == &typeid(std::string));
    auto as_json = copy.encode(hitbox::JsonFormat::id);
    REQUIRE(as_json);
    CHECK(*hitbox::JsonFormat{}.decode<std::string>(*as_json) == "payload");
    // Bytes carry no type: a reader of another type decodes them for itself, as a static tier's get<int>
    // would (here the bytes are not an int: a decode error), and the first reader's object stays.
    const auto bytes = *fmt.encode(std::string("payload"));
    auto as_int = copy.get<int>();
    auto static_int = fmt.decode<int>(bytes);
    REQUIRE(bool(as_int) == bool(static_int));
    if (!as_int) CHECK(as_int.error().kind() == static_int.error().kind());
    CHECK(**copy.get<std::string>() == "payload");
    CHECK(*copy.get<std::string>() == *first);
    // Two integer types over one entry, in either order: each reads what the static tier reads.
    for (bool signed_first : {true, false}) {
        auto n = AnyValue::encoded(hitbox::BinaryFormat::id, *fmt.encode(std::int64_t{-1}));
        auto s1 = signed_first ? n.get<std::int64_t>() : hitbox::Result<const std::int64_t*>(nullptr);
        auto u = n.get<std::uint64_t>();
        auto s2 = n.get<std::int64_t>();
        REQUIRE(u);
        REQUIRE(s2);
        CHECK(**u == *fmt.decode<std::uint64_t>(*fmt.encode(std::int64_t{-1})));
        CHECK(**s2 == -1);
        if (signed_first) CHECK(*s1 == *s2);   // the first decode is kept and shared
        CHECK(*n.get<std::uint64_t>() == *u);  // so is the other type's
    }
    // An object held (not bytes) read as another type is a type_mismatch.
    auto object = AnyValue::of(std::string("payload"));
    auto mismatch = object.get<int>();
    REQUIRE_FALSE(mismatch);
    CHECK(mismatch.error().kind() == ErrorKind::type_mismatch);
}

TEST_CASE("AnyValue: concurrent first reads decode once and agree") {
    hitbox::BinaryFormat fmt;
    auto v = AnyValue::encoded(hitbox::BinaryFormat::id, *fmt.encode(hitbox_test::sample_profile()));
    std::vector<const Profile*> seen(4, nullptr);
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i)
        threads.emplace_back([&, i] {
            auto p = v.get<Profile>();
            if (p) seen[static_cast<std::size_t>(i)] = *p;
        });
    for (auto& t : threads) t.join();
    REQUIRE(seen[0] != nullptr);
    for (auto* p : seen) CHECK(p == seen[0]);
    CHECK(*seen[0] == hitbox_test::sample_profile());
}

TEST_CASE("AnyValue weighs its payload in a max_bytes memory tier") {
    auto small = AnyValue::of(std::string("x"));
    auto big = AnyValue::of(std::string(10'000, 'x'));
    CHECK(hitbox::heap_bytes(big) >= hitbox::heap_bytes(small) + 10'000);
    auto mem = *hitbox::MemoryBackend::builder().max_bytes(4096).build();
    AnyBackend any(mem);
    auto r = any.set(key, CacheValue<std::string>{std::string(10'000, 'x')});
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == ErrorKind::capacity);
}

TEST_CASE("A composition of AnyBackends, itself erased: label paths, refill, one decode per refilled entry") {
    hitbox::InlineOffload offload;
    auto mem = memory();
    ByteTier<hitbox::JsonFormat> bytes("redis");
    AnyBackend tiers(hitbox::compose(AnyBackend(mem), AnyBackend(bytes), offload));
    CHECK(tiers.label() == "cache");

    const CacheValue<Profile> v{hitbox_test::sample_profile(), hitbox::Clock::now() + 60s};
    auto stored = tiers.store(key, v);
    REQUIRE(stored);
    CHECK(stored->written == std::vector<std::string>{"cache.memory", "cache.redis"});

    auto found = tiers.lookup<Profile>(key);
    REQUIRE(found);
    CHECK(found->source == "cache.memory");
    CHECK(found->value->data == v.data);

    REQUIRE(mem.remove(key));
    auto from_l2 = tiers.lookup<Profile>(key);
    REQUIRE(from_l2);
    CHECK(from_l2->source == "cache.redis");
    CHECK(from_l2->value->data == v.data);
    CHECK(from_l2->value->expire == v.expire);

    // L1 was refilled with L2's payload, which the read above decoded: L1 now holds the decoded object.
    auto in_l1 = mem.get<AnyValue>(key);
    REQUIRE(in_l1);
    REQUIRE(in_l1->has_value());
    CHECK((*in_l1)->data.type() == &typeid(Profile));
    CHECK((*in_l1)->expire == v.expire);
    auto again = tiers.lookup<Profile>(key);
    REQUIRE(again);
    CHECK(again->source == "cache.memory");

    auto removed = tiers.remove(key);
    REQUIRE(removed);
    CHECK(*removed);
    CHECK(bytes.size() == 0);
}

TEST_CASE("A typed Compose over AnyBackends works without erasing the composition") {
    hitbox::InlineOffload offload;
    auto tiers = hitbox::compose(AnyBackend(memory()), AnyBackend(ByteTier<>("redis")), offload);
    REQUIRE(tiers.set(key, CacheValue<std::string>{"v"}));
    auto found = tiers.lookup<std::string>(key);
    REQUIRE(found);
    CHECK(found->source == "cache.memory");
    CHECK(found->value->data == "v");
}

TEST_CASE("A failing L2 behind an erased composition counts as a miss") {
    hitbox::InlineOffload offload;
    ByteTier<> bytes("redis");
    AnyBackend tiers(hitbox::compose(AnyBackend(memory()), AnyBackend(bytes), offload));
    bytes.fail_reads(true);
    auto found = tiers.lookup<int>(key);
    REQUIRE(found);
    CHECK_FALSE(found->hit());
    REQUIRE(found->errors.size() == 1);
    CHECK(found->errors[0].backend() == "cache.redis");
}

TEST_CASE("hitbox::Cache over an AnyBackend") {
    hitbox::InlineOffload offload;
    AnyBackend any(memory());
    hitbox::Cache cache{any, offload};
    int loads = 0;
    auto loader = [&] {
        ++loads;
        return std::string("computed");
    };
    auto first = cache.get_or_compute<std::string>(key, loader, {.ttl = 60s});
    REQUIRE(first);
    CHECK(first.status == hitbox::CacheStatus::Miss);
    auto second = cache.get_or_compute<std::string>(key, loader, {.ttl = 60s});
    REQUIRE(second);
    CHECK(*second == "computed");
    CHECK(second.status == hitbox::CacheStatus::Hit);
    CHECK(second.source == "memory");
    CHECK(loads == 1);
}

TEST_CASE("AnyBackend: target access and a moved-from handle") {
    AnyBackend any(memory("l1"));
    auto* mem = any.target<hitbox::MemoryBackend>();
    REQUIRE(mem != nullptr);
    CHECK(mem->label() == "l1");
    CHECK(any.target<AnyBackend>() == nullptr);

    AnyBackend moved = std::move(any);
    auto r = any.get<int>(key);  // NOLINT(bugprone-use-after-move): the documented moved-from state
    REQUIRE_FALSE(r);
    CHECK(r.error().kind() == ErrorKind::unavailable);
    CHECK(moved.label() == "l1");
}

TEST_CASE("AnyBackend by reference: std::ref and shared_ptr keep the tier shared") {
    auto mem = std::make_shared<hitbox::MemoryBackend>(memory());
    AnyBackend by_ptr(mem);
    REQUIRE(by_ptr.set(key, CacheValue<int>{9}));
    auto direct = mem->get<AnyValue>(key);
    REQUIRE(direct);
    REQUIRE(direct->has_value());
    CHECK(*(*direct)->data.get<int>().value() == 9);
    CHECK(by_ptr.target<hitbox::MemoryBackend>() == mem.get());

    hitbox_test::CountingBackend counting("counting");
    AnyBackend by_ref(std::ref(counting));
    REQUIRE(by_ref.set(key, CacheValue<int>{1}));
    CHECK(counting.counts().sets == 1);
}

TEST_CASE("hitbox::Cache over an erased composition names the inner tier and counts per tier") {
    hitbox::InlineOffload offload;
    auto mem = memory();
    ByteTier<hitbox::JsonFormat> bytes("redis");
    AnyBackend tiers(hitbox::compose(AnyBackend(mem), AnyBackend(bytes), offload));
    CHECK(tiers.tier_paths() == std::vector<std::string>{"cache.memory", "cache.redis"});
    CHECK(AnyBackend(memory("solo")).tier_paths() == std::vector<std::string>{"solo"});

    hitbox::CountingMetrics metrics;
    hitbox::Cache cache{tiers, offload, metrics};
    CHECK(cache.tier_paths() == std::vector<std::string>{"cache.memory", "cache.redis"});
    auto loader = [] { return std::string("v"); };
    auto miss = cache.get_or_compute<std::string>(key, loader, {.ttl = 60s});
    REQUIRE(miss);
    CHECK(miss.source == "upstream");
    auto hit = cache.get_or_compute<std::string>(key, loader, {.ttl = 60s});
    REQUIRE(hit);
    CHECK(hit.status == hitbox::CacheStatus::Hit);
    CHECK(hit.source == "cache.memory");
    REQUIRE(mem.remove(key));
    auto from_l2 = cache.get_or_compute<std::string>(key, loader, {.ttl = 60s});
    REQUIRE(from_l2);
    CHECK(from_l2.source == "cache.redis");
    const auto m = metrics.snapshot();
    REQUIRE(m.find("cache.memory") != nullptr);
    CHECK(m.find("cache.memory")->hits == 1);
    REQUIRE(m.find("cache.redis") != nullptr);
    CHECK(m.find("cache.redis")->hits == 1);
}
