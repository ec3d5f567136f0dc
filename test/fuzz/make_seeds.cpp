// Writes the seed corpus of every fuzz target into test/fuzz/corpus/<target>/ (run from the repo root after
// a change to a format): valid encodings of typical and edge-case inputs.
#include <filesystem>
#include <fstream>
#include <string>

#include <hitbox/backend/redis/envelope.hpp>
#include <hitbox/compress/gzip.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/format/json.hpp>
#include <hitbox/format/xml.hpp>
#include <hitbox/key_format/url_encoded.hpp>

#include "fuzz_deep.hpp"
#include "fuzz_record.hpp"

namespace {
void put(const std::string& target, const std::string& name, const std::string& bytes) {
    auto dir = std::filesystem::path("test/fuzz/corpus") / target;
    std::filesystem::create_directories(dir);
    std::ofstream(dir / name, std::ios::binary) << bytes;
}
}  // namespace

int main() {
    using hitbox::CacheKey;
    const CacheKey keys[] = {CacheKey{}, CacheKey{"user", 1, {{"id", "42"}, {"lang", "en"}, {"admin", std::nullopt}}},
                             CacheKey{"a:b", 7, {{"x&y", "1=2 %"}, {"", ""}}}};
    int i = 0;
    for (const auto& k : keys) {
        put("bitcode", "key" + std::to_string(i), hitbox::Bitcode{}.encode(k));
        put("url_encoded", "key" + std::to_string(i), hitbox::UrlEncoded{}.encode(k));
        ++i;
    }
    hitbox_fuzz::Record rec{42, "Ada", {"admin", ""}, 37, {{"math", 1.5}}, std::string("vip"), true, {"Oslo", 150}};
    hitbox_fuzz::Record empty{};
    put("binary_format", "record", *hitbox::BinaryFormat{}.encode(rec));
    put("binary_format", "empty", *hitbox::BinaryFormat{}.encode(empty));
    put("json_format", "record", *hitbox::JsonFormat{}.encode(rec));
    put("json_format", "empty", *hitbox::JsonFormat{}.encode(empty));
    put("xml_format", "record", *hitbox::XmlFormat{}.encode(rec));
    put("xml_format", "empty", *hitbox::XmlFormat{}.encode(empty));
    // binary_limits: a nested Tree and a filled Heavy (each input is decoded as both types)
    hitbox_fuzz::Tree tree;
    tree.tag = 1;
    tree.label = "root";
    tree.index["k"] = {1, 2, 3};
    hitbox_fuzz::Tree* at = &tree;
    for (int d = 0; d < 20; ++d) at = &at->children.emplace_back();
    tree.next = std::make_unique<hitbox_fuzz::Tree>();
    tree.next->next = std::make_unique<hitbox_fuzz::Tree>();
    put("binary_limits", "tree", *hitbox::BinaryFormat{}.encode(tree));
    hitbox_fuzz::Heavy heavy;
    heavy.strings = {"", "a", "abc"};
    heavy.nested = {{}, {1, 2}};
    heavy.blocks.emplace_back();
    heavy.blocks.emplace_back(std::array<char, 256>{});
    heavy.pairs = {{"x", 1.5}};
    heavy.by_id = {{7, "seven"}};
    heavy.tags = {"t1", "t2"};
    heavy.variants = {std::monostate{}, std::array<std::uint64_t, 32>{}, std::string("v")};
    heavy.flags = {true, false, true};
    heavy.boxes.push_back(std::make_unique<std::array<char, 512>>());
    heavy.boxes.emplace_back();
    heavy.queue = {1, 2};
    heavy.shared = {std::make_shared<hitbox_fuzz::Tree>(), nullptr};
    heavy.shared.push_back(heavy.shared[0]);
    put("binary_limits", "heavy", *hitbox::BinaryFormat{}.encode(heavy));
    put("binary_limits", "empty_heavy", *hitbox::BinaryFormat{}.encode(hitbox_fuzz::Heavy{}));
    auto now = hitbox::from_unix_ms(1'700'000'000'000);
    hitbox::CacheValue<hitbox_fuzz::Record> v{rec, now + std::chrono::seconds(60), now + std::chrono::seconds(45), now};
    put("envelope", "plain", *hitbox::EntryCodec<>{}.encode(v));
    put("envelope", "zstd",
        *hitbox::EntryCodec<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::ZstdCompressor>{}.encode(v));
    std::string text;
    for (int n = 0; n < 50; ++n) text += "{\"id\":" + std::to_string(n) + ",\"name\":\"user\"},";
    put("gzip", "json", *hitbox::GzipCompressor{}.compress(text));
    put("gzip", "empty", *hitbox::GzipCompressor{}.compress(""));
    put("zstd", "json", *hitbox::ZstdCompressor{}.compress(text));
    put("zstd", "empty", *hitbox::ZstdCompressor{}.compress(""));
    return 0;
}
