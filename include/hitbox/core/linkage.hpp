#pragma once
/// \file
/// Header-only (the default) or compiled library. With HITBOX_COMPILED_LIB=1 (meson -Dcompiled_lib=true,
/// which passes it to every user of the dependency) the non-template parts of the Redis connection
/// policies (SingleNode, Cluster, AnyConnection and everything under them: the multiplexed connection,
/// cluster routing, sockets, TLS, URL parsing) are compiled once into the hitbox-redis library, and their
/// headers only declare them; user translation units then neither parse nor compile that code. The macro
/// must have the same value in every translation unit of a program and in the library.
///
/// HITBOX_LIB_INLINE marks a definition that a header-only build includes into every translation unit
/// (inline) and a compiled-library build compiles once in src/ (not inline).

#ifndef HITBOX_COMPILED_LIB
#define HITBOX_COMPILED_LIB 0
#endif

#if HITBOX_COMPILED_LIB
#define HITBOX_LIB_INLINE
#else
#define HITBOX_LIB_INLINE inline
#endif
