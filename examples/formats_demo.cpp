// A tour of the foundation: a Boost.Hana struct as a key and as a value, stored through an EntryCodec in
// every value format and compressor, with the bytes each produces.
#include <cstdio>
#include <iostream>

#include <hitbox/compress/gzip.hpp>
#include <hitbox/compress/zstd.hpp>
#include <hitbox/hitbox.hpp>

struct User {
    BOOST_HANA_DEFINE_STRUCT(User, (std::uint64_t, id), (std::string, name), (std::vector<std::string>, roles));
};
struct UserQuery {
    BOOST_HANA_DEFINE_STRUCT(UserQuery, (std::uint64_t, id), (std::string, lang));
};

template <class Codec>
int show(const char* label, const Codec& codec, const hitbox::CacheValue<User>& value) {
    auto blob = codec.encode(value);
    if (!blob) {
        std::cerr << blob.error() << '\n';
        return 1;
    }
    auto back = codec.template decode<User>(*blob);
    if (!back || back->data.name != value.data.name) {
        std::cerr << label << ": round trip failed\n";
        return 1;
    }
    std::printf("  %-22s %5zu bytes\n", label, blob->size());
    return 0;
}

int main() {
    using namespace std::chrono_literals;
    auto key = hitbox::key_of(UserQuery{42, "en"}, "user", 1);
    std::cout << "key, url-encoded: " << hitbox::UrlEncoded{}.encode(key) << '\n';
    std::cout << "key, bitcode:     " << hitbox::Bitcode{}.encode(key).size() << " bytes\n";

    User user{42, "Ada Lovelace", {"admin", "analyst", "poet", "mathematician"}};
    for (int i = 0; i < 30; ++i) user.roles.push_back("role-" + std::to_string(i));
    auto now = hitbox::Clock::now();
    hitbox::CacheValue<User> value{user, now + 60s, now + 45s, now};

    std::cout << "stored entry (envelope + payload) per format and compressor:\n";
    int rc = 0;
    rc |= show("binary", hitbox::EntryCodec<>{}, value);
    rc |= show("binary + zstd", hitbox::EntryCodec<hitbox::Bitcode, hitbox::BinaryFormat, hitbox::ZstdCompressor>{},
               value);
    rc |= show("json", hitbox::EntryCodec<hitbox::Bitcode, hitbox::JsonFormat>{}, value);
    rc |= show("json + gzip", hitbox::EntryCodec<hitbox::Bitcode, hitbox::JsonFormat, hitbox::GzipCompressor>{}, value);
    rc |= show("json + zstd", hitbox::EntryCodec<hitbox::Bitcode, hitbox::JsonFormat, hitbox::ZstdCompressor>{}, value);
    rc |= show("xml", hitbox::EntryCodec<hitbox::Bitcode, hitbox::XmlFormat>{}, value);
    std::cout << "state now: " << hitbox::to_string(value.state(now))
              << ", in 50 s: " << hitbox::to_string(value.state(now + 50s))
              << ", in 61 s: " << hitbox::to_string(value.state(now + 61s)) << '\n';
    return rc;
}
