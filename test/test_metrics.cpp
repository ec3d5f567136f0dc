// core/metrics.hpp: latency histograms, the metrics policies, the Prometheus writer (checked by a strict
// parser of the text format) and the rendering of tiers' and offloads' own counters.
#include <catch2/catch.hpp>

#include <any>
#include <array>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include <boost/hana/adapt_struct.hpp>

#include <hitbox/any_backend.hpp>
#include <hitbox/backend/byte_stats.hpp>
#include <hitbox/backend/memory/memory_backend.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/metrics.hpp>
#include <hitbox/core/stats.hpp>
#include <hitbox/key_format/bitcode.hpp>
#include <hitbox/offload/inline_offload.hpp>

#include "support/prometheus_parse.hpp"

using namespace std::chrono_literals;
using hitbox::CacheStatus;
using hitbox::LoadResult;

TEST_CASE("LatencyHistogram puts each duration in the first bucket whose bound holds it") {
    hitbox::LatencyHistogram h;
    h.record(500ns);                     // <= 1 us
    h.record(1us);                       // == the first bound: still the first bucket
    h.record(1001ns);                    // (1 us, 2.5 us]
    h.record(20ms);                      // (10 ms, 25 ms]
    h.record(-5ns);                      // clamped to zero
    h.record(std::chrono::seconds(11));  // +Inf
    auto s = h.snapshot();
    CHECK(s.count == 6);
    CHECK(s.buckets[0] == 3);
    CHECK(s.buckets[1] == 1);
    CHECK(s.buckets[13] == 1);  // 25 ms bound
    CHECK(hitbox::HistogramSnapshot::upper_bound_seconds(13) == Approx(0.025));
    CHECK(s.buckets.back() == 1);
    CHECK(std::isinf(hitbox::HistogramSnapshot::upper_bound_seconds(s.buckets.size() - 1)));
    CHECK(s.sum_ns == 500 + 1000 + 1001 + 20'000'000ull + 11'000'000'000ull);
    CHECK(s.sum_seconds() == Approx(11.020002501));
}

TEST_CASE("HistogramSnapshot::quantile interpolates inside the bucket that holds the rank") {
    hitbox::LatencyHistogram h;
    for (int i = 0; i < 90; ++i) h.record(800ns);  // bucket (0, 1 us]
    for (int i = 0; i < 10; ++i) h.record(20ms);   // bucket (10 ms, 25 ms]
    auto s = h.snapshot();
    CHECK(s.quantile(0.5) <= 1e-6);
    CHECK(s.quantile(0.5) > 0);
    CHECK(s.quantile(0.99) > 0.010);
    CHECK(s.quantile(0.99) <= 0.025);
    CHECK(hitbox::HistogramSnapshot{}.quantile(0.5) == 0);
    hitbox::HistogramSnapshot sum = s;
    sum += s;
    CHECK(sum.count == 200);
    CHECK(sum.sum_ns == 2 * s.sum_ns);
}

TEST_CASE("LatencyHistogram is safe to record from many threads") {
    hitbox::LatencyHistogram h;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 10'000; ++i) h.record(std::chrono::nanoseconds(i));
        });
    for (auto& t : threads) t.join();
    CHECK(h.snapshot().count == 40'000);
}

TEST_CASE("NoMetrics is an empty policy; CountingMetrics copies share their counters") {
    STATIC_REQUIRE(std::is_empty_v<hitbox::NoMetrics>);
    STATIC_REQUIRE_FALSE(hitbox::NoMetrics::enabled);
    STATIC_REQUIRE(hitbox::CountingMetrics::enabled);

    hitbox::CountingMetrics a;
    hitbox::CountingMetrics b = a;
    const auto up = a.source_id("upstream");
    const auto mem = b.source_id("cache.memory");
    CHECK(a.source_id("cache.memory") == mem);  // registered once, whichever copy asks
    CHECK(up != mem);
    a.record(CacheStatus::Hit, mem, 2us);
    b.record(CacheStatus::Hit, mem, 3us);
    b.record(CacheStatus::Stale, mem, 3us);
    a.record(CacheStatus::Miss, up, 21ms);
    a.record_upstream(LoadResult::found, 20ms);
    a.record_upstream(LoadResult::error, 1ms);
    auto snap = b.snapshot();
    REQUIRE(snap.find("cache.memory") != nullptr);
    CHECK(snap.find("cache.memory")->hits == 2);
    CHECK(snap.find("cache.memory")->stale == 1);
    CHECK(snap.find("upstream")->misses == 1);
    CHECK(snap.hits() == 2);
    CHECK(snap.misses() == 1);
    CHECK(snap.stale() == 1);
    CHECK(snap.duration(CacheStatus::Hit).count == 2);
    CHECK(snap.loads() == 2);
    CHECK(snap.upstream[static_cast<int>(LoadResult::error)].count == 1);
    CHECK(snap.find("nothing") == nullptr);
}

TEST_CASE("CountingMetrics keeps 31 sources apart and folds the rest into \"other\"") {
    hitbox::CountingMetrics m;
    std::vector<std::size_t> ids;
    for (int i = 0; i < 40; ++i) ids.push_back(m.source_id("tier" + std::to_string(i)));
    for (int i = 0; i < 31; ++i) CHECK(ids[static_cast<std::size_t>(i)] == static_cast<std::size_t>(i));
    for (int i = 31; i < 40; ++i) CHECK(ids[static_cast<std::size_t>(i)] == 31);
    m.record(CacheStatus::Hit, ids[35], 1us);
    m.record(CacheStatus::Hit, 1000, 1us);  // an out-of-range id lands in "other" too
    auto snap = m.snapshot();
    CHECK(snap.sources.size() == 32);
    REQUIRE(snap.find("other") != nullptr);
    CHECK(snap.find("other")->hits == 2);
}

TEST_CASE("PrometheusWriter renders families once, escapes labels and help, keeps histograms cumulative") {
    hitbox::PrometheusWriter out;
    CHECK(out.empty());
    out.counter("hitbox_cache_hit_total", "Hits.\nSecond line with a \\ backslash.", {{"backend", "cache.memory"}}, 3);
    out.gauge("hitbox_backend_entries", "Entries.", {}, 12);
    // Same family again, after another family: still one HELP/TYPE and contiguous samples.
    out.counter("hitbox_cache_hit_total", "ignored", {{"backend", "we\"ird\\label\nvalue"}}, 4);
    hitbox::LatencyHistogram h;
    h.record(2us);
    h.record(30ms);
    out.histogram("hitbox_request_duration_seconds", "Latency.", {{"status", "hit"}, {"backend", "x"}}, h.snapshot());
    out.gauge("hitbox_weird_gauge", "Infinity and NaN.", {{"which", "inf"}}, HUGE_VAL);
    out.gauge("hitbox_quoted_gauge", "A \"quoted\" word.", {}, 1);  // HELP escapes no double quote
    const std::string text = out.str();
    INFO(text);
    auto parsed = hitbox_test::parse_prometheus(text);
    for (const auto& p : parsed.problems) FAIL_CHECK(p);
    CHECK(parsed.types.at("hitbox_cache_hit_total") == "counter");
    CHECK(parsed.types.at("hitbox_request_duration_seconds") == "histogram");
    CHECK(parsed.value("hitbox_cache_hit_total", {{"backend", "cache.memory"}}) == 3.0);
    CHECK(parsed.value("hitbox_cache_hit_total", {{"backend", "we\"ird\\label\nvalue"}}) == 4.0);
    CHECK(parsed.value("hitbox_backend_entries") == 12.0);
    CHECK(parsed.value("hitbox_request_duration_seconds_count", {{"backend", "x"}}) == 2.0);
    CHECK(parsed.value("hitbox_request_duration_seconds_bucket", {{"le", "+Inf"}}) == 2.0);
    CHECK(parsed.value("hitbox_request_duration_seconds_bucket", {{"le", "2.5e-06"}}) == 1.0);
    CHECK(parsed.value("hitbox_request_duration_seconds_sum").value_or(0) == Approx(0.030002));
    CHECK(text.find("# HELP hitbox_cache_hit_total Hits.\\nSecond line with a \\\\ backslash.\n") != std::string::npos);
    CHECK(std::isinf(*parsed.value("hitbox_weird_gauge")));
    CHECK(text.find("# HELP hitbox_quoted_gauge A \"quoted\" word.\n") != std::string::npos);
}

TEST_CASE("PrometheusWriter writes a series once (a second sample is added to it) and only valid UTF-8") {
    hitbox::PrometheusWriter out;
    out.counter("hitbox_backend_read_total", "Reads.", {{"backend", "cache.memory"}}, 3);
    out.counter("hitbox_backend_read_total", "Reads.", {{"backend", "cache.redis"}}, 1);
    out.counter("hitbox_backend_read_total", "Reads.", {{"backend", "cache.memory"}}, 4);
    out.gauge("hitbox_backend_entries", "Entries.", {{"backend", "cache.memory"}}, 2);
    out.gauge("hitbox_backend_entries", "Entries.", {{"backend", "cache.memory"}}, 5);
    hitbox::LatencyHistogram h;
    h.record(2us);
    out.histogram("hitbox_d_seconds", "D.", {{"backend", "x"}}, h.snapshot());
    out.histogram("hitbox_d_seconds", "D.", {{"backend", "x"}}, h.snapshot());
    out.counter("hitbox_label_total", "Labels.",
                {{"backend", std::string_view("m\"q\\b\nn\0\xff\xfez\xc3\xa9\x7f", 14)}}, 1);
    const std::string text = out.str();
    INFO(text);
    auto parsed = hitbox_test::parse_prometheus(text);
    for (const auto& p : parsed.problems) FAIL_CHECK(p);  // the parser refuses a series written twice
    CHECK(parsed.value("hitbox_backend_read_total", {{"backend", "cache.memory"}}) == 7.0);
    CHECK(parsed.value("hitbox_backend_read_total", {{"backend", "cache.redis"}}) == 1.0);
    CHECK(parsed.value("hitbox_backend_entries", {{"backend", "cache.memory"}}) == 7.0);
    CHECK(parsed.value("hitbox_d_seconds_count") == 2.0);
    CHECK(parsed.value("hitbox_d_seconds_bucket", {{"le", "+Inf"}}) == 2.0);
    // Invalid UTF-8 and control bytes become U+FFFD; a valid sequence (é) stays; quote, backslash and line
    // break are escaped as before.
    CHECK(parsed.value("hitbox_label_total",
                       {{"backend", "m\"q\\b\nn\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz\xc3\xa9\xEF\xBF\xBD"}}) == 1.0);
    CHECK(text.find('\0') == std::string::npos);
    CHECK(text.find('\xff') == std::string::npos);
}

TEST_CASE("prometheus_text of two memory tiers under one label path sums them into one series") {
    auto a = hitbox::MemoryBackend::builder().max_entries(10).build();
    auto b = hitbox::MemoryBackend::builder().max_entries(10).build();
    REQUIRE(a);
    REQUIRE(b);
    hitbox::InlineOffload offload;
    auto tiers = hitbox::compose(std::move(*a), std::move(*b), offload);
    hitbox::Cache cache{tiers, offload};
    const hitbox::CacheKey key{"doc", 1};
    REQUIRE(*cache.get_or_compute<std::string>(key, [] { return std::string("v"); }) == "v");
    const std::string text = hitbox::prometheus_text(cache);
    INFO(text);
    auto p = hitbox_test::parse_prometheus(text);
    for (const auto& problem : p.problems) FAIL_CHECK(problem);                      // six series were written twice
    CHECK(p.value("hitbox_backend_entries", {{"backend", "cache.memory"}}) == 2.0);  // one entry in each
}

TEST_CASE("The test parser itself rejects malformed exposition text") {
    // The checks above are only worth something if the parser fails bad input.
    CHECK_FALSE(hitbox_test::parse_prometheus("no_type_line 1\n").ok());
    CHECK_FALSE(hitbox_test::parse_prometheus("# TYPE a counter\na{x=\"1\"} one\n").ok());
    CHECK_FALSE(hitbox_test::parse_prometheus("# TYPE a counter\na{x=\"1} 1\n").ok());
    CHECK_FALSE(hitbox_test::parse_prometheus("# TYPE a counter\na{x=\"\\t\"} 1\n").ok());
    CHECK_FALSE(hitbox_test::parse_prometheus("# TYPE a counter\na 1\n# TYPE b counter\nb 1\na{x=\"2\"} 1\n").ok());
    CHECK_FALSE(hitbox_test::parse_prometheus("# TYPE a counter\na 1\na 2\n").ok());
    CHECK_FALSE(hitbox_test::parse_prometheus("# TYPE a counter\na -1\n").ok());
    CHECK_FALSE(hitbox_test::parse_prometheus("# TYPE a counter\n1a 1\n").ok());
    CHECK_FALSE(hitbox_test::parse_prometheus("# TYPE a counter\na 1").ok());
    CHECK_FALSE(hitbox_test::parse_prometheus(
                    "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n")
                    .ok());
    CHECK_FALSE(hitbox_test::parse_prometheus("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_sum 1\nh_count 1\n").ok());
    CHECK_FALSE(
        hitbox_test::parse_prometheus("# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n").ok());
    CHECK(hitbox_test::parse_prometheus("# HELP a A.\n# TYPE a counter\na{x=\"1\",} 1 1700000000000\n").ok());
}

TEST_CASE("write_metrics renders a CountingMetrics snapshot with the Rust hitbox names") {
    hitbox::CountingMetrics m;
    const auto mem = m.source_id("cache.memory");
    const auto redis = m.source_id("cache.redis");
    const auto up = m.source_id("upstream");
    for (int i = 0; i < 5; ++i) m.record(CacheStatus::Hit, mem, 1us);
    m.record(CacheStatus::Hit, redis, 300us);
    m.record(CacheStatus::Stale, redis, 300us);
    m.record(CacheStatus::Miss, up, 20ms);
    m.record_upstream(LoadResult::found, 20ms);
    const std::string text = hitbox::prometheus_text(m);
    INFO(text);
    auto p = hitbox_test::parse_prometheus(text);
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    CHECK(p.value("hitbox_cache_hit_total", {{"backend", "cache.memory"}}) == 5.0);
    CHECK(p.value("hitbox_cache_hit_total", {{"backend", "cache.redis"}}) == 1.0);
    CHECK(p.value("hitbox_cache_stale_total", {{"backend", "cache.redis"}}) == 1.0);
    CHECK(p.value("hitbox_cache_miss_total", {{"backend", "upstream"}}) == 1.0);
    CHECK(p.value("hitbox_request_duration_seconds_count", {{"status", "hit"}, {"backend", "cache.memory"}}) == 5.0);
    CHECK(p.value("hitbox_upstream_duration_seconds_count", {{"result", "found"}}) == 1.0);
    // A series with no observation is left out.
    CHECK_FALSE(p.value("hitbox_cache_miss_total", {{"backend", "cache.memory"}}).has_value());
    CHECK_FALSE(p.value("hitbox_upstream_duration_seconds_count", {{"result", "error"}}).has_value());
}

TEST_CASE("A call with an invalid policy is not counted as a miss; a load is") {
    auto memory = hitbox::MemoryBackend::builder().max_entries(10).build();
    REQUIRE(memory);
    hitbox::InlineOffload offload;
    hitbox::CountingMetrics metrics;
    hitbox::Cache cache{std::move(*memory), offload, metrics};
    const hitbox::CacheKey key{"doc", 1};
    auto refused = cache.get_or_compute<std::string>(
        key, [] { return std::string("v"); }, hitbox::CachePolicy{.ttl = 10s, .concurrency = 0});
    REQUIRE(refused.error);
    CHECK(refused.error->kind() == hitbox::ErrorKind::config);
    auto p = hitbox_test::parse_prometheus(hitbox::prometheus_text(metrics));
    CHECK_FALSE(p.value("hitbox_cache_miss_total", {{"backend", "upstream"}}).has_value());
    REQUIRE(cache.get_or_compute<std::string>(
        key, [] { return std::string("v"); }, hitbox::CachePolicy{.ttl = 10s}));
    p = hitbox_test::parse_prometheus(hitbox::prometheus_text(metrics));
    CHECK(p.value("hitbox_cache_miss_total", {{"backend", "upstream"}}) == 1.0);
}

TEST_CASE("write_backend_stats renders memory, Redis and composition counters by label") {
    auto memory = hitbox::MemoryBackend::builder().max_entries(100).build();
    REQUIRE(memory);
    hitbox::CacheKey key{"k", 1, {{"id", "1"}}};
    REQUIRE(memory->set(key, hitbox::CacheValue<std::string>{"v"}));
    (void)memory->get<std::string>(key);
    (void)memory->get<std::string>(hitbox::CacheKey{"absent"});

    hitbox::ByteStats redis;
    redis.reads = 10, redis.writes = 4, redis.hits = 7, redis.misses = 3, redis.bytes_in = 700, redis.bytes_out = 400;
    redis.errors[static_cast<std::size_t>(hitbox::ErrorKind::connection)] = 2;
    redis.errors[static_cast<std::size_t>(hitbox::ErrorKind::timeout)] = 1;

    hitbox::ComposeStats compose;
    compose.refills = 3;

    hitbox::PrometheusWriter out;
    hitbox::write_backend_stats(out, "cache.memory", memory->stats());
    hitbox::write_backend_stats(out, "cache.redis", redis);
    hitbox::write_backend_stats(out, "cache", compose);
    hitbox::InlineOffload offload;
    offload.spawn(hitbox::OffloadKind::custom, "", [] {});
    hitbox::write_offload_counters(out, "cache", offload.counters());
    const std::string text = out.str();
    INFO(text);
    auto p = hitbox_test::parse_prometheus(text);
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    CHECK(p.value("hitbox_backend_read_total", {{"backend", "cache.memory"}}) == 2.0);
    CHECK(p.value("hitbox_backend_hits_total", {{"backend", "cache.memory"}}) == 1.0);
    CHECK(p.value("hitbox_backend_entries", {{"backend", "cache.memory"}}) == 1.0);
    CHECK(p.value("hitbox_backend_read_total", {{"backend", "cache.redis"}}) == 10.0);
    CHECK(p.value("hitbox_backend_write_total", {{"backend", "cache.redis"}}) == 4.0);
    CHECK(p.value("hitbox_backend_read_bytes_total", {{"backend", "cache.redis"}}) == 700.0);
    CHECK(p.value("hitbox_backend_write_bytes_total", {{"backend", "cache.redis"}}) == 400.0);
    CHECK(p.value("hitbox_backend_errors_total", {{"backend", "cache.redis"}, {"kind", "connection"}}) == 2.0);
    CHECK(p.value("hitbox_backend_errors_total", {{"backend", "cache.redis"}, {"kind", "timeout"}}) == 1.0);
    CHECK_FALSE(p.value("hitbox_backend_errors_total", {{"kind", "decode"}}).has_value());
    CHECK(p.value("hitbox_compose_refills_total", {{"backend", "cache"}}) == 3.0);
    CHECK(p.value("hitbox_offload_tasks_spawned_total", {{"backend", "cache"}}) == 1.0);
    CHECK(p.value("hitbox_offload_tasks_completed_total", {{"backend", "cache"}}) == 1.0);
    CHECK(p.value("hitbox_offload_tasks_active", {{"backend", "cache"}}) == 0.0);
}

// ---- golden text ---------------------------------------------------------------------------------------
// The exposition text of the built-in tiers, byte for byte: metric names, HELP lines, label order and the
// order of families are what dashboards and alerts are written against, so a refactoring of the export
// must leave them exactly as they are.

namespace {

const std::string golden_text = R"golden(# HELP hitbox_upstream_requests_total Loader calls.
# TYPE hitbox_upstream_requests_total counter
hitbox_upstream_requests_total{backend="cache"} 1
# HELP hitbox_upstream_errors_total Loader calls that returned an error or threw.
# TYPE hitbox_upstream_errors_total counter
hitbox_upstream_errors_total{backend="cache"} 0
# HELP hitbox_cache_coalesced_total Callers that took the outcome of another caller's load.
# TYPE hitbox_cache_coalesced_total counter
hitbox_cache_coalesced_total{backend="cache"} 0
# HELP hitbox_cache_waiter_timeouts_total Waiters that stopped waiting and loaded themselves.
# TYPE hitbox_cache_waiter_timeouts_total counter
hitbox_cache_waiter_timeouts_total{backend="cache"} 0
# HELP hitbox_cache_load_retries_total Failed loads handed to one waiter to retry.
# TYPE hitbox_cache_load_retries_total counter
hitbox_cache_load_retries_total{backend="cache"} 0
# HELP hitbox_cache_negative_hits_total Calls answered by a cached "not found".
# TYPE hitbox_cache_negative_hits_total counter
hitbox_cache_negative_hits_total{backend="cache"} 0
# HELP hitbox_cache_stale_if_error_total Stale values served because their reload failed.
# TYPE hitbox_cache_stale_if_error_total counter
hitbox_cache_stale_if_error_total{backend="cache"} 0
# HELP hitbox_cache_fail_safe_total Expired values served because their load failed (fail-safe).
# TYPE hitbox_cache_fail_safe_total counter
hitbox_cache_fail_safe_total{backend="cache"} 0
# HELP hitbox_cache_loader_timeouts_total Calls that stopped waiting for the loader.
# TYPE hitbox_cache_loader_timeouts_total counter
hitbox_cache_loader_timeouts_total{backend="cache",timeout="soft"} 0
hitbox_cache_loader_timeouts_total{backend="cache",timeout="hard"} 0
# HELP hitbox_cache_late_loads_total Loads that finished after their caller had returned.
# TYPE hitbox_cache_late_loads_total counter
hitbox_cache_late_loads_total{backend="cache"} 0
# HELP hitbox_cache_loads_shed_total Calls with a timeout that did not call the loader: max_timed_loads were running.
# TYPE hitbox_cache_loads_shed_total counter
hitbox_cache_loads_shed_total{backend="cache"} 0
# HELP hitbox_cache_locks_taken_total Stampede locks taken before loading.
# TYPE hitbox_cache_locks_taken_total counter
hitbox_cache_locks_taken_total{backend="cache"} 0
# HELP hitbox_cache_lock_waits_total Calls answered by another instance's load after finding its lock.
# TYPE hitbox_cache_lock_waits_total counter
hitbox_cache_lock_waits_total{backend="cache"} 0
# HELP hitbox_cache_lock_timeouts_total Calls that stopped waiting for another instance's lock.
# TYPE hitbox_cache_lock_timeouts_total counter
hitbox_cache_lock_timeouts_total{backend="cache"} 0
# HELP hitbox_cache_waiters Callers waiting for another caller's load.
# TYPE hitbox_cache_waiters gauge
hitbox_cache_waiters{backend="cache"} 0
# HELP hitbox_offload_revalidation_spawned_total Background refreshes the offload accepted.
# TYPE hitbox_offload_revalidation_spawned_total counter
hitbox_offload_revalidation_spawned_total{backend="cache"} 0
# HELP hitbox_offload_revalidation_dropped_total Background refreshes the offload refused.
# TYPE hitbox_offload_revalidation_dropped_total counter
hitbox_offload_revalidation_dropped_total{backend="cache"} 0
# HELP hitbox_offload_revalidation_skipped_total Accepted refreshes that found the entry fresh or a load running.
# TYPE hitbox_offload_revalidation_skipped_total counter
hitbox_offload_revalidation_skipped_total{backend="cache"} 0
# HELP hitbox_offload_revalidation_completed_total Background refreshes whose load finished.
# TYPE hitbox_offload_revalidation_completed_total counter
hitbox_offload_revalidation_completed_total{backend="cache"} 0
# HELP hitbox_backend_read_total Reads (key lookups) per backend.
# TYPE hitbox_backend_read_total counter
hitbox_backend_read_total{backend="cache.l1"} 3
hitbox_backend_read_total{backend="cache.l2"} 2
hitbox_backend_read_total{backend="cache.l3"} 2
hitbox_backend_read_total{backend="cache.redis"} 10
# HELP hitbox_backend_hits_total Reads that found an entry, per backend.
# TYPE hitbox_backend_hits_total counter
hitbox_backend_hits_total{backend="cache.l1"} 1
hitbox_backend_hits_total{backend="cache.l2"} 0
hitbox_backend_hits_total{backend="cache.l3"} 1
hitbox_backend_hits_total{backend="cache.redis"} 7
# HELP hitbox_backend_misses_total Reads that found no entry, per backend.
# TYPE hitbox_backend_misses_total counter
hitbox_backend_misses_total{backend="cache.l1"} 2
hitbox_backend_misses_total{backend="cache.l2"} 2
hitbox_backend_misses_total{backend="cache.l3"} 1
hitbox_backend_misses_total{backend="cache.redis"} 3
# HELP hitbox_backend_entries Entries held by an in-process tier.
# TYPE hitbox_backend_entries gauge
hitbox_backend_entries{backend="cache.l1"} 1
hitbox_backend_entries{backend="cache.l2"} 1
hitbox_backend_entries{backend="cache.l3"} 1
# HELP hitbox_backend_evictions_total Entries evicted to honour the bound.
# TYPE hitbox_backend_evictions_total counter
hitbox_backend_evictions_total{backend="cache.l1"} 0
hitbox_backend_evictions_total{backend="cache.l2"} 0
hitbox_backend_evictions_total{backend="cache.l3"} 0
# HELP hitbox_backend_expirations_total Expired entries reclaimed.
# TYPE hitbox_backend_expirations_total counter
hitbox_backend_expirations_total{backend="cache.l1"} 0
hitbox_backend_expirations_total{backend="cache.l2"} 0
hitbox_backend_expirations_total{backend="cache.l3"} 0
# HELP hitbox_compose_refills_total L2 hits written back to L1, per composition.
# TYPE hitbox_compose_refills_total counter
hitbox_compose_refills_total{backend="cache"} 2
# HELP hitbox_compose_refills_dropped_total Offloaded refills the offload refused.
# TYPE hitbox_compose_refills_dropped_total counter
hitbox_compose_refills_dropped_total{backend="cache"} 0
# HELP hitbox_compose_unavailable_total Calls that failed in every tier, per composition.
# TYPE hitbox_compose_unavailable_total counter
hitbox_compose_unavailable_total{backend="cache"} 0
# HELP hitbox_compose_superseded_total Refills and Race write losers not written, or taken back, because a write of the key came.
# TYPE hitbox_compose_superseded_total counter
hitbox_compose_superseded_total{backend="cache"} 0
# HELP hitbox_offload_tasks_spawned_total Background tasks accepted.
# TYPE hitbox_offload_tasks_spawned_total counter
hitbox_offload_tasks_spawned_total{backend="cache"} 0
# HELP hitbox_offload_tasks_completed_total Background tasks that returned.
# TYPE hitbox_offload_tasks_completed_total counter
hitbox_offload_tasks_completed_total{backend="cache"} 0
# HELP hitbox_offload_tasks_failed_total Background tasks that threw.
# TYPE hitbox_offload_tasks_failed_total counter
hitbox_offload_tasks_failed_total{backend="cache"} 0
# HELP hitbox_offload_tasks_deduplicated_total Tasks refused: the same (kind, key) was pending.
# TYPE hitbox_offload_tasks_deduplicated_total counter
hitbox_offload_tasks_deduplicated_total{backend="cache"} 0
# HELP hitbox_offload_tasks_rejected_total Tasks refused: queue full, shut down or disabled.
# TYPE hitbox_offload_tasks_rejected_total counter
hitbox_offload_tasks_rejected_total{backend="cache"} 0
# HELP hitbox_offload_tasks_timeout_total Tasks that ran past their timeout.
# TYPE hitbox_offload_tasks_timeout_total counter
hitbox_offload_tasks_timeout_total{backend="cache"} 0
# HELP hitbox_offload_tasks_discarded_total Tasks dropped unrun at shutdown.
# TYPE hitbox_offload_tasks_discarded_total counter
hitbox_offload_tasks_discarded_total{backend="cache"} 0
# HELP hitbox_offload_tasks_active Accepted tasks not finished.
# TYPE hitbox_offload_tasks_active gauge
hitbox_offload_tasks_active{backend="cache"} 0
# HELP hitbox_offload_tasks_queued Tasks waiting for a worker.
# TYPE hitbox_offload_tasks_queued gauge
hitbox_offload_tasks_queued{backend="cache"} 0
# HELP hitbox_backend_write_total Writes per backend.
# TYPE hitbox_backend_write_total counter
hitbox_backend_write_total{backend="cache.redis"} 4
# HELP hitbox_backend_read_bytes_total Stored bytes read per backend.
# TYPE hitbox_backend_read_bytes_total counter
hitbox_backend_read_bytes_total{backend="cache.redis"} 700
# HELP hitbox_backend_write_bytes_total Stored bytes written per backend.
# TYPE hitbox_backend_write_bytes_total counter
hitbox_backend_write_bytes_total{backend="cache.redis"} 400
# HELP hitbox_backend_errors_total Failed backend operations by error kind.
# TYPE hitbox_backend_errors_total counter
hitbox_backend_errors_total{backend="cache.redis",kind="connection"} 2
)golden";

/// A memory tier of 100 entries named `label`.
hitbox::MemoryBackend tier(const char* label) {
    auto b = hitbox::MemoryBackend::builder().max_entries(100).label(label).build();
    REQUIRE(b);
    return std::move(*b);
}

}  // namespace

TEST_CASE("The Prometheus text of a cache over three memory tiers and of Redis counters is pinned byte for byte") {
    hitbox::InlineOffload offload;
    auto tiers = hitbox::compose(tier("l1"), tier("l2"), tier("l3"), offload);
    hitbox::Cache cache{tiers, offload};
    const hitbox::CacheKey key{"user", 1, {{"id", "7"}}};
    auto load = [] { return std::string("seven"); };
    REQUIRE(cache.get_or_compute<std::string>(key, load).status == CacheStatus::Miss);
    REQUIRE(cache.get_or_compute<std::string>(key, load).status == CacheStatus::Hit);
    REQUIRE(tiers.l1().remove(key));
    REQUIRE(tiers.l2().l1().remove(key));
    REQUIRE(cache.get_or_compute<std::string>(key, load).source == "cache.l3");  // refills l2, then l1

    hitbox::ByteStats redis;
    redis.reads = 10, redis.writes = 4, redis.hits = 7, redis.misses = 3, redis.bytes_in = 700, redis.bytes_out = 400;
    redis.errors[static_cast<std::size_t>(hitbox::ErrorKind::connection)] = 2;

    hitbox::PrometheusWriter out;
    hitbox::write_metrics(out, cache);
    hitbox::write_backend_stats(out, "cache.redis", redis);
    const std::string text = out.str();
    CHECK(text == golden_text);
}

TEST_CASE("prometheus_text exports the tiers behind an AnyBackend as it exports the same static composition") {
    hitbox::InlineOffload offload;
    // The same three-tier composition twice: typed, and erased (as the run-time configuration builds it),
    // driven through the same calls.
    auto typed_tiers = hitbox::compose(tier("l1"), tier("l2"), tier("l3"), offload);
    hitbox::Cache typed{typed_tiers, offload};
    hitbox::AnyBackend erased_tiers(hitbox::compose(tier("l1"), tier("l2"), tier("l3"), offload));
    hitbox::Cache erased{erased_tiers, offload};
    const hitbox::CacheKey key{"user", 1, {{"id", "7"}}};
    auto load = [] { return std::string("seven"); };
    for (int i = 0; i < 3; ++i) {
        CHECK(typed.get_or_compute<std::string>(key, load).value == std::optional<std::string>("seven"));
        CHECK(erased.get_or_compute<std::string>(key, load).value == std::optional<std::string>("seven"));
    }
    const hitbox::CacheKey other{"user", 1, {{"id", "8"}}};
    CHECK(typed.get_or_compute<std::string>(other, load).status == CacheStatus::Miss);
    CHECK(erased.get_or_compute<std::string>(other, load).status == CacheStatus::Miss);

    const auto a = hitbox_test::parse_prometheus(hitbox::prometheus_text(typed));
    const auto b = hitbox_test::parse_prometheus(hitbox::prometheus_text(erased));
    CHECK(a.problems.empty());
    CHECK(b.problems.empty());
    // Every series of the typed cache is there for the erased one, with the same value, except the memory
    // tiers' byte gauges (an erased tier holds its values as AnyValue: other sizes).
    auto key_of = [](const hitbox_test::PromSample& s) {
        std::string k = s.name;
        for (const auto& [n, v] : s.labels) k += "|" + n + "=" + v;
        return k;
    };
    std::map<std::string, double> erased_series;
    for (const auto& s : b.samples) erased_series[key_of(s)] = s.value;
    std::size_t compared = 0, tier_series = 0;
    for (const auto& s : a.samples) {
        const auto it = erased_series.find(key_of(s));
        INFO(key_of(s));
        REQUIRE(it != erased_series.end());
        if (s.name.find("bytes") != std::string::npos) continue;
        CHECK(it->second == s.value);
        ++compared;
        if (s.name.rfind("hitbox_backend_", 0) == 0 && s.label("backend") == std::optional<std::string>("cache.l3"))
            ++tier_series;
    }
    CHECK(a.samples.size() == b.samples.size());
    CHECK(compared > 20);
    CHECK(tier_series > 3);  // the innermost tier's own series, behind both levels of the erased composition
    // The innermost tier was read: a miss for each of the two cold keys.
    const auto l3_misses = erased_series.find("hitbox_backend_misses_total|backend=cache.l3");
    REQUIRE(l3_misses != erased_series.end());
    CHECK(l3_misses->second >= 1);
}

// ---- tiers hitbox does not know ------------------------------------------------------------------------
// Tiers defined here only (no edit under include/): their stats are exported by prometheus_text through the
// customization point, or, for a CounterStruct without a hook, member by member.

namespace toy {

/// Counters declared once: the struct, its Hana adaptation (below, at global scope), and nothing else.
struct DiskStats {
    std::uint64_t reads = 0;
    std::uint64_t writes = 0;
    std::uint64_t fsyncs = 0;
};

/// A CounterStruct with a hook of its own: the hook wins over the member-by-member export.
struct QueueStats {
    std::uint64_t depth = 0;
};

inline void hitbox_write_stats(hitbox::PrometheusWriter& out, std::string_view backend, const QueueStats& s) {
    out.gauge("toy_queue_depth", "Entries waiting in the toy queue.", {{"backend", backend}},
              static_cast<double>(s.depth));
}

/// Counters whose adaptation forgets a member: not a CounterStruct (it would be neither snapshotted nor
/// exported in full).
struct Partial {
    std::uint64_t named = 0;
    std::uint64_t forgotten = 0;
};

struct NoExport {
    std::uint64_t n = 0;
};

/// Counters adapted with HITBOX_ADAPT_COUNTERS (the member table built where it is walked) instead of
/// Hana's macro; JobsPartial forgets a member.
struct JobStats {
    std::uint64_t queued = 0;
    std::uint64_t started = 0;
    std::uint64_t done = 0;
    std::uint64_t failed = 0;
};
struct JobsPartial {
    std::uint64_t queued = 0;
    std::uint64_t forgotten = 0;
};

}  // namespace toy

HITBOX_ADAPT_COUNTERS(toy::JobStats, queued, started, done, failed);
HITBOX_ADAPT_COUNTERS(toy::JobsPartial, queued);

BOOST_HANA_ADAPT_STRUCT(toy::DiskStats, reads, writes, fsyncs);
BOOST_HANA_ADAPT_STRUCT(toy::QueueStats, depth);
BOOST_HANA_ADAPT_STRUCT(toy::Partial, named);

namespace toy {

/// A Backend of its own: entries in a map, counted in AtomicStats<DiskStats>.
class DiskTier {
public:
    template <class T>
    hitbox::Result<std::optional<hitbox::CacheValue<T>>> get(const hitbox::CacheKey& key) {
        s_->stats.bump(&DiskStats::reads);
        std::lock_guard lock(s_->mutex);
        auto it = s_->entries.find(hitbox::Bitcode{}.encode(key));
        if (it == s_->entries.end()) return std::optional<hitbox::CacheValue<T>>{};
        const auto* v = std::any_cast<hitbox::CacheValue<T>>(&it->second);
        if (!v) return hitbox::fail(hitbox::ErrorKind::type_mismatch, "stored as another type", "disk");
        return std::optional<hitbox::CacheValue<T>>(*v);
    }
    template <class T>
    hitbox::Result<void> set(const hitbox::CacheKey& key, const hitbox::CacheValue<T>& value) {
        s_->stats.bump(&DiskStats::writes);
        s_->stats.bump(&DiskStats::fsyncs, 2);
        std::lock_guard lock(s_->mutex);
        s_->entries[hitbox::Bitcode{}.encode(key)] = value;
        return {};
    }
    hitbox::Result<bool> remove(const hitbox::CacheKey& key) {
        std::lock_guard lock(s_->mutex);
        return s_->entries.erase(hitbox::Bitcode{}.encode(key)) > 0;
    }
    std::string_view label() const noexcept { return "disk"; }
    DiskStats stats() const noexcept { return s_->stats.snapshot(); }

private:
    struct State {
        std::mutex mutex;
        std::map<std::string, std::any> entries;
        hitbox::AtomicStats<DiskStats> stats;
    };
    std::shared_ptr<State> s_ = std::make_shared<State>();
};

}  // namespace toy

static_assert(hitbox::CounterStruct<toy::DiskStats>);
static_assert(hitbox::CounterStruct<hitbox::MemoryStats>);
static_assert(hitbox::CounterStruct<hitbox::ComposeStats>);
static_assert(!hitbox::CounterStruct<toy::Partial>);
static_assert(hitbox::CounterStruct<hitbox::CacheCounts>);
static_assert(hitbox::CounterStruct<toy::JobStats> && !hitbox::CounterStruct<toy::JobsPartial>);
static_assert(!hitbox::CounterStruct<hitbox::ByteStats>);  // (RedisStats) an array of errors by kind: it has its hook
static_assert(hitbox::ExportableStats<toy::DiskStats> && hitbox::ExportableStats<toy::QueueStats>);
static_assert(hitbox::ExportableStats<hitbox::ByteStats> && hitbox::ExportableStats<hitbox::MemoryStats>);
static_assert(!hitbox::ExportableStats<toy::NoExport> && !hitbox::ExportableStats<toy::Partial>);
static_assert(hitbox::Backend<toy::DiskTier> && hitbox::ReportsStats<toy::DiskTier>);

TEST_CASE("prometheus_text exports the stats of a tier defined outside hitbox, member by member") {
    auto memory = hitbox::MemoryBackend::builder().max_entries(10).build();
    REQUIRE(memory);
    hitbox::InlineOffload offload;
    auto tiers = hitbox::compose(std::move(*memory), toy::DiskTier{}, offload);
    hitbox::Cache cache{tiers, offload};
    const hitbox::CacheKey key{"doc", 1, {{"id", "3"}}};
    REQUIRE(*cache.get_or_compute<std::string>(key, [] { return std::string("three"); }) == "three");
    REQUIRE(tiers.l1().remove(key));
    auto again = cache.get_or_compute<std::string>(key, [] { return std::string("never"); });
    REQUIRE(again.source == "cache.disk");
    CHECK(*again == "three");

    const std::string text = hitbox::prometheus_text(cache);
    INFO(text);
    auto p = hitbox_test::parse_prometheus(text);
    for (const auto& problem : p.problems) FAIL_CHECK(problem);
    CHECK(p.value("hitbox_backend_reads_total", {{"backend", "cache.disk"}}) == 2.0);
    CHECK(p.value("hitbox_backend_writes_total", {{"backend", "cache.disk"}}) == 1.0);
    CHECK(p.value("hitbox_backend_fsyncs_total", {{"backend", "cache.disk"}}) == 2.0);
    CHECK(text.find("# HELP hitbox_backend_fsyncs_total Counter fsyncs of a tier's stats(), per backend.\n"
                    "# TYPE hitbox_backend_fsyncs_total counter\n") != std::string::npos);
    // The built-in tiers beside it keep their own series.
    CHECK(p.value("hitbox_backend_hits_total", {{"backend", "cache.memory"}}) == 0.0);
    CHECK(p.value("hitbox_compose_refills_total", {{"backend", "cache"}}) == 1.0);
}

TEST_CASE("A stats struct's own hitbox_write_stats, found by argument-dependent lookup, wins over the member export") {
    hitbox::PrometheusWriter out;
    hitbox::write_backend_stats(out, "jobs", toy::QueueStats{7});
    CHECK(out.str() ==
          "# HELP toy_queue_depth Entries waiting in the toy queue.\n# TYPE toy_queue_depth gauge\n"
          "toy_queue_depth{backend=\"jobs\"} 7\n");
}

TEST_CASE("AtomicStats keeps the counters of a CounterStruct: bump, drop, snapshot, restore, reset") {
    hitbox::AtomicStats<toy::DiskStats> live;
    live.bump(&toy::DiskStats::reads);
    live.bump(&toy::DiskStats::reads, 4);
    live.bump(&toy::DiskStats::fsyncs, 3);
    live.drop(&toy::DiskStats::fsyncs);
    CHECK(live.load(&toy::DiskStats::reads) == 5);
    auto s = live.snapshot();
    CHECK((s.reads == 5 && s.writes == 0 && s.fsyncs == 2));
    live.restore({1, 2, 3});
    s = live.snapshot();
    CHECK((s.reads == 1 && s.writes == 2 && s.fsyncs == 3));
    hitbox::add_counters(s, toy::DiskStats{10, 20, 30});
    CHECK((s.reads == 11 && s.writes == 22 && s.fsyncs == 33));
    live.reset();
    s = live.snapshot();
    CHECK((s.reads == 0 && s.writes == 0 && s.fsyncs == 0));

    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([&] {
            for (int i = 0; i < 10'000; ++i) live.bump(&toy::DiskStats::writes);
        });
    for (auto& t : threads) t.join();
    CHECK(live.snapshot().writes == 40'000);
}

TEST_CASE("HITBOX_ADAPT_COUNTERS adapts like BOOST_HANA_ADAPT_STRUCT: names in order, snapshot, restore, export") {
    std::vector<std::string> names;
    toy::JobStats seen{1, 2, 3, 4};
    hitbox::for_each_counter(seen, [&](std::string_view name, std::uint64_t& v) {
        names.emplace_back(name);
        v *= 10;
    });
    CHECK(names == std::vector<std::string>{"queued", "started", "done", "failed"});
    CHECK((seen.queued == 10 && seen.started == 20 && seen.done == 30 && seen.failed == 40));

    hitbox::AtomicStats<toy::JobStats> live;
    live.bump(&toy::JobStats::done, 3);
    live.bump(&toy::JobStats::failed);
    auto s = live.snapshot();
    CHECK((s.queued == 0 && s.started == 0 && s.done == 3 && s.failed == 1));
    live.restore({5, 6, 7, 8});
    s = live.snapshot();
    CHECK((s.queued == 5 && s.started == 6 && s.done == 7 && s.failed == 8));

    hitbox::PrometheusWriter out;
    hitbox::write_backend_stats(out, "jobs", s);
    const std::string text = out.str();
    CHECK(text.find("hitbox_backend_queued_total{backend=\"jobs\"} 5\n") != std::string::npos);
    CHECK(text.find("hitbox_backend_failed_total{backend=\"jobs\"} 8\n") != std::string::npos);
}
