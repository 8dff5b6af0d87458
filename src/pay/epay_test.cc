#include "pay/epay.h"

#include <openssl/evp.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/utf8.h"
#include "gtest/gtest.h"
#include "http/request_head.h"
#include "httplib.h"

namespace kv::pay {
namespace {

constexpr char kKey[] = "K3y";
constexpr char kOrderId[] = "0123456789abcdef0123456789abcdef";

// An in-process net::HttpClient: records what was asked and answers what the test set.
class FakeHttp final : public net::HttpClient {
 public:
  absl::StatusOr<net::HttpResponse> Do(const net::HttpRequest& req,
                                       const net::HttpLimits& /*limits*/) override {
    absl::MutexLock l(&mu_);
    requests_.push_back(req);
    return answer_;
  }
  void Answer(absl::StatusOr<net::HttpResponse> a) {
    absl::MutexLock l(&mu_);
    answer_ = std::move(a);
  }
  void AnswerJson(std::string body, int status = 200) {
    Answer(net::HttpResponse{status, "application/json", std::move(body)});
  }
  std::vector<net::HttpRequest> requests() {
    absl::MutexLock l(&mu_);
    return requests_;
  }

 private:
  absl::Mutex mu_;
  absl::StatusOr<net::HttpResponse> answer_ = absl::UnavailableError("no answer set");
  std::vector<net::HttpRequest> requests_;
};

std::string Md5Hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_md5(), nullptr);
  std::string out;
  for (unsigned int i = 0; i < len; ++i) absl::StrAppend(&out, absl::Hex(md[i], absl::kZeroPad2));
  return out;
}

// The gateway's side of the signature, written again here (sorted, non-empty, no
// sign/sign_type, raw values, key appended).
std::string SignOf(const std::map<std::string, std::string>& p, const std::string& key = kKey) {
  std::string s;
  for (const auto& [k, v] : p) {
    if (v.empty() || k == "sign" || k == "sign_type") continue;
    absl::StrAppend(&s, s.empty() ? "" : "&", k, "=", v);
  }
  return Md5Hex(s + key);
}

std::map<std::string, std::string> NotifyParams(std::string money = "12.34") {
  return {{"pid", "1001"},
          {"trade_no", "2026120321000001"},
          {"out_trade_no", kOrderId},
          {"type", "alipay"},
          {"name", "Steam"},
          {"money", std::move(money)},
          {"trade_status", "TRADE_SUCCESS"}};
}

std::map<std::string, std::string> Signed(std::map<std::string, std::string> p,
                                          const std::string& key = kKey) {
  p["sign"] = SignOf(p, key);
  p["sign_type"] = "MD5";
  return p;
}

httplib::Request GetRequest(const std::map<std::string, std::string>& p) {
  httplib::Request req;
  req.method = "GET";
  for (const auto& [k, v] : p) req.params.emplace(k, v);
  return req;
}

std::string FormEncode(const std::map<std::string, std::string>& p) {
  std::string body;
  for (const auto& [k, v] : p) {
    absl::StrAppend(&body, body.empty() ? "" : "&", k, "=", httplib::detail::encode_query_param(v));
  }
  return body;
}

httplib::Request PostRequest(std::string body,
                             std::string type = "application/x-www-form-urlencoded") {
  httplib::Request req;
  req.method = "POST";
  req.body = std::move(body);
  req.headers.emplace("Content-Type", std::move(type));
  return req;
}

// The query parameters of a URL (decoded), in the order they appear.
std::vector<std::pair<std::string, std::string>> QueryOf(const std::string& url) {
  httplib::Params params;
  const size_t q = url.find('?');
  if (q != std::string::npos) httplib::detail::parse_query_text(url.substr(q + 1), params);
  return {params.begin(), params.end()};
}

class EpayTest : public ::testing::Test {
 protected:
  EpayTest() {
    EpayOptions o;
    o.base_url = "https://pay.example.com";
    o.pid = "1001";
    o.key = kKey;
    o.types = {"alipay", "wxpay"};
    gw_ = MakeEpayGateway(std::move(o), &http_);
  }

  PayOrder Order() const {
    PayOrder o;
    o.order_id = kOrderId;
    o.amount_cents = 1234;
    o.currency = "CNY";
    o.product_name = "Steam 100元 卡 & more";
    o.method = "alipay";
    o.return_url = absl::StrCat("https://shop.example/order/", kOrderId);
    o.cancel_url = o.return_url;
    o.notify_url = "https://shop.example/api/v1/payments/epay/notify";
    return o;
  }

  NotifyVerdict Parse(const httplib::Request& req) const {
    return gw_->ParseNotify(req, absl::UnixEpoch());
  }

  FakeHttp http_;
  std::unique_ptr<Gateway> gw_;
};

TEST_F(EpayTest, Describes) {
  EXPECT_EQ(gw_->name(), "epay");
  EXPECT_EQ(gw_->methods(), (std::vector<std::string>{"alipay", "wxpay"}));
  EXPECT_TRUE(gw_->SupportsCurrency("CNY"));
  EXPECT_FALSE(gw_->SupportsCurrency("USD"));
  EXPECT_FALSE(gw_->SupportsCurrency("cny"));
}

// A known answer computed outside this code base (Python's hashlib and urllib.parse.quote).
TEST_F(EpayTest, StartBuildsTheSignedSubmitUrl) {
  auto s = gw_->Start(Order());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->ref, "");
  EXPECT_EQ(s->redirect_url,
            "https://pay.example.com/submit.php?money=12.34&name=Steam%20100%E5%85%83%20%E5%8D%"
            "A1%20%26%20more&notify_url=https%3A%2F%2Fshop.example%2Fapi%2Fv1%2Fpayments%2Fepay%"
            "2Fnotify&out_trade_no=0123456789abcdef0123456789abcdef&pid=1001&return_url=https%"
            "3A%2F%2Fshop.example%2Forder%2F0123456789abcdef0123456789abcdef&type=alipay&sign="
            "5b6cc4b201fa938839e79feb92d3674d&sign_type=MD5");
}

TEST_F(EpayTest, StartSignatureVerifiesLikeAGatewayWould) {
  for (int64_t cents : {1, 110, 9'999'999}) {
    PayOrder o = Order();
    o.amount_cents = cents;
    o.method = "wxpay";
    auto s = gw_->Start(o);
    ASSERT_TRUE(s.ok()) << s.status();
    std::map<std::string, std::string> p;
    for (auto& [k, v] : QueryOf(s->redirect_url)) p[k] = v;
    EXPECT_EQ(p["sign"], SignOf(p));
    EXPECT_EQ(p["sign_type"], "MD5");
    EXPECT_EQ(p["type"], "wxpay");
  }
  PayOrder o = Order();
  o.amount_cents = 110;
  auto s = gw_->Start(o);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(absl::StrContains(s->redirect_url, "money=1.10&")) << s->redirect_url;
}

TEST_F(EpayTest, StartWithoutAMethodLeavesTheChoiceToTheCashier) {
  PayOrder o = Order();
  o.method = "";
  auto s = gw_->Start(o);
  ASSERT_TRUE(s.ok()) << s.status();
  std::map<std::string, std::string> p;
  for (auto& [k, v] : QueryOf(s->redirect_url)) p[k] = v;
  EXPECT_EQ(p.count("type"), 0u);
  EXPECT_EQ(p["sign"], SignOf(p));
}

TEST_F(EpayTest, StartRefusesWhatEpayCannotTake) {
  PayOrder o = Order();
  o.currency = "USD";
  EXPECT_EQ(gw_->Start(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Order();
  o.method = "paypal";
  EXPECT_EQ(gw_->Start(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Order();
  o.amount_cents = 0;
  EXPECT_EQ(gw_->Start(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.amount_cents = -5;
  EXPECT_EQ(gw_->Start(o).status().code(), absl::StatusCode::kInvalidArgument);
  o.amount_cents = int64_t{1} << 50;
  EXPECT_EQ(gw_->Start(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Order();
  o.order_id = "abc&def";
  EXPECT_EQ(gw_->Start(o).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(http_.requests().empty());  // a start is a redirect, never a call
}

TEST_F(EpayTest, StartBoundsTheNameAtACharacterBoundary) {
  PayOrder o = Order();
  o.product_name.clear();
  for (int i = 0; i < 200; ++i) o.product_name += "元";  // 3 bytes each
  o.product_name += "\x01\xff";
  auto s = gw_->Start(o);
  ASSERT_TRUE(s.ok());
  std::map<std::string, std::string> p;
  for (auto& [k, v] : QueryOf(s->redirect_url)) p[k] = v;
  const std::string name = p["name"];
  EXPECT_GT(name.size(), 60u);
  EXPECT_LE(name.size(), 128u);
  EXPECT_EQ(name.size() % 3, 0u);
  for (std::string_view rest = name; !rest.empty();) {
    const size_t n = Utf8SequenceLength(rest);
    ASSERT_GT(n, 0u) << "the name was cut inside a character";
    rest.remove_prefix(n);
  }
  EXPECT_EQ(p["sign"], SignOf(p));

  o.product_name = "a\r\nb\x7f\xc3";  // control bytes and a truncated sequence
  s = gw_->Start(o);
  ASSERT_TRUE(s.ok());
  p.clear();
  for (auto& [k, v] : QueryOf(s->redirect_url)) p[k] = v;
  EXPECT_EQ(p["name"], "a  b ?");
  o.product_name = "\n\t";
  s = gw_->Start(o);
  ASSERT_TRUE(s.ok());
  p.clear();
  for (auto& [k, v] : QueryOf(s->redirect_url)) p[k] = v;
  EXPECT_EQ(p["name"], kOrderId);
}

// --- notify ---------------------------------------------------------------------------------

TEST_F(EpayTest, KnownAnswerNotifyByGet) {
  auto p = NotifyParams();
  p["sign"] = "0ec7c117d5aaeb3fddd581add950e431";  // Python's hashlib, outside this code base
  p["sign_type"] = "MD5";
  const NotifyVerdict v = Parse(GetRequest(p));
  ASSERT_EQ(v.kind, NotifyKind::kPayment) << v.reason;
  EXPECT_EQ(v.notice.order_id, kOrderId);
  EXPECT_EQ(v.notice.payment_id, "epay:2026120321000001");
  EXPECT_EQ(v.notice.amount_cents, 1234);
  EXPECT_EQ(v.notice.currency, "CNY");
}

TEST_F(EpayTest, NotifyByPostForm) {
  auto p = NotifyParams();
  p["name"] = "Steam 100元 卡 & more=+%";
  p["param"] = "";
  const NotifyVerdict v = Parse(PostRequest(FormEncode(Signed(p))));
  ASSERT_EQ(v.kind, NotifyKind::kPayment) << v.reason;
  EXPECT_EQ(v.notice.amount_cents, 1234);
  // A charset parameter and other casing are the same form.
  const NotifyVerdict v2 =
      Parse(PostRequest(FormEncode(Signed(p)), "Application/X-WWW-Form-Urlencoded; charset=UTF-8"));
  EXPECT_EQ(v2.kind, NotifyKind::kPayment) << v2.reason;
}

TEST_F(EpayTest, AnUpperCaseSignIsTheSameSign) {
  auto p = Signed(NotifyParams());
  p["sign"] = absl::AsciiStrToUpper(p["sign"]);
  EXPECT_EQ(Parse(GetRequest(p)).kind, NotifyKind::kPayment);
}

TEST_F(EpayTest, ForgedNotifiesAreRejected) {
  // Signed with another key.
  EXPECT_EQ(Parse(GetRequest(Signed(NotifyParams(), "other"))).kind, NotifyKind::kRejected);
  // A signed value changed afterwards.
  auto p = Signed(NotifyParams());
  p["money"] = "0.01";
  EXPECT_EQ(Parse(GetRequest(p)).kind, NotifyKind::kRejected);
  // A parameter added afterwards.
  p = Signed(NotifyParams());
  p["param"] = "x";
  EXPECT_EQ(Parse(GetRequest(p)).kind, NotifyKind::kRejected);
  // A signed parameter removed.
  p = Signed(NotifyParams());
  p.erase("type");
  EXPECT_EQ(Parse(GetRequest(p)).kind, NotifyKind::kRejected);
  // No sign, an empty one, a short one, one with a flipped digit.
  p = Signed(NotifyParams());
  p.erase("sign");
  EXPECT_EQ(Parse(GetRequest(p)).kind, NotifyKind::kRejected);
  p["sign"] = "";
  EXPECT_EQ(Parse(GetRequest(p)).kind, NotifyKind::kRejected);
  p = Signed(NotifyParams());
  p["sign"].pop_back();
  EXPECT_EQ(Parse(GetRequest(p)).kind, NotifyKind::kRejected);
  p = Signed(NotifyParams());
  p["sign"][31] = p["sign"][31] == '0' ? '1' : '0';
  EXPECT_EQ(Parse(GetRequest(p)).kind, NotifyKind::kRejected);
  // An empty request.
  EXPECT_EQ(Parse(GetRequest({})).kind, NotifyKind::kRejected);
  EXPECT_EQ(Parse(PostRequest("")).kind, NotifyKind::kRejected);
}

TEST_F(EpayTest, AnotherMerchantsNotifyIsRejectedEvenWhenSigned) {
  auto p = NotifyParams();
  p["pid"] = "1002";
  const NotifyVerdict v = Parse(GetRequest(Signed(p)));
  EXPECT_EQ(v.kind, NotifyKind::kRejected);
  EXPECT_FALSE(v.reason.empty());
  p.erase("pid");
  EXPECT_EQ(Parse(GetRequest(Signed(p))).kind, NotifyKind::kRejected);
}

TEST_F(EpayTest, OtherTradeStatesAreIgnored) {
  for (const char* st : {"WAIT_BUYER_PAY", "TRADE_CLOSED", "TRADE_FINISHED", "trade_success", ""}) {
    auto p = NotifyParams();
    p["trade_status"] = st;
    const NotifyVerdict v = Parse(GetRequest(Signed(p)));
    EXPECT_EQ(v.kind, NotifyKind::kIgnored) << st;
  }
  // ... but only once the sign is good.
  auto p = NotifyParams();
  p["trade_status"] = "TRADE_CLOSED";
  EXPECT_EQ(Parse(GetRequest(Signed(p, "other"))).kind, NotifyKind::kRejected);
}

TEST_F(EpayTest, MoneyEdgeCases) {
  const std::pair<const char*, int64_t> good[] = {
      {"0.01", 1}, {"1.10", 110}, {"99999.99", 9'999'999}, {"1.1", 110}};
  for (const auto& [money, cents] : good) {
    const NotifyVerdict v = Parse(GetRequest(Signed(NotifyParams(money))));
    ASSERT_EQ(v.kind, NotifyKind::kPayment) << money << ": " << v.reason;
    EXPECT_EQ(v.notice.amount_cents, cents) << money;
  }
  for (const char* money : {"1,00", "-1", "1e3", "1.", ".5", "1.001", "01", " 1", "abc"}) {
    const NotifyVerdict v = Parse(GetRequest(Signed(NotifyParams(money))));
    ASSERT_EQ(v.kind, NotifyKind::kMalformed) << money;
    EXPECT_EQ(v.malformed.payment_id, "epay:2026120321000001");
    EXPECT_EQ(v.malformed.order_id, kOrderId);
    EXPECT_EQ(v.malformed.currency, "CNY");
    EXPECT_EQ(v.malformed.amount_cents, 0);
    EXPECT_TRUE(absl::StrContains(v.malformed.problem, "money")) << v.malformed.problem;
    EXPECT_FALSE(absl::StrContains(v.malformed.problem, money)) << "names the value";
    EXPECT_TRUE(absl::StrContains(v.malformed.raw_body, "out_trade_no=")) << v.malformed.raw_body;
    EXPECT_FALSE(absl::StrContains(v.malformed.raw_body, kKey));
  }
  // A missing money is an empty one: not signed, and malformed.
  auto p = NotifyParams();
  p.erase("money");
  EXPECT_EQ(Parse(GetRequest(Signed(p))).kind, NotifyKind::kMalformed);
}

TEST_F(EpayTest, UnusableTradeNumbersAreMalformed) {
  for (const char* trade_no : {"", "has space", "\xe5\x85\x83"}) {
    auto p = NotifyParams();
    p["trade_no"] = trade_no;
    const NotifyVerdict v = Parse(GetRequest(Signed(p)));
    EXPECT_EQ(v.kind, NotifyKind::kMalformed) << trade_no;
    EXPECT_FALSE(v.malformed.problem.empty());
  }
  auto p = NotifyParams();
  p["trade_no"] = std::string(200, '7');
  EXPECT_EQ(Parse(GetRequest(Signed(p))).kind, NotifyKind::kMalformed);
  p = NotifyParams();
  p.erase("out_trade_no");
  EXPECT_EQ(Parse(GetRequest(Signed(p))).kind, NotifyKind::kMalformed);
}

TEST_F(EpayTest, HostileShapesAreRejected) {
  // The same name in the query and in the body: which one was signed would be a guess.
  auto p = Signed(NotifyParams());
  httplib::Request req = PostRequest(FormEncode(p));
  req.params.emplace("money", "0.01");
  EXPECT_EQ(Parse(req).kind, NotifyKind::kRejected);
  // A body that is not a form.
  EXPECT_EQ(Parse(PostRequest(FormEncode(p), "application/json")).kind, NotifyKind::kRejected);
  EXPECT_EQ(Parse(PostRequest(FormEncode(p), "")).kind, NotifyKind::kRejected);
  // Broken escapes.
  for (const char* tail : {"&x=%", "&x=%4", "&x=%zz", "&%G0=1"}) {
    EXPECT_EQ(Parse(PostRequest(FormEncode(p) + tail)).kind, NotifyKind::kRejected) << tail;
  }
  // Too many parameters, a huge value, a huge name, a huge body.
  auto many = NotifyParams();
  for (int i = 0; i < 40; ++i) many["x" + std::to_string(i)] = "1";
  EXPECT_EQ(Parse(PostRequest(FormEncode(Signed(many)))).kind, NotifyKind::kRejected);
  auto big = NotifyParams();
  big["name"] = std::string(5000, 'n');
  EXPECT_EQ(Parse(GetRequest(Signed(big))).kind, NotifyKind::kRejected);
  big = NotifyParams();
  big[std::string(500, 'k')] = "1";
  EXPECT_EQ(Parse(GetRequest(Signed(big))).kind, NotifyKind::kRejected);
  EXPECT_EQ(Parse(PostRequest(std::string(1 << 20, 'a'))).kind, NotifyKind::kRejected);
  // Empty pieces and a name without "=" are tolerated (the name's value is empty: unsigned).
  EXPECT_EQ(Parse(PostRequest("&&" + FormEncode(p) + "&&param&")).kind, NotifyKind::kPayment);
}

// The notify as Python's urllib.parse.urlencode sends it ("+" for a space, UTF-8 escaped),
// through keyvend's own request-head parser (the edge fills req.params from the query only).
TEST_F(EpayTest, AGetNotifyThroughTheEdgesParser) {
  const std::string query =
      "pid=1001&trade_no=2026120321000002&out_trade_no=0123456789abcdef0123456789abcdef&type="
      "wxpay&name=EPay+%E5%8D%A1+%26+card%3D1%2B1%25&money=1.10&trade_status=TRADE_SUCCESS&"
      "param=&sign=9e410224758f85b0929650e859dce498&sign_type=MD5";
  httplib::Request req;
  ASSERT_TRUE(http::ParseHead(
      "GET /api/v1/payments/epay/notify?" + query + " HTTP/1.1\r\nHost: shop\r\n\r\n", &req));
  const NotifyVerdict v = Parse(req);
  ASSERT_EQ(v.kind, NotifyKind::kPayment) << v.reason;
  EXPECT_EQ(v.notice.payment_id, "epay:2026120321000002");
  EXPECT_EQ(v.notice.amount_cents, 110);
  // The same text as a POST form body.
  httplib::Request post;
  ASSERT_TRUE(
      http::ParseHead("POST /api/v1/payments/epay/notify HTTP/1.1\r\nHost: shop\r\nContent-Type: "
                      "application/x-www-form-urlencoded\r\n\r\n",
                      &post));
  post.body = query;
  const NotifyVerdict pv = Parse(post);
  ASSERT_EQ(pv.kind, NotifyKind::kPayment) << pv.reason;
  EXPECT_EQ(pv.notice.payment_id, v.notice.payment_id);
}

TEST_F(EpayTest, Replies) {
  const NotifyReply ok = gw_->Reply(true);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "success");
  EXPECT_EQ(ok.content_type, "text/plain");
  const NotifyReply bad = gw_->Reply(false);
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.body, "fail");
}

// --- query ----------------------------------------------------------------------------------

std::string Answer(const std::string& fields) {
  return absl::StrCat(R"({"code":1,"msg":"ok","trade_no":"2026120321000001","out_trade_no":")",
                      kOrderId, R"(","type":"alipay","pid":1001,"name":"Steam",)", fields, "}");
}

TEST_F(EpayTest, QueryAsksApiPhpAndReadsAPaidOrder) {
  http_.AnswerJson(Answer(R"("money":"12.34","status":1)"));
  const QueryResult r = gw_->Query(kOrderId, "");
  ASSERT_EQ(r.state, QueryState::kPaid) << r.error;
  // The same payment_id the notify of this payment has: whichever comes second is a replay.
  const NotifyVerdict v = Parse(GetRequest(Signed(NotifyParams())));
  ASSERT_EQ(v.kind, NotifyKind::kPayment);
  EXPECT_EQ(r.notice.payment_id, v.notice.payment_id);
  EXPECT_EQ(r.notice.order_id, kOrderId);
  EXPECT_EQ(r.notice.amount_cents, 1234);
  EXPECT_EQ(r.notice.currency, "CNY");
  const auto reqs = http_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].url, absl::StrCat("https://pay.example.com/api.php?act=order&pid=1001&key=",
                                      kKey, "&out_trade_no=", kOrderId));
}

TEST_F(EpayTest, QueryTakesStringCodesAndStates) {
  http_.AnswerJson(absl::StrCat(R"({"code":"1","trade_no":"T1","out_trade_no":")", kOrderId,
                                R"(","pid":"1001","money":"0.01","status":"1"})"));
  const QueryResult r = gw_->Query(kOrderId, "");
  ASSERT_EQ(r.state, QueryState::kPaid) << r.error;
  EXPECT_EQ(r.notice.payment_id, "epay:T1");
  EXPECT_EQ(r.notice.amount_cents, 1);
}

TEST_F(EpayTest, QueryNotPaid) {
  http_.AnswerJson(Answer(R"("money":"12.34","status":0)"));
  EXPECT_EQ(gw_->Query(kOrderId, "").state, QueryState::kNotPaid);
}

TEST_F(EpayTest, QueryUnknownOrder) {
  http_.AnswerJson(R"({"code":-1,"msg":"订单号不存在"})");
  const QueryResult r = gw_->Query(kOrderId, "");
  EXPECT_EQ(r.state, QueryState::kUnknown);
  EXPECT_FALSE(r.error.empty());
}

TEST_F(EpayTest, QueryHostileAnswersAreUnknownNeverPaid) {
  const std::string hostile[] = {
      "",
      "success",
      "[1,2,3]",
      "{\"code\":1",
      R"({"code":1,"status":1})",
      Answer(R"("money":12.34,"status":1)"),   // a number: through a double, refused
      Answer(R"("money":"1,00","status":1)"),  // not money
      Answer(R"("money":"-1","status":1)"),
      Answer(R"("status":1)"),                      // no money
      Answer(R"("money":"1.00","status":1,"x":)"),  // truncated
      Answer(R"("money":"1.00")"),                  // no status
      absl::StrCat(R"({"code":1,"trade_no":"T","out_trade_no":"ffff","money":"1.00","status":1})"),
      absl::StrCat(R"({"code":1,"trade_no":"T","out_trade_no":")", kOrderId,
                   R"(","pid":1002,"money":"1.00","status":1})"),
      absl::StrCat(R"({"code":1,"trade_no":"a b","out_trade_no":")", kOrderId,
                   R"(","money":"1.00","status":1})"),
      absl::StrCat(R"({"code":1,"trade_no":"","out_trade_no":")", kOrderId,
                   R"(","money":"1.00","status":1})"),
      absl::StrCat(R"({"code":1,"trade_no":"T","out_trade_no":")", kOrderId,
                   R"(","money":"1.00","status":1,"pad":")", std::string(100'000, 'x'), "\"}"),
      std::string(64, '['),
  };
  for (const std::string& body : hostile) {
    http_.AnswerJson(body);
    const QueryResult r = gw_->Query(kOrderId, "");
    EXPECT_EQ(r.state, QueryState::kUnknown) << body.substr(0, 200);
    EXPECT_FALSE(r.error.empty());
    EXPECT_FALSE(absl::StrContains(r.error, kKey));
  }
  http_.AnswerJson(Answer(R"("money":"12.34","status":1)"), 500);
  EXPECT_EQ(gw_->Query(kOrderId, "").state, QueryState::kUnknown);
  for (absl::Status st : {absl::DeadlineExceededError("timeout"), absl::UnavailableError("down"),
                          absl::ResourceExhaustedError("too big")}) {
    http_.Answer(st);
    const QueryResult r = gw_->Query(kOrderId, "");
    EXPECT_EQ(r.state, QueryState::kUnknown);
    EXPECT_FALSE(r.error.empty());
  }
}

TEST_F(EpayTest, QueryEncodesTheOrderIdAndTheKey) {
  EpayOptions o;
  o.base_url = "http://127.0.0.1:8080/";  // a trailing slash is dropped
  o.pid = "1001";
  o.key = "a&b=c d";
  o.types = {"alipay"};
  auto gw = MakeEpayGateway(std::move(o), &http_);
  http_.AnswerJson(R"({"code":-1})");
  (void)gw->Query("x&act=y", "");
  const auto reqs = http_.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].url,
            "http://127.0.0.1:8080/api.php?act=order&pid=1001&key=a%26b%3Dc%20d&out_trade_no=x%"
            "26act%3Dy");
}

}  // namespace
}  // namespace kv::pay
