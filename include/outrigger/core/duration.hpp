// Durations as written in config: `250ms`, `15s`, `1m`, `2h`, `1.5s`, `0`.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace outrigger::core {

// Returns nullopt for anything else (`5 seconds`, `-1s`, `10`); a bare `0` is allowed.
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text);

}  // namespace outrigger::core
