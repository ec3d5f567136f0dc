// The compiled-library build of hitbox's gzip compressor helpers (meson -Dcompiled_lib=true, see
// hitbox/core/linkage.hpp): gzip's context handling, compress, measure and bounded decompress, defined once here
// and linked through the hitbox-gzip dependency. Built with HITBOX_COMPILED_LIB=1, so they are not inline.
#if !HITBOX_COMPILED_LIB
#error "src/gzip.cpp is the compiled library: build it with -DHITBOX_COMPILED_LIB=1"
#endif

#include <hitbox/compress/detail/gzip_impl.hpp>
