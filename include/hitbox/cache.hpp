#pragma once
/// \file
/// hitbox::Cache: the get_or_compute front. "Give me this value, computing it at most once when it is
/// missing": TTL, stale-while-revalidate, in-process stampede protection (single-flight with a waiter
/// timeout, a per-key concurrency limit and bounded retries after a failed load), fail-open on backend
/// errors, negative caching and metrics. Also hitbox::memoize and the Prometheus rendering of a cache with
/// its tiers and offload.
///
/// The header users include; the parts, one job each, are under hitbox/cache/:
/// policy.hpp (CachePolicy, CacheOptions, their checks), result.hpp (CacheResult), errors.hpp (CacheOp,
/// the error handler and its default logger), loader.hpp (loader adaptation, the load's outcome and flight
/// guard), detail/flight.hpp (the single-flight table), stats.hpp (CacheStats), tiers.hpp (how the front
/// sees its tiers), front.hpp (the Cache class), prometheus.hpp (prometheus_text(cache)), memoize.hpp.

#include <hitbox/cache/errors.hpp>
#include <hitbox/cache/front.hpp>
#include <hitbox/cache/loader.hpp>
#include <hitbox/cache/memoize.hpp>
#include <hitbox/cache/policy.hpp>
#include <hitbox/cache/prometheus.hpp>
#include <hitbox/cache/result.hpp>
#include <hitbox/cache/stats.hpp>
#include <hitbox/cache/tiers.hpp>
