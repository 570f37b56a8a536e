// The header fields of proxied messages: Beast's basic_fields with each field
// in one small block from the thread's recycled pool (core::SmallAllocator)
// instead of malloc. Here, low in the layers, so that observability (trace
// context) and http share the one type.
#pragma once

#include <boost/beast/http/fields.hpp>

#include "outrigger/core/small_allocator.hpp"

namespace outrigger::core {

using HttpFields = boost::beast::http::basic_fields<SmallAllocator<char>>;

}  // namespace outrigger::core
