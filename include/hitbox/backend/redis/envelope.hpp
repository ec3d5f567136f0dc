#pragma once
/// \file
/// Kept for existing includes: the envelope and hitbox::EntryCodec live in hitbox/codec/ (they belong to
/// every byte-storing tier, not only Redis). Include <hitbox/codec/entry_codec.hpp> in new code.

#include <hitbox/codec/entry_codec.hpp>
#include <hitbox/codec/envelope.hpp>
