#include "outrigger/http/path.hpp"

#include <boost/url/parse.hpp>

namespace outrigger::http {

namespace {

bool unreserved(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

// Characters a normal path or query may hold as they are (pchar, '/', '?'):
// anything else sends the target through Boost.URL's parser.
bool plain(unsigned char c) {
  static constexpr std::string_view kOther = "!$&'()*+,;=:@/?-._~";
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         kOther.find(static_cast<char>(c)) != std::string_view::npos;
}

// No escape, no empty segment, no dot segment, nothing to validate.
bool looks_normal(std::string_view target) {
  if (target.empty() || target.front() != '/') return false;
  for (unsigned char c : target)
    if (!plain(c)) return false;
  const auto path = path_of(target);
  if (path.find("//") != std::string_view::npos) return false;
  for (std::size_t at = path.find("/."); at != std::string_view::npos; at = path.find("/.", at + 1)) {
    const auto rest = path.substr(at + 2);
    if (rest.empty() || rest.front() == '/' || (rest.front() == '.' && (rest.size() == 1 || rest[1] == '/')))
      return false;
  }
  return true;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  c = static_cast<char>(c | 0x20);
  return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

// Appends one segment with unreserved characters decoded and the other
// escapes upper-cased. (Boost.URL 1.81's normalize_path would do this too, but
// it also decodes %2F into a real separator, which turns /a/..%2Fb into /b.)
void append_normal_segment(std::string& out, std::string_view seg) {
  for (std::size_t i = 0; i < seg.size(); ++i) {
    if (seg[i] == '%' && i + 2 < seg.size()) {
      const int hi = hex(seg[i + 1]), lo = hex(seg[i + 2]);
      const auto v = static_cast<unsigned char>(hi * 16 + lo);  // the parser checked both digits
      if (unreserved(v)) {
        out += static_cast<char>(v);
      } else {
        static constexpr char kDigits[] = "0123456789ABCDEF";
        out += '%';
        out += kDigits[hi];
        out += kDigits[lo];
      }
      i += 2;
    } else {
      out += seg[i];
    }
  }
}

// %2F and %5C as the separators they encode, both as '/'.
std::string unescape_separators(std::string_view path) {
  std::string out;
  out.reserve(path.size());
  for (std::size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '%' && i + 2 < path.size()) {
      const char a = path[i + 1], b = static_cast<char>(path[i + 2] | 0x20);
      if (a == '2' && b == 'f') {
        out += '/';
        i += 2;
        continue;
      }
      if (a == '5' && b == 'c') {
        // A separator too: a raw '\\' is no character of a request target
        // (the upstream would get an invalid one), and servers that split
        // on it would see segments, and dot segments, the proxy did not.
        out += '/';
        i += 2;
        continue;
      }
    }
    out += path[i];
  }
  return out;
}

}  // namespace

TargetCheck normalize_target(std::string_view target, config::EscapedSlashes escaped_slashes, std::string& out) {
  if (looks_normal(target) || target == "*") return TargetCheck::unchanged;  // "*": OPTIONS * (asterisk-form)
  // Origin-form only (RFC 9112 §3.2.1): this refuses fragments, bad escapes,
  // and bytes a target may not hold. The codecs turn absolute-form into it.
  const auto parsed = boost::urls::parse_origin_form(target);
  if (!parsed) return TargetCheck::invalid;
  std::string_view path = parsed->encoded_path();
  std::string unescaped;
  if (has_encoded_separator(path)) {
    if (escaped_slashes == config::EscapedSlashes::reject) return TargetCheck::invalid;
    if (escaped_slashes == config::EscapedSlashes::unescape) {
      unescaped = unescape_separators(path);
      path = unescaped;
    }
  }

  // Segment by segment (RFC 3986 §5.2.4): "." goes, ".." takes the segment
  // before it (never above the root), empty segments merge.
  out.clear();
  std::string seg;
  bool trailing_slash = false;
  for (std::size_t begin = 1; begin <= path.size();) {
    auto end = path.find('/', begin);
    if (end == std::string_view::npos) end = path.size();
    seg.clear();
    append_normal_segment(seg, path.substr(begin, end - begin));
    const bool last = end == path.size();
    if (seg == "..") {
      const auto slash = out.rfind('/');
      out.resize(slash == std::string::npos ? 0 : slash);
      trailing_slash = last;
    } else if (seg == "." || seg.empty()) {
      trailing_slash = last;
    } else {
      out += '/';
      out += seg;
      trailing_slash = false;
    }
    begin = end + 1;
  }
  if (out.empty() || trailing_slash) out += '/';
  if (parsed->has_query()) {
    out += '?';
    out += parsed->encoded_query();
  }
  return out == target ? TargetCheck::unchanged : TargetCheck::normalized;
}

bool has_encoded_separator(std::string_view path) {
  for (std::size_t at = path.find('%'); at != std::string_view::npos && at + 2 < path.size();
       at = path.find('%', at + 1)) {
    const char a = path[at + 1], b = static_cast<char>(path[at + 2] | 0x20);
    if ((a == '2' && b == 'f') || (a == '5' && b == 'c')) return true;
  }
  return false;
}

}  // namespace outrigger::http
