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
/// \code
/// struct DiskStats {
///     std::uint64_t reads = 0, writes = 0, fsyncs = 0;
/// };
/// BOOST_HANA_ADAPT_STRUCT(DiskStats, reads, writes, fsyncs);   // at global scope
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

#include <boost/hana/accessors.hpp>
#include <boost/hana/adapt_struct.hpp>
#include <boost/hana/first.hpp>
#include <boost/hana/for_each.hpp>
#include <boost/hana/second.hpp>
#include <boost/hana/string.hpp>

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
    static_assert(detail::holds<CounterStruct<S>>,
                  "hitbox::AtomicStats<S>: S must model hitbox::CounterStruct: an aggregate of std::uint64_t "
                  "members, every one named in its BOOST_HANA_ADAPT_STRUCT");
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
    S snapshot() const noexcept {
        S out{};
        boost::hana::for_each(boost::hana::accessors<S>(), [&](auto accessor) {
            boost::hana::second(accessor)(out) =
                std::atomic_ref<std::uint64_t>(boost::hana::second(accessor)(cells_)).load(std::memory_order_relaxed);
        });
        return out;
    }

    /// Sets every counter to the value in `s` (a moved-from owner's counters carried over).
    void restore(const S& s) noexcept {
        boost::hana::for_each(boost::hana::accessors<S>(), [&](auto accessor) {
            std::atomic_ref<std::uint64_t>(boost::hana::second(accessor)(cells_))
                .store(boost::hana::second(accessor)(s), std::memory_order_relaxed);
        });
    }

    /// Sets every counter to zero.
    void reset() noexcept { restore(S{}); }

private:
    std::atomic_ref<std::uint64_t> cell_(counter c) const noexcept { return std::atomic_ref<std::uint64_t>(cells_.*c); }

    // Only ever accessed through std::atomic_ref (so it is mutable: a const snapshot still reads atomically).
    alignas(std::atomic_ref<std::uint64_t>::required_alignment) mutable S cells_{};
};

}  // namespace hitbox
