#include "outrigger/kube/inject.hpp"

#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace outrigger::kube {
namespace {

namespace fs = std::filesystem;

// Golden files: test/data/inject/in/NAME.yaml, injected as
// test/data/inject/native/NAME.yaml and test/data/inject/classic/NAME.yaml.
// OUTRIGGER_UPDATE_GOLDEN=1 rewrites them (then review the diff).
const fs::path kDir = fs::path(OUTRIGGER_SOURCE_DIR) / "test/data/inject";

std::string read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A node as text whatever its style (block or flow), keeping whether a scalar was quoted.
std::string canonical(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Scalar:
      return (n.Tag() == "!" ? "'" : "") + n.Scalar();
    case YAML::NodeType::Sequence: {
      std::string out = "[";
      for (const auto& item : n) out += canonical(item) + ",";
      return out + "]";
    }
    case YAML::NodeType::Map: {
      std::string out = "{";
      for (const auto& kv : n) out += canonical(kv.first) + ":" + canonical(kv.second) + ",";
      return out + "}";
    }
    default:
      return "~";
  }
}

InjectOptions options(bool classic) {
  InjectOptions o;
  o.classic = classic;
  o.image = "localhost/outrigger:test";
  return o;
}

TEST(Inject, MatchesTheGoldenFilesAndIsIdempotent) {
  const bool update = std::getenv("OUTRIGGER_UPDATE_GOLDEN") != nullptr;
  int checked = 0;
  for (const auto& entry : fs::directory_iterator(kDir / "in")) {
    const auto name = entry.path().filename();
    for (const bool classic : {false, true}) {
      SCOPED_TRACE(name.string() + (classic ? " classic" : " native"));
      const auto result = inject(read(entry.path()), options(classic), name.string());
      ASSERT_EQ(result.error, "");
      const auto golden = kDir / (classic ? "classic" : "native") / name;
      if (update) {
        fs::create_directories(golden.parent_path());
        std::ofstream(golden, std::ios::binary) << result.yaml;
      }
      EXPECT_EQ(result.yaml, read(golden)) << "OUTRIGGER_UPDATE_GOLDEN=1 rewrites " << golden;
      // Injecting the output again changes nothing.
      const auto again = inject(result.yaml, options(classic), name.string());
      EXPECT_EQ(again.error, "");
      EXPECT_EQ(again.yaml, result.yaml);
      ++checked;
    }
  }
  EXPECT_GE(checked, 24);
}

// Everything but the sidecar is kept: the output minus what inject adds is the input.
TEST(Inject, KeepsTheRestAsItWas) {
  const auto input = read(kDir / "in/multi.yaml");
  const auto out = inject(input, options(false)).yaml;
  const auto before = YAML::LoadAll(input), after = YAML::LoadAll(out);
  ASSERT_EQ(after.size(), 3u);  // the trailing empty document is dropped
  // ConfigMap strings stay strings, the literal block stays one.
  EXPECT_EQ(after[0]["data"]["flag"].as<std::string>(), "on");
  EXPECT_EQ(after[0]["data"]["port"].Tag(), "!");
  EXPECT_EQ(after[0]["data"]["app.conf"].as<std::string>(), "listen 8080\nworkers 4\n");
  EXPECT_NE(out.find("app.conf: |\n    listen 8080\n"), std::string::npos) << out;
  EXPECT_EQ(canonical(after[1]), canonical(before[1]));  // the Service, as it was
  auto spec = after[2]["spec"]["template"]["spec"];
  ASSERT_EQ(spec["containers"].size(), 1u);
  EXPECT_EQ(spec["containers"][0]["name"].as<std::string>(), "api");
  EXPECT_EQ(spec["containers"][0]["ports"][0]["containerPort"].Tag(), "?");  // still a number
}

TEST(Inject, NativeSidecarStartsBeforeOtherInitContainers) {
  const auto out = YAML::Load(inject(read(kDir / "in/statefulset.yaml"), options(false)).yaml);
  const auto inits = out["spec"]["template"]["spec"]["initContainers"];
  ASSERT_EQ(inits.size(), 3u);
  EXPECT_EQ(inits[0]["name"].as<std::string>(), "outrigger-init");
  EXPECT_EQ(inits[1]["name"].as<std::string>(), "outrigger");
  EXPECT_EQ(inits[1]["restartPolicy"].as<std::string>(), "Always");
  EXPECT_EQ(inits[1]["startupProbe"]["httpGet"]["path"].as<std::string>(), "/ready");
  EXPECT_EQ(inits[2]["name"].as<std::string>(), "migrate");
  const auto caps = inits[0]["securityContext"]["capabilities"];
  EXPECT_EQ(caps["add"].size(), 2u);
  EXPECT_EQ(caps["drop"][0].as<std::string>(), "ALL");
  const auto proxy = inits[1]["securityContext"];
  EXPECT_EQ(proxy["runAsUser"].as<int>(), 2102);
  EXPECT_TRUE(proxy["runAsNonRoot"].as<bool>());
  EXPECT_TRUE(proxy["readOnlyRootFilesystem"].as<bool>());
  EXPECT_FALSE(proxy["allowPrivilegeEscalation"].as<bool>());
}

TEST(Inject, ClassicProxyComesFirstAndHoldsTheApplication) {
  const auto out = YAML::Load(inject(read(kDir / "in/pod.yaml"), options(true)).yaml);
  const auto spec = out["spec"];
  ASSERT_EQ(spec["containers"].size(), 2u);
  EXPECT_EQ(spec["containers"][0]["name"].as<std::string>(), "outrigger");
  EXPECT_FALSE(spec["containers"][0]["restartPolicy"]);
  EXPECT_EQ(spec["containers"][0]["lifecycle"]["postStart"]["exec"]["command"][1].as<std::string>(), "wait");
  EXPECT_EQ(spec["initContainers"].size(), 1u);
  EXPECT_EQ(out["metadata"]["annotations"]["prometheus.io/port"].as<std::string>(), "9901");
  EXPECT_EQ(out["metadata"]["annotations"]["outrigger.io/injected"].as<std::string>(), "classic");
}

TEST(Inject, AnnotationsChooseExclusionsConfigAndCertificates) {
  const auto out = YAML::Load(inject(read(kDir / "in/deployment.yaml"), options(false)).yaml);
  const auto spec = out["spec"]["template"]["spec"];
  std::string args;
  for (const auto& a : spec["initContainers"][0]["args"]) args += a.as<std::string>() + " ";
  EXPECT_NE(args.find("--exclude-outbound-ports 5432,6379 "), std::string::npos) << args;
  EXPECT_NE(args.find("--exclude-inbound-ports 22 "), std::string::npos) << args;
  EXPECT_NE(args.find("--exclude-outbound-cidrs 169.254.169.254/32,fd00::/8 "), std::string::npos) << args;
  const auto ds = YAML::Load(inject(read(kDir / "in/daemonset.yaml"), options(false)).yaml);
  const auto volumes = ds["spec"]["template"]["spec"]["volumes"];
  EXPECT_EQ(volumes[0]["configMap"]["name"].as<std::string>(), "agent-outrigger");
  EXPECT_EQ(volumes[1]["secret"]["secretName"].as<std::string>(), "agent-certs");
}

TEST(Inject, SkipsAndSaysWhy) {
  for (const char* file : {"opt-out.yaml", "host-network.yaml"}) {
    const auto input = read(kDir / "in" / file);
    const auto result = inject(input, options(false));
    EXPECT_EQ(result.error, "");
    ASSERT_EQ(result.notes.size(), 1u) << file;
    EXPECT_NE(result.notes[0].find("skipped"), std::string::npos) << result.notes[0];
    EXPECT_EQ(canonical(YAML::Load(result.yaml)), canonical(YAML::Load(input)));
  }
  const auto cron = inject(read(kDir / "in/cronjob.yaml"), options(false));
  ASSERT_EQ(cron.notes.size(), 1u);
  EXPECT_NE(cron.notes[0].find("CronJob/nightly: keeps its own prometheus.io"), std::string::npos);
  // A classic sidecar in a Job: the note says how the Job completes.
  const auto job = inject(read(kDir / "in/job.yaml"), options(true));
  ASSERT_EQ(job.notes.size(), 1u);
  EXPECT_NE(job.notes[0].find("Job/report: a classic sidecar keeps the pod running"), std::string::npos) << job.notes[0];
}

TEST(Inject, BadInputIsAnErrorWithTheLine) {
  auto r = inject("kind: Pod\nspec: [unclosed\n", options(false), "pod.yaml");
  EXPECT_EQ(r.yaml, "");
  EXPECT_TRUE(r.error.starts_with("pod.yaml:")) << r.error;
  r = inject("kind: Pod\nmetadata:\n  name: p\n  annotations: { outrigger.io/exclude-inbound-ports: \"22,http\" }\n"
             "spec:\n  containers: [{ name: a, image: b }]\n",
             options(false), "pod.yaml");
  EXPECT_EQ(r.error, "pod.yaml: Pod/p: annotation outrigger.io/exclude-inbound-ports: 'http' is not a port");
  r = inject("kind: Pod\nmetadata:\n  name: p\n  annotations: { outrigger.io/exclude-outbound-cidrs: 10.0.0.0/33 }\n"
             "spec:\n  containers: [{ name: a, image: b }]\n",
             options(false), "pod.yaml");
  EXPECT_TRUE(r.error.starts_with("pod.yaml: Pod/p: annotation outrigger.io/exclude-outbound-cidrs: ")) << r.error;
}

}  // namespace
}  // namespace outrigger::kube
