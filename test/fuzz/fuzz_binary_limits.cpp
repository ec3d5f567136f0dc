// Fuzzes BinaryFormat's decode limits on a recursive type (Tree: children, a unique_ptr chain, shared
// pointers) and a container-heavy one (Heavy), each input decoded as both.
// Laws checked:
//  - memory: the heap live during a decode never exceeds its documented budget (decode_budget(input size),
//    plus the input size for strings' terminating NULs and 16 KiB for the archive and an exception),
//    measured through the sanitizer allocator's malloc / free hooks; -malloc_limit_mb (run_fuzz.sh) stops
//    any single larger request;
//  - nesting: a deep input is a decode error, never a stack overflow (ASan reports one as a crash);
//  - a decoded value re-encodes, and that encoding decodes.
#include <sanitizer/allocator_interface.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include <hitbox/format/binary.hpp>

#include "fuzz_deep.hpp"

namespace {

using hitbox_fuzz::Heavy;
using hitbox_fuzz::Tree;

// Live heap bytes since tracking started, and their peak.
long long live = 0;
long long peak = 0;
bool tracking = false;

void on_malloc(const volatile void*, std::size_t size) {
    if (!tracking) return;
    live += static_cast<long long>(size);
    if (live > peak) peak = live;
}

void on_free(const volatile void* p) {
    if (tracking && p) live -= static_cast<long long>(__sanitizer_get_allocated_size(const_cast<const void*>(p)));
}

const bool hooks_installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) != 0;

template <class T>
void check(const hitbox::BinaryFormat& fmt, std::string_view in) {
    live = peak = 0;
    tracking = true;
    auto value = fmt.decode<T>(in);
    tracking = false;
    const long long allowed = static_cast<long long>(fmt.decode_budget(in.size()) + in.size() + (16 << 10));
    if (peak > allowed) {
        std::fprintf(stderr, "decode of %zu bytes peaked at %lld live heap bytes, allowed %lld (%s)\n", in.size(), peak,
                     allowed, value ? "decoded" : value.error().message().c_str());
        std::abort();
    }
    if (!value) return;
    auto bytes = fmt.encode(*value);
    if (!bytes) std::abort();
    auto back = fmt.decode<T>(*bytes);
    if (!back) {
        std::fprintf(stderr, "re-encoding does not decode: %s\n", back.error().message().c_str());
        std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (!hooks_installed) std::abort();
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const hitbox::BinaryFormat fmt;
    check<Tree>(fmt, in);
    check<Heavy>(fmt, in);
    return 0;
}
