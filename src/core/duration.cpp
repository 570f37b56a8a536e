#include "outrigger/core/duration.hpp"

#include <charconv>
#include <cmath>
#include <limits>

namespace outrigger::core {

std::optional<std::chrono::milliseconds> parse_duration(std::string_view text) {
  if (text == "0") return std::chrono::milliseconds(0);
  std::size_t i = 0;
  while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == '.')) ++i;
  if (i == 0 || i == text.size()) return std::nullopt;
  const auto number = text.substr(0, i);
  const auto unit = text.substr(i);
  double value = 0;
  const auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc() || end != number.data() + number.size()) return std::nullopt;
  double ms_per_unit = 0;
  if (unit == "ms") {
    ms_per_unit = 1;
  } else if (unit == "s") {
    ms_per_unit = 1000;
  } else if (unit == "m") {
    ms_per_unit = 60'000;
  } else if (unit == "h") {
    ms_per_unit = 3'600'000;
  } else {
    return std::nullopt;
  }
  const double ms = value * ms_per_unit;
  if (!std::isfinite(ms) || ms > static_cast<double>(std::numeric_limits<std::int32_t>::max()) * 1000.0)
    return std::nullopt;
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(ms)));
}

}  // namespace outrigger::core
