// The notify signature (SPEC §4): one or several v1 values (secret rotation), the caps on
// their number and on the header, the timestamp window.
#include "http/signature.h"

#include <string>

#include "gtest/gtest.h"
#include "limits/limits.h"

namespace kv::http {
namespace {

constexpr int64_t kNow = 1'790'000'000;
constexpr int64_t kTolerance = 300;
constexpr char kSecret[] = "new-secret";
constexpr char kOld[] = "old-secret";
const std::string kBody = R"({"order_id":"x","payment_id":"p","amount_cents":1})";

// The v1 value of SignNotify's header.
std::string V1(std::string_view secret, int64_t t, std::string_view body) {
  const std::string h = SignNotify(secret, t, body);
  return h.substr(h.find(",v1=") + 4);
}

bool Verify(const std::string& header, std::string_view body = kBody) {
  return VerifyNotify(header, body, kSecret, kNow, kTolerance);
}

std::string Ts(int64_t t = kNow) { return "t=" + std::to_string(t); }

TEST(Signature, RoundTripAndWindow) {
  EXPECT_TRUE(Verify(SignNotify(kSecret, kNow, kBody)));
  EXPECT_TRUE(Verify(SignNotify(kSecret, kNow - kTolerance, kBody)));
  EXPECT_TRUE(Verify(SignNotify(kSecret, kNow + kTolerance, kBody)));
  EXPECT_FALSE(Verify(SignNotify(kSecret, kNow - kTolerance - 1, kBody)));
  EXPECT_FALSE(Verify(SignNotify(kSecret, kNow + kTolerance + 1, kBody)));
  EXPECT_FALSE(Verify(SignNotify(kOld, kNow, kBody)));
  EXPECT_FALSE(Verify(SignNotify(kSecret, kNow, kBody), kBody + " "));
  EXPECT_FALSE(VerifyNotify(SignNotify(kSecret, kNow, kBody), kBody, "", kNow, kTolerance));
  EXPECT_FALSE(Verify(""));
}

TEST(Signature, UppercaseHexAndSpacesAfterCommas) {
  std::string v1 = V1(kSecret, kNow, kBody);
  for (char& c : v1) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  EXPECT_TRUE(Verify(Ts() + ", v1=" + v1));
}

// Secret rotation (review finding 8): only the last v1 was checked, so a gateway that put
// the matching signature first was refused.
TEST(Signature, AnyOfSeveralV1ValuesMatches) {
  const std::string good = V1(kSecret, kNow, kBody);
  const std::string other = V1(kOld, kNow, kBody);
  EXPECT_TRUE(Verify(Ts() + ",v1=" + good + ",v1=" + other)) << "good first";
  EXPECT_TRUE(Verify(Ts() + ",v1=" + other + ",v1=" + good)) << "good last";
  EXPECT_TRUE(Verify(Ts() + ",v1=" + other + ",v1=" + good + ",v1=" + other)) << "good middle";
  EXPECT_TRUE(Verify("v1=" + other + "," + Ts() + ",v1=" + good)) << "t= between";
  EXPECT_FALSE(Verify(Ts() + ",v1=" + other + ",v1=" + other)) << "none matches";
  // A value of the wrong length simply does not match; another value still can.
  EXPECT_TRUE(Verify(Ts() + ",v1=00,v1=" + good + ",v1=" + good + "00"));
  EXPECT_FALSE(Verify(Ts() + ",v1=00,v1=" + good + "00,v1="));
  // Other schemes (Stripe sends v0=) are ignored, never taken as a v1.
  EXPECT_TRUE(Verify(Ts() + ",v0=" + other + ",v1=" + good));
  EXPECT_FALSE(Verify(Ts() + ",v0=" + good + ",v1=" + other));
  EXPECT_FALSE(Verify(Ts() + ",v0=" + good));
}

TEST(Signature, NumberOfV1ValuesAndHeaderAreCapped) {
  const std::string good = V1(kSecret, kNow, kBody);
  const std::string other = V1(kOld, kNow, kBody);
  std::string header = Ts();
  for (size_t i = 0; i + 1 < limits::kNotifySignaturesMax; ++i) header += ",v1=" + other;
  EXPECT_TRUE(Verify(header + ",v1=" + good)) << "exactly the cap";
  EXPECT_FALSE(Verify(header + ",v1=" + other + ",v1=" + good)) << "one over the cap";
  EXPECT_FALSE(Verify(Ts() + ",v1=" + good + header.substr(Ts().size()) + ",v1=" + other))
      << "over the cap, the good one first";
  // The header's length is capped whatever it holds.
  const std::string ok = Ts() + ",v1=" + good;
  const std::string pad(limits::kNotifySignatureHeaderBytesMax - ok.size() - 1, 'x');
  EXPECT_TRUE(Verify(ok + "," + pad)) << "exactly the header cap";
  EXPECT_FALSE(Verify(ok + "," + pad + "x")) << "one byte over the header cap";
}

TEST(Signature, MalformedTimestampsAreInvalid) {
  const std::string good = V1(kSecret, kNow, kBody);
  EXPECT_FALSE(Verify("v1=" + good)) << "no t=";
  EXPECT_FALSE(Verify(Ts() + ",v1=" + good + "," + Ts())) << "two t=";
  EXPECT_FALSE(Verify(Ts(kNow - 1) + "," + Ts() + ",v1=" + good)) << "two t=, good last";
  EXPECT_FALSE(Verify("t=+" + std::to_string(kNow) + ",v1=" + good));
  EXPECT_FALSE(Verify("t=,v1=" + good));
  EXPECT_FALSE(Verify("t=1790000000000,v1=" + good));
  EXPECT_FALSE(Verify(Ts()));
}

}  // namespace
}  // namespace kv::http
