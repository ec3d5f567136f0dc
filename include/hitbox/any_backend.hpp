#pragma once
/// \file
/// hitbox::AnyBackend: opt-in type erasure for backends chosen at run time (see hitbox/config.hpp), and
/// hitbox::AnyValue, the representation an AnyBackend hands the tier it wraps.
///
/// Design. A virtual function cannot be a template, so an erased backend cannot forward `get<T>` for any T
/// to the typed backend it holds. AnyBackend therefore erases the *value*: its tier stores
/// `CacheValue<AnyValue>`, where an AnyValue is a shared, immutable payload in one of two forms:
///
/// - **object**: a `T` the caller wrote (in-process tiers keep it as it is: no serialization), or
/// - **bytes**: a payload in one of hitbox's value formats (builtin_value_formats), as a byte tier such as
///   Redis returns it; it is decoded on the first typed read and the decoded object is kept in the shared
///   payload, so an entry refilled into a memory tier is decoded once, not on every hit.
///
/// `get<T>` / `set<T>` stay typed for the caller: set wraps the value, get unwraps it and checks the type
/// (`type_mismatch` when an object of another type is stored; `decode` when stored bytes are not a T).
/// A byte tier encodes an object with its own value format when it writes it; that needs T to be
/// serializable by that format (a type that is not is an `encode` error at run time, not a compile error,
/// so a memory-only AnyBackend can hold any copyable type).
///
/// What an AnyBackend can wrap: a tier that stores CacheValue<AnyValue> natively (MemoryBackend, another
/// AnyBackend, a Compose whose tiers are AnyBackends, any Backend that stores values by type), or a byte
/// tier with the raw layer (`read(key)`, `write(key, envelope, ttl)`, `codec()`: ByteBackend, so
/// RedisBackend) whose value format is a built-in one (builtin_value_formats). A static Compose with a
/// RedisBackend tier inside cannot be wrapped as a whole: wrap each tier
/// (`compose(AnyBackend(memory), AnyBackend(redis), offload)`).
///
/// Cost: one virtual call and one shared_ptr copy per operation beside the static backend
/// (`BM_AnyBackendGetHit` against `BM_MemoryGetHit` in benchmark/bench_any.cpp).

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <hitbox/backend/memory/weigher.hpp>
#include <hitbox/codec/entry_codec.hpp>
#include <hitbox/compose/compose.hpp>
#include <hitbox/compose/lookup.hpp>
#include <hitbox/compose/tier_metrics.hpp>
#include <hitbox/compose/visit.hpp>
#include <hitbox/core/clock.hpp>
#include <hitbox/core/concepts.hpp>
#include <hitbox/core/detail/type_name.hpp>
#include <hitbox/core/durations.hpp>
#include <hitbox/core/error.hpp>
#include <hitbox/core/key.hpp>
#include <hitbox/core/type_list.hpp>
#include <hitbox/core/value.hpp>
#include <hitbox/format/builtin.hpp>

namespace hitbox {

namespace detail {

/// What AnyValue knows about a type T without being a template: its identity, its size, and how to
/// encode / decode it in each hitbox value format. One constant table per T.
struct AnyTypeOps {
    const std::type_info* type;
    std::size_t size;
    std::size_t (*heap_bytes)(const void* object);
    /// `format` is the value format object of id `format_id` (its options), or nullptr for its defaults.
    Result<std::string> (*encode)(const void* object, std::uint8_t format_id, const void* format);
    Result<std::shared_ptr<const void>> (*decode)(std::string_view bytes, std::uint8_t format_id, const void* format);
};

/// Names of the value formats an AnyValue can be stored in by a byte tier.
inline std::string_view any_format_name(std::uint8_t id) noexcept { return builtin_format_name(id); }

/// True when F is one of the value formats AnyValue encodes and decodes (hitbox::builtin_value_formats).
template <class F>
inline constexpr bool any_supported_format = type_list_contains<F>(builtin_value_formats{});

inline Unexpected any_unsupported(ErrorKind kind, std::string_view format, const std::type_info& t) {
    return fail(kind, std::string(format) + " format cannot " + (kind == ErrorKind::encode ? "encode " : "decode ") +
                          type_name(t) + " (not serializable by it)");
}

inline Unexpected any_unknown_format(ErrorKind kind, std::uint8_t id) {
    return fail(kind, "AnyValue: value format id " + std::to_string(id) + " is not one of " + builtin_format_list());
}

/// The format object `format` points at (a tier's, with its options), or `defaults` when it is null.
template <class F>
const F& any_format_or(const void* format, const F& defaults) noexcept {
    return format != nullptr ? *static_cast<const F*>(format) : defaults;
}

template <class F, class T>
Result<std::string> any_encode_with(const void* object, const void* format) {
    if constexpr (format_encodes<F, T>()) {
        const F defaults{};
        return any_format_or(format, defaults).encode(*static_cast<const T*>(object));
    } else {
        (void)object;
        (void)format;
        return any_unsupported(ErrorKind::encode, F::name, typeid(T));
    }
}

template <class F, class T>
Result<std::shared_ptr<const void>> any_decode_with(std::string_view bytes, const void* format) {
    if constexpr (format_decodes<F, T>()) {
        const F defaults{};
        auto value = any_format_or(format, defaults).template decode<T>(bytes);
        if (!value) return fail(value.error());
        return std::shared_ptr<const void>(std::make_shared<const T>(std::move(*value)));
    } else {
        (void)bytes;
        (void)format;
        return any_unsupported(ErrorKind::decode, F::name, typeid(T));
    }
}

template <class T>
Result<std::string> any_encode(const void* object, std::uint8_t format_id, const void* format) {
    Result<std::string> out = any_unknown_format(ErrorKind::encode, format_id);
    find_type(builtin_value_formats{}, [&](auto f) {
        using F = typename decltype(f)::type;
        if (F::id != format_id) return false;
        out = any_encode_with<F, T>(object, format);
        return true;
    });
    return out;
}

template <class T>
Result<std::shared_ptr<const void>> any_decode(std::string_view bytes, std::uint8_t format_id, const void* format) {
    Result<std::shared_ptr<const void>> out = any_unknown_format(ErrorKind::decode, format_id);
    find_type(builtin_value_formats{}, [&](auto f) {
        using F = typename decltype(f)::type;
        if (F::id != format_id) return false;
        out = any_decode_with<F, T>(bytes, format);
        return true;
    });
    return out;
}

template <class T>
std::size_t any_heap_bytes(const void* object) {
    return heap_bytes(*static_cast<const T*>(object));
}

/// The operations table of T.
template <class T>
inline constexpr AnyTypeOps any_type_ops{&typeid(T), sizeof(T), &any_heap_bytes<T>, &any_encode<T>, &any_decode<T>};

inline bool any_same_type(const AnyTypeOps* ops, const AnyTypeOps& want) noexcept {
    return ops == &want || *ops->type == *want.type;
}

/// The shared payload of an AnyValue: the type's ops and a pointer to the object (published once: ops
/// last, with release; never changed after), and the bytes' format (0 in object form). Small, so that a
/// hit reads the control block, these fields and (in object form) the object from one or two cache lines.
struct AnyPayload {
    std::atomic<const AnyTypeOps*> ops{nullptr};
    const void* object = nullptr;  // inside this payload (object form) or owned by AnyBytesPayload::decoded
    std::uint8_t format_id = 0;    // 0: object form; else the value format of AnyBytesPayload::bytes
};

/// Object form: the T lives inside the payload (one allocation with the shared_ptr's control block).
template <class T>
struct AnyObjectPayload final : AnyPayload {
    explicit AnyObjectPayload(T v) : value(std::move(v)) {
        object = &value;
        ops.store(&any_type_ops<T>, std::memory_order_relaxed);  // published by the shared_ptr hand-off
    }
    const T value;
};

/// Bytes form: an encoded payload, and the object decoded from it by the first typed read; a decode that
/// fails is reported to `on_decode_failure` (the tier the bytes came from counts it), if set.
struct AnyBytesPayload final : AnyPayload {
    AnyBytesPayload(std::uint8_t format, std::string b, std::function<void(const Error&)> on_failure,
                    std::shared_ptr<const void> format_object)
        : bytes(std::move(b)), on_decode_failure(std::move(on_failure)), format(std::move(format_object)) {
        format_id = format;
    }
    const std::string bytes;
    const std::function<void(const Error&)> on_decode_failure;
    /// The value format object the bytes are read with (the tier's, with its limits), or nullptr: defaults.
    const std::shared_ptr<const void> format;
    std::shared_ptr<const void> decoded;
    /// The same bytes decoded for other types than the first reader's, as a static byte tier would for
    /// each reader (any_decode_mutex): rare, and as many as types read.
    std::vector<std::pair<const AnyTypeOps*, std::shared_ptr<const void>>> other_types;
};

/// Serializes first decodes of bytes payloads (rare: once per entry read from a byte tier); striped by
/// payload address so unrelated entries rarely share a lock.
inline std::mutex& any_decode_mutex(const void* payload) noexcept {
    static std::mutex stripes[16];
    return stripes[(reinterpret_cast<std::uintptr_t>(payload) >> 6) % 16];
}

}  // namespace detail

/// The value of an AnyBackend's tier: a shared, immutable payload holding either an object of some type
/// or its encoded bytes in one of hitbox's value formats (see the file comment). Copies share the payload.
/// Users rarely see it: `AnyBackend::get<T>` / `set<T>` convert.
class AnyValue {
public:
    /// An empty value (no payload).
    AnyValue() = default;

    /// Object form: holds a copy of `value`.
    template <class T>
    static AnyValue of(T value) {
        static_assert(!std::is_same_v<std::decay_t<T>, AnyValue>, "hitbox::AnyValue::of: already an AnyValue");
        return AnyValue(std::make_shared<detail::AnyObjectPayload<T>>(std::move(value)));
    }

    /// Bytes form: a payload encoded in the value format `format_id` (decoded on the first typed read).
    /// `on_decode_failure`, if set, is told of each typed read whose decode fails (a byte tier passes its
    /// error counter, so that such an entry counts as a decode error of the tier it came from). `format`,
    /// if set, is the format object of that id to decode with (a tier's, with its limits: `BinaryFormat{
    /// .max_nesting = 8}`); the format's defaults otherwise.
    static AnyValue encoded(std::uint8_t format_id, std::string bytes,
                            std::function<void(const Error&)> on_decode_failure = {},
                            std::shared_ptr<const void> format = {}) {
        return AnyValue(std::make_shared<detail::AnyBytesPayload>(format_id, std::move(bytes),
                                                                  std::move(on_decode_failure), std::move(format)));
    }

    /// True when there is a payload.
    explicit operator bool() const noexcept { return payload_ != nullptr; }

    /// The type of the object held (decoded), or nullptr while only bytes are held.
    const std::type_info* type() const noexcept {
        if (!payload_) return nullptr;
        const auto* ops = payload_->ops.load(std::memory_order_acquire);
        return ops ? ops->type : nullptr;
    }

    /// The value format of the bytes held, or nullopt in object form.
    std::optional<std::uint8_t> format_id() const noexcept {
        if (!payload_ || payload_->format_id == 0) return std::nullopt;
        return payload_->format_id;
    }

    /// The object as a T: decodes the bytes on first use (once; later reads share the object). A pointer
    /// valid while this AnyValue (or a copy) lives. `type_mismatch` when the object is another type,
    /// `decode` when the bytes are not a T in their format.
    template <class T>
    Result<const T*> get() const {
        const auto& want = detail::any_type_ops<T>;
        if (!payload_) return fail(ErrorKind::decode, "AnyValue: empty");
        const detail::AnyTypeOps* ops = payload_->ops.load(std::memory_order_acquire);
        if (ops == nullptr) {  // bytes form, not decoded yet
            auto& bytes = static_cast<detail::AnyBytesPayload&>(*payload_);
            std::lock_guard lock(detail::any_decode_mutex(&bytes));
            ops = bytes.ops.load(std::memory_order_relaxed);
            if (ops == nullptr) {
                auto object = want.decode(bytes.bytes, bytes.format_id, bytes.format.get());
                if (!object) {
                    if (bytes.on_decode_failure) bytes.on_decode_failure(object.error());
                    return fail(object.error());
                }
                bytes.decoded = std::move(*object);
                bytes.object = bytes.decoded.get();
                bytes.ops.store(&want, std::memory_order_release);
                return static_cast<const T*>(bytes.object);
            }
        }
        if (!detail::any_same_type(ops, want)) {
            // Bytes carry no type: another reader's type decodes them for itself, as from a static tier.
            if (payload_->format_id != 0) return decode_as_<T>(static_cast<detail::AnyBytesPayload&>(*payload_));
            return fail(ErrorKind::type_mismatch,
                        "entry holds " + detail::type_name(*ops->type) + ", read as " + detail::type_name(typeid(T)));
        }
        return static_cast<const T*>(payload_->object);
    }

    /// The payload encoded in the value format `format_id`: the bytes held when they are in that format,
    /// otherwise the object encoded (with `format`, the format object of that id, if set; its defaults
    /// otherwise). Bytes of another format that were never decoded cannot be re-encoded (an `encode`
    /// error): the type is unknown until someone reads them.
    Result<std::string> encode(std::uint8_t format_id, const void* format = nullptr) const {
        if (!payload_) return fail(ErrorKind::encode, "AnyValue: empty");
        if (payload_->format_id != 0 && payload_->format_id == format_id)
            return static_cast<const detail::AnyBytesPayload&>(*payload_).bytes;
        const detail::AnyTypeOps* ops = payload_->ops.load(std::memory_order_acquire);
        if (ops == nullptr)
            return fail(ErrorKind::encode,
                        "AnyValue: bytes in " + std::string(detail::any_format_name(payload_->format_id)) +
                            " format cannot be re-encoded as " + std::string(detail::any_format_name(format_id)) +
                            " before they are read as a type");
        return ops->encode(payload_->object, format_id, format);
    }

    /// Heap memory the payload owns (what a memory tier's DefaultWeigher counts for it).
    std::size_t heap_bytes() const noexcept {
        if (!payload_) return 0;
        std::size_t n = 16 + sizeof(detail::AnyPayload);  // control block and payload header
        if (payload_->format_id != 0) {
            n += sizeof(detail::AnyBytesPayload) - sizeof(detail::AnyPayload) +
                 hitbox::heap_bytes(static_cast<const detail::AnyBytesPayload&>(*payload_).bytes);
        }
        if (const auto* ops = payload_->ops.load(std::memory_order_acquire))
            n += ops->size + ops->heap_bytes(payload_->object);
        return n;
    }

    /// Whether both share one payload.
    friend bool operator==(const AnyValue& a, const AnyValue& b) noexcept { return a.payload_ == b.payload_; }

private:
    explicit AnyValue(std::shared_ptr<detail::AnyPayload> p) : payload_(std::move(p)) {}

    /// The bytes decoded as a T that is not the first reader's type (kept beside the first decode).
    template <class T>
    static Result<const T*> decode_as_(detail::AnyBytesPayload& bytes) {
        const auto& want = detail::any_type_ops<T>;
        std::lock_guard lock(detail::any_decode_mutex(&bytes));
        for (const auto& [ops, object] : bytes.other_types)
            if (detail::any_same_type(ops, want)) return static_cast<const T*>(object.get());
        auto object = want.decode(bytes.bytes, bytes.format_id, bytes.format.get());
        if (!object) {
            if (bytes.on_decode_failure) bytes.on_decode_failure(object.error());
            return fail(object.error());
        }
        const T* out = static_cast<const T*>(object->get());
        bytes.other_types.emplace_back(&want, std::move(*object));
        return out;
    }

    std::shared_ptr<detail::AnyPayload> payload_;
};

/// The heap bytes of an AnyValue, found by hitbox::heap_bytes through argument-dependent lookup.
inline std::size_t hitbox_heap_bytes(const AnyValue& v) noexcept { return v.heap_bytes(); }

namespace detail {

/// A byte tier: stores envelopes through a raw layer (RedisBackend).
template <class B>
concept EnvelopeTier = requires(B& b, const B& cb, const CacheKey& key, std::string_view bytes,
                                std::optional<std::chrono::milliseconds> ttl) {
    typename B::value_format;
    typename B::compressor_type;
    { b.read(key) } -> std::same_as<Result<std::optional<std::string>>>;
    { b.write(key, bytes, ttl) } -> std::same_as<Result<void>>;
    { cb.codec().compressor() } -> std::convertible_to<const typename B::compressor_type&>;
};

/// The erased interface: the Backend operations on CacheValue<AnyValue>.
class AnyBackendConcept {
public:
    virtual ~AnyBackendConcept() = default;
    virtual Result<std::optional<CacheValue<AnyValue>>> get(const CacheKey& key) = 0;
    virtual Result<Lookup<AnyValue>> lookup(const CacheKey& key) = 0;
    virtual Result<void> set(const CacheKey& key, const CacheValue<AnyValue>& value) = 0;
    virtual Result<StoreReport> store(const CacheKey& key, const CacheValue<AnyValue>& value) = 0;
    virtual Result<bool> remove(const CacheKey& key) = 0;
    virtual std::string_view label() const noexcept = 0;
    virtual const std::type_info& target_type() const noexcept = 0;
    virtual void* target() noexcept = 0;
    virtual std::vector<std::string> tier_paths() const = 0;
    virtual void write_metrics(PrometheusWriter& out, std::string_view prefix) const = 0;
    /// The stampede lock across instances (LockingBackend) of the wrapped tier; a `config` error when it
    /// holds none (only a Redis tier, or a composition with one, does).
    virtual Result<bool> try_lock(const CacheKey& key, std::string_view token, std::chrono::milliseconds ttl) = 0;
    virtual Result<bool> unlock(const CacheKey& key, std::string_view token) = 0;
};

/// The answer of an erased tier's lock calls when the tier holds no lock.
inline Error no_lock_error(std::string_view label) {
    return Error(ErrorKind::config,
                 "the tier holds no lock across instances (a Redis tier, or a composition with one, does)",
                 std::string(label));
}

/// Forwards a lock call to `tier` when it is a LockingBackend, else answers no_lock_error.
template <class Tier>
Result<bool> any_try_lock(Tier& tier, const CacheKey& key, std::string_view token, std::chrono::milliseconds ttl) {
    if constexpr (LockingBackend<Tier>)
        return tier.try_lock(key, token, ttl);
    else
        return fail(no_lock_error(tier.label()));
}
template <class Tier>
Result<bool> any_unlock(Tier& tier, const CacheKey& key, std::string_view token) {
    if constexpr (LockingBackend<Tier>)
        return tier.unlock(key, token);
    else
        return fail(no_lock_error(tier.label()));
}

/// Appends the label paths of `tier`'s leaf tiers under `prefix` (visit_tiers: a tiered backend's leaves
/// through its levels, an erased backend's own list, or the tier's label).
template <class T>
void any_leaf_paths(const T& tier, std::string_view prefix, std::vector<std::string>& out) {
    auto leaf = [&](std::string_view path, const auto& level) {
        if constexpr (!TieredBackend<std::remove_cvref_t<decltype(level)>>) out.emplace_back(path);
    };
    visit_tiers(tier, prefix, leaf);
}

/// A compressor chosen at run time: the id and name it writes into envelopes and its two functions.
/// Copies share the compressor object.
class AnyCompressor {
public:
    /// Wraps a Compressor policy object.
    template <class C>
    static AnyCompressor of(C c) {
        AnyCompressor out;
        out.id_ = C::id;
        out.name_ = C::name;
        out.self_ = std::make_shared<const C>(std::move(c));
        out.compress_ = [](const void* self, std::string_view in) { return static_cast<const C*>(self)->compress(in); };
        out.decompress_ = [](const void* self, std::string_view in) {
            return static_cast<const C*>(self)->decompress(in);
        };
        return out;
    }

    std::uint8_t id() const noexcept { return id_; }
    std::string_view name() const noexcept { return name_; }
    Result<std::string> compress(std::string_view in) const { return compress_(self_.get(), in); }
    Result<std::string> decompress(std::string_view in) const { return decompress_(self_.get(), in); }

private:
    std::uint8_t id_ = 0;
    std::string_view name_;
    std::shared_ptr<const void> self_;
    Result<std::string> (*compress_)(const void*, std::string_view) = nullptr;
    Result<std::string> (*decompress_)(const void*, std::string_view) = nullptr;
};

/// A byte tier's side of the erasure: envelopes through read / write, the payload in a hitbox value format
/// (the tier's own by default) compressed by a compressor (the tier's own by default). The tier's codec
/// only supplies the stored key: a RedisBackend used here does not need the value format and compressor
/// in its type, which keeps the factory's instantiations few.
template <class B>
class AnyEnvelopeModel final : public AnyBackendConcept {
public:
    explicit AnyEnvelopeModel(B b)
        : b_(std::move(b)),
          format_id_(B::value_format::id),
          format_(std::make_shared<const typename B::value_format>(b_.codec().value_format_policy())),
          compressor_(AnyCompressor::of(b_.codec().compressor())) {}
    AnyEnvelopeModel(B b, std::uint8_t format_id, AnyCompressor compressor)
        : b_(std::move(b)), format_id_(format_id), compressor_(std::move(compressor)) {}

    Result<std::optional<CacheValue<AnyValue>>> get(const CacheKey& key) override {
        auto unpack = [this](std::string_view packed) { return compressor_.decompress(packed); };
        Result<std::optional<OpenedEntry>> opened = std::optional<OpenedEntry>{};
        std::function<void(const Error&)> on_decode_failure;
        if constexpr (requires {
                          b_.read_payload(key, policies(), unpack);
                          b_.error_counter();
                      }) {
            // The tier opens and decompresses, and counts as its own get<T> would (a miss, a hit, a decode
            // or compression error); a payload that fails its first typed read later is counted there too.
            opened = b_.read_payload(key, policies(), unpack);
            on_decode_failure = b_.error_counter();
        } else {
            // A tier with only the raw layer (read / write): opened here; its counters see bytes found as a hit.
            auto raw = b_.read(key);
            if (!raw) return fail(raw.error());
            if (*raw) {
                opened = open_payload(**raw, policies(), SystemClock::now(), unpack);
                if (!opened) return fail(opened.error().in(label()));
            }
        }
        if (!opened) return fail(opened.error());
        if (!*opened) return std::optional<CacheValue<AnyValue>>{};
        const auto& h = (*opened)->header;
        return std::optional<CacheValue<AnyValue>>(
            std::in_place,
            AnyValue::encoded(format_id_, std::move((*opened)->payload), std::move(on_decode_failure), format_),
            h.expire, h.stale, h.created, h.retain);
    }

    Result<Lookup<AnyValue>> lookup(const CacheKey& key) override {
        auto got = get(key);
        if (!got) return fail(got.error());
        Lookup<AnyValue> out;
        out.value = std::move(*got);
        if (out.value) out.source = std::string(label());
        return out;
    }

    Result<void> set(const CacheKey& key, const CacheValue<AnyValue>& value) override {
        const StoreTtl ttl = store_ttl(value.held_until(), SystemClock::now());
        if (ttl.expired) {  // the one TTL rule: nothing fresher is held, so the key goes
            auto gone = b_.remove(key);
            if (!gone) return fail(gone.error());
            return {};
        }
        auto payload = value.data.encode(format_id_, format_.get());
        if (!payload) return fail(payload.error().in(label()));
        auto packed = compressor_.compress(*payload);
        if (!packed) return fail(packed.error().in(label()));
        std::optional<std::chrono::milliseconds> px;
        if (ttl.px) px = std::chrono::milliseconds(*ttl.px);
        return b_.write(
            key,
            seal_entry({format_id_, compressor_.id(), value.created, value.stale, value.expire, value.retain}, *packed),
            px);
    }

    Result<StoreReport> store(const CacheKey& key, const CacheValue<AnyValue>& value) override {
        auto done = set(key, value);
        if (!done) return fail(done.error());
        StoreReport out;
        out.written.emplace_back(label());
        return out;
    }

    Result<bool> remove(const CacheKey& key) override { return b_.remove(key); }
    std::string_view label() const noexcept override { return b_.label(); }
    const std::type_info& target_type() const noexcept override { return typeid(B); }
    void* target() noexcept override { return &b_; }
    std::vector<std::string> tier_paths() const override { return {std::string(b_.label())}; }
    Result<bool> try_lock(const CacheKey& key, std::string_view token, std::chrono::milliseconds ttl) override {
        return any_try_lock(b_, key, token, ttl);
    }
    Result<bool> unlock(const CacheKey& key, std::string_view token) override { return any_unlock(b_, key, token); }
    void write_metrics(PrometheusWriter& out, std::string_view prefix) const override {
        const std::string path = join_path(prefix, b_.label());
        if constexpr (ReportsStats<B>) write_backend_stats(out, path, b_.stats());
        if constexpr (ReportsDurations<B>) {
            auto d = b_.durations();
            // Values are encoded here, with the configured format and compressor, not by the tier: only its
            // round trips are timed, so only those are exported (no series under the tier's own names).
            if constexpr (std::is_same_v<decltype(d), DurationStats>) d.format = d.compressor = {};
            write_backend_stats(out, path, d);
        }
    }

private:
    EntryPolicies policies() const noexcept {
        return {format_id_, any_format_name(format_id_), compressor_.id(), compressor_.name()};
    }

    B b_;
    std::uint8_t format_id_;
    std::shared_ptr<const void> format_;  // the tier's value format object (its limits), or nullptr: defaults
    AnyCompressor compressor_;
};

/// A tier that stores CacheValue<AnyValue> as it stores any type (MemoryBackend, AnyBackend, Compose of
/// AnyBackends): calls it directly.
template <class B>
class AnyTypedModel final : public AnyBackendConcept {
public:
    explicit AnyTypedModel(B b) : b_(std::move(b)) {}

    Result<std::optional<CacheValue<AnyValue>>> get(const CacheKey& key) override {
        return tier().template get<AnyValue>(key);
    }
    Result<Lookup<AnyValue>> lookup(const CacheKey& key) override { return hitbox::lookup<AnyValue>(tier(), key); }
    Result<void> set(const CacheKey& key, const CacheValue<AnyValue>& value) override {
        return tier().template set<AnyValue>(key, value);
    }
    Result<StoreReport> store(const CacheKey& key, const CacheValue<AnyValue>& value) override {
        return hitbox::store(tier(), key, value);
    }
    Result<bool> remove(const CacheKey& key) override { return tier().remove(key); }
    std::string_view label() const noexcept override { return tier().label(); }
    const std::type_info& target_type() const noexcept override { return typeid(tier_t<B>); }
    void* target() noexcept override { return &tier(); }
    std::vector<std::string> tier_paths() const override {
        std::vector<std::string> out;
        any_leaf_paths(tier(), {}, out);
        return out;
    }
    void write_metrics(PrometheusWriter& out, std::string_view prefix) const override {
        write_tier_metrics(out, tier(), prefix);
    }
    Result<bool> try_lock(const CacheKey& key, std::string_view token, std::chrono::milliseconds ttl) override {
        return any_try_lock(tier(), key, token, ttl);
    }
    Result<bool> unlock(const CacheKey& key, std::string_view token) override { return any_unlock(tier(), key, token); }

private:
    tier_t<B>& tier() noexcept { return tier_traits<B>::get(b_); }
    const tier_t<B>& tier() const noexcept { return tier_traits<B>::get(b_); }

    B b_;
};

}  // namespace detail

class AnyBackend;

namespace detail {
template <class B>
AnyBackend any_envelope_tier(B tier, std::uint8_t format_id, AnyCompressor compressor);
}  // namespace detail

/// A type-erased Backend: any tier or composition behind one type, chosen at run time (the factory in
/// hitbox/config.hpp builds them from a configuration). It models hitbox::Backend, so it composes
/// (`compose(AnyBackend(...), AnyBackend(...), offload)`) and sits under hitbox::Cache. `get<T>` and
/// `set<T>` stay typed; see the file comment for how values are held and what can be wrapped.
/// A handle: copies share the wrapped backend. Thread-safe as the wrapped backend is.
///
/// \code
/// auto memory = hitbox::MemoryBackend::builder().max_entries(10'000).build();
/// hitbox::AnyBackend any(std::move(*memory));
/// any.set(key, hitbox::CacheValue<User>{user, hitbox::Clock::now() + 60s});
/// auto hit = any.get<User>(key);              // Result<std::optional<CacheValue<User>>>
/// auto bad = any.get<int>(key);               // type_mismatch error
/// \endcode
class AnyBackend {
public:
    /// Wraps `backend` (moved in; pass std::ref / a pointer / a smart pointer to keep it shared).
    template <class B>
        requires(!std::is_same_v<std::remove_cvref_t<B>, AnyBackend>)
    explicit AnyBackend(B backend) : impl_(make_(std::move(backend))) {}

    /// Reads `key` as a T: nullopt on a miss; `type_mismatch` when it holds another type, `decode` when its
    /// bytes are not a T. `get<AnyValue>` returns the erased value as stored.
    template <class T>
    Result<std::optional<CacheValue<T>>> get(const CacheKey& key) {
        if (!impl_) return moved_from_();
        auto got = impl_->get(key);
        if constexpr (std::is_same_v<T, AnyValue>) {
            return got;
        } else {
            if (!got) return fail(got.error());
            if (!*got) return std::optional<CacheValue<T>>{};
            return unwrap_<T>(std::move(**got));
        }
    }

    /// Writes `value` under `key` (the wrapped tier keeps the object, or encodes it if it stores bytes).
    template <class T>
    Result<void> set(const CacheKey& key, const CacheValue<T>& value) {
        if (!impl_) return moved_from_();
        if constexpr (std::is_same_v<T, AnyValue>)
            return impl_->set(key, value);
        else
            return impl_->set(key, wrap_(value));
    }

    /// Writes `value`, moved in.
    template <class T>
    Result<void> set(const CacheKey& key, CacheValue<T>&& value) {
        if (!impl_) return moved_from_();
        if constexpr (std::is_same_v<T, AnyValue>)
            return impl_->set(key, value);
        else
            return impl_->set(key, wrap_(std::move(value)));
    }

    /// Removes `key` (every tier of a wrapped composition); true when it existed.
    Result<bool> remove(const CacheKey& key) {
        if (!impl_) return moved_from_();
        return impl_->remove(key);
    }

    /// get<T> that names the tier that answered (the wrapped composition's label path, e.g. "cache.redis").
    template <class T>
    Result<Lookup<T>> lookup(const CacheKey& key) {
        if (!impl_) return moved_from_();
        auto found = impl_->lookup(key);
        if constexpr (std::is_same_v<T, AnyValue>) {
            return found;
        } else {
            if (!found) return fail(found.error());
            Lookup<T> out;
            out.errors = std::move(found->errors);
            if (found->value) {
                auto value = unwrap_<T>(std::move(*found->value));
                if (!value) return fail(value.error());
                out.value = std::move(*value);
                out.source = std::move(found->source);
            }
            return out;
        }
    }

    /// set<T> that lists the tiers that took the write.
    template <class T>
    Result<StoreReport> store(const CacheKey& key, const CacheValue<T>& value) {
        if (!impl_) return moved_from_();
        if constexpr (std::is_same_v<T, AnyValue>)
            return impl_->store(key, value);
        else
            return impl_->store(key, wrap_(value));
    }

    /// The wrapped backend's label ("memory", "redis", "cache", ...).
    std::string_view label() const noexcept { return impl_ ? impl_->label() : std::string_view(); }

    /// The stampede lock across instances (hitbox::LockingBackend) of the wrapped tier: a Redis tier's, or
    /// that of a composition with one. A `config` error when the wrapped tiers hold no lock (a cache front
    /// with `lock_ttl` then loads without it and reports that error).
    /// `ttl` is any duration type (rounded up to whole ms, clamped: `hours::max()` is max()).
    template <class Rep, class Period>
    Result<bool> try_lock(const CacheKey& key, std::string_view token, std::chrono::duration<Rep, Period> ttl) {
        if (!impl_) return moved_from_();
        return impl_->try_lock(key, token, detail::saturating_ms(ttl));
    }
    Result<bool> unlock(const CacheKey& key, std::string_view token) {
        if (!impl_) return moved_from_();
        return impl_->unlock(key, token);
    }

    /// Label paths of the wrapped backend's leaf tiers, in tier order: {"memory"} for a tier,
    /// {"cache.memory", "cache.redis"} for a composition. hitbox::Cache uses them to name the tier that
    /// answered (it reads an AnyBackend with lookup<T>).
    std::vector<std::string> tier_paths() const { return impl_ ? impl_->tier_paths() : std::vector<std::string>{}; }

    /// Adds the Prometheus series of the wrapped tiers (stats, duration histograms, composition levels),
    /// labelled with their paths under `prefix`, the paths tier_paths() lists: what `prometheus_text`
    /// writes for the tiers behind this backend, which it cannot see itself.
    void write_metrics(PrometheusWriter& out, std::string_view prefix = {}) const {
        if (impl_) impl_->write_metrics(out, prefix);
    }

    /// The type of the wrapped backend (a reference wrapper or pointer is looked through).
    const std::type_info& target_type() const noexcept { return impl_ ? impl_->target_type() : typeid(void); }

    /// The wrapped backend when it is a B, else nullptr: `any.target<hitbox::MemoryBackend>()->stats()`.
    template <class B>
    B* target() noexcept {
        if (!impl_ || impl_->target_type() != typeid(B)) return nullptr;
        return static_cast<B*>(impl_->target());
    }

private:
    template <class B>
    friend AnyBackend detail::any_envelope_tier(B, std::uint8_t, detail::AnyCompressor);

    struct FromImpl {};
    AnyBackend(FromImpl, std::shared_ptr<detail::AnyBackendConcept> impl) noexcept : impl_(std::move(impl)) {}

    template <class B>
    static std::shared_ptr<detail::AnyBackendConcept> make_(B backend) {
        using Tier = detail::tier_t<B>;
        if constexpr (detail::EnvelopeTier<Tier>) {
            static_assert(detail::holds<detail::any_supported_format<typename Tier::value_format>>,
                          "hitbox::AnyBackend(b): a byte tier must use one of hitbox::builtin_value_formats "
                          "(hitbox/format/builtin.hpp) to hold erased values");
            static_assert(std::is_same_v<B, Tier>,
                          "hitbox::AnyBackend(b): hold a byte tier (RedisBackend) by value; its copies share the "
                          "connection");
            if constexpr (detail::holds<detail::any_supported_format<typename Tier::value_format>> &&
                          std::is_same_v<B, Tier>)
                return std::make_shared<detail::AnyEnvelopeModel<B>>(std::move(backend));
            else
                return nullptr;  // an assertion failed: build no model of b, which would only repeat it
        } else {
            static_assert(detail::holds < Backend<Tier> && BackendFor < Tier, AnyValue >>,
                          "hitbox::AnyBackend(b): b must be a tier that stores any value type (MemoryBackend, "
                          "AnyBackend, a Compose of AnyBackends) or a RedisBackend; a static Compose holding a "
                          "RedisBackend cannot be erased as a whole: wrap each tier in AnyBackend first");
            if constexpr (detail::holds < Backend<Tier> && BackendFor < Tier, AnyValue >>)
                return std::make_shared<detail::AnyTypedModel<B>>(std::move(backend));
            else
                return nullptr;  // the assertion failed: build no model of b, which would only repeat it
        }
    }

    template <class T>
    static CacheValue<AnyValue> wrap_(const CacheValue<T>& v) {
        return CacheValue<AnyValue>(AnyValue::of<T>(v.data), v.expire, v.stale, v.created, v.retain);
    }
    template <class T>
    static CacheValue<AnyValue> wrap_(CacheValue<T>&& v) {
        return CacheValue<AnyValue>(AnyValue::of<T>(std::move(v.data)), v.expire, v.stale, v.created, v.retain);
    }

    template <class T>
    Result<std::optional<CacheValue<T>>> unwrap_(CacheValue<AnyValue>&& v) const {
        auto object = v.data.template get<T>();
        if (!object) return fail(object.error().backend().empty() ? object.error().in(label()) : object.error());
        return std::optional<CacheValue<T>>(std::in_place, **object, v.expire, v.stale, v.created, v.retain);
    }

    static Unexpected moved_from_() {
        return fail(ErrorKind::unavailable, "this AnyBackend handle is empty (moved from)");
    }

    std::shared_ptr<detail::AnyBackendConcept> impl_;
};

static_assert(Backend<AnyBackend> && LockingBackend<AnyBackend>);

namespace detail {

/// An erased byte tier whose value format and compressor are chosen at run time (the factory in
/// hitbox/config.hpp): `tier` only supplies the raw layer and the stored keys.
template <class B>
AnyBackend any_envelope_tier(B tier, std::uint8_t format_id, AnyCompressor compressor) {
    static_assert(EnvelopeTier<B>,
                  "hitbox::detail::any_envelope_tier: B must have read / write / codec() (RedisBackend)");
    return AnyBackend(AnyBackend::FromImpl{},
                      std::make_shared<AnyEnvelopeModel<B>>(std::move(tier), format_id, std::move(compressor)));
}

}  // namespace detail

}  // namespace hitbox
