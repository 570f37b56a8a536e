// Glob matching for configured patterns (identities, RBAC paths): '*'
// matches any run of characters, '/' included; everything else is literal.
#pragma once

#include <string_view>

namespace outrigger::core {

bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace outrigger::core
