// One spelling per path (RFC 3986 §6.2.2), whatever escapes it holds.
#include "outrigger/http/path.hpp"

#include <gtest/gtest.h>

namespace outrigger::http {
namespace {

using config::EscapedSlashes;

// The normal form of a target, or "invalid" / "unchanged".
std::string normal(std::string_view target, EscapedSlashes action = EscapedSlashes::keep) {
  std::string out;
  switch (normalize_target(target, action, out)) {
    case TargetCheck::unchanged: return "unchanged";
    case TargetCheck::invalid: return "invalid";
    case TargetCheck::normalized: return out;
  }
  return "?";
}

TEST(TargetNormalization, LeavesNormalPathsAloneWithoutWork) {
  EXPECT_EQ(normal("/api/orders?x=1"), "unchanged");
  EXPECT_EQ(normal("/a/.hidden/b"), "unchanged");
  EXPECT_EQ(normal("/a/b/"), "unchanged");
  EXPECT_EQ(normal("*"), "unchanged");  // OPTIONS *
}

TEST(TargetNormalization, RemovesDotSegmentsAndMergesSlashes) {
  EXPECT_EQ(normal("/api/../admin"), "/admin");
  EXPECT_EQ(normal("/api/./x//y/../%7Ez?q=/../"), "/api/x/~z?q=/../");
  EXPECT_EQ(normal("/../../etc/passwd"), "/etc/passwd");
  EXPECT_EQ(normal("/x/..//public/%61"), "/public/a");
  EXPECT_EQ(normal("/a/b/.."), "/a/");
  EXPECT_EQ(normal("/a/."), "/a/");
  EXPECT_EQ(normal("//x"), "/x");
}

TEST(TargetNormalization, DecodesUnreservedCharactersAndUppercasesTheRest) {
  EXPECT_EQ(normal("/%61dmin"), "/admin");
  EXPECT_EQ(normal("/a%2db%5fc%7e"), "/a-b_c~");
  EXPECT_EQ(normal("/a%20b"), "unchanged");
  EXPECT_EQ(normal("/a%3cb"), "/a%3Cb");
  EXPECT_EQ(normal("/a/%2e%2e/b"), "/b");  // an encoded dot segment is still one
  EXPECT_EQ(normal("/a/%2E/b"), "/a/b");
}

TEST(TargetNormalization, RefusesWhatIsNotOriginForm) {
  EXPECT_EQ(normal("/a#frag"), "invalid");
  EXPECT_EQ(normal("/a?x#frag"), "invalid");
  EXPECT_EQ(normal("/a%zz"), "invalid");
  EXPECT_EQ(normal("/a%2"), "invalid");
  EXPECT_EQ(normal("/caf\xc3\xa9"), "invalid");
  EXPECT_EQ(normal("http://example/x/../y"), "invalid");  // the codec turns absolute-form into origin-form first
}

TEST(TargetNormalization, EncodedSlashesFollowTheListenerSetting) {
  // keep: data inside a segment; the dot segments around it still go.
  EXPECT_EQ(normal("/x/../admin/%2F"), "/admin/%2F");
  EXPECT_EQ(normal("/public/..%2Fprivate"), "unchanged");
  EXPECT_EQ(normal("/a%2fb"), "/a%2Fb");
  // reject
  EXPECT_EQ(normal("/a%2Fb", EscapedSlashes::reject), "invalid");
  EXPECT_EQ(normal("/a%5cb", EscapedSlashes::reject), "invalid");
  EXPECT_EQ(normal("/a%20b", EscapedSlashes::reject), "unchanged");
  // unescape: separators first, then normalisation
  EXPECT_EQ(normal("/public/..%2Fprivate", EscapedSlashes::unescape), "/private");
  EXPECT_EQ(normal("/a%2Fb", EscapedSlashes::unescape), "/a/b");
  EXPECT_EQ(normal("/a%5Cb", EscapedSlashes::unescape), "/a/b");
  // Found by path_fuzz: %5C became a raw '\', which is no valid target (and
  // hid "..\" segments from the normalisation).
  EXPECT_EQ(normal("/%2e%2E/%2e/x/%61%5c", EscapedSlashes::unescape), "/x/a/");
  EXPECT_EQ(normal("/a/b/..%5C..%5Cc", EscapedSlashes::unescape), "/c");
}

TEST(TargetNormalization, IsStable) {
  for (const char* t : {"/x/../admin/%2F", "/a/%2e%2e/b?q", "/%61/./b//c/", "/a%3cb", "/..%2F..%2Fx"}) {
    std::string once, twice;
    ASSERT_NE(normalize_target(t, EscapedSlashes::keep, once), TargetCheck::invalid) << t;
    if (once.empty()) once = t;
    EXPECT_EQ(normalize_target(once, EscapedSlashes::keep, twice), TargetCheck::unchanged) << t << " -> " << once;
  }
}

TEST(TargetNormalization, FindsEncodedSeparators) {
  EXPECT_TRUE(has_encoded_separator("/a%2fb"));
  EXPECT_TRUE(has_encoded_separator("/a%5Cb"));
  EXPECT_FALSE(has_encoded_separator("/a%20b"));
}

}  // namespace
}  // namespace outrigger::http
