#pragma once

namespace outrigger {
inline constexpr const char* kVersion = "0.1.0";
}
