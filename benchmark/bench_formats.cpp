// Value formats and compressors: encode+decode of a ~1 KiB struct per format, compress+decompress of
// JSON-like payloads per compressor. RawFormat and PassthroughCompressor are the baselines.
#include <benchmark/benchmark.h>

#include <cstring>
#include <string>
#include <vector>

#include <boost/hana/define_struct.hpp>

#include <hitbox/compress/gzip.hpp>
#include <hitbox/compress/passthrough.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/format/binary.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/format/raw.hpp>
#include <hitbox/format/xml.hpp>

namespace {

struct Order {
    BOOST_HANA_DEFINE_STRUCT(Order, (std::uint64_t, id), (std::string, customer), (std::vector<std::string>, items),
                             (std::vector<double>, prices), (std::string, note), (bool, paid));
};

/// About 1 KiB in BinaryFormat.
Order sample_order() {
    Order o{123456789, "customer-0042@example.com", {}, {}, std::string(300, 'n'), true};
    for (int i = 0; i < 20; ++i) {
        o.items.push_back("sku-" + std::to_string(100000 + i) + "-blue-large");
        o.prices.push_back(9.99 + i);
    }
    return o;
}

/// A trivially copyable record of the same size, for the RawFormat baseline.
struct RawOrder {
    char bytes[1024];
};

template <class Format>
void BM_FormatRoundTrip(benchmark::State& state) {
    Format fmt;
    const auto order = sample_order();
    std::size_t size = 0;
    for (auto _ : state) {
        auto enc = fmt.encode(order);
        auto dec = fmt.template decode<Order>(*enc);
        benchmark::DoNotOptimize(dec);
        size = enc->size();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
    state.counters["encoded_bytes"] = static_cast<double>(size);
}
BENCHMARK_TEMPLATE(BM_FormatRoundTrip, hitbox::BinaryFormat);
BENCHMARK_TEMPLATE(BM_FormatRoundTrip, hitbox::JsonFormat);
BENCHMARK_TEMPLATE(BM_FormatRoundTrip, hitbox::XmlFormat);

/// Decode only (what a cache hit pays), of the ~1 KiB Order.
template <class Format>
void BM_FormatDecode(benchmark::State& state) {
    Format fmt;
    const auto enc = *fmt.encode(sample_order());
    for (auto _ : state) {
        auto dec = fmt.template decode<Order>(enc);
        benchmark::DoNotOptimize(dec);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * enc.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK_TEMPLATE(BM_FormatDecode, hitbox::BinaryFormat);

/// Decode of many small elements (1000 strings of 0..15 bytes): the most bookkeeping per input byte.
void BM_FormatDecodeSmallStrings(benchmark::State& state) {
    hitbox::BinaryFormat fmt;
    std::vector<std::string> v;
    for (int i = 0; i < 1000; ++i) v.emplace_back(static_cast<std::size_t>(i % 16), 'a');
    const auto enc = *fmt.encode(v);
    for (auto _ : state) {
        auto dec = fmt.decode<std::vector<std::string>>(enc);
        benchmark::DoNotOptimize(dec);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * enc.size()));
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_FormatDecodeSmallStrings);

void BM_FormatRoundTripRawBaseline(benchmark::State& state) {
    hitbox::RawFormat fmt;
    RawOrder raw{};
    std::memset(raw.bytes, 'x', sizeof raw.bytes);
    for (auto _ : state) {
        auto enc = fmt.encode(raw);
        auto dec = fmt.decode<RawOrder>(*enc);
        benchmark::DoNotOptimize(dec);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * sizeof raw));
    state.counters["encoded_bytes"] = sizeof raw;
}
BENCHMARK(BM_FormatRoundTripRawBaseline);

/// JSON-like text of about `n` bytes: repetitive keys, varying numbers, like cached API responses.
std::string json_payload(std::size_t n) {
    std::string s = "[";
    for (int i = 0; s.size() < n; ++i)
        s += "{\"id\":" + std::to_string(i * 7919 % 100003) + ",\"name\":\"user" + std::to_string(i) +
             "\",\"active\":" + (i % 3 ? "true" : "false") + ",\"score\":" + std::to_string(i % 97) + "},";
    s.resize(n);
    return s;
}

template <class Comp>
void BM_Compress(benchmark::State& state) {
    Comp c;
    const auto payload = json_payload(static_cast<std::size_t>(state.range(0)));
    std::size_t packed_size = 0;
    for (auto _ : state) {
        auto packed = c.compress(payload);
        benchmark::DoNotOptimize(packed);
        packed_size = packed->size();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * payload.size()));
    state.counters["compressed_bytes"] = static_cast<double>(packed_size);
    state.counters["ratio"] = static_cast<double>(payload.size()) / static_cast<double>(packed_size);
}

template <class Comp>
void BM_Decompress(benchmark::State& state) {
    Comp c;
    const auto payload = json_payload(static_cast<std::size_t>(state.range(0)));
    const auto packed = *c.compress(payload);
    for (auto _ : state) {
        auto back = c.decompress(packed);
        benchmark::DoNotOptimize(back);
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * payload.size()));
    state.counters["compressed_bytes"] = static_cast<double>(packed.size());
}

BENCHMARK_TEMPLATE(BM_Compress, hitbox::PassthroughCompressor)->Arg(1024)->Arg(64 * 1024);
BENCHMARK_TEMPLATE(BM_Compress, hitbox::GzipCompressor)->Arg(1024)->Arg(64 * 1024);
BENCHMARK_TEMPLATE(BM_Compress, hitbox::ZstdCompressor)->Arg(1024)->Arg(64 * 1024);
BENCHMARK_TEMPLATE(BM_Decompress, hitbox::PassthroughCompressor)->Arg(1024)->Arg(64 * 1024);
BENCHMARK_TEMPLATE(BM_Decompress, hitbox::GzipCompressor)->Arg(1024)->Arg(64 * 1024);
BENCHMARK_TEMPLATE(BM_Decompress, hitbox::ZstdCompressor)->Arg(1024)->Arg(64 * 1024);

}  // namespace
