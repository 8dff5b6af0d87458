// The storefront's and the admin console's languages (issue 12): which one a request gets
// from its Accept-Language header. The page's own switcher overrides it in the browser.
#pragma once

#include <string_view>

namespace kv::web {

enum class Lang { kEn = 0, kZhCn = 1 };
inline constexpr int kLangCount = 2;

// "en" or "zh-CN": the value of <html lang> and the name of the language table.
const char* LangTag(Lang l);

// The best of our languages for an Accept-Language value (RFC 9110 §12.5.4): the
// highest-q range that names one of them ("zh", "zh-CN", "zh-Hans-CN", ... → zh-CN;
// "en", "en-GB", ... → en), the earlier on a tie; "*" or nothing we have → en. Hostile
// input (garbage, huge q, thousands of ranges) only ever yields a language; the head's own
// limits bound its size.
Lang PickLanguage(std::string_view accept_language);

// The q of one Accept-* element from the parameters after its first ';' ("q=0.5"): 1 when
// absent, -1 when malformed (not a number of at most 5 characters in [0, 1]). Shared by
// PickLanguage and AcceptsGzip (assets.h).
double QValue(std::string_view params);

}  // namespace kv::web
