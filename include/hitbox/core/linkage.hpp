#pragma once
/// \file
/// Header-only (the default) or compiled library. With HITBOX_COMPILED_LIB=1 (meson -Dcompiled_lib=true, which passes
/// it to every user of the dependencies) the non-template code is compiled once into five libraries and the headers
/// only declare it: the core's (OffloadManager and InlineOffload, the counters' snapshots of a composition and a cache
/// front, the memory tier's store and shards and the default MemoryBackend's value-independent members, the entry
/// envelope, the key formats, the composition's error paths and fork, JsonFormat's document parsing and writing, the
/// JSON / XML input checks, errors' text, the Prometheus text writer) into hitbox (src/core.cpp); the compressors'
/// helpers into hitbox-zstd and hitbox-gzip; the Redis connection policies (SingleNode, Cluster, AnyConnection and
/// everything under them: the multiplexed connection, cluster routing, sockets, TLS, URL parsing, RESP framing) into
/// hitbox-redis; the run-time factory into hitbox-config. User translation units then do not compile that code. The
/// macro must have the same value in every translation unit of a program and in the libraries.
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
