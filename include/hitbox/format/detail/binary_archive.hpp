#pragma once
// hitbox's binary cereal archives: little-endian numbers, varint (LEB128) lengths, reading from a byte view.
// The input archive is built for hostile bytes. Input length alone does not bound memory (one input byte can
// stand for a 32-byte empty std::string, or for a heap object behind a std::unique_ptr), so it also keeps a
// decode budget: every container size is charged (count x estimated bytes per element) before the container
// allocates, and every smart-pointer pointee before it is created; a charge past the budget is an error. It
// also counts nesting (objects and containers) so recursive types cannot exhaust the stack.
//
// The accounting rides on cereal's prologue / epilogue hooks, called around every value: the prologue of a
// container records its per-element cost, the container's size tag (read next, before it allocates) charges
// it. Heap that a type's default constructor allocates by itself (libstdc++'s std::deque) is not charged.

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

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

/// What one element of a sized container costs: `heap` bytes of memory (estimated, see element_cost) and at
/// least `min_input` bytes of input.
struct ElementCost {
    std::size_t heap = 1;
    std::size_t min_input = 1;
};

class BinaryInputArchive : public cereal::InputArchive<BinaryInputArchive, cereal::AllowEmptyClassElision> {
public:
    /// Reads `in`, creating at most `budget` bytes of containers, strings and pointees, nested at most
    /// `max_depth` objects / containers deep.
    BinaryInputArchive(std::string_view in, std::size_t budget, std::size_t max_depth)
        : InputArchive(this), in_(in), budget_left_(budget), max_depth_(max_depth) {}

    void load_bytes(void* data, std::size_t size, std::size_t element_size) {
        if (size > remaining())
            throw cereal::Exception("truncated input: need " + std::to_string(size) + " bytes, " +
                                    std::to_string(remaining()) + " left");
        char* p = static_cast<char*>(data);
        if constexpr (std::endian::native == std::endian::little) {
            if (size != 0) std::memcpy(p, in_.data() + pos_, size);  // an empty vector's data() may be null
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

    /// A container's element count, charged at the cost its prologue announced (1 byte each when none did)
    /// before the container allocates: more elements than the input can hold, or than the budget can pay
    /// for, is an error.
    std::uint64_t load_size() {
        const std::uint64_t n = load_varint();
        const ElementCost cost = pending_;
        pending_ = ElementCost{};
        if (n > remaining() / cost.min_input)
            throw cereal::Exception("container size " + std::to_string(n) + " exceeds input");
        if (n > budget_left_ / cost.heap) budget_exceeded(n, cost.heap);
        budget_left_ -= static_cast<std::size_t>(n) * cost.heap;
        return n;
    }

    std::size_t remaining() const noexcept { return in_.size() - pos_; }

    // Called by the prologue / epilogue below.
    void enter() {
        if (++depth_ > max_depth_) too_deep();
    }
    void leave() noexcept { --depth_; }
    void expect_elements(ElementCost cost) noexcept { pending_ = cost; }
    void charge(std::size_t bytes) {
        if (bytes > budget_left_) budget_exceeded(1, bytes);
        budget_left_ -= bytes;
    }
    void refund(std::size_t bytes) noexcept { budget_left_ += bytes; }

private:
    [[noreturn]] void too_deep() const {
        throw cereal::Exception("nesting deeper than " + std::to_string(max_depth_) + " objects / containers");
    }
    [[noreturn]] void budget_exceeded(std::uint64_t n, std::size_t each) const {
        throw cereal::Exception("decode budget exceeded: " + std::to_string(n) + " x " + std::to_string(each) +
                                " bytes, " + std::to_string(budget_left_) + " bytes of the budget left");
    }

    std::string_view in_;
    std::size_t pos_ = 0;
    std::size_t budget_left_;
    std::size_t depth_ = 0;
    std::size_t max_depth_;
    ElementCost pending_{};
};

// What the prologue / epilogue account for, decided per type at compile time.
namespace decode_cost {

template <class T>
inline constexpr bool is_cereal_wrapper = false;  // wrappers cereal puts around a value: no level of their own
template <class T>
inline constexpr bool is_cereal_wrapper<cereal::NameValuePair<T>> = true;
template <class T>
inline constexpr bool is_cereal_wrapper<cereal::SizeTag<T>> = true;
template <class T>
inline constexpr bool is_cereal_wrapper<cereal::BinaryData<T>> = true;

template <class T>
inline constexpr bool is_std_basic_string = false;
template <class C, class Tr, class A>
inline constexpr bool is_std_basic_string<std::basic_string<C, Tr, A>> = true;

/// A level of nesting, as JSON counts `{` and `[`: objects and containers, not strings or numbers.
template <class T>
inline constexpr bool counts_as_level = std::is_class_v<T> && !is_cereal_wrapper<T> && !is_std_basic_string<T>;

/// A container that cereal loads through a size tag (not std::array, whose size is in its type).
template <class T>
concept sized_container = requires(const T& c) {
    typename T::value_type;
    c.size();
    c.begin();
}
&&!requires { std::tuple_size<T>::value; };

template <class T>
inline constexpr bool is_bit_vector = false;
template <class A>
inline constexpr bool is_bit_vector<std::vector<bool, A>> = true;
template <class T>
inline constexpr bool is_deque = false;
template <class T, class A>
inline constexpr bool is_deque<std::deque<T, A>> = true;

/// Heap bytes of one element: its size in contiguous storage (vector, string, deque's blocks), plus four
/// pointers for the node of a list, set or map (a red-black node's header is 32 bytes; a hash node's link,
/// cached hash and bucket take 24). An arithmetic element also takes sizeof bytes of input.
template <class C>
constexpr ElementCost element_cost() noexcept {
    using V = typename C::value_type;
    constexpr std::size_t min_input = std::is_arithmetic_v<V> ? sizeof(V) : 1;
    if constexpr (is_bit_vector<C>) {
        return {1, 1};
    } else if constexpr (requires(C & c) { c.data(); } || is_deque<C>) {
        return {sizeof(V), min_input};
    } else {
        return {sizeof(V) + 4 * sizeof(void*), min_input};
    }
}

/// Heap bytes cereal creates for a loaded smart pointer: the pointee; for shared_ptr also its control
/// block and the archive's entry that lets later pointers share it.
template <class T>
inline constexpr std::size_t pointee_cost = 0;
template <class T, class D>
inline constexpr std::size_t pointee_cost<std::unique_ptr<T, D>> = sizeof(T);
template <class T>
inline constexpr std::size_t pointee_cost<std::shared_ptr<T>> = sizeof(T) + 12 * sizeof(void*);

}  // namespace decode_cost

template <class T>
inline void prologue(BinaryInputArchive& ar, const T&) {
    using U = std::remove_cv_t<T>;
    if constexpr (decode_cost::counts_as_level<U>) ar.enter();
    if constexpr (decode_cost::sized_container<U>) {
        ar.expect_elements(decode_cost::element_cost<U>());
    } else if constexpr (decode_cost::pointee_cost<U> != 0) {
        ar.charge(decode_cost::pointee_cost<U>);  // before cereal allocates it; refunded if it loads as null
    }
}

template <class T>
inline void epilogue(BinaryInputArchive& ar, const T& value) {
    using U = std::remove_cv_t<T>;
    if constexpr (decode_cost::pointee_cost<U> != 0) {
        if (!value) ar.refund(decode_cost::pointee_cost<U>);
    }
    if constexpr (decode_cost::counts_as_level<U>) ar.leave();
}

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
void CEREAL_SERIALIZE_FUNCTION_NAME(Archive& ar, cereal::NameValuePair<T>& nvp) { ar(nvp.value); }

template <class T>
void CEREAL_SAVE_FUNCTION_NAME(BinaryOutputArchive& ar, const cereal::SizeTag<T>& tag) {
    ar.save_varint(static_cast<std::uint64_t>(tag.size));
}

template <class T>
void CEREAL_LOAD_FUNCTION_NAME(BinaryInputArchive& ar, cereal::SizeTag<T>& tag) {
    tag.size = static_cast<std::remove_reference_t<T>>(ar.load_size());
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
