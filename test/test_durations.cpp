// core/durations.hpp: the duration histograms of tiers (read, write, serialize, deserialize, compress,
// decompress) and of the OffloadManager's tasks, their Prometheus series, and that they are off by default.
// Timings are real: each stage of a toy byte tier (a store, a value format and a compressor defined here)
// can be made to sleep, and only that stage's histogram may see the sleep.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <hitbox/backend/byte_backend.hpp>
#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/core/durations.hpp>
#include <hitbox/core/metrics.hpp>
#include <hitbox/format/binary.hpp>
#include <hitbox/offload/offload_manager.hpp>
#include <hitbox/resilience/circuit_breaker.hpp>

#include "support/prometheus_parse.hpp"

using namespace std::chrono_literals;
using hitbox::TierStage;

namespace {

constexpr auto slow = 50ms;
constexpr std::int64_t slow_ns = std::chrono::nanoseconds(slow).count();

/// The stage whose toy part sleeps `slow` on every call (none when empty). Set by one test at a time.
std::optional<TierStage> slow_stage;

void maybe_sleep(TierStage stage) {
    if (slow_stage == stage) std::this_thread::sleep_for(slow);
}

/// A byte store in a map; get sleeps when reads are slow, set_px and del when writes are.
class SlowStore {
public:
    struct State {
        std::mutex mutex;
        std::map<std::string, std::string> entries;
        bool broken = false;
    };

    hitbox::Result<std::optional<std::string>> get(std::string_view key) {
        maybe_sleep(TierStage::read);
        std::lock_guard lock(state_->mutex);
        if (state_->broken) return hitbox::fail(hitbox::ErrorKind::connection, "slow store: broken");
        auto it = state_->entries.find(std::string(key));
        if (it == state_->entries.end()) return std::optional<std::string>{};
        return std::optional<std::string>(it->second);
    }
    hitbox::Result<void> set_px(std::string_view key, std::string_view value, std::optional<std::int64_t>) {
        maybe_sleep(TierStage::write);
        std::lock_guard lock(state_->mutex);
        state_->entries[std::string(key)] = std::string(value);
        return {};
    }
    hitbox::Result<bool> del(std::string_view key) {
        maybe_sleep(TierStage::write);
        std::lock_guard lock(state_->mutex);
        return state_->entries.erase(std::string(key)) > 0;
    }

    State& state() const { return *state_; }

private:
    std::shared_ptr<State> state_ = std::make_shared<State>();
};

/// BinaryFormat that sleeps when serialization or deserialization is slow.
struct SlowFormat {
    static constexpr std::uint8_t id = 201;
    static constexpr std::string_view name = "slow_binary";
    template <class T>
    hitbox::Result<std::string> encode(const T& v) const {
        maybe_sleep(TierStage::serialize);
        return hitbox::BinaryFormat{}.encode(v);
    }
    template <class T>
    hitbox::Result<T> decode(std::string_view bytes) const {
        maybe_sleep(TierStage::deserialize);
        return hitbox::BinaryFormat{}.decode<T>(bytes);
    }
};

/// A copying compressor that sleeps when compression or decompression is slow.
struct SlowCompressor {
    static constexpr std::uint8_t id = 202;
    static constexpr std::string_view name = "slow_copy";
    hitbox::Result<std::string> compress(std::string_view in) const {
        maybe_sleep(TierStage::compress);
        return std::string(in);
    }
    hitbox::Result<std::string> decompress(std::string_view in) const {
        maybe_sleep(TierStage::decompress);
        return std::string(in);
    }
};

using SlowTier = hitbox::ByteBackend<hitbox::Bitcode, SlowFormat, SlowCompressor, SlowStore>;
using SlowCodec = SlowTier::codec_type;

SlowTier slow_tier(hitbox::DurationHistograms on, SlowStore store = {}) {
    return SlowTier(std::move(store), SlowCodec{}, "toy", on);
}

hitbox::CacheKey key_of(int id) { return hitbox::CacheKey{"user", 1, {{"id", std::to_string(id)}}}; }

hitbox::CacheValue<std::string> value_of(std::string s) {
    return hitbox::CacheValue<std::string>{std::move(s), hitbox::Clock::now() + 60s};
}

constexpr TierStage all_stages[] = {TierStage::read,        TierStage::write,    TierStage::serialize,
                                    TierStage::deserialize, TierStage::compress, TierStage::decompress};

struct SlowStageScope {
    explicit SlowStageScope(std::optional<TierStage> s) { slow_stage = s; }
    ~SlowStageScope() { slow_stage.reset(); }
};

/// The counts of every stage, in all_stages order.
std::vector<std::uint64_t> counts(const hitbox::DurationStats& d) {
    std::vector<std::uint64_t> out;
    for (auto s : all_stages) out.push_back(d[s].count);
    return out;
}

/// A copyable value whose copies sleep `slow` while `copies_are_slow` is set (to time a memory tier).
struct SlowCopy {
    static inline std::atomic<bool> copies_are_slow{false};
    int n = 0;
    SlowCopy() = default;
    explicit SlowCopy(int v) : n(v) {}
    SlowCopy(const SlowCopy& o) : n(o.n) {
        if (copies_are_slow) std::this_thread::sleep_for(slow);
    }
    SlowCopy(SlowCopy&&) noexcept = default;
    SlowCopy& operator=(const SlowCopy&) = default;
    SlowCopy& operator=(SlowCopy&&) noexcept = default;
};

}  // namespace

TEST_CASE("A byte tier built with duration histograms times each stage on its own") {
    const TierStage stage = GENERATE(from_range(std::begin(all_stages), std::end(all_stages)));
    INFO("slow stage: " << hitbox::to_string(stage));
    auto tier = slow_tier(hitbox::DurationHistograms::on);
    {
        SlowStageScope scope(stage);
        REQUIRE(tier.set(key_of(1), value_of("one")));
        auto back = tier.get<std::string>(key_of(1));
        REQUIRE(back);
        REQUIRE(*back);
        CHECK((*back)->data == "one");
    }
    const hitbox::DurationStats d = tier.durations();
    CHECK(d.enabled);
    CHECK(d.format == "slow_binary");
    CHECK(d.compressor == "slow_copy");
    for (auto s : all_stages) {
        INFO("stage " << hitbox::to_string(s));
        CHECK(d[s].count == 1);
        if (s == stage)
            CHECK(d[s].sum_ns >= static_cast<std::uint64_t>(slow_ns));
        else  // a stage that took the sleep of another would show it
            CHECK(d[s].sum_ns < static_cast<std::uint64_t>(slow_ns));
    }
    // The sleep lands in a bucket at or above 25 ms (buckets are not cumulative in the snapshot).
    std::uint64_t at_or_above = 0;
    for (std::size_t i = 0; i < hitbox::HistogramSnapshot::bucket_count; ++i)
        if (i >= hitbox::latency_bucket_bounds_ns.size() || hitbox::latency_bucket_bounds_ns[i] >= 25'000'000)
            at_or_above += d[stage].buckets[i];
    CHECK(at_or_above == 1);
}

TEST_CASE("Batches are one round trip each; values are serialized one by one; the raw layer only reads") {
    auto tier = slow_tier(hitbox::DurationHistograms::on);
    const std::vector<std::pair<hitbox::CacheKey, hitbox::CacheValue<std::string>>> entries = {
        {key_of(1), value_of("a")}, {key_of(2), value_of("b")}, {key_of(3), value_of("c")}};
    for (const auto& r : tier.set_many<std::string>(entries)) REQUIRE(r);
    // read, write, serialize, deserialize, compress, decompress
    CHECK(counts(tier.durations()) == std::vector<std::uint64_t>{0, 1, 3, 0, 3, 0});

    const std::vector<hitbox::CacheKey> keys = {key_of(1), key_of(2), key_of(9)};
    auto got = tier.get_many<std::string>(keys);
    REQUIRE(got.size() == 3);
    CHECK(counts(tier.durations()) == std::vector<std::uint64_t>{1, 1, 3, 2, 3, 2});  // key 9 is a miss

    REQUIRE(tier.read(key_of(1)));    // raw: a round trip, nothing decoded
    REQUIRE(tier.remove(key_of(2)));  // neither a read nor a write
    CHECK(counts(tier.durations()) == std::vector<std::uint64_t>{2, 1, 3, 2, 3, 2});

    // An already expired value is not encoded: its key is deleted, one write round trip.
    REQUIRE(tier.set(key_of(3), hitbox::CacheValue<std::string>{"old", hitbox::Clock::now() - 1s}));
    CHECK(counts(tier.durations()) == std::vector<std::uint64_t>{2, 2, 3, 2, 3, 2});

    // A failed round trip took its time too.
    tier.store().state().broken = true;
    CHECK_FALSE(tier.get<std::string>(key_of(1)));
    CHECK(counts(tier.durations()) == std::vector<std::uint64_t>{3, 2, 3, 2, 3, 2});

    // Copies share the histograms.
    SlowTier copy = tier;
    CHECK_FALSE(copy.get<std::string>(key_of(1)));
    CHECK(tier.durations()[TierStage::read].count == 4);
}

TEST_CASE("Duration histograms are off by default: nothing recorded, nothing exported") {
    SlowTier tier(SlowStore{}, SlowCodec{}, "toy");
    REQUIRE(tier.set(key_of(1), value_of("one")));
    REQUIRE(tier.get<std::string>(key_of(1)));
    const auto d = tier.durations();
    CHECK_FALSE(d.enabled);
    CHECK(counts(d) == std::vector<std::uint64_t>(6, 0));
    hitbox::PrometheusWriter out;
    hitbox::write_backend_stats(out, "toy", d);
    CHECK(out.empty());

    auto memory = hitbox::MemoryBackend::builder().max_entries(10).build();
    REQUIRE(memory);
    REQUIRE(memory->set(key_of(1), value_of("one")));
    REQUIRE(memory->get<std::string>(key_of(1)));
    CHECK_FALSE(memory->durations().enabled);
    CHECK(counts(memory->durations()) == std::vector<std::uint64_t>(6, 0));
}

TEST_CASE("A memory tier built with duration histograms times lookups and writes, copies included") {
    auto memory = hitbox::MemoryBackend::builder().max_entries(10).duration_histograms().build();
    REQUIRE(memory);
    const hitbox::CacheValue<SlowCopy> v{SlowCopy{7}, hitbox::Clock::now() + 60s};
    SlowCopy::copies_are_slow = true;
    REQUIRE(memory->set(key_of(1), v));           // stores a copy: slow
    auto hit = memory->get<SlowCopy>(key_of(1));  // copies it out: slow
    SlowCopy::copies_are_slow = false;
    REQUIRE(hit);
    REQUIRE(*hit);
    CHECK((*hit)->data.n == 7);
    REQUIRE(memory->get<SlowCopy>(key_of(2)));  // a miss is a lookup too
    int seen = 0;
    REQUIRE(memory->read_with<SlowCopy>(key_of(1), [&](const hitbox::CacheValue<SlowCopy>& e) { seen = e.data.n; }));
    CHECK(seen == 7);
    REQUIRE(memory->remove(key_of(1)));

    const auto d = memory->durations();
    CHECK(d.enabled);
    CHECK(d.format.empty());
    CHECK(d.compressor.empty());
    CHECK(counts(d) == std::vector<std::uint64_t>{3, 1, 0, 0, 0, 0});
    CHECK(d[TierStage::read].sum_ns >= static_cast<std::uint64_t>(slow_ns));
    CHECK(d[TierStage::write].sum_ns >= static_cast<std::uint64_t>(slow_ns));

    // A memory tier exports the read and write histograms only (no format, no compressor).
    hitbox::PrometheusWriter out;
    hitbox::write_backend_stats(out, "cache.memory", d);
    const auto p = hitbox_test::parse_prometheus(out.str());
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    CHECK(p.value("hitbox_backend_read_duration_seconds_count", {{"backend", "cache.memory"}}) == 3.0);
    CHECK(p.value("hitbox_backend_write_duration_seconds_count", {{"backend", "cache.memory"}}) == 1.0);
    CHECK(p.types.size() == 2);
}

TEST_CASE("Many threads record into one tier's histograms without losing an observation") {
    auto memory = hitbox::MemoryBackend::builder().max_entries(100).duration_histograms().build();
    REQUIRE(memory);
    REQUIRE(memory->set(key_of(1), value_of("one")));
    constexpr int threads = 8, each = 2000;
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
        pool.emplace_back([&] {
            for (int i = 0; i < each; ++i) (void)memory->get<std::string>(key_of(1));
        });
    for (auto& t : pool) t.join();
    CHECK(memory->durations()[TierStage::read].count == threads * each);
}

namespace {

// The families and their _sum / _count lines, as a scrape shows them (bucket lines are checked by the parser).
const std::string golden_shape =
    R"golden(# HELP hitbox_backend_read_duration_seconds Duration of backend reads (one per round trip) in seconds.
# TYPE hitbox_backend_read_duration_seconds histogram
hitbox_backend_read_duration_seconds_sum{backend="cache.toy"} 0.0035
hitbox_backend_read_duration_seconds_count{backend="cache.toy"} 2
# HELP hitbox_backend_write_duration_seconds Duration of backend writes (one per round trip) in seconds.
# TYPE hitbox_backend_write_duration_seconds histogram
hitbox_backend_write_duration_seconds_sum{backend="cache.toy"} 0
hitbox_backend_write_duration_seconds_count{backend="cache.toy"} 0
# HELP hitbox_backend_serialize_duration_seconds Duration of value serialization in seconds.
# TYPE hitbox_backend_serialize_duration_seconds histogram
hitbox_backend_serialize_duration_seconds_sum{backend="cache.toy",format="binary"} 2e-06
hitbox_backend_serialize_duration_seconds_count{backend="cache.toy",format="binary"} 1
# HELP hitbox_backend_deserialize_duration_seconds Duration of value deserialization in seconds.
# TYPE hitbox_backend_deserialize_duration_seconds histogram
hitbox_backend_deserialize_duration_seconds_sum{backend="cache.toy",format="binary"} 0
hitbox_backend_deserialize_duration_seconds_count{backend="cache.toy",format="binary"} 0
# HELP hitbox_backend_compress_duration_seconds Duration of payload compression in seconds.
# TYPE hitbox_backend_compress_duration_seconds histogram
hitbox_backend_compress_duration_seconds_sum{backend="cache.toy",compressor="zstd"} 0.01
hitbox_backend_compress_duration_seconds_count{backend="cache.toy",compressor="zstd"} 1
# HELP hitbox_backend_decompress_duration_seconds Duration of payload decompression in seconds.
# TYPE hitbox_backend_decompress_duration_seconds histogram
hitbox_backend_decompress_duration_seconds_sum{backend="cache.toy",compressor="zstd"} 0
hitbox_backend_decompress_duration_seconds_count{backend="cache.toy",compressor="zstd"} 0
)golden";

}  // namespace

TEST_CASE("DurationStats renders the Rust hitbox names, labelled by backend, format and compressor") {
    hitbox::LatencyHistogram read, serialize, compress;
    read.record(500us);
    read.record(3ms);
    serialize.record(2us);
    compress.record(10ms);
    hitbox::DurationStats d;
    d.enabled = true;
    d.format = "binary";
    d.compressor = "zstd";
    d[TierStage::read] = read.snapshot();
    d[TierStage::serialize] = serialize.snapshot();
    d[TierStage::compress] = compress.snapshot();

    hitbox::PrometheusWriter out;
    hitbox::write_backend_stats(out, "cache.toy", d);
    const std::string text = out.str();
    INFO(text);
    const auto p = hitbox_test::parse_prometheus(text);
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    std::istringstream lines(text);
    std::string shape;
    for (std::string line; std::getline(lines, line);)
        if (line.find("_bucket{") == std::string::npos) shape += line + "\n";
    CHECK(shape == golden_shape);
    // The buckets: 500 µs and 3 ms are below le=0.005; only 500 µs is below le=0.001.
    CHECK(p.value("hitbox_backend_read_duration_seconds_bucket", {{"backend", "cache.toy"}, {"le", "0.001"}}) == 1.0);
    CHECK(p.value("hitbox_backend_read_duration_seconds_bucket", {{"backend", "cache.toy"}, {"le", "0.005"}}) == 2.0);
    CHECK(p.value("hitbox_backend_read_duration_seconds_bucket", {{"backend", "cache.toy"}, {"le", "+Inf"}}) == 2.0);
}

TEST_CASE("The OffloadManager times each task by kind, thrown and timed-out ones included") {
    hitbox::OffloadManager offload{{.workers = 2}};
    offload.set_timeout_callback([](const hitbox::OffloadTimeout&) {});
    REQUIRE(offload.spawn(hitbox::OffloadKind::revalidate, "a", [] { std::this_thread::sleep_for(slow); }));
    REQUIRE(offload.spawn(hitbox::OffloadKind::revalidate, "b", [] {}));
    REQUIRE(offload.spawn(hitbox::OffloadKind::refill, "c", [] { throw std::runtime_error("refill failed"); }));
    REQUIRE(offload.spawn(
        hitbox::OffloadKind::custom, "d", [] { std::this_thread::sleep_for(slow); },
        hitbox::TimeoutPolicy::cancel_wait(1ms)));
    REQUIRE(offload.wait_all(5s));
    // The cancel-waited task is not waited for: wait until its worker has recorded it.
    for (int i = 0; i < 500 && offload.task_durations()[hitbox::OffloadKind::custom].count == 0; ++i)
        std::this_thread::sleep_for(2ms);

    const hitbox::OffloadDurations d = offload.task_durations();
    CHECK(d[hitbox::OffloadKind::revalidate].count == 2);
    CHECK(d[hitbox::OffloadKind::revalidate].sum_ns >= static_cast<std::uint64_t>(slow_ns));
    CHECK(d[hitbox::OffloadKind::refill].count == 1);
    CHECK(d[hitbox::OffloadKind::custom].count == 1);
    CHECK(d[hitbox::OffloadKind::custom].sum_ns >= static_cast<std::uint64_t>(slow_ns));
    CHECK(d[hitbox::OffloadKind::race_loser].count == 0);

    hitbox::PrometheusWriter out;
    hitbox::write_offload_durations(out, "cache", d);
    const auto p = hitbox_test::parse_prometheus(out.str());
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    CHECK(p.value("hitbox_offload_task_duration_seconds_count", {{"backend", "cache"}, {"kind", "revalidate"}}) == 2.0);
    CHECK(p.value("hitbox_offload_task_duration_seconds_count", {{"backend", "cache"}, {"kind", "refill"}}) == 1.0);
    CHECK_FALSE(p.value("hitbox_offload_task_duration_seconds_count", {{"backend", "cache"}, {"kind", "race_loser"}}));
}

TEST_CASE("prometheus_text of a cache exports each tier's duration histograms by label path") {
    hitbox::OffloadManager offload{{.workers = 1}};
    auto memory = hitbox::MemoryBackend::builder().max_entries(100).duration_histograms().build();
    REQUIRE(memory);
    auto tiers = hitbox::compose(std::move(*memory), hitbox::circuit_breaker(slow_tier(hitbox::DurationHistograms::on)),
                                 offload);
    hitbox::Cache cache{tiers, offload};
    const hitbox::CacheKey key = key_of(5);
    auto load = [] { return std::string("five"); };
    REQUIRE(cache.get_or_compute<std::string>(key, load).status == hitbox::CacheStatus::Miss);
    REQUIRE(cache.get_or_compute<std::string>(key, load).status == hitbox::CacheStatus::Hit);
    REQUIRE(offload.spawn(hitbox::OffloadKind::custom, "", [] {}));
    REQUIRE(offload.wait_all(5s));

    // The breaker passes its tier's histograms on.
    CHECK(tiers.l2().durations().enabled);
    const std::string text = hitbox::prometheus_text(cache);
    INFO(text);
    const auto p = hitbox_test::parse_prometheus(text);
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    const auto memory_reads = p.value("hitbox_backend_read_duration_seconds_count", {{"backend", "cache.memory"}});
    REQUIRE(memory_reads);
    CHECK(*memory_reads >= 2.0);  // both calls looked in L1 first
    CHECK(p.value("hitbox_backend_write_duration_seconds_count", {{"backend", "cache.toy"}}) == 1.0);
    CHECK(p.value("hitbox_backend_serialize_duration_seconds_count",
                  {{"backend", "cache.toy"}, {"format", "slow_binary"}}) == 1.0);
    CHECK(p.value("hitbox_backend_compress_duration_seconds_count",
                  {{"backend", "cache.toy"}, {"compressor", "slow_copy"}}) == 1.0);
    CHECK(p.value("hitbox_offload_task_duration_seconds_count", {{"backend", "cache"}, {"kind", "custom"}}) == 1.0);
    // The composition level has no histograms of its own.
    CHECK_FALSE(p.value("hitbox_backend_read_duration_seconds_count", {{"backend", "cache"}}));
}
