// Memory and nesting limits of decoding hostile entries, measured where they matter: each case runs in a
// forked child, whose peak resident memory (VmHWM, reset through /proc/self/clear_refs) above its resident
// memory at the start is the figure checked, so neither the test process nor earlier cases skew it, and a
// stack overflow kills only the child. Under AddressSanitizer (shadow memory, quarantine of freed blocks)
// RSS says nothing about the code: there only the outcome is checked.
//  - BinaryFormat's decode budget: container storage, string bytes, nodes and pointees count against
//    decode_budget_factor x input + decode_budget_floor before they are allocated.
//  - BinaryFormat's nesting limit: 256 objects / containers, as JsonFormat and XmlFormat.
//  - Decompression: a refused bomb peaks at most 1.25 x max_decompressed, also many in a row.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <zstd.h>
#include <cereal/types/memory.hpp>

#include <hitbox/compress/gzip.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/format/binary.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/format/xml.hpp>

#include "support/sanitizers.hpp"

#define HITBOX_TEST_RSS (!HITBOX_TEST_ASAN)

namespace {

constexpr bool rss_checked = HITBOX_TEST_RSS != 0;
constexpr std::size_t KiB = 1024, MiB = 1024 * KiB;
/// What a forked child adds to its peak besides the decode: malloc's own pages, the pages it faults in again
/// after malloc_trim, the outcome text. 0.86-1.05 MiB on the 2-core CI VMs, the same for every decode of one
/// run (it depends on the parent's heap), so a bound of budget + 1 MiB failed by 8 KiB once; the refusals
/// these tests pin are of tens of MiB.
constexpr std::size_t child_overhead = 2 * MiB;

long status_kib(const char* field) {
    std::ifstream f("/proc/self/status");
    std::string line;
    const std::size_t n = std::strlen(field);
    while (std::getline(f, line))
        if (line.compare(0, n, field) == 0) return std::stol(line.substr(n));
    return -1;
}

/// How a child ended: `outcome` is what the body returned ("" when the child died), `peak_extra` its peak
/// resident bytes above those at its start (-1 when the kernel cannot reset the peak).
struct ChildRun {
    std::string outcome;
    long long peak_extra = -1;
    int wait_status = 0;
    bool exited_normally() const { return WIFEXITED(wait_status) && WEXITSTATUS(wait_status) == 0; }
};

/// Runs `body` in a forked child and reports its outcome and peak memory.
ChildRun in_child(const std::function<std::string()>& body) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    std::fflush(nullptr);
    const pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
#ifdef __GLIBC__
        malloc_trim(0);  // drop free heap pages inherited from the parent, so that reusing them shows as growth
#endif
        { std::ofstream("/proc/self/clear_refs") << "5"; }  // peak RSS := current RSS
        const long start = status_kib("VmRSS:");
        const bool reset = status_kib("VmHWM:") <= start + 1024;  // KiB
        const std::string outcome = body();
        const long long peak = reset ? (status_kib("VmHWM:") - start) * 1024LL : -1;
        const std::string msg = std::to_string(peak) + "\n" + outcome;
        for (std::size_t off = 0; off < msg.size();) {
            const ssize_t w = write(fds[1], msg.data() + off, msg.size() - off);
            if (w <= 0) break;
            off += static_cast<std::size_t>(w);
        }
        _exit(0);
    }
    close(fds[1]);
    std::string msg;
    char buf[4096];
    for (ssize_t r; (r = read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, static_cast<std::size_t>(r));
    close(fds[0]);
    ChildRun run;
    REQUIRE(waitpid(pid, &run.wait_status, 0) == pid);
    if (const auto nl = msg.find('\n'); nl != std::string::npos) {
        run.peak_extra = std::stoll(msg.substr(0, nl));
        run.outcome = msg.substr(nl + 1);
    }
    return run;
}

template <class T>
std::string outcome_of(const hitbox::Result<T>& r) {
    if (r) return "ok";
    return std::string(r.error().kind() == hitbox::ErrorKind::decode        ? "decode: "
                       : r.error().kind() == hitbox::ErrorKind::compression ? "compression: "
                                                                            : "other: ") +
           r.error().message();
}

/// Checks the peak against `bound` where RSS means something; prints it either way.
void check_peak(const ChildRun& run, std::size_t bound, const std::string& what) {
    INFO(what << ": outcome '" << run.outcome << "', peak " << run.peak_extra << " B above start, bound " << bound
              << " B");
    std::printf("decode_limits: %-58s peak %8.2f MiB (bound %.2f MiB)\n", what.c_str(),
                static_cast<double>(run.peak_extra) / MiB, static_cast<double>(bound) / MiB);
    if (!rss_checked) return;
    if (run.peak_extra < 0) {
        WARN("the kernel does not reset VmHWM through /proc/self/clear_refs: peak not checked");
        return;
    }
    CHECK(run.peak_extra <= static_cast<long long>(bound));
}

std::string varint(std::uint64_t v) {
    std::string s;
    hitbox::detail::put_varint(s, v);
    return s;
}

/// `n` elements of `element` bytes each, after their count: a serialized sequence container.
std::string sequence(std::size_t n, const std::string& element) {
    std::string s = varint(n);
    s.reserve(s.size() + n * element.size());
    for (std::size_t i = 0; i < n; ++i) s += element;
    return s;
}

/// Small in the input (one byte: its optional is empty), 4 KiB in memory.
struct Blob {
    std::optional<std::array<char, 4096>> bytes;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(CEREAL_NVP(bytes));
    }
};

struct Node {
    std::vector<Node> children;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(CEREAL_NVP(children));
    }
};

struct Chain {
    std::uint8_t tag = 0;
    std::unique_ptr<Chain> next;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(CEREAL_NVP(tag), CEREAL_NVP(next));
    }
};

/// A chain of `depth` nodes, each the only child of the one before.
Node node_chain(int depth) {
    Node root;
    Node* at = &root;
    for (int i = 1; i < depth; ++i) at = &at->children.emplace_back();
    return root;
}

/// zstd frame streamed without a size in its header (as a writer that does not know it in advance makes),
/// with window 2^window_log: the decompressor must measure it while it expands.
std::string zstd_streamed(const std::string& plain, int window_log) {
    ZSTD_CCtx* c = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, window_log);
    std::string out(ZSTD_compressBound(plain.size()) + 1024, '\0');
    ZSTD_outBuffer dst{out.data(), out.size(), 0};
    constexpr std::size_t piece = std::size_t{1} << 20;  // in pieces: one ZSTD_e_end would state the size
    for (std::size_t off = 0; off < plain.size(); off += piece) {
        ZSTD_inBuffer in{plain.data() + off, std::min(piece, plain.size() - off), 0};
        while (in.pos < in.size) ZSTD_compressStream2(c, &dst, &in, ZSTD_e_continue);
    }
    ZSTD_inBuffer none{nullptr, 0, 0};
    for (std::size_t rc = 1; rc != 0;) rc = ZSTD_compressStream2(c, &dst, &none, ZSTD_e_end);
    ZSTD_freeCCtx(c);
    out.resize(dst.pos);
    return out;
}

/// `gz` with its trailer's size field (ISIZE) replaced: a lie the decompressor must survive.
std::string gzip_stating(std::string gz, std::uint32_t isize) {
    for (int i = 0; i < 4; ++i) gz[gz.size() - 4 + i] = static_cast<char>(isize >> (8 * i));
    return gz;
}

}  // namespace

TEST_CASE("BinaryFormat: the decode budget refuses values needing more memory than it allows", "[format][limits]") {
    const hitbox::BinaryFormat fmt;
    struct Shape {
        std::string name;
        std::string input;
        std::function<std::string(const std::string&)> decode;
    };
    const std::size_t n = std::size_t{1} << 20;
    const std::vector<Shape> shapes{
        // The shape: 1 MiB of input, 32 MiB of empty strings.
        {"vector<string>, 1 Mi empty strings", sequence(n, std::string(1, '\0')),
         [&](const std::string& in) { return outcome_of(fmt.decode<std::vector<std::string>>(in)); }},
        {"vector<vector<uint32_t>>, 1 Mi empty vectors", sequence(n, std::string(1, '\0')),
         [&](const std::string& in) { return outcome_of(fmt.decode<std::vector<std::vector<std::uint32_t>>>(in)); }},
        {"list<char>, 1 Mi nodes", sequence(n, "x"),
         [&](const std::string& in) { return outcome_of(fmt.decode<std::list<char>>(in)); }},
        // 16 Ki x 4 KiB = 64 MiB from 16 KiB: the elements are inline, so the size tag is refused.
        {"vector<optional<array<char, 4096>>>, 16 Ki empty", sequence(16 * KiB, std::string(1, '\1')),
         [&](const std::string& in) {
             return outcome_of(fmt.decode<std::vector<std::optional<std::array<char, 4096>>>>(in));
         }},
        // 16 Ki x 4 KiB pointees from 32 KiB: refused pointer by pointer, once the budget is spent.
        {"vector<unique_ptr<Blob>>, 16 Ki pointees of 4 KiB", sequence(16 * KiB, std::string("\1\1", 2)),
         [&](const std::string& in) { return outcome_of(fmt.decode<std::vector<std::unique_ptr<Blob>>>(in)); }},
    };
    for (const auto& shape : shapes) {
        const std::size_t budget = fmt.decode_budget(shape.input.size());
        const ChildRun run = in_child([&] { return shape.decode(shape.input); });
        INFO(shape.name << ": " << run.outcome);
        REQUIRE(run.exited_normally());
        CHECK(run.outcome.rfind("decode: binary decode: decode budget exceeded", 0) == 0);
        // what the decoder creates stays within the budget, plus the child's own overhead
        check_peak(run, budget + child_overhead, shape.name + " (refused)");
    }
}

TEST_CASE("BinaryFormat: values within the budget decode, and the budget can be raised", "[format][limits]") {
    const hitbox::BinaryFormat fmt;
    CHECK(fmt.decode_budget(0) == hitbox::BinaryFormat::decode_budget_floor);
    CHECK(fmt.decode_budget(1000) == 16 * 1000 + hitbox::BinaryFormat::decode_budget_floor);
    CHECK(hitbox::BinaryFormat{.decode_budget_factor = SIZE_MAX}.decode_budget(2) == SIZE_MAX);

    // small entries decode whatever their shape (the floor)
    const std::vector<std::string> empties(1000);
    CHECK(*fmt.decode<std::vector<std::string>>(*fmt.encode(empties)) == empties);
    // typical data: 100 Ki short strings, numbers, a map
    std::vector<std::string> names;
    std::map<std::string, std::vector<double>> scores;
    for (int i = 0; i < 100000; ++i) {
        names.push_back("user-" + std::to_string(i));
        if (i % 10 == 0) scores["k" + std::to_string(i)] = {1.0 * i, 2.0};
    }
    CHECK(*fmt.decode<std::vector<std::string>>(*fmt.encode(names)) == names);
    CHECK(*fmt.decode<decltype(scores)>(*fmt.encode(scores)) == scores);
    const std::vector<std::uint64_t> numbers(1 << 20, 7);
    CHECK(*fmt.decode<std::vector<std::uint64_t>>(*fmt.encode(numbers)) == numbers);

    // The 1 Mi empty strings that the default refuses decode with a factor of 64, within that budget.
    const std::string input = sequence(std::size_t{1} << 20, std::string(1, '\0'));
    const hitbox::BinaryFormat roomy{.decode_budget_factor = 64};
    const ChildRun run = in_child([&] {
        auto r = roomy.decode<std::vector<std::string>>(input);
        return r && r->size() == (std::size_t{1} << 20) ? std::string("ok") : outcome_of(r);
    });
    REQUIRE(run.exited_normally());
    CHECK(run.outcome == "ok");
    check_peak(run, roomy.decode_budget(input.size()) + child_overhead,
               "vector<string>, 1 Mi empty, factor 64 (decoded)");
}

TEST_CASE("BinaryFormat: nesting deeper than 256 levels is a decode error, not a stack overflow", "[format][limits]") {
    const hitbox::BinaryFormat fmt;
    const std::string ones(std::size_t{1} << 20, '\1');  // each byte: "one more child" / "a next node"
    SECTION("vector recursion") {
        const ChildRun run = in_child([&] { return outcome_of(fmt.decode<Node>(ones + std::string(1, '\0'))); });
        INFO("wait status " << run.wait_status);
        REQUIRE(run.exited_normally());  // before the limit: SIGSEGV, stack overflow
        CHECK(run.outcome == "decode: binary decode: nesting deeper than 256 objects / containers");
    }
    SECTION("unique_ptr recursion") {
        const ChildRun run = in_child([&] { return outcome_of(fmt.decode<Chain>(ones)); });
        INFO("wait status " << run.wait_status);
        REQUIRE(run.exited_normally());
        CHECK(run.outcome.rfind("decode: binary decode: nesting deeper than 256", 0) == 0);
    }
    SECTION("a tiny zstd entry") {
        const hitbox::ZstdCompressor zstd;
        const std::string entry = *zstd.compress(ones + std::string(1, '\0'));
        CHECK(entry.size() < 128);
        const ChildRun run = in_child([&] {
            auto plain = zstd.decompress(entry);
            return plain ? outcome_of(fmt.decode<Node>(*plain)) : outcome_of(plain);
        });
        REQUIRE(run.exited_normally());
        CHECK(run.outcome == "decode: binary decode: nesting deeper than 256 objects / containers");
    }
    SECTION("every cereal format agrees: 100 nested nodes decode, 200 do not") {
        const hitbox::JsonFormat json;
        const hitbox::XmlFormat xml;
        const Node shallow = node_chain(100), deep = node_chain(200);
        CHECK(fmt.decode<Node>(*fmt.encode(shallow)));
        CHECK(json.decode<Node>(*json.encode(shallow)));
        CHECK(xml.decode<Node>(*xml.encode(shallow)));
        CHECK(fmt.decode<Node>(*fmt.encode(deep)).error().kind() == hitbox::ErrorKind::decode);
        CHECK(json.decode<Node>(*json.encode(deep)).error().kind() == hitbox::ErrorKind::decode);
        CHECK(xml.decode<Node>(*xml.encode(deep)).error().kind() == hitbox::ErrorKind::decode);
        // the limit is a setting
        CHECK(hitbox::BinaryFormat{.max_nesting = 1000}.decode<Node>(*fmt.encode(deep)));
    }
}

TEST_CASE("Decompression: a refused bomb peaks at most 1.25 x the limit, also many in a row", "[compress][limits]") {
    constexpr std::size_t limit = 16 * MiB;
    constexpr std::size_t bound = limit + limit / 4;
    const std::string plain(64 * MiB, '\0');  // expands 4x past the limit
    const std::string gz = *hitbox::GzipCompressor{}.compress(plain);
    struct Bomb {
        std::string name;
        std::string bytes;
        bool zstd;
    };
    const std::vector<Bomb> bombs{
        {"zstd, size in the header", *hitbox::ZstdCompressor{}.compress(plain), true},
        {"zstd, streamed without a size", zstd_streamed(plain, 21), true},
        {"zstd, streamed, 128 MiB window", zstd_streamed(plain, 27), true},
        {"gzip, true size in the trailer", gz, false},
        {"gzip, trailer states the limit", gzip_stating(gz, limit), false},
        {"gzip, trailer states 1000 bytes", gzip_stating(gz, 1000), false},
    };
    for (const auto& bomb : bombs) {
        const ChildRun run = in_child([&] {
            std::string outcome;
            for (int i = 0; i < 8; ++i) {  // in a row: nothing may pile up between calls
                outcome = bomb.zstd ? outcome_of(hitbox::ZstdCompressor{3, limit}.decompress(bomb.bytes))
                                    : outcome_of(hitbox::GzipCompressor{6, limit}.decompress(bomb.bytes));
                if (outcome.find("limit") == std::string::npos) break;
            }
            return outcome;
        });
        INFO(bomb.name << ": " << run.outcome);
        REQUIRE(run.exited_normally());
        CHECK(run.outcome.rfind("compression: ", 0) == 0);
        CHECK(run.outcome.find("limit") != std::string::npos);
        check_peak(run, bound, bomb.name + " x8 (refused)");
    }
}

TEST_CASE("Decompression: output of exactly the limit peaks near the limit", "[compress][limits]") {
    constexpr std::size_t limit = 16 * MiB;
    const std::string plain(limit, 'a');
    const std::vector<std::pair<std::string, std::string>> frames{
        {"zstd, size in the header", *hitbox::ZstdCompressor{}.compress(plain)},
        {"zstd, streamed without a size", zstd_streamed(plain, 21)},
        {"gzip", *hitbox::GzipCompressor{}.compress(plain)},
    };
    for (const auto& frame : frames) {
        const auto& name = frame.first;  // no structured binding: clang 14 cannot capture one in a lambda
        const auto& bytes = frame.second;
        const bool zstd = name.rfind("zstd", 0) == 0;
        const ChildRun run = in_child([&] {
            auto out = zstd ? hitbox::ZstdCompressor{3, limit}.decompress(bytes)
                            : hitbox::GzipCompressor{6, limit}.decompress(bytes);
            return out && *out == plain ? std::string("ok") : outcome_of(out);
        });
        INFO(name << ": " << run.outcome);
        REQUIRE(run.exited_normally());
        CHECK(run.outcome == "ok");
        check_peak(run, limit + limit / 4, name + " (16 MiB out)");
    }
}
