#pragma once
/// \file
/// Counter structs declared once. A tier's stats snapshot is a plain struct of `std::uint64_t` counters
/// (MemoryStats, ComposeStats, CacheCounts); adapted with Boost.Hana (`BOOST_HANA_ADAPT_STRUCT` after it,
/// or `BOOST_HANA_DEFINE_STRUCT` inside it) its members can be walked, so the code that snapshots, restores,
/// resets, sums and exports them is written once here instead of once per field per struct:
///
/// - hitbox::CounterStruct<S> (core/concepts.hpp): S is such a struct (every member a std::uint64_t, none
///   left out of the adaptation);
/// - hitbox::for_each_counter(s, f): calls `f(name, value)` for every member, in declaration order;
/// - hitbox::add_counters(a, b): adds b to a, member by member;
/// - hitbox::AtomicStats<S>: the live, thread-safe counters behind such a snapshot.
///
/// HITBOX_ADAPT_COUNTERS(S, member...) adapts such a struct like BOOST_HANA_ADAPT_STRUCT, but builds the
/// member table only in a translation unit that walks it: Hana's macro builds it (a tuple of compile-time
/// strings) in every translation unit that includes the struct, which cost about 0.1 s of compile time per
/// ten members. hitbox's own stats structs use it; either macro works for yours.
///
/// \code
/// struct DiskStats {
///     std::uint64_t reads = 0, writes = 0, fsyncs = 0;
/// };
/// HITBOX_ADAPT_COUNTERS(DiskStats, reads, writes, fsyncs);   // at global scope (or BOOST_HANA_ADAPT_STRUCT)
///
/// hitbox::AtomicStats<DiskStats> live;
/// live.bump(&DiskStats::reads);
/// DiskStats s = live.snapshot();   // exported by prometheus_text as hitbox_backend_{reads,writes,fsyncs}_total
/// \endcode

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>
#include <utility>

#include <boost/hana/accessors.hpp>
#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/concept/struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/pair.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>
#include <boost/hana/tuple.hpp>

#include <hitbox/core/concepts.hpp>

namespace hitbox {

/// Calls `f(std::string_view name, V& value)` for every counter of `s`, in declaration order (V is
/// `std::uint64_t` or `const std::uint64_t`).
template <class S, class F>
    requires CounterStruct<std::remove_const_t<S>>
constexpr void for_each_counter(S& s, F&& f) {
    boost::hana::for_each(boost::hana::accessors<std::remove_const_t<S>>(), [&](auto accessor) {
        f(std::string_view(boost::hana::to<char const*>(boost::hana::first(accessor))),
          boost::hana::second(accessor)(s));
    });
}

/// Adds every counter of `b` to the same counter of `a` (two snapshots of levels reported under one name).
template <CounterStruct S>
constexpr S& add_counters(S& a, const S& b) noexcept {
    boost::hana::for_each(boost::hana::accessors<S>(),
                          [&](auto accessor) { boost::hana::second(accessor)(a) += boost::hana::second(accessor)(b); });
    return a;
}

/// The live counters behind a CounterStruct snapshot: one relaxed atomic cell per member, addressed by
/// the member (`bump(&ComposeStats::refills)`), so the fields are declared once, in S. Thread-safe; a
/// snapshot reads each counter on its own (consistent per counter under load, not across counters).
template <class S>
class AtomicStats {
    // The full CounterStruct check walks S's member table, so it sits in snapshot() and restore(), which
    // every owner of counters calls; here only what is cheap to check.
    static_assert(std::is_aggregate_v<S> && boost::hana::Struct<S>::value,
                  "hitbox::AtomicStats<S>: S must model hitbox::CounterStruct: an aggregate of std::uint64_t "
                  "members, every one named in its HITBOX_ADAPT_COUNTERS (or BOOST_HANA_ADAPT_STRUCT)");
    static_assert(std::atomic_ref<std::uint64_t>::required_alignment <= alignof(std::uint64_t),
                  "hitbox::AtomicStats: std::uint64_t members must be atomically accessible");

public:
    using counter = std::uint64_t S::*;

    /// Adds `n` to one counter.
    void bump(counter c, std::uint64_t n = 1) noexcept { cell_(c).fetch_add(n, std::memory_order_relaxed); }
    /// Subtracts `n` from one counter (for gauges such as "callers waiting now").
    void drop(counter c, std::uint64_t n = 1) noexcept { cell_(c).fetch_sub(n, std::memory_order_relaxed); }
    /// One counter as an atomic handle (valid while this object lives).
    std::atomic_ref<std::uint64_t> ref(counter c) const noexcept { return cell_(c); }
    /// One counter now.
    std::uint64_t load(counter c) const noexcept { return cell_(c).load(std::memory_order_relaxed); }

    /// A copy of every counter.
    S snapshot() const noexcept;

    /// Sets every counter to the value in `s` (a moved-from owner's counters carried over).
    void restore(const S& s) noexcept;

    /// Sets every counter to zero.
    void reset() noexcept { restore(S{}); }

private:
    std::atomic_ref<std::uint64_t> cell_(counter c) const noexcept { return std::atomic_ref<std::uint64_t>(cells_.*c); }

    // Only ever accessed through std::atomic_ref (so it is mutable: a const snapshot still reads atomically).
    alignas(std::atomic_ref<std::uint64_t>::required_alignment) mutable S cells_{};
};

// Out of the class so that an `extern template class AtomicStats<X>` (the compiled library's stats
// structs) keeps them, and the walk of X's member table, out of the program's translation units.
template <class S>
S AtomicStats<S>::snapshot() const noexcept {
    static_assert(detail::holds<CounterStruct<S>>,
                  "hitbox::AtomicStats<S>: S must model hitbox::CounterStruct: an aggregate of std::uint64_t "
                  "members, every one named in its HITBOX_ADAPT_COUNTERS (or BOOST_HANA_ADAPT_STRUCT)");
    S out{};
    boost::hana::for_each(boost::hana::accessors<S>(), [&](auto accessor) {
        boost::hana::second(accessor)(out) =
            std::atomic_ref<std::uint64_t>(boost::hana::second(accessor)(cells_)).load(std::memory_order_relaxed);
    });
    return out;
}

template <class S>
void AtomicStats<S>::restore(const S& s) noexcept {
    static_assert(detail::holds<CounterStruct<S>>, "hitbox::AtomicStats<S>: S must model hitbox::CounterStruct");
    boost::hana::for_each(boost::hana::accessors<S>(), [&](auto accessor) {
        std::atomic_ref<std::uint64_t>(boost::hana::second(accessor)(cells_))
            .store(boost::hana::second(accessor)(s), std::memory_order_relaxed);
    });
}

namespace detail {

/// The accessor of one counter in a HITBOX_ADAPT_COUNTERS table: the member of the struct it is given.
template <auto Member>
struct CounterMember {
    template <class T>
    constexpr decltype(auto) operator()(T&& t) const noexcept {
        return (std::forward<T>(t).*Member);
    }
};

}  // namespace detail

}  // namespace hitbox

// HITBOX_ADAPT_COUNTERS's preprocessor loop: calls HITBOX_DETAIL_COUNTER_PAIR on each member, separated by
// commas (a __VA_OPT__ recursion, one member per rescan; 4^4 rescans, so up to 256 members).
#define HITBOX_DETAIL_PP_PARENS ()
#define HITBOX_DETAIL_PP_EXPAND(...) \
    HITBOX_DETAIL_PP_EXPAND3(HITBOX_DETAIL_PP_EXPAND3(HITBOX_DETAIL_PP_EXPAND3(HITBOX_DETAIL_PP_EXPAND3(__VA_ARGS__))))
#define HITBOX_DETAIL_PP_EXPAND3(...) \
    HITBOX_DETAIL_PP_EXPAND2(HITBOX_DETAIL_PP_EXPAND2(HITBOX_DETAIL_PP_EXPAND2(HITBOX_DETAIL_PP_EXPAND2(__VA_ARGS__))))
#define HITBOX_DETAIL_PP_EXPAND2(...) \
    HITBOX_DETAIL_PP_EXPAND1(HITBOX_DETAIL_PP_EXPAND1(HITBOX_DETAIL_PP_EXPAND1(HITBOX_DETAIL_PP_EXPAND1(__VA_ARGS__))))
#define HITBOX_DETAIL_PP_EXPAND1(...) \
    HITBOX_DETAIL_PP_EXPAND0(HITBOX_DETAIL_PP_EXPAND0(HITBOX_DETAIL_PP_EXPAND0(HITBOX_DETAIL_PP_EXPAND0(__VA_ARGS__))))
#define HITBOX_DETAIL_PP_EXPAND0(...) __VA_ARGS__
#define HITBOX_DETAIL_COUNTER_PAIRS(member, ...) \
    HITBOX_DETAIL_COUNTER_PAIR(member)           \
    __VA_OPT__(, HITBOX_DETAIL_COUNTER_PAIRS_AGAIN HITBOX_DETAIL_PP_PARENS(__VA_ARGS__))
#define HITBOX_DETAIL_COUNTER_PAIRS_AGAIN() HITBOX_DETAIL_COUNTER_PAIRS
#define HITBOX_DETAIL_COUNTER_PAIR(member) \
    ::boost::hana::make_pair(BOOST_HANA_STRING(#member), ::hitbox::detail::CounterMember<&Self::member>{})

/// Adapts the counter struct TYPE (every member a std::uint64_t, each one named) for hitbox::AtomicStats,
/// hitbox::for_each_counter and the Prometheus export; at global scope, after the struct. The same as
/// `BOOST_HANA_ADAPT_STRUCT(TYPE, member...)`, except that the member table is a template built only in the
/// translation units that walk it.
#define HITBOX_ADAPT_COUNTERS(TYPE, ...)                                                                         \
    namespace boost::hana {                                                                                      \
    template <>                                                                                                  \
    struct accessors_impl<TYPE> {                                                                                \
        template <class Self = TYPE>                                                                             \
        static constexpr auto apply() {                                                                          \
            return ::boost::hana::make_tuple(HITBOX_DETAIL_PP_EXPAND(HITBOX_DETAIL_COUNTER_PAIRS(__VA_ARGS__))); \
        }                                                                                                        \
    };                                                                                                           \
    }                                                                                                            \
    static_assert(true, "HITBOX_ADAPT_COUNTERS ends with a semicolon")
