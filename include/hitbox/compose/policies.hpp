#pragma once
/// \file
/// The read, write and refill policies of hitbox::Compose. A policy is a small value type: its type picks
/// the algorithm at compile time (no virtual call), its members tune it. DynamicRead, DynamicWrite and
/// DynamicRefill hold the choice as a value instead, for configuration read at run time: one Compose type
/// serves every mode, at the cost of one switch per call. See doc/policies.md.

#include <chrono>
#include <concepts>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace hitbox {

/// The algorithm a read policy selects.
enum class ReadMode : std::uint8_t { sequential, race, parallel };
/// The algorithm a write policy selects.
enum class WriteMode : std::uint8_t { sequential, optimistic_parallel, race };

/// What happens to the slower half of a Race once the other half has won.
enum class RaceLoser : std::uint8_t {
    offload,  ///< it runs to completion in the background (a loser not started yet still runs)
    drop,     ///< a loser that has not started never runs; one already running is waited for by nobody
};

/// Stable lower-case name ("offload", "drop").
constexpr std::string_view to_string(RaceLoser l) noexcept { return l == RaceLoser::offload ? "offload" : "drop"; }

namespace detail {

/// True when a policy's mode is a constant of its type (`static constexpr`: the static policies), false when
/// it is a data member (the Dynamic ones). Compose selects a fixed mode's algorithm with `if constexpr`, so a
/// static policy costs nothing at run time.
template <class P>
concept fixed_read_mode = requires {
    requires std::is_same_v<decltype(&P::mode), const ReadMode*>;
};
template <class P>
concept fixed_write_mode = requires {
    requires std::is_same_v<decltype(&P::mode), const WriteMode*>;
};
template <class P>
concept fixed_refill = requires {
    requires std::is_same_v<decltype(&P::enabled), const bool*>;
};

}  // namespace detail

/// Default read policy: L1, then L2 when L1 misses or fails. An L1 hit costs exactly the L1 call.
struct SequentialRead {
    static constexpr ReadMode mode = ReadMode::sequential;
};

/// Both tiers at once; the first hit wins. A miss or error waits for the other tier. The winning call
/// returns without waiting for the loser, which is offloaded (default) or dropped. Tier calls run on the
/// composition's Offload; if a call is still queued after `steal_after`, the caller runs it itself, so a
/// saturated executor degrades Race to Sequential instead of deadlocking. A call the Offload refused or
/// discarded runs on the caller at once; so `steal_after = microseconds::max()` (no limit) means "leave
/// queued calls to the workers", never a wait for a call nobody will make.
struct RaceRead {
    static constexpr ReadMode mode = ReadMode::race;
    RaceLoser loser = RaceLoser::offload;
    std::chrono::microseconds steal_after{1000};
};

/// Both tiers, waiting for both; a hit in both prefers the value with the longer remaining life (no
/// expiry counts as longest; a tie goes to L1). The caller runs the L1 call and, if no worker has picked
/// up the L2 call by then, the L2 call too.
struct ParallelRead {
    static constexpr ReadMode mode = ReadMode::parallel;
};

/// Write-through: L1, then L2. An L1 failure returns that error and does not write L2; an L2 failure
/// returns that error while L1 keeps the new value. Success means both tiers have it.
struct SequentialWrite {
    static constexpr WriteMode mode = WriteMode::sequential;
};

/// Default write policy: both tiers at once, waiting for both. Success when at least one tier took the
/// write; the other tier's failure is counted (ComposeStats) and listed by `store()`. Both failing is an
/// `unavailable` error naming each.
struct OptimisticParallelWrite {
    static constexpr WriteMode mode = WriteMode::optimistic_parallel;
};

/// Both tiers at once; returns on the first success, the loser offloaded (default) or dropped. Both
/// failing is an `unavailable` error naming each. `steal_after` as in RaceRead (max(): no limit).
struct RaceWrite {
    static constexpr WriteMode mode = WriteMode::race;
    RaceLoser loser = RaceLoser::offload;
    std::chrono::microseconds steal_after{1000};
};

/// Default refill policy: an L2 hit is written to L1 with the same created / stale / expire times, so L1
/// expires at the same absolute moment (the remaining TTL, not a fresh one) and a stale L2 hit is stale in
/// L1 too. `offloaded = false` (default) writes L1 on the caller before the read returns;
/// `offloaded = true` hands the write to the Offload (kind refill, deduplicated per composition and key)
/// and counts it as dropped when refused.
struct RefillAlways {
    static constexpr bool enabled = true;
    bool offloaded = false;
};

/// Never copy L2 hits into L1 (L1 is filled by writes only).
struct RefillNever {
    static constexpr bool enabled = false;
};

/// Run-time-selected read policy: the mode is a member, so one `Compose<..., DynamicRead>` serves every read
/// algorithm (hitbox::make_backend uses it). Each mode behaves exactly as its static policy (the same code
/// runs: Compose switches on `mode` once per call, then takes the static policy's path); `loser` and
/// `steal_after` as in RaceRead, used in `ReadMode::race` only. The defaults are SequentialRead's.
///
/// \code
/// hitbox::DynamicRead read{.mode = hitbox::ReadMode::race, .loser = hitbox::RaceLoser::drop};
/// auto tiers = hitbox::compose(std::move(l1), std::move(l2), offload).with_read(read);
/// \endcode
struct DynamicRead {
    ReadMode mode = ReadMode::sequential;
    RaceLoser loser = RaceLoser::offload;
    std::chrono::microseconds steal_after{1000};
};

/// Run-time-selected write policy: `mode` picks SequentialWrite's, OptimisticParallelWrite's (default) or
/// RaceWrite's algorithm at run time; `loser` and `steal_after` as in RaceWrite, used in `WriteMode::race`.
struct DynamicWrite {
    WriteMode mode = WriteMode::optimistic_parallel;
    RaceLoser loser = RaceLoser::offload;
    std::chrono::microseconds steal_after{1000};
};

/// Run-time-selected refill policy: `enabled` is RefillAlways (true, default, with `offloaded` as there) or
/// RefillNever (false).
struct DynamicRefill {
    bool enabled = true;
    bool offloaded = false;
};

/// A read policy: SequentialRead, RaceRead, ParallelRead (`static constexpr ReadMode mode`: the algorithm
/// is fixed by the type; race policies also carry `loser` and `steal_after`) or DynamicRead (`mode` a data
/// member, with `loser` and `steal_after`, since any call may race).
///
/// Laws: a policy whose `mode` is a data member behaves, call by call, as the static policy of that mode.
template <class P>
concept ReadPolicy = std::copy_constructible<P> && requires(const P& p) {
    { p.mode } -> std::convertible_to<ReadMode>;
} &&(detail::fixed_read_mode<P> || requires(const P& p) {
    { p.loser } -> std::convertible_to<RaceLoser>;
    { p.steal_after } -> std::convertible_to<std::chrono::microseconds>;
});

/// A write policy: SequentialWrite, OptimisticParallelWrite, RaceWrite or DynamicWrite (as for ReadPolicy).
template <class P>
concept WritePolicy = std::copy_constructible<P> && requires(const P& p) {
    { p.mode } -> std::convertible_to<WriteMode>;
} &&(detail::fixed_write_mode<P> || requires(const P& p) {
    { p.loser } -> std::convertible_to<RaceLoser>;
    { p.steal_after } -> std::convertible_to<std::chrono::microseconds>;
});

/// A refill policy: RefillAlways, RefillNever (`static constexpr bool enabled`) or DynamicRefill (`enabled`
/// a data member). A policy that may be enabled carries `bool offloaded`.
template <class P>
concept RefillPolicy = std::copy_constructible<P> && requires(const P& p) {
    { p.enabled } -> std::convertible_to<bool>;
};

/// The three policies as one value, for `Compose::with_policies` and reuse across compositions (Compose
/// checks each against its concept).
///
/// \code
/// hitbox::ComposePolicies<hitbox::RaceRead, hitbox::SequentialWrite> p{{.loser = hitbox::RaceLoser::drop}};
/// auto tiers = hitbox::compose(std::move(l1), std::move(l2), offload).with_policies(p);
/// \endcode
template <class Read = SequentialRead, class Write = OptimisticParallelWrite, class Refill = RefillAlways>
struct ComposePolicies {
    Read read{};
    Write write{};
    Refill refill{};
};

}  // namespace hitbox
