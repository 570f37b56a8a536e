// Path normalisation (http/path.hpp), under every escaped-slash mode: a
// target is refused, already normal, or normalised into a target that is
// normal and stable (normalising it again changes nothing), whose path has no
// empty or dot segment, and that Boost.URL reads as origin-form.
#include <boost/url/parse.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include "outrigger/http/path.hpp"

namespace {

using outrigger::config::EscapedSlashes;
using outrigger::http::TargetCheck;

void check(bool ok, const char* what, std::string_view in, std::string_view out) {
  if (ok) return;
  std::fprintf(stderr, "path: %s\n  in:  [%.*s]\n  out: [%.*s]\n", what, static_cast<int>(in.size()), in.data(),
               static_cast<int>(out.size()), out.data());
  std::abort();
}

// No empty segment ("//"), no "." or ".." segment.
bool normal_path(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  for (std::size_t begin = 1; begin <= path.size();) {
    auto end = path.find('/', begin);
    if (end == std::string_view::npos) end = path.size();
    const auto seg = path.substr(begin, end - begin);
    if (seg == "." || seg == "..") return false;
    if (seg.empty() && end != path.size()) return false;  // "//"; a trailing "/" is fine
    begin = end + 1;
  }
  return true;
}

void fuzz(std::string_view target, EscapedSlashes mode) {
  std::string out;
  const auto result = outrigger::http::normalize_target(target, mode, out);
  if (result == TargetCheck::invalid) return;
  const std::string_view normal = result == TargetCheck::unchanged ? target : std::string_view(out);
  if (normal == "*") return;  // OPTIONS *
  check(normal_path(outrigger::http::path_of(normal)), "the result is not a normal path", target, normal);
  check(static_cast<bool>(boost::urls::parse_origin_form(normal)), "the result is not origin-form", target, normal);
  if (mode == EscapedSlashes::unescape)
    check(!outrigger::http::has_encoded_separator(outrigger::http::path_of(normal)),
          "an encoded separator is left after unescaping", target, normal);
  std::string again;
  const auto second = outrigger::http::normalize_target(normal, mode, again);
  check(second == TargetCheck::unchanged, "normalising twice changes the result", target,
        second == TargetCheck::normalized ? std::string_view(again) : std::string_view("(invalid)"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view target(reinterpret_cast<const char*>(data), size);
  for (auto mode : {EscapedSlashes::keep, EscapedSlashes::reject, EscapedSlashes::unescape}) fuzz(target, mode);
  return 0;
}
