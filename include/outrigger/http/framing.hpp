// The one strict check of a request's framing before anything of it is
// forwarded: whatever two HTTP/1.1 parsers could read differently (RFC 9112
// §6, RFC 9110 §8.6) is refused, so that no upstream can frame a request
// otherwise than the proxy did (request smuggling). Beast parses; these
// checks decide what Beast accepts but a proxy must not pass on:
//   - Transfer-Encoding other than exactly "chunked" as the final and only
//     coding: 400 ("chunked, identity", odd bytes, "chunked" twice), or 501
//     for a coding before it that the proxy does not implement ("gzip, chunked");
//     any Transfer-Encoding on HTTP/1.0, or beside a Content-Length: 400;
//   - Content-Length other than one field of digits ("5, 5", two fields): 400;
//   - more than one Host, a Host that is not host[:port], or one that
//     disagrees with an absolute-form target: 400;
//   - a field named like a framing header with '_' for '-'
//     (Transfer_Encoding), which CGI-style servers read as the real one: 400.
// Malformed chunk framing (a sign, "0x", an underscore, a bare CR, an
// overflow, data past a chunk's size) is Beast's to find: in the bytes the
// proxy already holds before it forwards (chunked_prefix_ok), or later, when
// the router resets the upstream request.
#pragma once

#include <string_view>

#include "outrigger/http/exchange.hpp"

namespace outrigger::http {

enum class Framing { ok, bad_request, not_implemented };

Framing check_request_framing(const RequestHeader& request);

// An absolute-form target ("http://host/path") becomes origin-form, as a
// server must read it (RFC 9112 §3.2.2); its authority must match the Host.
// False when the target is malformed or disagrees with the Host.
bool to_origin_form(RequestHeader& request);

// Whether the chunked body bytes held so far (the start of the body) frame
// correctly as far as they go.
bool chunked_prefix_ok(std::string_view held);

}  // namespace outrigger::http
