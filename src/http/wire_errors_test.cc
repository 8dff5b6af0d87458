// The wire error table (its order is a static_assert in the header): one row per code, and every
// domain refusal travels with its own name (RefusalCode) as its code.
#include "http/wire_errors.h"

#include <set>

#include "gtest/gtest.h"

namespace kv::http {
namespace {

TEST(WireErrors, RowsHaveUniqueCodesAndErrorStatuses) {
  std::set<std::string_view> codes;
  for (size_t i = 0; i < std::size(kWireErrors); ++i) {
    const WireErrorRow& row = kWireErrors[i];
    EXPECT_TRUE(codes.insert(row.code).second) << "duplicate code " << row.code;
    EXPECT_GE(row.status, 400) << row.code;
    EXPECT_LT(row.status, 600) << row.code;
    EXPECT_FALSE(row.meaning.empty()) << row.code;
    for (char ch : row.code) EXPECT_TRUE((ch >= 'a' && ch <= 'z') || ch == '_') << row.code;
  }
}

TEST(WireErrors, EveryRefusalTravelsAsItsOwnName) {
  for (uint8_t n = 1; n <= static_cast<uint8_t>(Refusal::kRateLimited); ++n) {
    const auto r = static_cast<Refusal>(n);
    EXPECT_EQ(RowOf(WireFor(r)).code, RefusalCode(r)) << int{n};
  }
}

TEST(WireErrors, MakeErrorTakesStatusAndCodeFromTheTable) {
  const HttpError e = MakeError(Wire::kOverloaded, "busy", 3);
  EXPECT_EQ(e.status, 503);
  EXPECT_EQ(e.code, "overloaded");
  EXPECT_EQ(e.message, "busy");
  EXPECT_EQ(e.retry_after_seconds, 3);
}

}  // namespace
}  // namespace kv::http
