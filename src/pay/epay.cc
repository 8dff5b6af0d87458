// The EPay adapter. Protocol (the 彩虹易支付 / "epay" SDK v1 MD5 protocol, as most
// aggregators speak it; notes in ARCHITECTURE.md, "Payments"):
//
//   start   GET {base}/submit.php?money=..&name=..&notify_url=..&out_trade_no=..&pid=..
//           &return_url=..&type=..&sign=..&sign_type=MD5
//   notify  GET or POST (x-www-form-urlencoded) to notify_url: pid, trade_no, out_trade_no,
//           type, name, money, trade_status[, param], sign, sign_type; answer "success"
//   query   GET {base}/api.php?act=order&pid=..&key=..&out_trade_no=.. -> JSON
//
//   sign = lowercase hex MD5( "k1=v1&k2=v2&..." + key ) over every parameter with a
//          non-empty value except sign and sign_type, sorted by key (byte order), values as
//          they are (not url-encoded).
#include "pay/epay.h"

#include <openssl/evp.h>

#include <algorithm>
#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/secret.h"
#include "base/utf8.h"
#include "httplib.h"
#include "pay/money.h"
#include "simdjson.h"

namespace kv::pay {

namespace {

// What a notify may carry (the edge bounded the request already; these bound what this
// adapter looks at). A real notify has about ten short parameters.
constexpr size_t kNotifyParamsMax = 32;
constexpr size_t kNotifyKeyBytesMax = 64;
constexpr size_t kNotifyValueBytesMax = 1'024;
constexpr size_t kNotifyFormBytesMax = 16 * 1'024;
static_assert(kNotifyParamsMax * (kNotifyKeyBytesMax + kNotifyValueBytesMax) >=
              kNotifyFormBytesMax);
// The product name sent to the gateway (its page shows it), cut at a UTF-8 boundary.
constexpr size_t kNameBytesMax = 120;
// The query API's answer: a small JSON object; anything bigger is not one.
constexpr size_t kQueryAnswerBytesMax = 64 * 1'024;
constexpr size_t kMd5HexBytes = 32;

using Params = std::map<std::string, std::string>;  // sorted by key, byte order

std::string Md5Hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_md5(), nullptr) != 1) return {};
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[md[i] >> 4]);
    out.push_back(kHex[md[i] & 0xf]);
  }
  return out;
}

// "k1=v1&k2=v2..." over the signed parameters (non-empty, not sign/sign_type), sorted.
std::string LinkString(const Params& p) {
  std::string out;
  for (const auto& [k, v] : p) {
    if (v.empty() || k == "sign" || k == "sign_type") continue;
    if (!out.empty()) out.push_back('&');
    absl::StrAppend(&out, k, "=", v);
  }
  return out;
}

std::string Sign(const Params& p, std::string_view key) {
  return Md5Hex(absl::StrCat(LinkString(p), absl::string_view(key.data(), key.size())));
}

// RFC 3986 percent-encoding of everything but the unreserved characters.
std::string UrlEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding of one name or value ("+" is a space). False
// on a broken escape ("%4", "%zz"): a gateway does not send one.
bool FormDecode(std::string_view s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '+') {
      out->push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= s.size()) return false;
      const int hi = HexValue(s[i + 1]);
      const int lo = HexValue(s[i + 2]);
      if (hi < 0 || lo < 0) return false;
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

// Adds one parameter; false (with *why) when it breaks a bound or repeats a name (a
// gateway never sends a name twice; which one was signed would be a guess).
bool AddParam(std::string key, std::string value, Params* p, const char** why) {
  if (key.size() > kNotifyKeyBytesMax || value.size() > kNotifyValueBytesMax) {
    *why = "a notify parameter is too long";
    return false;
  }
  if (p->size() >= kNotifyParamsMax) {
    *why = "too many notify parameters";
    return false;
  }
  if (!p->emplace(std::move(key), std::move(value)).second) {
    *why = "a notify parameter appears twice";
    return false;
  }
  return true;
}

// A form body: "a=1&b=2". Empty pieces ("a=1&&b=2") are skipped; a piece without "=" is a
// name with an empty value.
bool ParseForm(std::string_view body, Params* p, const char** why) {
  if (body.size() > kNotifyFormBytesMax) {
    *why = "the notify body is too large";
    return false;
  }
  std::string key, value;
  while (!body.empty()) {
    const size_t amp = body.find('&');
    const std::string_view piece = body.substr(0, amp);
    body = amp == std::string_view::npos ? std::string_view() : body.substr(amp + 1);
    if (piece.empty()) continue;
    const size_t eq = piece.find('=');
    if (!FormDecode(piece.substr(0, eq), &key) ||
        !FormDecode(eq == std::string_view::npos ? std::string_view() : piece.substr(eq + 1),
                    &value)) {
      *why = "a notify parameter has a broken %-escape";
      return false;
    }
    if (key.empty()) continue;
    if (!AddParam(key, value, p, why)) return false;
  }
  return true;
}

// The name shown on the gateway's page: control characters become spaces, bytes that are
// not UTF-8 become '?', and it is cut at a character boundary within kNameBytesMax.
std::string SafeName(std::string_view name, std::string_view fallback) {
  std::string out;
  while (!name.empty()) {
    char32_t cp = 0;
    const size_t n = Utf8SequenceLength(name, &cp);
    std::string_view piece;
    char replacement = 0;
    if (n == 0) {
      replacement = '?';
      name.remove_prefix(1);
    } else {
      if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0)) {
        replacement = ' ';
      } else {
        piece = name.substr(0, n);
      }
      name.remove_prefix(n);
    }
    const size_t add = replacement != 0 ? 1 : piece.size();
    if (out.size() + add > kNameBytesMax) break;
    if (replacement != 0) {
      out.push_back(replacement);
    } else {
      out.append(piece);
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  while (!out.empty() && out.front() == ' ') out.erase(out.begin());
  if (out.empty()) out.assign(fallback);
  return out;
}

bool IsAlnum(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c));
  });
}

// A JSON value that is a string or a number, as text (a number's own digits: no double).
bool JsonText(simdjson::dom::element e, std::string* out) {
  std::string_view s;
  if (e.get_string().get(s) == simdjson::SUCCESS) {
    out->assign(s);
    return true;
  }
  int64_t i = 0;
  if (e.get_int64().get(i) == simdjson::SUCCESS) {
    *out = std::to_string(i);
    return true;
  }
  uint64_t u = 0;
  if (e.get_uint64().get(u) == simdjson::SUCCESS) {
    *out = std::to_string(u);
    return true;
  }
  return false;
}

class EpayGateway final : public Gateway {
 public:
  EpayGateway(EpayOptions opts, net::HttpClient* http) : opts_(std::move(opts)), http_(http) {}

  std::string_view name() const override { return "epay"; }
  std::vector<std::string> methods() const override { return opts_.types; }
  bool SupportsCurrency(std::string_view currency) const override { return currency == "CNY"; }

  absl::StatusOr<PayStart> Start(const PayOrder& order) override {
    if (order.currency != "CNY") {
      return absl::InvalidArgumentError("epay takes CNY only");
    }
    if (!order.method.empty() &&
        std::find(opts_.types.begin(), opts_.types.end(), order.method) == opts_.types.end()) {
      return absl::InvalidArgumentError("epay: this pay method is not offered");
    }
    if (order.amount_cents <= 0) {
      return absl::InvalidArgumentError("epay: the amount must be at least 0.01");
    }
    const std::optional<std::string> money = MoneyToText(order.amount_cents);
    if (!money.has_value()) return absl::InvalidArgumentError("epay: the amount is too large");
    if (!IsAlnum(order.order_id) || order.order_id.size() > 64) {
      return absl::InvalidArgumentError("epay: the order id is not alphanumeric");
    }
    Params p;
    p["pid"] = opts_.pid;
    // No type: 彩虹易支付 shows its own cashier page, where the buyer chooses.
    if (!order.method.empty()) p["type"] = order.method;
    p["out_trade_no"] = order.order_id;
    p["notify_url"] = order.notify_url;
    p["return_url"] = order.return_url;
    p["name"] = SafeName(order.product_name, order.order_id);
    p["money"] = *money;
    const std::string sign = Sign(p, opts_.key);
    std::string url = absl::StrCat(opts_.base_url, "/submit.php?");
    for (const auto& [k, v] : p) {
      if (v.empty()) continue;
      absl::StrAppend(&url, k, "=", UrlEncode(v), "&");
    }
    absl::StrAppend(&url, "sign=", sign, "&sign_type=MD5");
    return PayStart{std::move(url), ""};
  }

  NotifyVerdict ParseNotify(const httplib::Request& req, absl::Time /*now*/) const override {
    NotifyVerdict v;
    v.kind = NotifyKind::kRejected;
    Params p;
    const char* why = "";
    for (const auto& [k, val] : req.params) {
      if (!AddParam(k, val, &p, &why)) {
        v.reason = why;
        return v;
      }
    }
    if (req.method == "POST" && !req.body.empty()) {
      const std::string ct = absl::AsciiStrToLower(req.get_header_value("Content-Type"));
      if (!absl::StartsWith(ct, "application/x-www-form-urlencoded")) {
        v.reason = "the notify body is not a form";
        return v;
      }
      if (!ParseForm(req.body, &p, &why)) {
        v.reason = why;
        return v;
      }
    }
    // 1. The signature, before anything else is believed.
    const auto sign_it = p.find("sign");
    if (sign_it == p.end() || sign_it->second.size() != kMd5HexBytes) {
      v.reason = "no or malformed sign";
      return v;
    }
    const std::string got = absl::AsciiStrToLower(sign_it->second);
    const std::string want = Sign(p, opts_.key);
    if (want.size() != kMd5HexBytes || !SecretEquals(got, want)) {
      v.reason = "bad sign";
      return v;
    }
    // 2. This merchant's.
    const auto field = [&p](const char* name) -> std::string {
      const auto it = p.find(name);
      return it == p.end() ? std::string() : it->second;
    };
    if (field("pid") != opts_.pid) {
      v.reason = "pid is not this merchant's";
      return v;
    }
    // 3. Money received?
    if (field("trade_status") != "TRADE_SUCCESS") {
      v.kind = NotifyKind::kIgnored;
      v.reason = "trade_status is not TRADE_SUCCESS";
      return v;
    }
    // 4. A usable payment, or a malformed one (authentic: recorded, never paid).
    const std::string trade_no = field("trade_no");
    const std::string order_id = field("out_trade_no");
    const std::string money = field("money");
    const std::string payment_id = trade_no.empty() ? std::string() : "epay:" + trade_no;
    std::string problem;
    std::optional<int64_t> cents;
    if (trade_no.empty()) {
      problem = "trade_no is missing";
    } else if (!ValidPaymentId(payment_id)) {
      problem = "trade_no is not a valid payment id";
    } else if (order_id.empty()) {
      problem = "out_trade_no is missing";
    } else if (cents = ParseMoney(money); !cents.has_value()) {
      problem = "money is not an amount of yuan with at most two decimals";
    }
    if (!problem.empty()) {
      v.kind = NotifyKind::kMalformed;
      v.malformed.raw_body = LinkString(p);
      v.malformed.payment_id = payment_id;
      v.malformed.order_id = order_id;
      v.malformed.currency = "CNY";
      v.malformed.problem = std::move(problem);
      return v;
    }
    v.kind = NotifyKind::kPayment;
    v.notice.order_id = order_id;
    v.notice.payment_id = payment_id;
    v.notice.amount_cents = *cents;
    v.notice.currency = "CNY";
    return v;
  }

  NotifyReply Reply(bool accepted) const override {
    if (accepted) return NotifyReply{200, "text/plain", "success"};
    return NotifyReply{400, "text/plain", "fail"};
  }

  QueryResult Query(std::string_view order_id, std::string_view /*ref*/) override {
    QueryResult r;
    r.state = QueryState::kUnknown;
    net::HttpRequest req;
    req.method = "GET";
    req.url = absl::StrCat(opts_.base_url, "/api.php?act=order&pid=", UrlEncode(opts_.pid),
                           "&key=", UrlEncode(opts_.key), "&out_trade_no=", UrlEncode(order_id));
    absl::StatusOr<net::HttpResponse> res = http_->Do(req, opts_.limits);
    if (!res.ok()) {
      // The status names the URL's host at most; never the key (it is in the query).
      r.error = absl::StrCat("epay query failed: ", absl::StatusCodeToString(res.status().code()));
      return r;
    }
    if (res->status != 200) {
      r.error = absl::StrCat("epay query answered HTTP ", res->status);
      return r;
    }
    if (res->body.size() > kQueryAnswerBytesMax) {
      r.error = "epay query answer too large";
      return r;
    }
    simdjson::dom::parser parser;
    simdjson::padded_string body(res->body);
    simdjson::dom::object root;
    if (parser.parse(body).get(root) != simdjson::SUCCESS) {
      r.error = "epay query answer is not a JSON object";
      return r;
    }
    std::string code;
    simdjson::dom::element e;
    if (root["code"].get(e) != simdjson::SUCCESS || !JsonText(e, &code)) {
      r.error = "epay query answer has no code";
      return r;
    }
    if (code != "1") {
      r.error = "epay does not know the order (code != 1)";
      return r;
    }
    std::string out_trade_no, status, pid;
    if (root["out_trade_no"].get(e) != simdjson::SUCCESS || !JsonText(e, &out_trade_no) ||
        out_trade_no != order_id) {
      r.error = "epay query answer names another order";
      return r;
    }
    if (root["pid"].get(e) == simdjson::SUCCESS && (!JsonText(e, &pid) || pid != opts_.pid)) {
      r.error = "epay query answer names another merchant";
      return r;
    }
    if (root["status"].get(e) != simdjson::SUCCESS || !JsonText(e, &status)) {
      r.error = "epay query answer has no status";
      return r;
    }
    if (status != "1") {
      r.state = QueryState::kNotPaid;
      return r;
    }
    std::string trade_no;
    if (root["trade_no"].get(e) != simdjson::SUCCESS || !JsonText(e, &trade_no) ||
        trade_no.empty() || !ValidPaymentId("epay:" + trade_no)) {
      r.error = "epay query answer has no usable trade_no";
      return r;
    }
    // Money is a string ("1.00"); a JSON number would have been through a double in the
    // parser, so it is refused rather than guessed at.
    std::optional<int64_t> cents;
    std::string_view money_text;
    if (root["money"].get(e) == simdjson::SUCCESS &&
        e.get_string().get(money_text) == simdjson::SUCCESS) {
      cents = ParseMoney(money_text);
    }
    if (!cents.has_value()) {
      r.error = "epay query answer has no usable money";
      return r;
    }
    r.state = QueryState::kPaid;
    r.notice.order_id = std::string(order_id);
    r.notice.payment_id = "epay:" + trade_no;
    r.notice.amount_cents = *cents;
    r.notice.currency = "CNY";
    return r;
  }

 private:
  const EpayOptions opts_;
  net::HttpClient* const http_;
};

}  // namespace

std::unique_ptr<Gateway> MakeEpayGateway(EpayOptions opts, net::HttpClient* http) {
  // "https://pay.example.com/" and "https://pay.example.com" are the same site.
  while (!opts.base_url.empty() && opts.base_url.back() == '/') opts.base_url.pop_back();
  return std::make_unique<EpayGateway>(std::move(opts), http);
}

}  // namespace kv::pay
