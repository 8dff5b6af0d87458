#include "pay/money.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace kv::pay {
namespace {

TEST(ParseMoney, TheIssuesEdgeCases) {
  EXPECT_EQ(ParseMoney("0.01"), std::optional<int64_t>(1));
  EXPECT_EQ(ParseMoney("1.10"), std::optional<int64_t>(110));
  EXPECT_EQ(ParseMoney("99999.99"), std::optional<int64_t>(9'999'999));
  EXPECT_EQ(ParseMoney("1.1"), std::optional<int64_t>(110));
  EXPECT_EQ(ParseMoney("1,00"), std::nullopt);
  EXPECT_EQ(ParseMoney("-1"), std::nullopt);
  EXPECT_EQ(ParseMoney("1e3"), std::nullopt);
}

TEST(ParseMoney, AcceptsTheGrammar) {
  EXPECT_EQ(ParseMoney("0"), std::optional<int64_t>(0));
  EXPECT_EQ(ParseMoney("0.00"), std::optional<int64_t>(0));
  EXPECT_EQ(ParseMoney("0.5"), std::optional<int64_t>(50));
  EXPECT_EQ(ParseMoney("5"), std::optional<int64_t>(500));
  EXPECT_EQ(ParseMoney("12.34"), std::optional<int64_t>(1234));
  EXPECT_EQ(ParseMoney("10.05"), std::optional<int64_t>(1005));
  EXPECT_EQ(ParseMoney("100"), std::optional<int64_t>(10000));
  EXPECT_EQ(ParseMoney("999999999.99"), std::optional<int64_t>(kMoneyCentsMax));
  EXPECT_EQ(ParseMoney("123456789"), std::optional<int64_t>(12'345'678'900));
}

TEST(ParseMoney, RefusesEverythingElse) {
  for (const char* bad :
       {"",           " 1",    "1 ",    "+1",  "-0",   "1.",         ".5",
        ".",          "1.001", "01",    "00",  "00.1", "0x10",       "1e3",
        "1E3",        "1,00",  "1.0.0", "１",  "1\n",  "1000000000", "1000000000.00",
        "9999999999", "1.-1",  "1.+1",  "NaN", "inf",  "1_000",      "0.1 "}) {
    EXPECT_EQ(ParseMoney(bad), std::nullopt) << "'" << bad << "'";
  }
  EXPECT_EQ(ParseMoney(std::string("1\0", 2)), std::nullopt);
  EXPECT_EQ(ParseMoney(std::string(4096, '9')), std::nullopt);
}

TEST(MoneyToText, AlwaysTwoDecimals) {
  EXPECT_EQ(MoneyToText(0), std::optional<std::string>("0.00"));
  EXPECT_EQ(MoneyToText(1), std::optional<std::string>("0.01"));
  EXPECT_EQ(MoneyToText(10), std::optional<std::string>("0.10"));
  EXPECT_EQ(MoneyToText(110), std::optional<std::string>("1.10"));
  EXPECT_EQ(MoneyToText(9'999'999), std::optional<std::string>("99999.99"));
  EXPECT_EQ(MoneyToText(kMoneyCentsMax), std::optional<std::string>("999999999.99"));
  EXPECT_EQ(MoneyToText(kMoneyCentsMax + 1), std::nullopt);
  EXPECT_EQ(MoneyToText(-1), std::nullopt);
}

TEST(Money, RoundTripsEveryCentOfTheFirstHundredYuanAndTheEdges) {
  for (int64_t c = 0; c <= 10'000; ++c) {
    const auto text = MoneyToText(c);
    ASSERT_TRUE(text.has_value()) << c;
    EXPECT_EQ(ParseMoney(*text), std::optional<int64_t>(c)) << *text;
  }
  for (int64_t c : {kMoneyCentsMax, kMoneyCentsMax - 1, int64_t{9'999'999}, int64_t{100'000'000}}) {
    EXPECT_EQ(ParseMoney(*MoneyToText(c)), std::optional<int64_t>(c)) << c;
  }
}

}  // namespace
}  // namespace kv::pay
