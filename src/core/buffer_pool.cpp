#include "outrigger/core/buffer_pool.hpp"

namespace outrigger::core {

BufferPool& thread_buffer_pool() {
  thread_local BufferPool pool;
  return pool;
}

}  // namespace outrigger::core
