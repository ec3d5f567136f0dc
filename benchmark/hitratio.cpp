// hitbox-hitratio: replays generated access traces against MemoryBackend and against a plain LRU of the
// same capacity (entries), and prints the hit ratio of each. Every request is a get; a miss is followed by
// a set (cache-aside). The traces:
//   zipf-0.80, zipf-0.99        Zipf-distributed popularity over `keys` keys (rank -> key scrambled)
//   zipf-0.80+scan, zipf-0.99+scan
//                               the same, with a sequential scan of 2x capacity keys from a random
//                               start after every 5x capacity Zipf requests (scan requests count)
//   zipf-0.99+loop              the same, but every scan reads the same keys (a periodic job over one
//                               range, larger than the cache)
//   sliding-window              recency: a working set of capacity/2 keys that slides by one key every
//                               8 requests, uniform inside it
//   recent-geometric            recency: distance behind a moving front drawn from a geometric
//                               distribution (mean capacity/2); each request also advances the front by
//                               one key with probability 1/8
// Usage: hitbox-hitratio [--keys N] [--capacity N] [--requests N] [--seed N] [--check]
//        [--scan-every X] [--scan-length Y] [--shards N]
//   --scan-every X, --scan-length Y: Zipf requests between scans and keys per scan, in multiples of the
//            capacity (default 5 and 2)
//   --check  exit 1 unless MemoryBackend meets the targets (>= LRU + 5 points on zipf-0.99,
//            >= LRU + 10 on the zipf-0.99 scan traces, >= LRU - 1 on the recency traces); misses are
//            marked "!" in the table.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <list>
#include <numeric>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <hitbox/backend/memory/memory_backend.hpp>

namespace {

struct Options {
    std::uint32_t keys = 1'000'000;
    std::uint32_t capacity = 0;  // default: 1% of keys
    std::uint64_t requests = 0;  // default: 400x capacity, at least 1M
    std::uint64_t seed = 42;
    double scan_every = 5;   // Zipf requests between scans, in multiples of the capacity
    double scan_length = 2;  // keys per scan, in multiples of the capacity
    std::size_t shards = 0;  // 0: the builder's default
    bool check = false;
};

using Trace = std::vector<std::uint32_t>;

/// Zipf sampler over ranks 0..n-1 (rank r has weight 1/(r+1)^s), by inversion of the cumulative table.
class Zipf {
public:
    Zipf(std::uint32_t n, double s) : cdf_(n) {
        double sum = 0;
        for (std::uint32_t r = 0; r < n; ++r) cdf_[r] = (sum += 1.0 / std::pow(static_cast<double>(r) + 1, s));
        for (auto& c : cdf_) c /= sum;
    }
    template <class Rng>
    std::uint32_t operator()(Rng& rng) const {
        double u = std::uniform_real_distribution<double>(0, 1)(rng);
        return static_cast<std::uint32_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
    }

private:
    std::vector<double> cdf_;
};

/// A random permutation of key ids, so popularity rank and key id are unrelated (scans are sequential in
/// key id, so they hit random popularity ranks).
std::vector<std::uint32_t> scramble(std::uint32_t n, std::mt19937_64& rng) {
    std::vector<std::uint32_t> p(n);
    std::iota(p.begin(), p.end(), 0u);
    std::shuffle(p.begin(), p.end(), rng);
    return p;
}

enum class Scans { none, random_start, same_range };

Trace zipf_trace(const Options& o, double s, Scans scans, std::mt19937_64& rng) {
    Zipf zipf(o.keys, s);
    auto ids = scramble(o.keys, rng);
    Trace t;
    t.reserve(o.requests);
    const auto block = static_cast<std::uint64_t>(o.scan_every * o.capacity);
    const auto scan = static_cast<std::uint64_t>(o.scan_length * o.capacity);
    while (t.size() < o.requests) {
        for (std::uint64_t i = 0; i < block && t.size() < o.requests; ++i) t.push_back(ids[zipf(rng)]);
        if (scans == Scans::none) continue;
        std::uint32_t start =
            scans == Scans::same_range ? 0u : std::uniform_int_distribution<std::uint32_t>(0, o.keys - 1)(rng);
        for (std::uint64_t i = 0; i < scan && t.size() < o.requests; ++i)
            t.push_back(static_cast<std::uint32_t>((start + i) % o.keys));
    }
    return t;
}

Trace sliding_window_trace(const Options& o, std::mt19937_64& rng) {
    const std::uint32_t window = std::max(1u, o.capacity / 2);
    Trace t;
    t.reserve(o.requests);
    for (std::uint64_t i = 0; i < o.requests; ++i) {
        std::uint64_t start = i / 8;
        std::uint64_t id = start + std::uniform_int_distribution<std::uint32_t>(0, window - 1)(rng);
        t.push_back(static_cast<std::uint32_t>(id % o.keys));
    }
    return t;
}

Trace recent_geometric_trace(const Options& o, std::mt19937_64& rng) {
    std::geometric_distribution<std::uint32_t> distance(1.0 / (std::max(2u, o.capacity / 2)));
    std::bernoulli_distribution advance(1.0 / 8);
    std::uint64_t front = o.capacity;
    Trace t;
    t.reserve(o.requests);
    for (std::uint64_t i = 0; i < o.requests; ++i) {
        if (advance(rng)) ++front;
        std::uint64_t d = std::min<std::uint64_t>(distance(rng), front);
        t.push_back(static_cast<std::uint32_t>((front - d) % o.keys));
    }
    return t;
}

/// The baseline: a textbook LRU of `capacity` entries.
double run_lru(const Trace& trace, std::uint32_t capacity) {
    std::list<std::uint32_t> order;
    std::unordered_map<std::uint32_t, std::list<std::uint32_t>::iterator> index;
    index.reserve(capacity * 2);
    std::uint64_t hits = 0;
    for (std::uint32_t id : trace) {
        auto it = index.find(id);
        if (it != index.end()) {
            ++hits;
            order.splice(order.begin(), order, it->second);
            continue;
        }
        order.push_front(id);
        index.emplace(id, order.begin());
        if (order.size() > capacity) {
            index.erase(order.back());
            order.pop_back();
        }
    }
    return static_cast<double>(hits) / static_cast<double>(trace.size());
}

struct MemoryRun {
    double ratio;
    std::size_t shards;
};

MemoryRun run_memory(const Trace& trace, std::uint32_t capacity, std::size_t shards) {
    auto builder = hitbox::MemoryBackend::builder().max_entries(capacity);
    if (shards != 0) builder.shards(shards);
    auto built = builder.build();
    if (!built) {
        std::fprintf(stderr, "%s\n", built.error().what().c_str());
        std::exit(2);
    }
    auto& cache = *built;
    std::uint64_t hits = 0;
    char digits[16];
    for (std::uint32_t id : trace) {
        int len = std::snprintf(digits, sizeof digits, "%u", id);
        hitbox::CacheKey key(std::string(digits, static_cast<std::size_t>(len)));
        auto got = cache.get<std::uint32_t>(key);
        if (got && got->has_value()) {
            ++hits;
            continue;
        }
        (void)cache.set(key, hitbox::CacheValue<std::uint32_t>{id});
    }
    return {static_cast<double>(hits) / static_cast<double>(trace.size()), cache.shard_count()};
}

bool parse(int argc, char** argv, Options& o) {
    for (int i = 1; i < argc; ++i) {
        auto arg = [&](const char* name) { return std::strcmp(argv[i], name) == 0 && i + 1 < argc; };
        if (arg("--keys"))
            o.keys = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        else if (arg("--capacity"))
            o.capacity = static_cast<std::uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        else if (arg("--requests"))
            o.requests = std::strtoull(argv[++i], nullptr, 10);
        else if (arg("--seed"))
            o.seed = std::strtoull(argv[++i], nullptr, 10);
        else if (arg("--scan-every"))
            o.scan_every = std::strtod(argv[++i], nullptr);
        else if (arg("--scan-length"))
            o.scan_length = std::strtod(argv[++i], nullptr);
        else if (arg("--shards"))
            o.shards = std::strtoul(argv[++i], nullptr, 10);
        else if (std::strcmp(argv[i], "--check") == 0)
            o.check = true;
        else
            return false;
    }
    if (o.capacity == 0) o.capacity = std::max(1u, o.keys / 100);
    if (o.requests == 0) o.requests = std::max<std::uint64_t>(1'000'000, 400ull * o.capacity);
    return o.keys >= 2 && o.capacity >= 1;
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    if (!parse(argc, argv, o)) {
        std::fprintf(stderr,
                     "usage: %s [--keys N] [--capacity N] [--requests N] [--seed N] [--scan-every X] "
                     "[--scan-length Y] [--shards N] [--check]\n",
                     argv[0]);
        return 2;
    }
    std::mt19937_64 rng(o.seed);
    std::printf("keys %u, capacity %u entries (%.2f%%), %llu requests per trace, seed %llu\n\n", o.keys, o.capacity,
                100.0 * o.capacity / o.keys, static_cast<unsigned long long>(o.requests),
                static_cast<unsigned long long>(o.seed));
    std::printf("| trace              |    LRU | MemoryBackend | difference |\n");
    std::printf("|--------------------|-------:|--------------:|-----------:|\n");

    struct Case {
        const char* name;
        double min_gain;  // target: MemoryBackend - LRU, in points
    };
    bool met = true;
    std::size_t shards = 0;
    auto report = [&](const Case& c, const Trace& trace) {
        const double lru = run_lru(trace, o.capacity) * 100;
        const MemoryRun mem = run_memory(trace, o.capacity, o.shards);
        shards = mem.shards;
        const double diff = mem.ratio * 100 - lru;
        const bool ok = diff >= c.min_gain;
        met = met && ok;
        std::printf("| %-18s | %5.2f%% | %12.2f%% | %+9.2f%s |\n", c.name, lru, mem.ratio * 100, diff,
                    o.check ? (ok ? " " : "!") : " ");
        std::fflush(stdout);
    };
    const auto started = std::chrono::steady_clock::now();
    report({"zipf-0.80", -1e9}, zipf_trace(o, 0.80, Scans::none, rng));
    report({"zipf-0.99", 5}, zipf_trace(o, 0.99, Scans::none, rng));
    report({"zipf-0.80+scan", -1e9}, zipf_trace(o, 0.80, Scans::random_start, rng));
    report({"zipf-0.99+scan", 10}, zipf_trace(o, 0.99, Scans::random_start, rng));
    report({"zipf-0.99+loop", 10}, zipf_trace(o, 0.99, Scans::same_range, rng));
    report({"sliding-window", -1}, sliding_window_trace(o, rng));
    report({"recent-geometric", -1}, recent_geometric_trace(o, rng));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("\nMemoryBackend: default builder, max_entries(%u), %zu shards. %.1f s.\n", o.capacity, shards,
                seconds);
    if (o.check && !met) {
        std::printf("targets NOT met (marked !)\n");
        return 1;
    }
    return 0;
}
