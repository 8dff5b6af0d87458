#include "outbound/mail_template.h"

#include <sys/stat.h>

#include <fstream>
#include <iterator>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "base/utf8.h"
#include "outbound/mail_template_embedded.h"

namespace kv::outbound {
namespace {

constexpr const char* kLanguages[2] = {"en", "zh-CN"};
constexpr const char* kStems[2] = {"order_delivered", "order_delivered_link"};

std::string FileName(int kind, int lang) {
  return absl::StrCat(kStems[kind], ".", kLanguages[lang], ".txt");
}

// Substitutes the known placeholders in one left-to-right pass.
std::string Substitute(std::string_view text, const MailFields& f, bool with_keys, bool one_line) {
  auto value = [&](std::string_view name, std::string* out) {
    if (name == "order_id") {
      *out = f.order_id;
    } else if (name == "product") {
      *out = f.product;
    } else if (name == "quantity") {
      *out = absl::StrCat(f.quantity);
    } else if (name == "order_url") {
      *out = f.order_url;
    } else if (name == "keys" && with_keys) {
      *out = absl::StrJoin(f.keys, "\n");
    } else {
      return false;
    }
    return true;
  };
  std::string out;
  out.reserve(text.size() + 256);
  while (!text.empty()) {
    const size_t open = text.find('{');
    if (open == std::string_view::npos) break;
    const size_t close = text.find('}', open + 1);
    if (close == std::string_view::npos) break;
    out.append(text.substr(0, open));
    std::string v;
    if (value(text.substr(open + 1, close - open - 1), &v)) {
      if (one_line) {
        for (char& c : v) {
          const auto u = static_cast<unsigned char>(c);
          if (u < 0x20 || u == 0x7f) c = ' ';
        }
      }
      out.append(v);
      text.remove_prefix(close + 1);
    } else {
      out.push_back('{');  // not ours: keep it and look again after the brace
      text.remove_prefix(open + 1);
    }
  }
  out.append(text);
  return out;
}

absl::Status Parse(const std::string& name, std::string text, int kind, std::string* subject,
                   std::string* body) {
  auto bad = [&](std::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("mail template ", name, ": ", std::string(why)));
  };
  if (text.size() > kMailTemplateBytesMax) return bad("too big");
  if (!IsValidUtf8(text)) return bad("not UTF-8");
  absl::StrReplaceAll({{"\r\n", "\n"}}, &text);
  const size_t nl = text.find('\n');
  if (nl == std::string::npos || nl == 0)
    return bad("want a subject line, an empty line, the body");
  if (text.compare(nl + 1, 1, "\n") != 0) return bad("the second line must be empty");
  *subject = std::string(absl::StripAsciiWhitespace(text.substr(0, nl)));
  *body = text.substr(nl + 2);
  if (subject->empty()) return bad("empty subject");
  if (absl::StrContains(*subject, "{keys}")) return bad("{keys} may not be in the subject");
  if (kind == 0 && !absl::StrContains(*body, "{keys}")) return bad("the body needs {keys}");
  if (kind == 1) {
    if (absl::StrContains(*body, "{keys}")) return bad("the link-only mail may not have {keys}");
    if (!absl::StrContains(*body, "{order_url}")) return bad("the body needs {order_url}");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MailTemplates> MailTemplates::Load(const std::string& override_dir) {
  MailTemplates m;
  for (int kind = 0; kind < 2; ++kind) {
    for (int lang = 0; lang < 2; ++lang) {
      const std::string name = FileName(kind, lang);
      std::string text;
      bool found = false;
      if (!override_dir.empty()) {
        const std::string path = absl::StrCat(override_dir, "/", name);
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0) {
          if (!S_ISREG(st.st_mode) || st.st_size > static_cast<off_t>(kMailTemplateBytesMax)) {
            return absl::InvalidArgumentError(absl::StrCat("mail template ", path,
                                                           ": not a regular file of at most ",
                                                           kMailTemplateBytesMax, " bytes"));
          }
          std::ifstream in(path, std::ios::binary);
          if (!in)
            return absl::InvalidArgumentError(absl::StrCat("mail template ", path, ": unreadable"));
          text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
          found = true;
        }
      }
      if (!found) {
        for (size_t i = 0; i < kEmbeddedMailTemplateCount; ++i) {
          if (name == kEmbeddedMailTemplates[i].name) {
            text.assign(reinterpret_cast<const char*>(kEmbeddedMailTemplates[i].bytes),
                        kEmbeddedMailTemplates[i].size);
            found = true;
          }
        }
      }
      if (!found)
        return absl::InternalError(absl::StrCat("mail template ", name, ": not built in"));
      Template& t = m.t_[kind][lang];
      if (absl::Status s = Parse(name, std::move(text), kind, &t.subject, &t.body); !s.ok()) {
        return s;
      }
    }
  }
  return m;
}

RenderedMail MailTemplates::Render(MailKind kind, std::string_view language,
                                   const MailFields& fields) const {
  const int k = kind == MailKind::kWithKeys ? 0 : 1;
  const int l =
      absl::StartsWithIgnoreCase(absl::string_view(language.data(), language.size()), "zh") ? 1 : 0;
  const Template& t = t_[k][l];
  RenderedMail r;
  r.subject = Substitute(t.subject, fields, /*with_keys=*/false, /*one_line=*/true);
  r.body = Substitute(t.body, fields, /*with_keys=*/k == 0, /*one_line=*/false);
  return r;
}

}  // namespace kv::outbound
