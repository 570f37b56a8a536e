// Validates JSON against a definition of the Zipkin v2 OpenAPI document
// (test/data/zipkin/zipkin2-api.yaml): the JSON-Schema subset it uses, i.e.
// type, required, properties, additionalProperties, items, $ref, enum,
// pattern, minLength/maxLength, minimum, format ipv4/ipv6.
#pragma once

#include <boost/json/value.hpp>
#include <string>
#include <vector>

namespace testing_support {

// Problems found, each "path: what"; empty when `value` matches `definition`.
std::vector<std::string> validate_zipkin(const boost::json::value& value, const std::string& definition = "ListOfSpans");

}  // namespace testing_support
