// A small, fast pseudo-random generator (xorshift128+) for per-worker choices:
// load balancing, weighted clusters, request ids. Not for secrets.
#pragma once

#include <cstdint>

namespace outrigger::core {

class Random {
 public:
  explicit Random(std::uint64_t seed = 0) {
    // splitmix64 spreads any seed (even 0) over the state.
    auto mix = [&seed] {
      std::uint64_t z = (seed += 0x9e3779b97f4a7c15ULL);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      return z ^ (z >> 31);
    };
    s_[0] = mix();
    s_[1] = mix();
  }

  std::uint64_t next() {
    std::uint64_t s1 = s_[0];
    const std::uint64_t s0 = s_[1];
    s_[0] = s0;
    s1 ^= s1 << 23;
    s_[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return s_[1] + s0;
  }

  // In [0, n), n > 0. The modulo bias is below 2^-40 for the n we use (weights, endpoint counts).
  std::uint64_t below(std::uint64_t n) { return next() % n; }

 private:
  std::uint64_t s_[2];
};

}  // namespace outrigger::core
