// Where Asio keeps its per-socket reactor state (epoll_reactor's
// descriptor_state, about 180 bytes a socket): in slots of a few shared
// chunks instead of one heap block each (src/core/asio_impl.cpp).
//
// Asio never frees those states while its io_context lives: a closed
// socket's state goes to a free list for the next socket. Allocated one by
// one during a burst of connections, they end up scattered between the
// burst's other, short-lived blocks, one every few kilobytes, and after the
// burst each of them keeps a whole page of the heap resident that
// malloc_trim could otherwise return: 1,000 connections left about 6 MB
// behind. Packed into chunks, the same states take a few dozen pages.
//
// The slots are taken only when an io_context has no free state left (a new
// peak of open sockets), never on the request path; a lock guards them, since
// every worker's reactor and the main thread's share the chunks.
#pragma once

#include <cstddef>

namespace outrigger::core::reactor_slab {

struct Usage {
  std::size_t slots_in_use = 0;  // states alive in any io_context (Asio's free lists included)
  std::size_t chunks = 0;        // chunks allocated so far (never returned)
  std::size_t slots_per_chunk = 0;
  std::size_t slot_bytes = 0;
};

Usage usage();

}  // namespace outrigger::core::reactor_slab
