#pragma once
/// \file
/// hitbox::memoize: wraps a function so that its results come from a hitbox::Cache, keyed by its
/// arguments (Boost.Hana-adapted structs, strings, numbers, enums, std::optional of those), and
/// hitbox::key_of_args, the key a memoized call uses.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

#include <hitbox/cache/front.hpp>
#include <hitbox/core/key.hpp>

namespace hitbox {

namespace detail {

template <class A>
void append_arg_parts(std::vector<KeyPart>& parts, std::size_t index, bool only, const A& arg) {
    using U = std::remove_cvref_t<A>;
    if constexpr (is_hana_struct<U>) {
        // A struct that is the only argument keys by its member names; among several, by "index.member".
        const std::string outer = only ? std::string{} : std::to_string(index);
        append_parts(arg, outer, parts);
    } else {
        parts.push_back(KeyPart{std::to_string(index), key_value_of(arg)});
    }
}

/// True for an argument type that points at characters it does not own (`const char*`, `char*`,
/// `std::string_view`): memoize keeps a std::string copy of the text for the load instead of the pointer,
/// which may dangle, or point at other text, by the time a background refresh runs.
template <class A>
inline constexpr bool is_borrowed_text =
    std::is_same_v<A, const char*> || std::is_same_v<A, char*> || std::is_same_v<A, std::string_view>;

/// How memoize holds an argument of (decayed) type A for the load: borrowed text, also inside a
/// std::optional, as std::string; anything else as a copy of itself.
template <class A>
struct held_arg {
    using type = A;
    static A hold(A a) { return a; }
    static const A& pass(const A& a) noexcept { return a; }
};
template <class A>
    requires is_borrowed_text<A>
struct held_arg<A> {
    using type = std::string;
    static std::string hold(A a) { return std::string(std::string_view(a)); }
    static A pass(const std::string& s) noexcept {
        if constexpr (std::is_same_v<A, char*>)
            return const_cast<char*>(s.c_str());  // the load's own copy: f may write to it
        else if constexpr (std::is_same_v<A, const char*>)
            return s.c_str();
        else
            return std::string_view(s);
    }
};
template <class A>
    requires is_borrowed_text<A>
struct held_arg<std::optional<A>> {
    using type = std::optional<std::string>;
    static type hold(const std::optional<A>& a) {
        if (!a) return std::nullopt;
        return held_arg<A>::hold(*a);
    }
    static std::optional<A> pass(const type& s) noexcept {
        if (!s) return std::nullopt;
        return held_arg<A>::pass(*s);
    }
};

/// The parameter types of a function object with one call operator that is not a template (a lambda with
/// typed parameters, a function pointer): `known`, and `type` a std::tuple of them. A generic lambda or an
/// overloaded call operator is not known.
template <class M>
struct member_call_params {
    static constexpr bool known = false;
};
#define HITBOX_MEMBER_CALL_PARAMS(QUALIFIERS)              \
    template <class R, class C, class... P>                \
    struct member_call_params<R (C::*)(P...) QUALIFIERS> { \
        static constexpr bool known = true;                \
        using type = std::tuple<P...>;                     \
    };
HITBOX_MEMBER_CALL_PARAMS()
HITBOX_MEMBER_CALL_PARAMS(const)
HITBOX_MEMBER_CALL_PARAMS(noexcept)
HITBOX_MEMBER_CALL_PARAMS(const noexcept)
HITBOX_MEMBER_CALL_PARAMS(&)
HITBOX_MEMBER_CALL_PARAMS(const&)
#undef HITBOX_MEMBER_CALL_PARAMS

template <class F>
struct call_params : member_call_params<void> {};
template <class F>
    requires requires { &F::operator(); }
struct call_params<F> : member_call_params<decltype(&F::operator())> {};
template <class R, class... P>
struct call_params<R (*)(P...)> {
    static constexpr bool known = true;
    using type = std::tuple<P...>;
};
template <class R, class... P>
struct call_params<R (*)(P...) noexcept> : call_params<R (*)(P...)> {};

/// Types a key part can be made of (key_of_args): text, numbers, enums, Hana structs, optionals of those.
template <class U>
inline constexpr bool keyable_arg = is_hana_struct<U> || std::is_convertible_v<const U&, std::string_view> ||
                                    std::is_arithmetic_v<U> || std::is_enum_v<U>;
template <class U>
inline constexpr bool keyable_arg<std::optional<U>> = keyable_arg<U>;

/// The argument as the function receives it, for the key: converted to the parameter's type when that
/// differs (a float passed to a double parameter keys as the double the function computes with), and
/// when that type can key (a std::filesystem::path parameter given a std::string keys by the string).
template <class P, class A>
decltype(auto) as_param(const A& arg) {
    using D = std::remove_cvref_t<P>;
    if constexpr (std::is_same_v<D, std::decay_t<A>> || !std::is_constructible_v<D, const A&> || !keyable_arg<D>)
        return (arg);
    else
        return D(arg);
}

}  // namespace detail

/// The key of a call with `args`: `prefix`, `version`, and one part per argument named by its position
/// ("0", "1", ...) holding its text (key_of's rules: strings as they are, numbers in shortest round-trip
/// form, bool as true/false, enums as integers, an empty std::optional as a part without a value). A
/// Boost.Hana-adapted struct contributes one part per member: named after the member when it is the only
/// argument (so `key_of_args(p, v, q) == key_of(q, p, v)`), "index.member" otherwise.
///
/// \code
/// auto k = hitbox::key_of_args("price", 1, std::string("EUR"), 42);   // price v1 {0=EUR, 1=42}
/// \endcode
template <class... Args>
CacheKey key_of_args(std::string prefix, std::uint32_t version, const Args&... args) {
    std::vector<KeyPart> parts;
    std::size_t index = 0;
    (detail::append_arg_parts(parts, index++, sizeof...(Args) == 1, args), ...);
    return CacheKey(std::move(prefix), version, std::move(parts));
}

/// A memoized function: calling it with arguments returns the CacheResult of
/// `cache.get_or_compute(key_of_args(prefix, version, args...), [=] { return f(args...); }, policy)`.
/// Copies of the arguments are kept for the load (a background refresh may run after the call returns);
/// text passed as `const char*`, `char*` or `std::string_view` (also in a std::optional) is copied as a
/// std::string, and f gets a pointer or view into that copy. Pointers and views inside a struct argument
/// are copied as they are: what they point at must outlive the refresh.
/// Holds the cache by reference; copyable (copies share the function).
template <class CacheT, class F>
class Memoized {
public:
    /// Use hitbox::memoize() to make one.
    Memoized(CacheT& cache, F f, CachePolicy policy, std::string prefix, std::uint32_t version)
        : cache_(&cache),
          f_(std::make_shared<const F>(std::move(f))),
          policy_(policy),
          prefix_(std::move(prefix)),
          version_(version) {}

    template <class... Args>
        requires std::invocable < const F&, const std::decay_t<Args>
    &... >
        /// The CacheResult of f(args...), from the cache when it holds one.
        auto operator()(Args&&... args) const {
        using R = std::invoke_result_t<const F&, const std::decay_t<Args>&...>;
        using V = typename detail::loader_value<std::remove_cvref_t<R>>::type;
        CacheKey key = key_(std::index_sequence_for<Args...>{}, args...);
        // The load may run after this call returns (a background refresh, a loader timeout): it keeps
        // copies of the arguments, text behind a pointer or view as a std::string (detail::held_arg).
        auto loader = [f = f_, held = std::make_tuple(detail::held_arg<std::decay_t<Args>>::hold(
                                   std::decay_t<Args>(std::forward<Args>(args)))...)] {
            return std::apply([&f](const auto&... h) { return (*f)(detail::held_arg<std::decay_t<Args>>::pass(h)...); },
                              held);
        };
        return cache_->template get_or_compute<V>(key, std::move(loader), policy_);
    }

    /// The key prefix of every call.
    const std::string& prefix() const noexcept { return prefix_; }
    const CachePolicy& policy() const noexcept { return policy_; }

private:
    /// The key of a call: each argument as f's parameter receives it when f has one known signature (see
    /// detail::call_params), else as passed.
    template <std::size_t... I, class... Args>
    CacheKey key_(std::index_sequence<I...>, const Args&... args) const {
        using Params = detail::call_params<F>;
        if constexpr (Params::known) {
            if constexpr (std::tuple_size_v<typename Params::type> == sizeof...(Args))
                return key_of_args(prefix_, version_,
                                   detail::as_param<std::tuple_element_t<I, typename Params::type>>(args)...);
        }
        return key_of_args(prefix_, version_, args...);
    }

    CacheT* cache_;
    std::shared_ptr<const F> f_;
    CachePolicy policy_;
    std::string prefix_;
    std::uint32_t version_;
};

/// Wraps `f` (a function object) so its results are cached in `cache` with `policy`, keyed by the
/// arguments under `prefix` and `version`. Name the prefix whenever several builds share an L2: the
/// default (the function object's type name, unique to one lambda within one build) is not stable
/// across builds.
///
/// \code
/// auto price = hitbox::memoize(cache, [&](std::string currency, int id) { return db.price(currency, id); },
///                              {.ttl = 60s}, "price");
/// auto p = price("EUR", 42);   // CacheResult<double>: p.value, p.status, p.source
/// \endcode
template <class CacheT, class F>
Memoized<CacheT, std::decay_t<F>> memoize(CacheT& cache, F&& f, CachePolicy policy, std::string prefix,
                                          std::uint32_t version = 0) {
    return {cache, std::forward<F>(f), policy, std::move(prefix), version};
}

/// memoize with the function object's type name as the key prefix. Only for closure types (a lambda):
/// a function pointer or std::function type does not identify the function, so give those a prefix.
template <class CacheT, class F>
Memoized<CacheT, std::decay_t<F>> memoize(CacheT& cache, F&& f, CachePolicy policy) {
    using D = std::decay_t<F>;
    static_assert(
        std::is_class_v<D> && !requires { typename D::result_type; },
        "hitbox::memoize(cache, f, policy): f's type does not identify the function (a function pointer "
        "or std::function): pass a key prefix, memoize(cache, f, policy, \"name\")");
    return {cache, std::forward<F>(f), policy, std::string("memoize:") + typeid(D).name(), 0};
}

}  // namespace hitbox
