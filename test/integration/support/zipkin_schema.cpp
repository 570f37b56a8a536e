#include "support/zipkin_schema.hpp"

#include <yaml-cpp/yaml.h>

#include <boost/asio/ip/address.hpp>
#include <regex>

namespace testing_support {

namespace json = boost::json;

namespace {

const YAML::Node& api() {
  static const YAML::Node doc = YAML::LoadFile(std::string(OUTRIGGER_SOURCE_DIR) + "/test/data/zipkin/zipkin2-api.yaml");
  return doc;
}

void check(const json::value& v, YAML::Node schema, const std::string& path, std::vector<std::string>& out) {
  if (auto ref = schema["$ref"]) {
    const auto name = ref.as<std::string>().substr(std::string("#/definitions/").size());
    schema = api()["definitions"][name];
  }
  const auto type = schema["type"] ? schema["type"].as<std::string>() : "";
  auto fail = [&](const std::string& what) { out.push_back(path + ": " + what); };
  if (type == "object") {
    if (!v.is_object()) return fail("expected an object");
    const auto& o = v.as_object();
    if (auto req = schema["required"])
      for (const auto& r : req)
        if (!o.contains(r.as<std::string>())) fail("missing required '" + r.as<std::string>() + "'");
    for (const auto& [key, member] : o) {
      const std::string k(key);
      if (schema["properties"] && schema["properties"][k]) {
        check(member, schema["properties"][k], path + "." + k, out);
      } else if (auto extra = schema["additionalProperties"]) {
        check(member, extra, path + "." + k, out);
      } else if (schema["properties"]) {
        fail("unknown property '" + k + "'");
      }
    }
  } else if (type == "array") {
    if (!v.is_array()) return fail("expected an array");
    std::size_t i = 0;
    for (const auto& item : v.as_array()) check(item, schema["items"], path + "[" + std::to_string(i++) + "]", out);
  } else if (type == "string") {
    if (!v.is_string()) return fail("expected a string");
    const std::string s(v.as_string());
    if (auto n = schema["minLength"]; n && s.size() < n.as<std::size_t>()) fail("shorter than minLength");
    if (auto n = schema["maxLength"]; n && s.size() > n.as<std::size_t>()) fail("longer than maxLength");
    if (auto p = schema["pattern"]; p && !std::regex_search(s, std::regex(p.as<std::string>())))
      fail("does not match " + p.as<std::string>());
    if (auto e = schema["enum"]) {
      bool found = false;
      for (const auto& item : e) found = found || item.as<std::string>() == s;
      if (!found) fail("'" + s + "' is not in the enum");
    }
    if (auto f = schema["format"]) {
      boost::system::error_code ec;
      const auto a = boost::asio::ip::make_address(s, ec);
      if (ec || (f.as<std::string>() == "ipv4" && !a.is_v4()) || (f.as<std::string>() == "ipv6" && !a.is_v6()))
        fail("not an " + f.as<std::string>() + " address: " + s);
    }
  } else if (type == "integer") {
    if (!v.is_int64() && !v.is_uint64()) return fail("expected an integer");
    if (auto m = schema["minimum"]; m && v.to_number<std::int64_t>() < m.as<std::int64_t>()) fail("below minimum");
  } else if (type == "boolean") {
    if (!v.is_bool()) fail("expected a boolean");
  }
}

}  // namespace

std::vector<std::string> validate_zipkin(const json::value& value, const std::string& definition) {
  std::vector<std::string> out;
  check(value, api()["definitions"][definition], definition, out);
  return out;
}

}  // namespace testing_support
