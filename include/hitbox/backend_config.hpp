#pragma once
/// \file
/// Run-time configuration as plain data: hitbox::BackendConfig (tiers, composition policies, offload and
/// cache-front settings) and hitbox::TierConfig, filled in code, from `key = value` text
/// (parse_config) or from the environment (config_from_env), and checked by validate_config. Needs no
/// hiredis / zstd / zlib: the factory that turns a configuration into backends is hitbox/config.hpp.
///
/// \code
/// auto config = hitbox::parse_config(R"(
///     tiers = memory, redis
///     memory.max_entries = 10000
///     redis.url = redis://localhost:6379/
///     redis.value_format = json
///     redis.compressor = zstd
///     redis.compression_level = 3
///     read = race
/// )");
/// if (!config) std::cerr << config.error() << '\n';   // unknown keys and names list the valid ones
/// \endcode

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <hitbox/backend/redis/detail/url.hpp>
#include <hitbox/cache.hpp>
#include <hitbox/compress/builtin.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/type_list.hpp>
#include <hitbox/format/builtin.hpp>
#include <hitbox/offload/offload_manager.hpp>

namespace hitbox {

/// The most tiers make_backend folds into one composition (deeper stacks: hitbox::compose of AnyBackends
/// in code).
inline constexpr std::size_t max_config_tiers = 3;

/// One tier of a run-time configuration. `type` picks the tier ("memory" or "redis"); the options of the
/// other type must stay unset (validate_config says which one is misplaced). Defaults match the builders'.
struct TierConfig {
    /// The tier's label (unique in a configuration): "memory", "redis", "local", ...
    std::string name;
    /// "memory" or "redis"; empty: the name, when the name is one of those.
    std::string type;

    // ---- memory (MemoryBackend::builder) ----
    std::optional<std::uint64_t> max_entries;                   ///< bound by entry count (one bound is required)
    std::optional<std::uint64_t> max_bytes;                     ///< bound by weighed bytes
    std::optional<std::size_t> shards;                          ///< power of two 1..1024; default by CPU count
    std::optional<std::chrono::milliseconds> cleanup_interval;  ///< background expiry sweep; default none
    bool duration_histograms = false;  ///< both types: time each stage (`.duration_histograms()`, durations())

    // ---- redis (RedisBackend<>::builder) ----
    std::string mode = "single";                               ///< "single" or "cluster"
    std::vector<std::string> urls;                             ///< one URL (single) or the seed nodes (cluster)
    bool read_from_replicas = false;                           ///< cluster: GETs go to replicas (READONLY)
    std::optional<std::string> username;                       ///< ACL user; overrides the URL's
    std::optional<std::string> password;                       ///< overrides the URL's; never printed
    std::string key_format = "bitcode";                        ///< "bitcode" or "url"
    std::string value_format = "binary";                       ///< builtin_value_formats: binary, json, xml, raw
    std::string compressor = "passthrough";                    ///< builtin_compressors: passthrough (none), gzip, zstd
    std::optional<int> compression_level;                      ///< gzip 0..9 (default 6), zstd 1..22 (default 3)
    std::optional<std::size_t> max_decompressed;               ///< decompression limit; default 64 MiB
    std::string key_prefix;                                    ///< prepended to every stored key
    std::optional<std::chrono::milliseconds> connect_timeout;  ///< default 2 s
    std::optional<std::chrono::milliseconds> command_timeout;  ///< default 1 s
    std::optional<std::chrono::milliseconds> reconnect_backoff_initial;  ///< default 100 ms
    std::optional<std::chrono::milliseconds> reconnect_backoff_max;      ///< default 5 s
    std::optional<std::size_t> max_reply_bytes;                          ///< default 64 MiB

    /// The effective type: `type`, or the name when `type` is empty.
    std::string_view effective_type() const noexcept { return type.empty() ? std::string_view(name) : type; }
};

/// A whole run-time configuration: the tiers (fastest first), how they are composed, the offload's
/// settings and the cache front's default policy. One tier needs no composition: the factory returns it
/// as it is. Several are folded like hitbox::compose(): the policies below apply to the outer level, inner
/// levels use the defaults.
struct BackendConfig {
    std::vector<TierConfig> tiers;                ///< fastest first
    std::string label = "cache";                  ///< the composition's label (label paths "cache.memory")
    std::string read = "sequential";              ///< "sequential", "race" or "parallel"
    std::string write = "optimistic_parallel";    ///< "sequential", "optimistic_parallel" or "race"
    std::string refill = "always";                ///< "always" or "never"
    bool refill_offloaded = false;                ///< RefillAlways{.offloaded}
    std::string race_loser = "offload";           ///< "offload" or "drop" (race read / write)
    std::chrono::microseconds steal_after{1000};  ///< race read / write: when the caller runs a queued call
    OffloadConfig offload{};                      ///< for `OffloadManager offload{config.offload}`
    CachePolicy cache{};                          ///< for `CacheOptions{.policy = config.cache}`

    /// The tier named `name`, or nullptr.
    const TierConfig* find(std::string_view name) const noexcept {
        for (const auto& t : tiers)
            if (t.name == name) return &t;
        return nullptr;
    }
};

/// Names accepted by the configuration, each list in the order error messages give it.
namespace config_names {
/// Tier types (TierConfig::type).
inline constexpr std::string_view tier_types[] = {"memory", "redis"};
inline constexpr std::string_view modes[] = {"single", "cluster"};
inline constexpr std::string_view key_formats[] = {"bitcode", "url"};
/// The names of hitbox::builtin_value_formats.
inline constexpr auto value_formats = type_list_names(builtin_value_formats{});
/// The names of hitbox::builtin_compressors, and "none" for passthrough.
inline constexpr auto compressors = [] {
    constexpr auto names = type_list_names(builtin_compressors{});
    std::array<std::string_view, names.size() + 1> out{};
    std::size_t n = 0;
    for (auto name : names) {
        out[n++] = name;
        if (name == PassthroughCompressor::name) out[n++] = "none";
    }
    return out;
}();
inline constexpr std::string_view reads[] = {"sequential", "race", "parallel"};
inline constexpr std::string_view writes[] = {"sequential", "optimistic_parallel", "race"};
inline constexpr std::string_view refills[] = {"always", "never"};
inline constexpr std::string_view race_losers[] = {"offload", "drop"};
inline constexpr std::string_view stale_policies[] = {"return", "revalidate", "offload_revalidate"};
/// Keys of the whole configuration (parse_config); tier keys are written `<tier>.<option>`.
inline constexpr std::string_view global_keys[] = {"tiers",
                                                   "label",
                                                   "read",
                                                   "write",
                                                   "refill",
                                                   "refill_offloaded",
                                                   "race_loser",
                                                   "steal_after",
                                                   "offload.workers",
                                                   "offload.max_queue",
                                                   "offload.drain_timeout",
                                                   "cache.ttl",
                                                   "cache.stale",
                                                   "cache.stale_policy",
                                                   "cache.concurrency",
                                                   "cache.waiter_timeout",
                                                   "cache.retries",
                                                   "cache.negative_ttl",
                                                   "cache.negative_l1_only",
                                                   "cache.jitter",
                                                   "cache.fail_safe_max",
                                                   "cache.fail_safe_throttle",
                                                   "cache.soft_timeout",
                                                   "cache.hard_timeout",
                                                   "cache.lock_ttl",
                                                   "cache.lock_poll"};
/// Options of a tier (`<tier>.<option>`).
inline constexpr std::string_view tier_keys[] = {"type",
                                                 "max_entries",
                                                 "max_bytes",
                                                 "shards",
                                                 "cleanup_interval",
                                                 "duration_histograms",
                                                 "mode",
                                                 "url",
                                                 "urls",
                                                 "read_from_replicas",
                                                 "username",
                                                 "password",
                                                 "key_format",
                                                 "value_format",
                                                 "compressor",
                                                 "compression_level",
                                                 "max_decompressed",
                                                 "key_prefix",
                                                 "connect_timeout",
                                                 "command_timeout",
                                                 "reconnect_backoff_initial",
                                                 "reconnect_backoff_max",
                                                 "max_reply_bytes"};
}  // namespace config_names

namespace detail {

/// "a, b, c" from a list of names (an array of string_view).
template <class Names>
std::string config_list(const Names& names) {
    std::string out;
    for (std::string_view name : names) {
        if (!out.empty()) out += ", ";
        out += name;
    }
    return out;
}

template <class Names>
bool config_has(const Names& names, std::string_view name) {
    return std::find(std::begin(names), std::end(names), name) != std::end(names);
}

/// A config error for an unknown name: `unknown value_format "jsn" (tier redis); valid: binary, json, ...`.
template <class Names>
Unexpected config_unknown(std::string_view what, std::string_view name, std::string_view where, const Names& valid) {
    std::string msg = "unknown " + std::string(what) + " \"" + std::string(name) + "\"";
    if (!where.empty()) msg += " (" + std::string(where) + ")";
    msg += "; valid: " + config_list(valid);
    return fail(ErrorKind::config, std::move(msg));
}

inline std::string_view config_trim(std::string_view s) noexcept {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

inline std::vector<std::string> config_split_list(std::string_view s) {
    std::vector<std::string> out;
    while (true) {
        const auto comma = s.find(',');
        auto item = config_trim(s.substr(0, comma));
        if (!item.empty()) out.emplace_back(item);
        if (comma == std::string_view::npos) break;
        s.remove_prefix(comma + 1);
    }
    return out;
}

/// The value as printed in messages: never the value of a secret.
inline std::string config_shown(std::string_view key, std::string_view value) {
    const bool secret = key == "password" || key.ends_with(".password");
    return secret ? std::string("(hidden)") : "\"" + std::string(value) + "\"";
}

inline Result<std::uint64_t> config_unsigned(std::string_view key, std::string_view value) {
    std::uint64_t n = 0;
    const auto* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, n);
    if (value.empty() || ec != std::errc{} || ptr != end)
        return fail(ErrorKind::config,
                    std::string(key) + ": expected a non-negative integer, got " + config_shown(key, value));
    return n;
}

inline Result<int> config_int(std::string_view key, std::string_view value) {
    int n = 0;
    const auto* end = value.data() + value.size();
    auto [ptr, ec] = std::from_chars(value.data(), end, n);
    if (value.empty() || ec != std::errc{} || ptr != end)
        return fail(ErrorKind::config, std::string(key) + ": expected an integer, got " + config_shown(key, value));
    return n;
}

/// A byte size: a number with an optional unit (B, KiB, MiB, GiB, kB, MB, GB).
inline Result<std::uint64_t> config_bytes(std::string_view key, std::string_view value) {
    std::size_t digits = 0;
    while (digits < value.size() && std::isdigit(static_cast<unsigned char>(value[digits]))) ++digits;
    const auto unit = config_trim(value.substr(digits));
    static constexpr std::pair<std::string_view, std::uint64_t> units[] = {
        {"", 1},      {"B", 1},        {"KiB", 1ull << 10}, {"MiB", 1ull << 20}, {"GiB", 1ull << 30},
        {"kB", 1000}, {"MB", 1000000}, {"GB", 1000000000}};
    for (const auto& [name, scale] : units) {
        if (unit != name) continue;
        auto n = config_unsigned(key, value.substr(0, digits));
        if (!n) return n;
        if (*n > UINT64_MAX / scale) return fail(ErrorKind::config, std::string(key) + ": too large");
        return *n * scale;
    }
    return fail(ErrorKind::config, std::string(key) + ": unknown size unit in " + config_shown(key, value) +
                                       "; valid: B, KiB, MiB, GiB, kB, MB, GB (or none: bytes)");
}

/// A duration: a number with a unit (us, ms, s, m, h).
inline Result<std::chrono::microseconds> config_duration(std::string_view key, std::string_view value) {
    std::size_t digits = 0;
    while (digits < value.size() && std::isdigit(static_cast<unsigned char>(value[digits]))) ++digits;
    const auto unit = config_trim(value.substr(digits));
    static constexpr std::pair<std::string_view, std::int64_t> units[] = {
        {"us", 1}, {"ms", 1000}, {"s", 1000000}, {"m", 60000000}, {"h", 3600000000}};
    for (const auto& [name, scale] : units) {
        if (unit != name) continue;
        auto n = config_unsigned(key, value.substr(0, digits));
        if (!n)
            return fail(ErrorKind::config,
                        std::string(key) + ": expected a duration such as 250ms, got " + config_shown(key, value));
        if (*n > static_cast<std::uint64_t>(INT64_MAX / scale))
            return fail(ErrorKind::config, std::string(key) + ": too large");
        return std::chrono::microseconds(static_cast<std::int64_t>(*n) * scale);
    }
    return fail(ErrorKind::config, std::string(key) + ": expected a duration with a unit (us, ms, s, m, h), got " +
                                       config_shown(key, value));
}

inline Result<std::chrono::milliseconds> config_ms(std::string_view key, std::string_view value) {
    auto d = config_duration(key, value);
    if (!d) return fail(d.error());
    return std::chrono::ceil<std::chrono::milliseconds>(*d);
}

/// A fraction in [0, 1): "0.1" or "10%".
inline Result<double> config_fraction(std::string_view key, std::string_view value) {
    const bool percent = !value.empty() && value.back() == '%';
    const std::string_view text = config_trim(percent ? value.substr(0, value.size() - 1) : value);
    // from_chars: the same digits whatever the process locale (std::stod reads "0,1" under de_DE and
    // refuses "0.1"), and no hexadecimal.
    double x = -1;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x, std::chars_format::fixed);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size())
        return fail(ErrorKind::config,
                    std::string(key) + ": expected a fraction such as 0.1 or 10%, got " + config_shown(key, value));
    if (percent) x /= 100.0;
    if (!(x >= 0.0 && x < 1.0))
        return fail(ErrorKind::config,
                    std::string(key) + ": must be at least 0 and below 1 (100%), got " + config_shown(key, value));
    return x;
}

inline Result<bool> config_bool(std::string_view key, std::string_view value) {
    if (value == "true" || value == "yes" || value == "on" || value == "1") return true;
    if (value == "false" || value == "no" || value == "off" || value == "0") return false;
    return fail(ErrorKind::config, std::string(key) + ": expected true or false, got " + config_shown(key, value));
}

/// Sets one option of a tier; `key` is the full key ("redis.url") for messages.
inline Result<void> config_set_tier(TierConfig& t, std::string_view option, std::string_view key, std::string_view v) {
    auto assign = [](auto& field, auto parsed) -> Result<void> {
        if (!parsed) return fail(parsed.error());
        field = *parsed;
        return {};
    };
    auto text = [&](auto& field) -> Result<void> {
        field = std::string(v);
        return {};
    };
    if (option == "type") return text(t.type);
    if (option == "max_entries") return assign(t.max_entries, config_unsigned(key, v));
    if (option == "max_bytes") return assign(t.max_bytes, config_bytes(key, v));
    if (option == "shards") return assign(t.shards, config_unsigned(key, v));
    if (option == "cleanup_interval") return assign(t.cleanup_interval, config_ms(key, v));
    if (option == "duration_histograms") return assign(t.duration_histograms, config_bool(key, v));
    if (option == "mode") return text(t.mode);
    if (option == "url" || option == "urls") {
        t.urls = config_split_list(v);
        return {};
    }
    if (option == "read_from_replicas") return assign(t.read_from_replicas, config_bool(key, v));
    if (option == "username") return text(t.username);
    if (option == "password") return text(t.password);
    if (option == "key_format") return text(t.key_format);
    if (option == "value_format") return text(t.value_format);
    if (option == "compressor") return text(t.compressor);
    if (option == "compression_level") return assign(t.compression_level, config_int(key, v));
    if (option == "max_decompressed") return assign(t.max_decompressed, config_bytes(key, v));
    if (option == "key_prefix") return text(t.key_prefix);
    if (option == "connect_timeout") return assign(t.connect_timeout, config_ms(key, v));
    if (option == "command_timeout") return assign(t.command_timeout, config_ms(key, v));
    if (option == "reconnect_backoff_initial") return assign(t.reconnect_backoff_initial, config_ms(key, v));
    if (option == "reconnect_backoff_max") return assign(t.reconnect_backoff_max, config_ms(key, v));
    if (option == "max_reply_bytes") return assign(t.max_reply_bytes, config_bytes(key, v));
    return config_unknown("tier option", option, key, config_names::tier_keys);
}

/// Sets one key outside any tier.
inline Result<void> config_set_global(BackendConfig& c, std::string_view key, std::string_view v) {
    auto assign = [](auto& field, auto parsed) -> Result<void> {
        if (!parsed) return fail(parsed.error());
        field = *parsed;
        return {};
    };
    auto text = [&](std::string& field) -> Result<void> {
        field = std::string(v);
        return {};
    };
    auto assign_opt_ms = [&](std::optional<std::chrono::milliseconds>& field) -> Result<void> {
        auto d = config_ms(key, v);
        if (!d) return fail(d.error());
        field = *d;
        return {};
    };
    if (key == "label") return text(c.label);
    if (key == "read") return text(c.read);
    if (key == "write") return text(c.write);
    if (key == "refill") return text(c.refill);
    if (key == "refill_offloaded") return assign(c.refill_offloaded, config_bool(key, v));
    if (key == "race_loser") return text(c.race_loser);
    if (key == "steal_after") return assign(c.steal_after, config_duration(key, v));
    if (key == "offload.workers") return assign(c.offload.workers, config_unsigned(key, v));
    if (key == "offload.max_queue") return assign(c.offload.max_queue, config_unsigned(key, v));
    if (key == "offload.drain_timeout") return assign(c.offload.drain_timeout, config_ms(key, v));
    if (key == "cache.ttl") return assign_opt_ms(c.cache.ttl);
    if (key == "cache.stale") return assign_opt_ms(c.cache.stale);
    if (key == "cache.negative_ttl") return assign_opt_ms(c.cache.negative_ttl);
    if (key == "cache.waiter_timeout") return assign(c.cache.waiter_timeout, config_ms(key, v));
    if (key == "cache.concurrency") return assign(c.cache.concurrency, config_unsigned(key, v));
    if (key == "cache.retries") return assign(c.cache.retries, config_unsigned(key, v));
    if (key == "cache.negative_l1_only") return assign(c.cache.negative_l1_only, config_bool(key, v));
    if (key == "cache.jitter") return assign(c.cache.jitter, config_fraction(key, v));
    if (key == "cache.fail_safe_max") return assign_opt_ms(c.cache.fail_safe_max);
    if (key == "cache.fail_safe_throttle") return assign(c.cache.fail_safe_throttle, config_ms(key, v));
    if (key == "cache.soft_timeout") return assign(c.cache.soft_timeout, config_ms(key, v));
    if (key == "cache.hard_timeout") return assign(c.cache.hard_timeout, config_ms(key, v));
    if (key == "cache.lock_ttl") return assign_opt_ms(c.cache.lock_ttl);
    if (key == "cache.lock_poll") return assign(c.cache.lock_poll, config_ms(key, v));
    if (key == "cache.stale_policy") {
        if (v == "return") {
            c.cache.stale_policy = StalePolicy::Return;
            return {};
        }
        if (v == "revalidate") {
            c.cache.stale_policy = StalePolicy::Revalidate;
            return {};
        }
        if (v == "offload_revalidate") {
            c.cache.stale_policy = StalePolicy::OffloadRevalidate;
            return {};
        }
        return config_unknown("cache.stale_policy", v, {}, config_names::stale_policies);
    }
    return fail(ErrorKind::config,
                "unknown key \"" + std::string(key) + "\"; valid: " + config_list(config_names::global_keys) +
                    ", and <tier>.<option> with option one of: " + config_list(config_names::tier_keys));
}

/// Builds a configuration from (key, value) pairs in any order; `tiers` is required and gives the order.
/// `where(i)` names pair i in messages ("line 3", "HITBOX_REDIS_URL").
template <class Where>
Result<BackendConfig> config_from_pairs(const std::vector<std::pair<std::string, std::string>>& pairs, Where where) {
    BackendConfig c;
    // A key set twice is a mistake to report, not a value to pick (a second redis.url line, say).
    std::vector<std::size_t> by_key(pairs.size());
    for (std::size_t i = 0; i < by_key.size(); ++i) by_key[i] = i;
    // <tier>.url and <tier>.urls set the same field: one key for this check.
    auto same_as = [&](std::size_t i) {
        const std::string& k = pairs[i].first;
        return k.ends_with(".urls") ? k.substr(0, k.size() - 1) : k;
    };
    std::stable_sort(by_key.begin(), by_key.end(),
                     [&](std::size_t a, std::size_t b) { return same_as(a) < same_as(b); });
    for (std::size_t k = 1; k < by_key.size(); ++k)
        if (const std::size_t i = by_key[k], j = by_key[k - 1]; same_as(i) == same_as(j))
            return fail(ErrorKind::config, where(i) + ": key \"" + pairs[i].first + "\" is set twice (also " +
                                               where(j) +
                                               (pairs[j].first != pairs[i].first ? " as " + pairs[j].first : "") + ")");
    std::optional<std::size_t> tiers_at;
    for (std::size_t i = 0; i < pairs.size(); ++i)
        if (pairs[i].first == "tiers") tiers_at = i;
    if (!tiers_at)
        return fail(ErrorKind::config, "missing key \"tiers\" (the tiers, fastest first, e.g. tiers = memory, redis)");
    const auto names = config_split_list(pairs[*tiers_at].second);
    if (names.size() > max_config_tiers)  // before any per-tier work: a long list costs nothing to refuse
        return fail(ErrorKind::config, where(*tiers_at) + ": at most " + std::to_string(max_config_tiers) +
                                           " tiers can be composed, got " + std::to_string(names.size()));
    for (const auto& name : names) {
        if (c.find(name)) return fail(ErrorKind::config, "tiers: \"" + name + "\" is listed twice");
        TierConfig t;
        t.name = name;
        c.tiers.push_back(std::move(t));
    }
    if (c.tiers.empty()) return fail(ErrorKind::config, "tiers: list at least one tier");
    for (std::size_t i = 0; i < pairs.size(); ++i) {
        const auto& [key, value] = pairs[i];
        if (i == *tiers_at) continue;
        Result<void> done;
        const auto dot = key.find('.');
        const std::string_view section =
            dot == std::string::npos ? std::string_view() : std::string_view(key).substr(0, dot);
        if (dot != std::string::npos && section != "offload" && section != "cache") {
            auto it =
                std::find_if(c.tiers.begin(), c.tiers.end(), [&](const TierConfig& t) { return t.name == section; });
            if (it == c.tiers.end()) {
                std::string listed;
                for (const auto& t : c.tiers) listed += (listed.empty() ? "" : ", ") + t.name;
                done = fail(ErrorKind::config, "key \"" + key + "\" names tier \"" + std::string(section) +
                                                   "\", which is not in tiers (" + listed + ")");
            } else {
                done = config_set_tier(*it, std::string_view(key).substr(dot + 1), key, value);
            }
        } else {
            done = config_set_global(c, key, value);
        }
        if (!done) return fail(ErrorKind::config, where(i) + ": " + done.error().message());
    }
    return c;
}

}  // namespace detail

inline Result<void> validate_config(const BackendConfig& c);

namespace detail {
/// A config error as it may be printed: the input's control bytes (a NUL, an escape sequence, a line
/// break that would forge a log line) quoted in it are written `\xNN`.
inline Error config_printable(const Error& e) {
    const std::string& m = e.message();
    const auto control = [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == '\x7f'; };
    if (std::none_of(m.begin(), m.end(), control)) return e;
    std::string out;
    out.reserve(m.size() + 16);
    for (const char ch : m) {
        if (!control(ch)) {
            out += ch;
            continue;
        }
        constexpr char hex[] = "0123456789abcdef";
        const auto b = static_cast<unsigned char>(ch);
        out += "\\x";
        out += hex[b >> 4];
        out += hex[b & 0xf];
    }
    return Error(e.kind(), std::move(out), e.backend());
}

/// A parsed configuration, validated: parse_config and config_from_env answer only what make_backend and
/// an OffloadManager built from it take (everything is checked before anything is built).
inline Result<BackendConfig> config_checked(Result<BackendConfig> c) {
    if (!c) return fail(config_printable(c.error()));
    if (auto ok = validate_config(*c); !ok) return fail(ok.error());
    return c;
}
}  // namespace detail

/// Parses `key = value` lines: blank lines and lines starting with `#` are skipped; keys are
/// global_keys or `<tier>.<option>` (config_names::tier_keys), tiers are declared by `tiers = a, b`.
/// Sizes take B / KiB / MiB / GiB / kB / MB / GB, durations us / ms / s / m / h. A malformed line, an
/// unknown key or an unknown tier is a `config` error naming the line and listing what is valid. The
/// result is validated (validate_config): what it returns can be built.
inline Result<BackendConfig> parse_config(std::string_view text) {
    if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);  // a UTF-8 byte order mark, as editors write
    std::vector<std::pair<std::string, std::string>> pairs;
    std::vector<std::size_t> lines;
    std::size_t line_no = 0;
    while (!text.empty()) {
        ++line_no;
        const auto nl = text.find('\n');
        auto line = detail::config_trim(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (line.empty() || line.front() == '#') continue;
        const auto eq = line.find('=');
        if (eq == std::string_view::npos)
            return fail(ErrorKind::config, "line " + std::to_string(line_no) + ": expected key = value");
        auto key = detail::config_trim(line.substr(0, eq));
        if (key.empty()) return fail(ErrorKind::config, "line " + std::to_string(line_no) + ": empty key");
        pairs.emplace_back(std::string(key), std::string(detail::config_trim(line.substr(eq + 1))));
        lines.push_back(line_no);
    }
    return detail::config_checked(
        detail::config_from_pairs(pairs, [&](std::size_t i) { return "line " + std::to_string(lines[i]); }));
}

/// Reads a configuration from environment variables `<prefix>KEY`: `HITBOX_TIERS=memory,redis`,
/// `HITBOX_READ=race`, `HITBOX_OFFLOAD_WORKERS=8`, `HITBOX_CACHE_TTL=60s`, and tier options as
/// `<prefix><TIER>_<OPTION>` (`HITBOX_REDIS_URL`, `HITBOX_MEMORY_MAX_ENTRIES`; tier names upper-cased,
/// so name tiers in lower case). `environ` is the NULL-terminated environment (`::environ`). Variables
/// with the prefix that match no key are an error, like unknown keys in a file.
inline Result<BackendConfig> config_from_env(char** environ_vars, std::string_view prefix = "HITBOX_") {
    auto lower = [](std::string_view s) {
        std::string out(s);
        for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        return out;
    };
    std::vector<std::pair<std::string, std::string>> vars;  // lower-cased name without prefix, value
    for (char** e = environ_vars; e && *e; ++e) {
        std::string_view entry(*e);
        const auto eq = entry.find('=');
        if (eq == std::string_view::npos || !entry.starts_with(prefix)) continue;
        vars.emplace_back(lower(entry.substr(prefix.size(), eq - prefix.size())), std::string(entry.substr(eq + 1)));
    }
    std::vector<std::string> tiers;
    for (const auto& [name, value] : vars)
        if (name == "tiers") tiers = detail::config_split_list(value);
    std::vector<std::pair<std::string, std::string>> pairs;
    std::vector<std::string> names;
    for (const auto& [name, value] : vars) {
        std::string key = name;
        if (!detail::config_has(config_names::global_keys, key)) {
            // One underscore after a section becomes the dot: offload_workers -> offload.workers,
            // redis_url -> redis.url (the longest tier name that matches wins).
            std::string best;
            auto consider = [&, &name = name](const std::string& section) {  // clang 14: no implicit capture
                if (name.size() > section.size() + 1 && name.starts_with(section) && name[section.size()] == '_' &&
                    section.size() > best.size())
                    best = section;
            };
            consider("offload");
            consider("cache");
            for (const auto& t : tiers) consider(t);
            if (!best.empty()) key = best + "." + name.substr(best.size() + 1);
        }
        pairs.emplace_back(std::move(key), value);
        std::string upper = std::string(prefix) + name;
        for (auto& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        names.push_back(std::move(upper));
    }
    return detail::config_checked(detail::config_from_pairs(pairs, [&](std::size_t i) { return names[i]; }));
}

namespace detail {

/// What is wrong with a tier's compression_level / max_decompressed for its (known) compressor: both need
/// a compressor that takes a level (builtin_compressors), and the level must be in its range.
inline std::optional<std::string> compressor_config_problem(const TierConfig& t) {
    std::optional<std::string> problem;
    std::string leveled;  // "gzip or zstd"
    bool takes_level = false;
    find_type(builtin_compressors{}, [&](auto c) {
        using C = typename decltype(c)::type;
        if constexpr (compressor_leveled<C>) leveled += (leveled.empty() ? "" : " or ") + std::string(C::name);
        return false;
    });
    find_type(builtin_compressors{}, [&](auto c) {
        using C = typename decltype(c)::type;
        if (t.compressor != C::name) return false;
        if constexpr (compressor_leveled<C>) {
            takes_level = true;
            if (t.compression_level && (*t.compression_level < C::min_level || *t.compression_level > C::max_level))
                problem = "tier " + t.name + ": " + std::string(C::name) + " compression_level must be " +
                          std::to_string(C::min_level) + ".." + std::to_string(C::max_level) + ", got " +
                          std::to_string(*t.compression_level);
        }
        return true;
    });
    if (!takes_level && (t.compression_level || t.max_decompressed))
        return "tier " + t.name + ": compression_level and max_decompressed need compressor " + leveled;
    return problem;
}

inline Result<void> config_problem(const BackendConfig& c);

}  // namespace detail

/// Checks a configuration without building anything: known names (an unknown one lists the valid ones),
/// options that belong to the tier's type, unique tier names, ranges, at most max_config_tiers tiers. The
/// factory calls it first. Control bytes of the configuration quoted in a message are written `\xNN`.
inline Result<void> validate_config(const BackendConfig& c) {
    auto ok = detail::config_problem(c);
    if (!ok) return fail(detail::config_printable(ok.error()));
    return ok;
}

inline Result<void> detail::config_problem(const BackendConfig& c) {
    using namespace config_names;
    if (c.tiers.empty()) return fail(ErrorKind::config, "no tiers configured (list them fastest first)");
    if (c.tiers.size() > max_config_tiers)
        return fail(ErrorKind::config, "at most " + std::to_string(max_config_tiers) + " tiers can be composed, got " +
                                           std::to_string(c.tiers.size()));
    for (std::size_t i = 0; i < c.tiers.size(); ++i) {
        const TierConfig& t = c.tiers[i];
        if (t.name.empty()) return fail(ErrorKind::config, "tier " + std::to_string(i) + " has no name");
        const bool name_ok = std::all_of(t.name.begin(), t.name.end(), [](char ch) {
            return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
        });
        if (!name_ok)
            return fail(ErrorKind::config, "tier name \"" + t.name + "\": use letters, digits, '_' and '-' only");
        if (t.name == "cache" || t.name == "offload")
            return fail(ErrorKind::config,
                        "tier name \"" + t.name + "\" is reserved (cache.* and offload.* are settings)");
        for (std::size_t j = 0; j < i; ++j)
            if (c.tiers[j].name == t.name) return fail(ErrorKind::config, "tier name \"" + t.name + "\" is used twice");
        const std::string where = "tier " + t.name;
        const auto type = t.effective_type();
        if (!detail::config_has(tier_types, type)) {
            if (t.type.empty())
                return fail(ErrorKind::config, "tier \"" + t.name + "\" has no type (set " + t.name +
                                                   ".type); valid: " + detail::config_list(tier_types));
            return detail::config_unknown("tier type", type, where, tier_types);
        }
        auto misplaced = [&](std::string_view option, bool set) -> std::optional<Error> {
            if (!set) return std::nullopt;
            return Error(ErrorKind::config, "option " + std::string(option) + " does not apply to " +
                                                std::string(type) + " tier \"" + t.name + "\"");
        };
        const TierConfig d;
        std::optional<Error> wrong;
        if (type == "memory") {
            for (auto [option, set] : std::initializer_list<std::pair<std::string_view, bool>>{
                     {"mode", t.mode != d.mode},
                     {"url/urls", !t.urls.empty()},
                     {"read_from_replicas", t.read_from_replicas},
                     {"username", t.username.has_value()},
                     {"password", t.password.has_value()},
                     {"key_format", t.key_format != d.key_format},
                     {"value_format", t.value_format != d.value_format},
                     {"compressor", t.compressor != d.compressor},
                     {"compression_level", t.compression_level.has_value()},
                     {"max_decompressed", t.max_decompressed.has_value()},
                     {"key_prefix", !t.key_prefix.empty()},
                     {"connect_timeout", t.connect_timeout.has_value()},
                     {"command_timeout", t.command_timeout.has_value()},
                     {"reconnect_backoff_initial", t.reconnect_backoff_initial.has_value()},
                     {"reconnect_backoff_max", t.reconnect_backoff_max.has_value()},
                     {"max_reply_bytes", t.max_reply_bytes.has_value()}})
                if (!wrong) wrong = misplaced(option, set);
            if (wrong) return fail(*wrong);
            if (!t.max_entries && !t.max_bytes)
                return fail(ErrorKind::config,
                            "memory tier \"" + t.name + "\" needs a bound: max_entries or max_bytes");
            // The builder's own rules, so that what validates builds.
            if (t.shards) {
                const std::uint64_t n = *t.shards;
                if (n == 0 || n > 1024 || (n & (n - 1)) != 0)
                    return fail(
                        ErrorKind::config,
                        "tier " + t.name + ": shards must be a power of two from 1 to 1024, got " + std::to_string(n));
                const bool entries = t.max_entries.has_value();
                const std::uint64_t bound = entries ? *t.max_entries : *t.max_bytes;
                if (n > bound)
                    return fail(ErrorKind::config, "tier " + t.name + ": shards (" + std::to_string(n) + ") exceeds " +
                                                       (entries ? "max_entries" : "max_bytes") + " (" +
                                                       std::to_string(bound) + ")");
            }
            if (t.cleanup_interval && t.cleanup_interval->count() <= 0)
                return fail(ErrorKind::config, "tier " + t.name + ": cleanup_interval must be positive");
        } else {
            for (auto [option, set] : std::initializer_list<std::pair<std::string_view, bool>>{
                     {"max_entries", t.max_entries.has_value()},
                     {"max_bytes", t.max_bytes.has_value()},
                     {"shards", t.shards.has_value()},
                     {"cleanup_interval", t.cleanup_interval.has_value()}})
                if (!wrong) wrong = misplaced(option, set);
            if (wrong) return fail(*wrong);
            if (!detail::config_has(modes, t.mode)) return detail::config_unknown("mode", t.mode, where, modes);
            if (!detail::config_has(key_formats, t.key_format))
                return detail::config_unknown("key_format", t.key_format, where, key_formats);
            if (!detail::config_has(value_formats, t.value_format))
                return detail::config_unknown("value_format", t.value_format, where, value_formats);
            if (!detail::config_has(compressors, t.compressor))
                return detail::config_unknown("compressor", t.compressor, where, compressors);
            if (t.urls.empty())
                return fail(ErrorKind::config,
                            "redis tier \"" + t.name + "\" needs a url (" + t.name + ".url = redis://host:6379/)");
            if (t.mode == "single" && t.read_from_replicas)
                return fail(ErrorKind::config, "tier " + t.name + ": read_from_replicas needs mode cluster");
            if (t.mode == "single" && t.urls.size() != 1)
                return fail(ErrorKind::config, "redis tier \"" + t.name + "\" in single mode takes one url, got " +
                                                   std::to_string(t.urls.size()));
            // The URLs' form (whether this build has TLS for rediss:// is make_backend's question).
            for (const auto& url : t.urls)
                if (auto ep = detail::parse_redis_url_as(url, true); !ep)
                    return fail(ErrorKind::config, "tier " + t.name + ": " + ep.error().message());
            if (auto problem = detail::compressor_config_problem(t)) return fail(ErrorKind::config, *problem);
            if (t.max_decompressed && *t.max_decompressed == 0)
                return fail(ErrorKind::config, "tier " + t.name + ": max_decompressed must be positive");
        }
    }
    if (!detail::config_has(reads, c.read)) return detail::config_unknown("read policy", c.read, {}, reads);
    if (!detail::config_has(writes, c.write)) return detail::config_unknown("write policy", c.write, {}, writes);
    if (!detail::config_has(refills, c.refill)) return detail::config_unknown("refill policy", c.refill, {}, refills);
    if (!detail::config_has(race_losers, c.race_loser))
        return detail::config_unknown("race_loser", c.race_loser, {}, race_losers);
    if (c.steal_after.count() < 0) return fail(ErrorKind::config, "steal_after must not be negative");
    if (c.refill == "never" && c.refill_offloaded)
        return fail(ErrorKind::config, "refill_offloaded needs refill = always");
    if (auto problem = detail::offload_config_problem(c.offload)) return fail(ErrorKind::config, *problem);
    if (auto problem = detail::policy_problem(c.cache)) return fail(ErrorKind::config, *problem);
    if (c.cache.lock_ttl &&
        std::none_of(c.tiers.begin(), c.tiers.end(), [](const TierConfig& t) { return t.effective_type() == "redis"; }))
        return fail(ErrorKind::config,
                    "cache.lock_ttl needs a redis tier: the stampede lock across instances lives in Redis");
    return {};
}

}  // namespace hitbox
