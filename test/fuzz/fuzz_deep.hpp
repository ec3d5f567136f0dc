#pragma once
// The types fuzz_binary_limits decodes: a recursive one and a container-heavy one.

#include <array>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

#include <cereal/types/memory.hpp>

#include <hitbox/format/binary.hpp>

namespace hitbox_fuzz {

struct Tree {
    std::uint8_t tag = 0;
    std::vector<Tree> children;
    std::unique_ptr<Tree> next;
    std::optional<std::string> label;
    std::map<std::string, std::vector<std::uint16_t>> index;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(tag, children, next, label, index);
    }
};

struct Heavy {
    std::vector<std::string> strings;
    std::vector<std::vector<std::uint32_t>> nested;
    std::vector<std::optional<std::array<char, 256>>> blocks;
    std::list<std::pair<std::string, double>> pairs;
    std::unordered_map<std::uint32_t, std::string> by_id;
    std::set<std::string> tags;
    std::vector<std::variant<std::monostate, std::array<std::uint64_t, 32>, std::string>> variants;
    std::vector<bool> flags;
    std::vector<std::unique_ptr<std::array<char, 512>>> boxes;
    std::deque<std::uint64_t> queue;  // not inside a container: a deque's own default allocation is not charged
    std::vector<std::shared_ptr<Tree>> shared;
    Tree tree;
    template <class Archive>
    void serialize(Archive& ar) {
        ar(strings, nested, blocks, pairs, by_id, tags, variants, flags, boxes, queue, shared, tree);
    }
};

}  // namespace hitbox_fuzz
