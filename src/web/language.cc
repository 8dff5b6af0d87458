#include "web/language.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace kv::web {

const char* LangTag(Lang l) { return l == Lang::kZhCn ? "zh-CN" : "en"; }

double QValue(std::string_view params_std) {
  const absl::string_view params(params_std.data(), params_std.size());
  double q = 1.0;
  for (absl::string_view p : absl::StrSplit(params, ';', absl::SkipWhitespace())) {
    p = absl::StripAsciiWhitespace(p);
    if (!absl::StartsWithIgnoreCase(p, "q=")) continue;
    p.remove_prefix(2);
    if (p.empty() || p.size() > 5 || !absl::SimpleAtod(p, &q) || !(q >= 0.0 && q <= 1.0)) {
      return -1.0;
    }
  }
  return q;
}

Lang PickLanguage(std::string_view accept_language_std) {
  const absl::string_view accept_language(accept_language_std.data(), accept_language_std.size());
  Lang best = Lang::kEn;
  double best_q = 0.0;
  for (absl::string_view range : absl::StrSplit(accept_language, ',', absl::SkipWhitespace())) {
    const size_t semi = range.find(';');
    const absl::string_view tag = absl::StripAsciiWhitespace(range.substr(0, semi));
    const absl::string_view params = semi == absl::string_view::npos ? "" : range.substr(semi + 1);
    const double q = QValue(std::string_view(params.data(), params.size()));
    if (q <= best_q) continue;  // an earlier range wins a tie; q=0 means "not this"
    const absl::string_view primary = tag.substr(0, tag.find('-'));
    if (absl::EqualsIgnoreCase(primary, "zh")) {
      best = Lang::kZhCn;
      best_q = q;
    } else if (absl::EqualsIgnoreCase(primary, "en")) {
      best = Lang::kEn;
      best_q = q;
    }
  }
  return best;
}

}  // namespace kv::web
