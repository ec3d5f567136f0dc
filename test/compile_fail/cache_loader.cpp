// get_or_compute given a loader whose result is not the value type.
// expect: hitbox::Cache::get_or_compute<T>(key, loader): loader must be callable with no arguments and return T
#include <string>
#include "cache_support.hpp"

void load(hitbox::Cache<Memory, hitbox::InlineOffload>& cache, const hitbox::CacheKey& key) {
#ifdef HITBOX_COMPILE_FAIL
    (void)cache.get_or_compute<std::string>(key, [] { return 42; });
#else
    (void)cache.get_or_compute<std::string>(key, [] { return std::string("42"); });
#endif
}
