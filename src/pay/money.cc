#include "pay/money.h"

namespace kv::pay {

namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::optional<int64_t> ParseMoney(std::string_view text) {
  if (text.empty() || text.size() > kMoneyTextBytesMax) return std::nullopt;
  size_t i = 0;
  int64_t yuan = 0;
  // The integer part: "0", or 1..9 digits without a leading zero.
  const size_t int_start = i;
  while (i < text.size() && IsDigit(text[i])) {
    if (i - int_start == 9) return std::nullopt;  // a tenth digit
    yuan = yuan * 10 + (text[i] - '0');
    ++i;
  }
  const size_t int_len = i - int_start;
  if (int_len == 0) return std::nullopt;                           // ".5", "-1", "+1", " 1"
  if (int_len > 1 && text[int_start] == '0') return std::nullopt;  // "01", "00.5"
  int64_t fen = 0;
  if (i < text.size()) {
    if (text[i] != '.') return std::nullopt;  // "1,00", "1e3", "1 "
    ++i;
    const size_t frac_start = i;
    while (i < text.size() && IsDigit(text[i])) {
      if (i - frac_start == 2) return std::nullopt;  // "1.001"
      fen = fen * 10 + (text[i] - '0');
      ++i;
    }
    const size_t frac_len = i - frac_start;
    if (frac_len == 0 || i != text.size()) return std::nullopt;  // "1.", "1.0x"
    if (frac_len == 1) fen *= 10;                                // "1.1" is 1.10
  }
  return yuan * 100 + fen;
}

std::optional<std::string> MoneyToText(int64_t cents) {
  if (cents < 0 || cents > kMoneyCentsMax) return std::nullopt;
  std::string out = std::to_string(cents / 100);
  const int64_t fen = cents % 100;
  out.push_back('.');
  out.push_back(static_cast<char>('0' + fen / 10));
  out.push_back(static_cast<char>('0' + fen % 10));
  return out;
}

}  // namespace kv::pay
