// RawFormat asked to store a type that is neither bytes nor trivially copyable.
// expect: hitbox::RawFormat stores byte strings
#include <hitbox/format/raw.hpp>
#include <map>

#ifdef HITBOX_COMPILE_FAIL
auto r = hitbox::RawFormat{}.encode(std::map<int, int>{});
#else
auto r = hitbox::RawFormat{}.encode(std::string("ok"));
#endif
