#pragma once
// Value types shared by the tests: a rich Hana-adapted struct and edge-case strings.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <boost/hana/define_struct.hpp>

namespace hitbox_test {

struct Address {
    BOOST_HANA_DEFINE_STRUCT(Address, (std::string, city), (std::uint32_t, zip));
    friend bool operator==(const Address&, const Address&) = default;
};

struct Profile {
    BOOST_HANA_DEFINE_STRUCT(Profile, (std::uint64_t, id), (std::string, name), (std::vector<std::string>, roles),
                             (std::optional<int>, age), (std::map<std::string, double>, scores),
                             (std::variant<int, std::string>, tag), (std::chrono::milliseconds, ttl), (bool, active),
                             (Address, address));
    friend bool operator==(const Profile&, const Profile&) = default;
};

inline Profile sample_profile(std::string name = "Ada Lovelace") {
    return Profile{42,
                   std::move(name),
                   {"admin", "ops", ""},
                   37,
                   {{"math", 99.5}, {"poetry", -1.25}},
                   std::string("vip"),
                   std::chrono::milliseconds(1500),
                   true,
                   {"London", 12345}};
}

/// Trivially copyable, for RawFormat.
struct Point {
    std::int32_t x;
    std::int32_t y;
    double weight;
    friend bool operator==(const Point&, const Point&) = default;
};

inline std::string binary_string() {
    std::string s;
    for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
    return s;
}

inline std::string unicode_string() { return "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac"; }

inline std::string large_string(std::size_t n = 1 << 20) {
    std::string s;
    s.reserve(n);
    std::uint32_t x = 12345;
    for (std::size_t i = 0; i < n; ++i) {
        x = x * 1103515245u + 12345u;
        s.push_back(static_cast<char>('a' + (x >> 16) % 26));
    }
    return s;
}

}  // namespace hitbox_test
