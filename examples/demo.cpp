// The main example (`bash scripts/demo.sh`): a slow function (~20 ms) memoized through hitbox::Cache over an
// in-process MemoryBackend (L1) and Redis (L2), driven by a short mixed workload from several threads.
// It prints what a user wants to see: which tier answered how often, latency percentiles of cached and
// uncached calls, what stampede protection saved, and the Prometheus metrics.
//
// Redis: HITBOX_REDIS_URL when set; otherwise a redis-server this program starts on a free 127.0.0.1 port
// (stopped at exit); when redis-server is not installed, L1 alone. Runs in a few seconds.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <latch>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <hitbox/hitbox.hpp>

#if HITBOX_DEMO_REDIS
#include <hitbox/backend/redis.hpp>

#include "support/redis_server.hpp"
#endif

using namespace std::chrono_literals;

namespace {

/// What the slow function returns: any Boost.Hana-adapted struct is cacheable in every tier.
struct Quote {
    BOOST_HANA_DEFINE_STRUCT(Quote, (std::string, product), (std::string, currency), (double, price),
                             (std::uint32_t, version));
};

std::atomic<std::uint32_t> upstream_calls{0};

/// The function we cache: a price lookup that takes ~20 ms (a database, a remote service...).
Quote quote(const std::string& product, const std::string& currency) {
    const std::uint32_t n = ++upstream_calls;
    std::this_thread::sleep_for(20ms);
    double price = 0;
    for (char c : product) price = price * 1.3 + static_cast<unsigned char>(c);
    price = std::fmod(price, 1000.0) + 0.99;
    if (currency == "EUR") price *= 0.92;
    return Quote{product, currency, std::round(price * 100) / 100, n};
}

/// Latencies of one kind of call, in nanoseconds.
struct Samples {
    std::vector<double> ns;
    double pct(double q) const {
        if (ns.empty()) return 0;
        std::vector<double> v = ns;
        const auto i = static_cast<std::size_t>(
            std::min<double>(static_cast<double>(v.size() - 1), q * static_cast<double>(v.size())));
        std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
        return v[i];
    }
};

std::string human(double ns) {
    char buf[32];
    if (ns < 1e3)
        std::snprintf(buf, sizeof buf, "%.0f ns", ns);
    else if (ns < 1e6)
        std::snprintf(buf, sizeof buf, "%.1f us", ns / 1e3);
    else
        std::snprintf(buf, sizeof buf, "%.1f ms", ns / 1e6);
    return buf;
}

struct Recorder {
    std::mutex mutex;
    Samples cached, uncached;
    void add(hitbox::CacheStatus status, std::chrono::steady_clock::duration took) {
        const double ns = static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count());
        std::lock_guard lock(mutex);
        (status == hitbox::CacheStatus::Miss ? uncached : cached).ns.push_back(ns);
    }
};

/// A product index skewed towards the first ones (a few hot products, a long tail).
std::size_t skewed(std::uint64_t& x, std::size_t n) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    const double u = static_cast<double>(x >> 11) / 9007199254740992.0;
    return std::min(n - 1, static_cast<std::size_t>(static_cast<double>(n) * u * u * u));
}

int failures = 0;
void expect(bool ok, const std::string& what) {
    if (!ok) {
        std::cout << "  UNEXPECTED: " << what << '\n';
        ++failures;
    }
}

template <class Tiers>
int run(Tiers& tiers, hitbox::OffloadManager& offload, hitbox::MemoryBackend& l1, const std::string& setup,
        bool two_tiers) {
    hitbox::CountingMetrics metrics;
    hitbox::CacheOptions options{.on_error = [](const hitbox::CacheErrorEvent& e) {
        std::cout << "  cache " << hitbox::to_string(e.op) << " error: " << e.error << '\n';
    }};
    hitbox::Cache cache{tiers, offload, metrics, hitbox::SystemClock{}, options};

    // Fresh for 1 s, served stale (and refreshed once in the background) until 2 s, then reloaded.
    const hitbox::CachePolicy policy{.ttl = 2s, .stale = 1s, .stale_policy = hitbox::StalePolicy::OffloadRevalidate};
    auto cached_quote = hitbox::memoize(
        cache, [](const std::string& product, const std::string& currency) { return quote(product, currency); }, policy,
        "demo-quote");
    Recorder rec;
    auto call = [&](const std::string& product, const std::string& currency) {
        const auto started = std::chrono::steady_clock::now();
        auto q = cached_quote(product, currency);
        rec.add(q.status, std::chrono::steady_clock::now() - started);
        if (!q) std::cout << "  no value for " << product << ": " << (q.error ? q.error->what() : "not found") << '\n';
        return q;
    };

    std::cout << "hitbox demo: " << setup << "\n"
              << "memoized: quote(product, currency), ~20 ms per upstream call; ttl 2 s, stale after 1 s "
                 "(OffloadRevalidate)\n\n";

    // 1. Cold start: 8 threads ask for the same 10 products at the same moment.
    constexpr int cold_threads = 8, cold_keys = 10;
    {
        std::latch go(cold_threads);
        std::vector<std::thread> threads;
        for (int t = 0; t < cold_threads; ++t)
            threads.emplace_back([&] {
                go.arrive_and_wait();
                for (int k = 0; k < cold_keys; ++k) (void)call("product-" + std::to_string(k), "USD");
            });
        for (auto& t : threads) t.join();
    }
    const auto after_cold = upstream_calls.load();
    std::cout << "1. cold start: " << cold_threads << " threads x " << cold_keys
              << " cold keys = " << cold_threads * cold_keys << " calls -> " << after_cold << " upstream calls ("
              << cache.stats().coalesced << " callers waited for another caller's load)\n";
    expect(after_cold == cold_keys, "stampede protection: one load per cold key");

    // 2. Steady traffic: 4 threads for 2.5 s over 60 products x 2 currencies, a few hot, a long tail.
    constexpr int threads_n = 4;
    const auto run_for = 2500ms;
    {
        std::vector<std::thread> threads;
        const auto until = std::chrono::steady_clock::now() + run_for;
        for (int t = 0; t < threads_n; ++t)
            threads.emplace_back([&, t] {
                std::uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(t + 1);
                while (std::chrono::steady_clock::now() < until) {
                    const std::size_t p = skewed(x, 60);
                    (void)call("product-" + std::to_string(p), (x & 1) ? "USD" : "EUR");
                    std::this_thread::sleep_for(200us);  // a little work between calls
                }
            });
        for (auto& t : threads) t.join();
    }
    std::cout << "2. steady traffic: " << threads_n << " threads for " << run_for.count() << " ms over 120 keys\n";

    // 3. L1 is lost (a restart, a deploy, eviction): Redis answers and refills it.
    if (two_tiers) {
        l1.clear();
        std::size_t from_l2 = 0;
        for (int k = 0; k < cold_keys; ++k)
            from_l2 += call("product-" + std::to_string(k), "USD").source == "cache.redis";
        std::cout << "3. L1 cleared (a restart): " << from_l2 << " of " << cold_keys
                  << " hot keys came back from Redis, not from upstream\n";
        expect(from_l2 > 0, "Redis answers once L1 is gone");
    }
    offload.wait_all(5s);

    // What the user wants to see.
    const auto snap = metrics.snapshot();
    std::cout << "\ncalls by answer (hitbox_cache_*_total):\n";
    std::printf("  %-14s %8s %8s %8s\n", "source", "hit", "stale", "miss");
    std::uint64_t total = 0, served = 0;
    for (const auto& s : snap.sources) {
        if (s.hits + s.stale + s.misses == 0) continue;
        auto cell = [](std::uint64_t n, bool applies) { return applies ? std::to_string(n) : std::string("-"); };
        const bool upstream = s.backend == "upstream";
        std::printf("  %-14s %8s %8s %8s\n", s.backend.c_str(), cell(s.hits, !upstream).c_str(),
                    cell(s.stale, !upstream).c_str(), cell(s.misses, upstream).c_str());
        total += s.hits + s.stale + s.misses;
        served += s.hits + s.stale;
    }
    const auto stats = cache.stats();
    std::printf(
        "  %llu calls, %.1f%% answered from cache; %u upstream calls; %llu background refreshes "
        "(%llu duplicates refused)\n",
        static_cast<unsigned long long>(total),
        total ? 100.0 * static_cast<double>(served) / static_cast<double>(total) : 0.0, upstream_calls.load(),
        static_cast<unsigned long long>(stats.revalidations),
        static_cast<unsigned long long>(stats.revalidations_dropped));

    std::cout << "\nlatency of get_or_compute (measured around each call):\n";
    std::printf("  %-10s %8s %10s %10s %10s %10s\n", "", "calls", "p50", "p90", "p99", "max");
    for (auto [name, s] : {std::pair{"cached", &rec.cached}, std::pair{"uncached", &rec.uncached}})
        std::printf("  %-10s %8zu %10s %10s %10s %10s\n", name, s->ns.size(), human(s->pct(0.50)).c_str(),
                    human(s->pct(0.90)).c_str(), human(s->pct(0.99)).c_str(), human(s->pct(1.0)).c_str());
    expect(!rec.cached.ns.empty() && !rec.uncached.ns.empty(), "both cached and uncached calls happened");
    expect(rec.cached.pct(0.5) * 10 < rec.uncached.pct(0.5), "a cached call is much faster than an uncached one");
    expect(stats.read_errors == 0 && stats.write_errors == 0, "no backend errors");

    const std::string text = hitbox::prometheus_text(cache);
    std::cout << "\nPrometheus metrics (hitbox::prometheus_text(cache)), histogram buckets left out here:\n";
    std::size_t pos = 0;
    while (pos < text.size()) {
        auto end = text.find('\n', pos);
        if (end == std::string::npos) end = text.size();
        const std::string line = text.substr(pos, end - pos);
        pos = end + 1;
        if (line.find("_bucket{") == std::string::npos) std::cout << "  " << line << '\n';
    }
    std::cout << (failures ? "\ndemo: FAILED\n" : "\ndemo: done\n");
    return failures ? 1 : 0;
}

}  // namespace

int main() {
    hitbox::OffloadManager offload{{.workers = 2}};
    auto memory = hitbox::MemoryBackend::builder().max_entries(10'000).build();
    if (!memory) {
        std::cerr << memory.error() << '\n';
        return 1;
    }
    hitbox::MemoryBackend l1 = *memory;  // a handle on the same store, to clear it in step 3

#if HITBOX_DEMO_REDIS
    std::unique_ptr<hitbox_test::RedisServer> server;
    std::string url, why_not;
    if (const char* env = std::getenv("HITBOX_REDIS_URL"); env && *env) {
        url = env;
    } else if (hitbox_test::find_executable("redis-server")) {
        try {
            server = std::make_unique<hitbox_test::RedisServer>();
            url = server->url();
        } catch (const std::exception& e) {
            why_not = e.what();
        }
    } else {
        why_not = "redis-server is not installed";
    }
    if (!url.empty()) {
        auto redis = hitbox::RedisBackend<>::builder()
                         .connection(hitbox::ConnectionMode::single(url))
                         .key_prefix("hitbox-demo:")
                         .build();
        if (!redis) {
            std::cerr << redis.error() << '\n';
            return 1;
        }
        auto tiers = hitbox::compose(std::move(*memory), std::move(*redis), offload);
        const std::string setup = "Memory L1 + Redis L2 at " + url +
                                  (server ? " (a redis-server started for this demo)" : " (HITBOX_REDIS_URL)");
        return run(tiers, offload, l1, setup, true);
    }
    std::cout << "(no Redis: " << why_not << "; running with the memory tier alone)\n";
#endif
    return run(*memory, offload, l1, "Memory L1 alone", false);
}
