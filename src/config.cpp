// The compiled-library build of hitbox's run-time factory (meson -Dcompiled_lib=true, see
// hitbox/core/linkage.hpp): the memory and Redis tiers of a configuration and its policies, defined once
// here, and the folds of tiers over the two offloads programs use, with the Compose and erased model types
// they build. Built with HITBOX_COMPILED_LIB=1, so the definitions below are not inline.
#if !HITBOX_COMPILED_LIB
#error "src/config.cpp is the compiled library: build it with -DHITBOX_COMPILED_LIB=1"
#endif

#include <hitbox/config.hpp>
#include <hitbox/detail/config_impl.hpp>

namespace hitbox::detail {

template Result<AnyBackend> fold_tiers<OffloadManager>(std::vector<AnyBackend>&, OffloadManager&, const BackendConfig&);
template Result<AnyBackend> fold_tiers<InlineOffload>(std::vector<AnyBackend>&, InlineOffload&, const BackendConfig&);

}  // namespace hitbox::detail
