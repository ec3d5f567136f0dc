#pragma once
// The representative value type the value-format and envelope fuzzers decode into.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <boost/hana/define_struct.hpp>

namespace hitbox_fuzz {

struct Inner {
    BOOST_HANA_DEFINE_STRUCT(Inner, (std::string, city), (std::uint32_t, zip));
};

struct Record {
    BOOST_HANA_DEFINE_STRUCT(Record, (std::uint64_t, id), (std::string, name), (std::vector<std::string>, roles),
                             (std::optional<std::int32_t>, age), (std::map<std::string, double>, scores),
                             (std::variant<std::int64_t, std::string>, tag), (bool, active), (Inner, inner));
};

}  // namespace hitbox_fuzz
