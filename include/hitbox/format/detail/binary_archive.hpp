#pragma once
// hitbox's binary cereal archives: little-endian numbers, varint (LEB128) lengths, reading from a byte view. Unlike a
// stream archive, the input archive refuses any length larger than the bytes left, so corrupt input can
// never make it allocate more than its own size.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include <cereal/cereal.hpp>

#include <hitbox/key_format/detail/varint.hpp>

namespace hitbox::detail {

class BinaryOutputArchive : public cereal::OutputArchive<BinaryOutputArchive, cereal::AllowEmptyClassElision> {
public:
    explicit BinaryOutputArchive(std::string& out) : OutputArchive(this), out_(out) {}

    void save_bytes(const void* data, std::size_t size, std::size_t element_size) {
        const char* p = static_cast<const char*>(data);
        if constexpr (std::endian::native == std::endian::little) {
            out_.append(p, size);
        } else {
            for (std::size_t i = 0; i < size; i += element_size)
                for (std::size_t j = element_size; j > 0; --j) out_.push_back(p[i + j - 1]);
        }
    }

    void save_varint(std::uint64_t v) { put_varint(out_, v); }

private:
    std::string& out_;
};

class BinaryInputArchive : public cereal::InputArchive<BinaryInputArchive, cereal::AllowEmptyClassElision> {
public:
    explicit BinaryInputArchive(std::string_view in) : InputArchive(this), in_(in) {}

    void load_bytes(void* data, std::size_t size, std::size_t element_size) {
        if (size > remaining())
            throw cereal::Exception("truncated input: need " + std::to_string(size) + " bytes, " +
                                    std::to_string(remaining()) + " left");
        char* p = static_cast<char*>(data);
        if constexpr (std::endian::native == std::endian::little) {
            std::memcpy(p, in_.data() + pos_, size);
        } else {
            for (std::size_t i = 0; i < size; i += element_size)
                for (std::size_t j = 0; j < element_size; ++j) p[i + j] = in_[pos_ + i + element_size - 1 - j];
        }
        pos_ += size;
    }

    std::uint64_t load_varint() {
        auto v = get_varint(in_, pos_);
        if (!v) throw cereal::Exception("bad length varint");
        return *v;
    }

    std::size_t remaining() const noexcept { return in_.size() - pos_; }

private:
    std::string_view in_;
    std::size_t pos_ = 0;
};

template <class T>
    requires std::is_arithmetic_v<T>
void CEREAL_SAVE_FUNCTION_NAME(BinaryOutputArchive& ar, const T& t) {
    static_assert(!std::is_floating_point_v<T> || std::numeric_limits<T>::is_iec559,
                  "hitbox BinaryFormat stores IEEE 754 floating point only");
    if constexpr (std::is_same_v<T, bool>) {
        const std::uint8_t b = t ? 1 : 0;
        ar.save_bytes(&b, 1, 1);
    } else {
        ar.save_bytes(std::addressof(t), sizeof(T), sizeof(T));
    }
}

template <class T>
    requires std::is_arithmetic_v<T>
void CEREAL_LOAD_FUNCTION_NAME(BinaryInputArchive& ar, T& t) {
    if constexpr (std::is_same_v<T, bool>) {
        std::uint8_t b = 0;
        ar.load_bytes(&b, 1, 1);
        if (b > 1) throw cereal::Exception("invalid bool byte");
        t = b == 1;
    } else {
        ar.load_bytes(std::addressof(t), sizeof(T), sizeof(T));
    }
}

template <class Archive, class T>
    requires(std::is_same_v<Archive, BinaryOutputArchive> || std::is_same_v<Archive, BinaryInputArchive>)
void CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& nvp) {
    ar(nvp.value);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(BinaryOutputArchive& ar, const cereal::SizeTag<T>& tag) {
    ar.save_varint(static_cast<std::uint64_t>(tag.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BinaryInputArchive& ar, cereal::SizeTag<T>& tag) {
    const std::uint64_t n = ar.load_varint();
    // Each element of a sized container occupies at least one byte, so a larger count is corrupt.
    if (n > ar.remaining()) throw cereal::Exception("container size " + std::to_string(n) + " exceeds input");
    tag.size = static_cast<std::remove_reference_t<T>>(n);
}

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(BinaryOutputArchive& ar, const cereal::BinaryData<T>& bd) {
    using E = std::remove_cv_t<std::remove_pointer_t<T>>;
    ar.save_bytes(bd.data, static_cast<std::size_t>(bd.size), sizeof(E));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BinaryInputArchive& ar, cereal::BinaryData<T>& bd) {
    using E = std::remove_cv_t<std::remove_pointer_t<T>>;
    ar.load_bytes(bd.data, static_cast<std::size_t>(bd.size), sizeof(E));
}

}  // namespace hitbox::detail

CEREAL_REGISTER_ARCHIVE(hitbox::detail::BinaryOutputArchive)
CEREAL_REGISTER_ARCHIVE(hitbox::detail::BinaryInputArchive)
CEREAL_SETUP_ARCHIVE_TRAITS(hitbox::detail::BinaryInputArchive, hitbox::detail::BinaryOutputArchive)
