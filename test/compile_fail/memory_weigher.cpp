// MemoryBackend given a weigher that cannot weigh the stored type.
// expect: Weigher must be callable as w(const hitbox::CacheKey&, const T&)
#include <hitbox/backend/memory/memory_backend.hpp>
#include <string>

struct StringWeigher {
    std::size_t operator()(const hitbox::CacheKey&, const std::string& s) const { return s.size(); }
};

void store(hitbox::CacheKey key) {
    auto memory = *hitbox::MemoryBackend::builder().max_bytes(1 << 20).weigher(StringWeigher{}).build();
#ifdef HITBOX_COMPILE_FAIL
    (void)memory.set(key, hitbox::CacheValue<int>{42});
#else
    (void)memory.set(key, hitbox::CacheValue<std::string>{"42"});
#endif
}
