// Extending hitbox from outside the library (doc/extending.md): a toy compressor and a toy byte store,
// written here in the test tree with no edit under include/, run through the entry codec, the byte-tier
// host (ByteBackend), a composition with a MemoryBackend under the Cache front and its Prometheus export,
// and AnyBackend.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/any_backend.hpp>
#include <hitbox/hitbox.hpp>

#include "support/prometheus_parse.hpp"
#include "support/test_types.hpp"

using namespace std::chrono_literals;

namespace {

/// A toy compressor: run-length encoding as (count, byte) pairs. Enough to change the bytes, so a payload
/// that skipped it would not decode.
struct RleCompressor {
    static constexpr std::uint8_t id = 200;
    static constexpr std::string_view name = "rle";
    std::size_t max_decompressed = hitbox::default_max_decompressed;

    hitbox::Result<std::string> compress(std::string_view in) const {
        std::string out;
        for (std::size_t i = 0; i < in.size();) {
            std::size_t run = 1;
            while (i + run < in.size() && in[i + run] == in[i] && run < 255) ++run;
            out.push_back(static_cast<char>(run));
            out.push_back(in[i]);
            i += run;
        }
        return out;
    }

    hitbox::Result<std::string> decompress(std::string_view in) const {
        if (in.size() % 2 != 0) return hitbox::fail(hitbox::ErrorKind::compression, "rle: odd length");
        std::string out;
        for (std::size_t i = 0; i < in.size(); i += 2) {
            const auto run = static_cast<unsigned char>(in[i]);
            if (run == 0) return hitbox::fail(hitbox::ErrorKind::compression, "rle: empty run");
            if (out.size() + run > max_decompressed)
                return hitbox::fail(hitbox::ErrorKind::compression, "rle: output over the limit");
            out.append(run, in[i + 1]);
        }
        return out;
    }
};
static_assert(hitbox::Compressor<RleCompressor>);

/// A toy byte store: an in-process map of bytes with per-key deadlines, shared by its copies. It records
/// the TTL of each write so the tests can see what the host asked for; `broken` makes every call fail.
class MapStore {
public:
    struct Entry {
        std::string bytes;
        std::optional<std::chrono::steady_clock::time_point> deadline;
    };
    struct State {
        std::mutex mutex;
        std::map<std::string, Entry> entries;
        std::map<std::string, std::optional<std::int64_t>> last_px;
        int dels = 0;
        bool broken = false;
    };

    hitbox::Result<std::optional<std::string>> get(std::string_view key) {
        std::lock_guard lock(state_->mutex);
        if (state_->broken) return hitbox::fail(hitbox::ErrorKind::connection, "map store: broken");
        auto it = state_->entries.find(std::string(key));
        if (it == state_->entries.end()) return std::optional<std::string>{};
        if (it->second.deadline && *it->second.deadline <= std::chrono::steady_clock::now()) {
            state_->entries.erase(it);
            return std::optional<std::string>{};
        }
        return std::optional<std::string>(it->second.bytes);
    }

    hitbox::Result<void> set_px(std::string_view key, std::string_view value, std::optional<std::int64_t> px) {
        std::lock_guard lock(state_->mutex);
        if (state_->broken) return hitbox::fail(hitbox::ErrorKind::connection, "map store: broken");
        Entry e{std::string(value), std::nullopt};
        if (px) e.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(*px);
        state_->entries[std::string(key)] = std::move(e);
        state_->last_px[std::string(key)] = px;
        return {};
    }

    hitbox::Result<bool> del(std::string_view key) {
        std::lock_guard lock(state_->mutex);
        if (state_->broken) return hitbox::fail(hitbox::ErrorKind::connection, "map store: broken");
        ++state_->dels;
        return state_->entries.erase(std::string(key)) > 0;
    }

    State& state() const { return *state_; }

private:
    std::shared_ptr<State> state_ = std::make_shared<State>();
};
static_assert(hitbox::ByteStore<MapStore>);

using ToyCodec = hitbox::EntryCodec<hitbox::Bitcode, hitbox::BinaryFormat, RleCompressor>;
using ToyTier = hitbox::ByteBackend<hitbox::Bitcode, hitbox::BinaryFormat, RleCompressor, MapStore>;
static_assert(hitbox::Backend<ToyTier>);

ToyTier toy_tier(MapStore store, std::string prefix = "toy:") {
    return ToyTier(std::move(store), ToyCodec({}, {}, {}, std::move(prefix)), "toy");
}

hitbox::CacheKey key_of(int id) { return hitbox::CacheKey{"user", 1, {{"id", std::to_string(id)}}}; }

}  // namespace

TEST_CASE("A toy compressor runs through the entry codec") {
    ToyCodec codec;
    const auto now = hitbox::Clock::now();
    hitbox::CacheValue<std::string> v{std::string(300, 'a') + "bc", now + 60s, now + 45s, now};
    auto blob = codec.encode(v);
    REQUIRE(blob);
    auto env = hitbox::parse_envelope(*blob);
    REQUIRE(env);
    CHECK(env->header.compressor_id == RleCompressor::id);
    CHECK(env->payload.size() < 20);  // 302 payload bytes ran together: the toy compressor was applied
    auto back = codec.decode<std::string>(*blob);
    REQUIRE(back);
    CHECK(back->data == v.data);
    CHECK(back->expire == v.expire);
    CHECK(back->stale == v.stale);

    // Another compressor's codec refuses the entry by its id, before decompressing anything.
    auto foreign = hitbox::EntryCodec<>{}.decode<std::string>(*blob);
    REQUIRE_FALSE(foreign);
    CHECK(foreign.error().kind() == hitbox::ErrorKind::decode);
    CHECK(foreign.error().message().find("compressor id 200") != std::string::npos);

    // A corrupt payload is the compressor's error, not a crash.
    std::string cut = *blob;
    cut.pop_back();
    auto bad = codec.decode<std::string>(cut);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().kind() == hitbox::ErrorKind::compression);
}

TEST_CASE("A toy byte store under ByteBackend: keys, the TTL rule, framing and counters come from the host") {
    MapStore store;
    auto tier = toy_tier(store);
    const auto profile = hitbox_test::sample_profile();

    REQUIRE(tier.set(key_of(1), hitbox::CacheValue<hitbox_test::Profile>{profile, hitbox::Clock::now() + 60s}));
    auto hit = tier.get<hitbox_test::Profile>(key_of(1));
    REQUIRE(hit);
    REQUIRE(*hit);
    CHECK((*hit)->data == profile);

    // The stored key is prefix + key format bytes; the stored bytes are an envelope with the toy's id.
    const std::string stored_key = tier.codec().key(key_of(1));
    CHECK(stored_key.rfind("toy:", 0) == 0);
    {
        std::lock_guard lock(store.state().mutex);
        REQUIRE(store.state().entries.count(stored_key) == 1);
        auto env = hitbox::parse_envelope(store.state().entries[stored_key].bytes);
        REQUIRE(env);
        CHECK(env->header.compressor_id == RleCompressor::id);
        CHECK(env->header.format_id == hitbox::BinaryFormat::id);
        // The host passed the remaining time to live, in ms.
        const auto px = store.state().last_px[stored_key];
        REQUIRE(px);
        CHECK(*px > 50'000);
        CHECK(*px <= 60'000);
    }

    // No expiry: no store TTL. Already expired: not written, the key is removed (the one TTL rule).
    REQUIRE(tier.set(key_of(2), hitbox::CacheValue<std::string>{"forever"}));
    CHECK_FALSE(store.state().last_px[tier.codec().key(key_of(2))].has_value());
    const int dels = store.state().dels;
    REQUIRE(tier.set(key_of(2), hitbox::CacheValue<std::string>{"gone", hitbox::Clock::now() - 1s}));
    CHECK(store.state().dels == dels + 1);
    auto gone = tier.get<std::string>(key_of(2));
    REQUIRE(gone);
    CHECK_FALSE(*gone);

    // Batches work through the host's fallback loop (the toy store has no get_many / write_many).
    std::vector<std::pair<hitbox::CacheKey, hitbox::CacheValue<std::string>>> batch{
        {key_of(10), hitbox::CacheValue<std::string>{"ten"}},
        {key_of(11), hitbox::CacheValue<std::string>{"eleven", hitbox::Clock::now() - 1ms}}};
    for (const auto& r : tier.set_many(batch)) CHECK(r);
    std::vector<hitbox::CacheKey> keys{key_of(10), key_of(11), key_of(12)};
    auto many = tier.get_many<std::string>(keys);
    REQUIRE(many.size() == 3);
    REQUIRE(many[0]);
    REQUIRE(*many[0]);
    CHECK((*many[0])->data == "ten");
    CHECK((many[1] && !*many[1]));
    CHECK((many[2] && !*many[2]));

    // The raw layer copies an entry as is; a non-envelope is refused.
    auto raw = tier.read(key_of(1));
    REQUIRE(raw);
    REQUIRE(*raw);
    REQUIRE(tier.write(key_of(3), **raw, std::chrono::milliseconds::max()));
    CHECK_FALSE(store.state().last_px[tier.codec().key(key_of(3))].has_value());  // beyond max_px_ms: none
    auto copied = tier.get<hitbox_test::Profile>(key_of(3));
    REQUIRE(copied);
    REQUIRE(*copied);
    CHECK((*copied)->data == profile);
    auto refused = tier.write(key_of(4), "not an envelope", std::nullopt);
    REQUIRE_FALSE(refused);
    CHECK(refused.error().kind() == hitbox::ErrorKind::encode);

    // Store failures carry the tier's label and are counted by kind.
    store.state().broken = true;
    auto failed = tier.get<std::string>(key_of(1));
    REQUIRE_FALSE(failed);
    CHECK(failed.error().backend() == "toy");
    store.state().broken = false;
    const hitbox::ByteStats s = tier.stats();
    CHECK(s.errors_of(hitbox::ErrorKind::connection) == 1);
    CHECK(s.errors_of(hitbox::ErrorKind::encode) == 1);
    CHECK(s.writes == 7);  // set x3, set_many x2, write x2
    CHECK(s.hits >= 3);
    CHECK(s.bytes_out > 0);
}

TEST_CASE("The toy tier composes with a MemoryBackend under the Cache front, and its counters export") {
    auto memory = hitbox::MemoryBackend::builder().max_entries(100).build();
    REQUIRE(memory);
    MapStore store;
    hitbox::InlineOffload offload;
    auto tiers = hitbox::compose(*memory, toy_tier(store), offload);

    // A value only in L2 is found there and refilled into L1.
    auto l2 = toy_tier(store);
    REQUIRE(l2.set(key_of(1), hitbox::CacheValue<std::string>{"from toy", hitbox::Clock::now() + 60s}));
    auto found = hitbox::lookup<std::string>(tiers, key_of(1));
    REQUIRE(found);
    REQUIRE(found->value);
    CHECK(found->value->data == "from toy");
    CHECK(found->source == "cache.toy");
    auto in_l1 = memory->get<std::string>(key_of(1));
    REQUIRE(in_l1);
    REQUIRE(*in_l1);
    CHECK((*in_l1)->data == "from toy");

    hitbox::Cache cache{tiers, offload};
    int loads = 0;
    auto loader = [&] {
        ++loads;
        return std::string("computed");
    };
    auto first = cache.get_or_compute<std::string>(key_of(2), loader, {.ttl = 60s});
    auto second = cache.get_or_compute<std::string>(key_of(2), loader, {.ttl = 60s});
    REQUIRE(first.value);
    REQUIRE(second.value);
    CHECK(*second.value == "computed");
    CHECK(loads == 1);
    {
        std::lock_guard lock(store.state().mutex);
        CHECK(store.state().entries.count(l2.codec().key(key_of(2))) == 1);  // written through to the toy store
    }

    const std::string text = hitbox::prometheus_text(cache);
    INFO(text);
    auto p = hitbox_test::parse_prometheus(text);
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    // The composed toy tier read key 1 (hit) and key 2 (miss) and wrote key 2; `l2` above is another tier
    // over the same store, with counters of its own.
    const hitbox::ByteStats toy = tiers.l2().stats();
    CHECK(toy.reads == 2);
    CHECK(toy.hits == 1);
    CHECK(toy.writes == 1);
    CHECK(p.value("hitbox_backend_read_total", {{"backend", "cache.toy"}}) == 2.0);
    CHECK(p.value("hitbox_backend_hits_total", {{"backend", "cache.toy"}}) == 1.0);
    CHECK(p.value("hitbox_backend_write_total", {{"backend", "cache.toy"}}) == 1.0);
    CHECK(p.value("hitbox_backend_write_bytes_total", {{"backend", "cache.toy"}}) ==
          static_cast<double>(toy.bytes_out));
    CHECK(p.value("hitbox_backend_read_total", {{"backend", "cache.memory"}}).has_value());
}

TEST_CASE("AnyBackend erases the toy tier: typed values as bytes in the toy store, through the shared codec") {
    MapStore store;
    hitbox::AnyBackend any(toy_tier(store));
    const auto profile = hitbox_test::sample_profile();
    REQUIRE(any.set(key_of(1), hitbox::CacheValue<hitbox_test::Profile>{profile, hitbox::Clock::now() + 60s}));

    // The erased tier wrote the same envelope the static codec reads: toy compressor, binary format.
    auto statically = toy_tier(store).get<hitbox_test::Profile>(key_of(1));
    REQUIRE(statically);
    REQUIRE(*statically);
    CHECK((*statically)->data == profile);

    auto back = any.get<hitbox_test::Profile>(key_of(1));
    REQUIRE(back);
    REQUIRE(*back);
    CHECK((*back)->data == profile);
    auto wrong = any.get<int>(key_of(1));
    REQUIRE_FALSE(wrong);
    CHECK(wrong.error().kind() == hitbox::ErrorKind::decode);

    // Already expired through the erased path: the same rule, the key goes.
    REQUIRE(any.set(key_of(1), hitbox::CacheValue<std::string>{"old", hitbox::Clock::now() - 1s}));
    auto gone = any.get<hitbox_test::Profile>(key_of(1));
    REQUIRE(gone);
    CHECK_FALSE(*gone);

    // And in a composition of erased tiers.
    auto memory = hitbox::MemoryBackend::builder().max_entries(100).build();
    REQUIRE(memory);
    hitbox::InlineOffload offload;
    auto tiers = hitbox::compose(hitbox::AnyBackend(*memory), any, offload);
    REQUIRE(tiers.set(key_of(5), hitbox::CacheValue<std::string>{"both", hitbox::Clock::now() + 60s}));
    auto via_toy = toy_tier(store).get<std::string>(key_of(5));
    REQUIRE(via_toy);
    REQUIRE(*via_toy);
    CHECK((*via_toy)->data == "both");
}
