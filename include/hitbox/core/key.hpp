#pragma once
/// \file
/// hitbox::CacheKey (prefix, version, ordered parts) and hitbox::key_of for Boost.Hana-adapted structs.

#include <charconv>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/hana/accessors.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>

namespace hitbox {

/// One named component of a key. A part without a value (`std::nullopt`) differs from one whose value is
/// the empty string; both survive every key format.
struct KeyPart {
    std::string name;
    std::optional<std::string> value;

    friend bool operator==(const KeyPart&, const KeyPart&) = default;
};

/// The identity of a cached entry: a prefix (namespace), a version (bump it to invalidate all entries of an
/// old shape) and ordered parts. Immutable; copying shares the data (one atomic increment), and the hash is
/// computed once at construction.
///
/// \code
/// hitbox::CacheKey key{"user", 1, {{"id", "42"}, {"lang", "en"}, {"admin", std::nullopt}}};
/// \endcode
class CacheKey {
public:
    /// The empty key; a key of `prefix`, `version` and `parts`.
    CacheKey() : data_(empty_data()) {}
    explicit CacheKey(std::string prefix, std::uint32_t version = 0, std::vector<KeyPart> parts = {})
        : data_(std::make_shared<const Data>(std::move(prefix), version, std::move(parts))) {}
    CacheKey(std::string prefix, std::vector<KeyPart> parts) : CacheKey(std::move(prefix), 0, std::move(parts)) {}

    /// The components, as given.
    const std::string& prefix() const noexcept { return data_->prefix; }
    std::uint32_t version() const noexcept { return data_->version; }
    const std::vector<KeyPart>& parts() const noexcept { return data_->parts; }
    /// Stable 64-bit hash (FNV-1a over all components); equal keys hash equal.
    std::size_t hash() const noexcept { return data_->hash; }

    /// A new key with one more part appended.
    CacheKey with(std::string name, std::optional<std::string> value = std::nullopt) const {
        auto parts = data_->parts;
        parts.push_back(KeyPart{std::move(name), std::move(value)});
        return CacheKey(data_->prefix, data_->version, std::move(parts));
    }

    /// The value of the first part named `name`: nullopt when there is no such part, and a pointer to the
    /// (possibly absent) value otherwise.
    const std::optional<std::string>* find(std::string_view name) const noexcept {
        for (const auto& p : data_->parts)
            if (p.name == name) return &p.value;
        return nullptr;
    }

    /// Equal when prefix, version and every part are equal.
    friend bool operator==(const CacheKey& a, const CacheKey& b) noexcept {
        if (a.data_ == b.data_) return true;
        return a.data_->hash == b.data_->hash && a.data_->prefix == b.data_->prefix &&
               a.data_->version == b.data_->version && a.data_->parts == b.data_->parts;
    }

private:
    struct Data {
        Data(std::string p, std::uint32_t v, std::vector<KeyPart> ps)
            : prefix(std::move(p)), version(v), parts(std::move(ps)), hash(compute_hash()) {}
        std::string prefix;
        std::uint32_t version;
        std::vector<KeyPart> parts;
        std::size_t hash;

        std::size_t compute_hash() const noexcept {
            std::uint64_t h = 14695981039346656037ull;
            auto mix_byte = [&h](unsigned char c) { h = (h ^ c) * 1099511628211ull; };
            auto mix_u64 = [&](std::uint64_t v) {
                for (int i = 0; i < 8; ++i) mix_byte(static_cast<unsigned char>(v >> (8 * i)));
            };
            auto mix_str = [&](std::string_view s) {
                mix_u64(s.size());
                for (char c : s) mix_byte(static_cast<unsigned char>(c));
            };
            mix_str(prefix);
            mix_u64(version);
            mix_u64(parts.size());
            for (const auto& p : parts) {
                mix_str(p.name);
                mix_byte(p.value ? 1 : 0);
                if (p.value) mix_str(*p.value);
            }
            return static_cast<std::size_t>(h);
        }
    };

    static const std::shared_ptr<const Data>& empty_data() {
        static const auto empty = std::make_shared<const Data>(std::string{}, 0, std::vector<KeyPart>{});
        return empty;
    }

    std::shared_ptr<const Data> data_;
};

namespace detail {

template <class T>
struct is_optional : std::false_type {};
template <class T>
struct is_optional<std::optional<T>> : std::true_type {};

template <class T>
inline constexpr bool is_hana_struct = boost::hana::Struct<T>::value;

/// Text of a scalar key value: strings as they are, bool as true/false, numbers in shortest round-trip
/// decimal form, enums as their underlying integer.
template <class V>
std::optional<std::string> key_value_of(const V& v) {
    using U = std::remove_cvref_t<V>;
    if constexpr (is_optional<U>::value) {
        if (!v) return std::nullopt;
        return key_value_of(*v);
    } else if constexpr (std::is_convertible_v<const U&, std::string_view>) {
        return std::string(std::string_view(v));
    } else if constexpr (std::is_same_v<U, bool>) {
        return std::string(v ? "true" : "false");
    } else if constexpr (std::is_enum_v<U>) {
        return key_value_of(static_cast<std::underlying_type_t<U>>(v));
    } else if constexpr (std::is_arithmetic_v<U>) {
        char buf[64];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
        return std::string(buf, ec == std::errc{} ? end : buf);
    } else {
        static_assert(sizeof(U) == 0,
                      "hitbox::key_of: a key member must be a string, bool, number, enum, std::optional of one, "
                      "or a nested Boost.Hana-adapted struct");
        return std::nullopt;
    }
}

template <class T>
void append_parts(const T& x, std::string_view outer, std::vector<KeyPart>& out) {
    boost::hana::for_each(boost::hana::accessors<T>(), [&](auto accessor) {
        std::string name(boost::hana::to<char const*>(boost::hana::first(accessor)));
        if (!outer.empty()) name = std::string(outer) + "." + name;
        const auto& member = boost::hana::second(accessor)(x);
        using M = std::remove_cvref_t<decltype(member)>;
        if constexpr (is_hana_struct<M>)
            append_parts(member, name, out);
        else
            out.push_back(KeyPart{std::move(name), key_value_of(member)});
    });
}

}  // namespace detail

/// Builds a key from a struct adapted with BOOST_HANA_DEFINE_STRUCT / BOOST_HANA_ADAPT_STRUCT: one part per
/// member, in declaration order, named after the member (nested structs flatten to "outer.inner").
/// An empty std::optional member becomes a part without a value.
///
/// \code
/// struct UserQuery { BOOST_HANA_DEFINE_STRUCT(UserQuery, (std::uint64_t, id), (std::string, lang)); };
/// auto key = hitbox::key_of(UserQuery{42, "en"}, "user");   // parts id=42, lang=en
/// \endcode
template <class T>
    requires detail::is_hana_struct<T> CacheKey key_of(const T& x, std::string prefix = {}, std::uint32_t version = 0) {
        std::vector<KeyPart> parts;
        detail::append_parts(x, {}, parts);
        return CacheKey(std::move(prefix), version, std::move(parts));
    }

}  // namespace hitbox

/// Hashes a CacheKey by its precomputed hash(), for unordered containers.
template <>
struct std::hash<hitbox::CacheKey> {
    std::size_t operator()(const hitbox::CacheKey& k) const noexcept { return k.hash(); }
};
