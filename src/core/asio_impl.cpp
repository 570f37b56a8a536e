// The one translation unit that compiles Asio and Beast
// (BOOST_ASIO_SEPARATE_COMPILATION, BOOST_BEAST_SEPARATE_COMPILATION), and
// where Asio's per-socket reactor state is placed (core/reactor_slab.hpp).
#include <boost/asio/detail/epoll_reactor.hpp>
#include <boost/asio/detail/object_pool.hpp>
#include <boost/version.hpp>
#include <cstddef>
#include <mutex>
#include <new>
#include <vector>

#include "outrigger/core/reactor_slab.hpp"

#if defined(__SANITIZE_ADDRESS__)  // GCC
#define OUTRIGGER_ASAN 1
#elif defined(__has_feature)  // clang (the fuzz build)
#if __has_feature(address_sanitizer)
#define OUTRIGGER_ASAN 1
#endif
#endif
#if defined(OUTRIGGER_ASAN)  // freed slots are poisoned, as the heap's blocks would be
#include <sanitizer/asan_interface.h>
#define OUTRIGGER_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define OUTRIGGER_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define OUTRIGGER_POISON(p, n) ((void)(p), (void)(n))
#define OUTRIGGER_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

// Checked against the Asio of Boost 1.81 (Debian 12's libboost1.81-dev): its
// epoll_reactor makes each descriptor_state through
// object_pool_access::create<descriptor_state>(bool locking) and deletes them
// through object_pool_access::destroy, both only in this translation unit
// (epoll_reactor.ipp, included below). Another Boost must be checked again.
static_assert(BOOST_VERSION / 100 == 1081, "reactor slab: check epoll_reactor's object_pool use in this Boost");
#if !defined(BOOST_ASIO_HAS_EPOLL) || defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT)
#error "reactor slab: built for Asio's epoll reactor"
#endif

namespace outrigger::core::reactor_slab {

namespace {

using State = boost::asio::detail::epoll_reactor::descriptor_state;
// Whole cache lines, so that two workers' sockets never share one.
constexpr std::size_t kLine = 64;
constexpr std::size_t kSlotBytes = (sizeof(State) + kLine - 1) / kLine * kLine;
constexpr std::size_t kSlotsPerChunk = 256;  // 48 KB with 192-byte slots
static_assert(alignof(State) <= kLine);

struct FreeSlot {
  FreeSlot* next;
};

struct Slab {
  std::mutex mutex;
  std::vector<std::byte*> chunks;
  FreeSlot* free = nullptr;
  std::size_t unused_in_last = 0;  // slots at the end of the newest chunk never handed out
  std::size_t in_use = 0;
};

// Never destroyed: a static io_context may outlive any other static, and its
// states come back here when it goes. The chunks stay reachable from it.
Slab& slab() {
  static Slab* s = new Slab;
  return *s;
}

void* take() {
  auto& s = slab();
  std::lock_guard lock(s.mutex);
  ++s.in_use;
  if (auto* f = s.free) {
    OUTRIGGER_UNPOISON(f, kSlotBytes);
    s.free = f->next;
    return f;
  }
  if (s.unused_in_last == 0) {
    auto* chunk = static_cast<std::byte*>(::operator new(kSlotBytes * kSlotsPerChunk, std::align_val_t{kLine}));
    OUTRIGGER_POISON(chunk, kSlotBytes * kSlotsPerChunk);
    s.chunks.push_back(chunk);
    s.unused_in_last = kSlotsPerChunk;
  }
  auto* slot = s.chunks.back() + kSlotBytes * (kSlotsPerChunk - s.unused_in_last--);
  OUTRIGGER_UNPOISON(slot, kSlotBytes);
  return slot;
}

void give(void* p) {
  auto& s = slab();
  std::lock_guard lock(s.mutex);
  --s.in_use;
  auto* f = static_cast<FreeSlot*>(p);
  f->next = s.free;
  s.free = f;
  OUTRIGGER_POISON(static_cast<std::byte*>(p) + sizeof(FreeSlot), kSlotBytes - sizeof(FreeSlot));
}

}  // namespace

Usage usage() {
  auto& s = slab();
  std::lock_guard lock(s.mutex);
  return {s.in_use, s.chunks.size(), kSlotsPerChunk, kSlotBytes};
}

}  // namespace outrigger::core::reactor_slab

// Declared before epoll_reactor.ipp below, the only user of these two.
namespace boost::asio::detail {

template <>
epoll_reactor::descriptor_state* object_pool_access::create<epoll_reactor::descriptor_state, bool>(bool locking) {
  void* slot = outrigger::core::reactor_slab::take();
  try {
    return new (slot) epoll_reactor::descriptor_state(locking);
  } catch (...) {
    outrigger::core::reactor_slab::give(slot);
    throw;
  }
}

template <>
void object_pool_access::destroy<epoll_reactor::descriptor_state>(epoll_reactor::descriptor_state* o) {
  o->~descriptor_state();
  outrigger::core::reactor_slab::give(o);
}

}  // namespace boost::asio::detail

#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
