// Routes' per_filter_config as a config build sees it: the fault filter's
// factory parses its routes' settings (errors positioned there), and a type
// that takes no per-route settings says so.
#include <gtest/gtest.h>

#include "outrigger/config/loader.hpp"
#include "outrigger/server/snapshot.hpp"

namespace outrigger::server {
namespace {

std::vector<std::string> build(const std::string& yaml) {
  auto loaded = config::load_string(yaml, "test.yaml");
  if (!loaded.ok()) return {"load: " + loaded.errors.front().to_string()};
  observability::Stats stats(1);
  KeptUpstreams kept;
  return build_snapshot(std::move(*loaded.config), stats, 0, kept).errors;
}

std::string config(const std::string& filter, const std::string& route_settings) {
  return R"(
listeners:
  - name: ingress
    address: 127.0.0.1:0
    filters: [)" + filter + R"(]
    routes:
      - cluster: app
        per_filter_config: )" + route_settings + R"(
clusters:
  - { name: app, endpoints: [127.0.0.1:8080] }
)";
}

TEST(PerFilterConfig, FaultRouteSettingsAreParsedWithTheirPosition) {
  EXPECT_TRUE(build(config("{ type: fault, abort: { status: 503 } }", "{ fault: { delay: { fixed: 1s } } }")).empty());
  const auto errors = build(config("{ type: fault, abort: { status: 503 } }", "{ fault: { abort: { status: 99 } } }"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0],
            "test.yaml:8:56: listeners.ingress.routes[0].per_filter_config.fault.abort.status: must be from 200 to 599");
}

TEST(PerFilterConfig, OtherTypesTakeOnlyDisabled) {
  const std::string rbac =
      "{ type: rbac, roles: { r: [{ methods: [GET] }] }, bindings: [{ role: r, principals: [{ any: true }] }] }";
  EXPECT_EQ(build(config(rbac, "{ rbac: { disabled: true } }")), std::vector<std::string>{});
  const auto errors = build(config(rbac, "{ rbac: { default: deny } }"));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0].find("test.yaml:8:36: listeners.ingress.routes[0].per_filter_config.rbac: the 'rbac' filter "
                           "takes no per-route settings; only 'disabled: true'"),
            std::string::npos)
      << errors[0];
}

}  // namespace
}  // namespace outrigger::server
