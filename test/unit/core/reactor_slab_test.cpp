// Asio's per-socket reactor state lives in the slab's chunks
// (core/reactor_slab.hpp): dense, counted, and reused by the next io_context.
#include "outrigger/core/reactor_slab.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <vector>

namespace {

namespace asio = boost::asio;
using outrigger::core::reactor_slab::usage;

std::vector<std::unique_ptr<asio::ip::tcp::socket>> open_sockets(asio::io_context& io, std::size_t n) {
  std::vector<std::unique_ptr<asio::ip::tcp::socket>> sockets;
  for (std::size_t i = 0; i < n; ++i) {
    sockets.push_back(std::make_unique<asio::ip::tcp::socket>(io));
    sockets.back()->open(asio::ip::tcp::v4());
  }
  return sockets;
}

TEST(ReactorSlab, EverySocketsStateTakesASlotOfASharedChunk) {
  const auto before = usage();
  asio::io_context io;
  auto sockets = open_sockets(io, 1000);
  const auto during = usage();
  EXPECT_EQ(during.slots_in_use, before.slots_in_use + 1000);
  // Packed: 1,000 states in a handful of chunks, not a heap block each.
  const auto needed = (1000 + during.slots_per_chunk - 1) / during.slots_per_chunk;
  EXPECT_LE(during.chunks, before.chunks + needed + 1);
  EXPECT_EQ(during.slot_bytes % 64, 0u);  // whole cache lines
}

TEST(ReactorSlab, ClosedSocketsKeepTheirStateUntilTheIoContextGoesThenTheSlotsAreReused) {
  const auto before = usage();
  {
    asio::io_context io;
    auto sockets = open_sockets(io, 600);
    sockets.clear();  // Asio keeps the states on its own free list...
    EXPECT_EQ(usage().slots_in_use, before.slots_in_use + 600);
  }  // ...until its reactor is destroyed
  const auto after = usage();
  EXPECT_EQ(after.slots_in_use, before.slots_in_use);
  asio::io_context again;
  auto sockets = open_sockets(again, 600);
  EXPECT_EQ(usage().chunks, after.chunks);  // the freed slots, no new chunk
  EXPECT_EQ(usage().slots_in_use, before.slots_in_use + 600);
}

}  // namespace
