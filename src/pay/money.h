// EPay money text <-> integer cents, exactly (no floating point ever touches an amount).
//
// The EPay protocol sends and takes an amount of yuan as decimal text ("12.34", "1.1",
// "5"). keyvend keeps every amount as an integer count of the currency's minor unit (fen
// for CNY), so the text is parsed digit by digit:
//
//   money = ( "0" | [1-9] [0-9]{0,8} ) [ "." [0-9]{1,2} ]
//
// that is at most 999999999.99 yuan (99'999'999'999 cents, far inside int64_t). Refused:
// "" , " 1", "1 ", "+1", "-1", "1,00", "1e3", "1.", ".5", "1.001", "01", "0x10", any other
// byte. Thread-safe (pure functions).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace kv::pay {

// The largest amount MoneyToText writes and ParseMoney accepts: 999'999'999.99 yuan.
inline constexpr int64_t kMoneyCentsMax = int64_t{99'999'999'999};
// Text longer than this is refused before it is looked at: 9 digits, ".", 2 digits.
inline constexpr size_t kMoneyTextBytesMax = 12;

// The amount in cents, or nullopt when `text` is not of the grammar above ("1.1" = 110,
// "0.01" = 1, "99999.99" = 9'999'999, "0" = 0).
std::optional<int64_t> ParseMoney(std::string_view text);

// Cents as EPay money text, always with two decimals (110 -> "1.10", 1 -> "0.01", 0 ->
// "0.00"), or nullopt when cents is negative or above kMoneyCentsMax.
std::optional<std::string> MoneyToText(int64_t cents);

}  // namespace kv::pay
