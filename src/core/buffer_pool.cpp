#include "outrigger/core/buffer_pool.hpp"

#include <algorithm>

namespace outrigger::core {

std::size_t BufferPool::release_idle() {
  const auto idle = std::min(low_water_, free_.size());
  for (std::size_t i = 0; i < idle; ++i) delete[] free_[i];
  free_.erase(free_.begin(), free_.begin() + static_cast<std::ptrdiff_t>(idle));
  if (free_.capacity() > 4 * (free_.size() + 1)) free_.shrink_to_fit();
  low_water_ = free_.size();
  return idle * kBufferSize;
}

BufferPool& thread_buffer_pool() {
  thread_local BufferPool pool;
  return pool;
}

}  // namespace outrigger::core
