// The API's routes (SPEC §4): buyer, payment gateway, merchant, operations, sandbox.
#include <openssl/evp.h>

#include <algorithm>
#include <charconv>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "backup/backup.h"
#include "base/coding.h"
#include "base/log.h"
#include "base/time_format.h"
#include "http/server_internal.h"
#include "http/signature.h"
#include "limits/limits.h"
#include "pay/sandbox.h"

namespace kv::http {
namespace {

// The route table's vocabulary (server_internal.h: RouteSpec), short so that each row of
// RegisterRoutes reads as one line: method, pattern, class, body, auth.
constexpr RouteClass kOrder = RouteClass::kOrder, kRead = RouteClass::kRead,
                     kNotify = RouteClass::kNotify, kAdminClass = RouteClass::kAdmin,
                     kPage = RouteClass::kPage, kOps = RouteClass::kOps;
constexpr BodyKind kNoBody = BodyKind::kNone, kJson = BodyKind::kJson, kImport = BodyKind::kImport;
constexpr Auth kPublic = Auth::kPublic, kAdmin = Auth::kAdmin;

bool ParseProductId(std::string_view s, uint64_t* id) {
  if (s.empty() || s.size() > 20) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *id);
  return ec == std::errc() && p == s.data() + s.size() && *id > 0;
}

std::string Sha256Hex(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(s.data(), s.size(), md, &n, EVP_sha256(), nullptr);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(md), n));
}

void ProductJson(JsonWriter& w, const ProductView& v, bool admin) {
  const ProductRecord& p = v.product;
  w.BeginObject()
      .Field("id", std::to_string(p.id))
      .Field("name", p.name)
      .Field("description", p.description)
      .Field("price_cents", p.price_cents)
      .Field("currency", p.currency)
      .Field("stock_mode", StockModeName(p.stock_mode))
      .FieldBool("allow_backorder", p.allow_backorder)
      .Field("max_per_order", static_cast<int64_t>(p.max_per_order))
      .FieldBool("active", p.active)
      .Field("stock", v.stock.sellable());
  if (admin) {
    w.Key("counts")
        .BeginObject()
        .Field("available", v.stock.available)
        .Field("pool", v.stock.pool)
        .Field("held", v.stock.held)
        .Field("owed", v.stock.owed)
        .Field("delivered", v.stock.delivered)
        .Field("imported", v.stock.imported)
        .Field("retired", v.stock.retired)
        .EndObject();
    w.Field("created_at", FormatRfc3339(FromUnixMs(p.created_ms)));
  }
  w.EndObject();
}

void OrderJson(JsonWriter& w, const OrderView& o, bool admin, bool with_token) {
  w.BeginObject()
      .Field("order_id", o.order_id)
      .Field("status", OrderStatusName(o.status))
      .Field("product_id", std::to_string(o.product_id))
      .Field("quantity", static_cast<int64_t>(o.quantity))
      .Field("amount_cents", o.amount_cents)
      .Field("currency", o.currency)
      .Field("created_at", FormatRfc3339(o.created_at))
      .Field("expires_at", FormatRfc3339(o.expires_at));
  w.Key("keys").BeginArray();
  for (const std::string& k : o.keys) w.String(k);
  w.EndArray();
  if (with_token) w.Field("token", o.token);
  if (admin) {
    w.Field("contact", o.contact);
    if (o.payment_id.empty()) {
      w.Key("payment_id").Null();
    } else {
      w.Field("payment_id", o.payment_id);
    }
  }
  w.EndObject();
}

// A backup as the admin API shows it (ids are strings, times RFC 3339).
void BackupJson(JsonWriter& w, const backup::BackupInfo& b) {
  w.BeginObject()
      .Field("id", std::to_string(b.id))
      .Field("finished_at", FormatRfc3339(absl::FromUnixSeconds(b.finished_unix_seconds)))
      .Field("size_bytes", static_cast<int64_t>(b.size_bytes))
      .Field("files", static_cast<int64_t>(b.files));
  if (!b.metadata.has_value()) {
    w.FieldBool("keyvend", false).Field("metadata_error", b.metadata_error).EndObject();
    return;
  }
  const backup::BackupMetadata& m = *b.metadata;
  w.FieldBool("keyvend", true)
      .Field("created_at", FormatRfc3339(FromUnixMs(m.created_unix_ms)))
      .Field("source", m.source)
      .Field("schema_version", static_cast<int64_t>(m.schema_version))
      .Field("key_check", HexEncode(m.key_check))
      .Field("products", static_cast<int64_t>(m.products))
      .Field("keys", static_cast<int64_t>(m.keys))
      .Field("keys_in_pool", static_cast<int64_t>(m.keys_in_pool))
      .Field("orders", static_cast<int64_t>(m.orders))
      .EndObject();
}

void OptionalTime(JsonWriter& w, const char* key, int64_t unix_ms) {
  if (unix_ms == 0) {
    w.Key(key).Null();
  } else {
    w.Field(key, FormatRfc3339(FromUnixMs(unix_ms)));
  }
}

// An outbound entry (issue 14) as the admin API shows it.
void EventJson(JsonWriter& w, const OutboundEvent& e) {
  w.BeginObject()
      .Field("id", e.id)
      .Field("order_id", e.order_id)
      .Field("kind", OutboundKindName(e.kind))
      .Field("type", "order." + std::string(OrderStatusName(e.status)))
      .Field("state", OutboundStateName(e.state))
      .Field("attempts", static_cast<int64_t>(e.attempts))
      .Field("created_at", FormatRfc3339(FromUnixMs(e.created_ms)));
  if (e.state == OutboundState::kPending) {
    w.Field("next_attempt_at", FormatRfc3339(FromUnixMs(e.next_attempt_ms)));
  }
  w.Field("last_error", e.last_error).EndObject();
}

std::string OneOrder(const OrderView& o, bool admin) {
  JsonWriter w;
  OrderJson(w, o, admin, false);
  return w.Take();
}

// Answers a domain Result's failure; returns true when it did.
// `bad_request_as`: the wire row of a kBadRequest on this route (ErrorFor).
template <typename T>
bool Failed(Ctx& c, const Result<T>& r, Wire bad_request_as = Wire::kBadRequest) {
  if (r.ok()) return false;
  WriteError(c.res, r.refused() ? ErrorFor(r.refusal(), r.message(), bad_request_as)
                                : ErrorFor(r.status()));
  return true;
}

template <typename T>
bool Failed(Ctx& c, const absl::StatusOr<T>& r) {
  if (r.ok()) return false;
  WriteError(c.res, ErrorFor(r.status()));
  return true;
}

void BadRequest(Ctx& c, std::string message) {
  WriteError(c.res, MakeError(Wire::kBadRequest, std::move(message)));
}
void BadRequest(Ctx& c, const JsonProblem& p) { WriteError(c.res, MakeError(p.wire, p.message)); }

std::string HtmlEscape(std::string_view s) {
  std::string out;
  for (char ch : s) {
    switch (ch) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(ch);
    }
  }
  return out;
}

// A page of a payment step (the sandbox gateway's, or /pay's error pages), styled as a
// gateway's would be and under the storefront's strict headers (web_routes.cc).
void GatewayPage(Ctx& c, int status, const std::string& inner, bool sandbox) {
  c.res.status = status;
  SetStrictPageHeaders(c.res);
  c.res.set_header("Cache-Control", "no-store");
  c.res.set_content(
      absl::StrCat("<!doctype html><html lang=en><meta charset=utf-8>"
                   "<meta name=viewport content=\"width=device-width, initial-scale=1\">"
                   "<title>keyvend ",
                   sandbox ? "sandbox " : "",
                   "payment</title>"
                   "<link rel=icon href=\"/assets/favicon.svg\">"
                   "<link rel=stylesheet href=\"/assets/sandbox.css\"><main>",
                   sandbox ? "<span class=badge>sandbox — no real money</span>" : "", inner,
                   "</main></html>"),
      "text/html; charset=utf-8");
}

void CsvField(std::string* out, std::string_view s) {
  const bool quote = s.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!s.empty() && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@'));
  if (!quote) {
    out->append(s);
    return;
  }
  out->push_back('"');
  if (!s.empty() && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@')) {
    out->push_back('\'');  // no spreadsheet formula injection from a buyer's contact
  }
  for (char ch : s) {
    if (ch == '"') out->push_back('"');
    out->push_back(ch);
  }
  out->push_back('"');
}

}  // namespace

std::optional<Fields> Server::Impl::Body(Ctx& c, std::initializer_list<std::string_view> allowed,
                                         bool ignore_unknown) {
  std::vector<JsonField> fields;
  if (auto p = ParseObject(c.req.body, static_cast<size_t>(opts.config.json_depth_max), &fields)) {
    BadRequest(c, *p);
    return std::nullopt;
  }
  Fields f(std::move(fields));
  if (!ignore_unknown) {
    if (auto p = f.CheckKnown(allowed)) {
      BadRequest(c, *p);
      return std::nullopt;
    }
  }
  return f;
}

std::string Server::Impl::PayUrl(const OrderView& o, const PayChoice& pay) const {
  const Config& cfg = opts.config;
  if (pay.gateway != nullptr) {
    // Every adapter's start goes through the shop's own /pay route, which records the
    // attempt before it sends the buyer on (the method is [a-z0-9_]: no escaping needed).
    std::string url =
        absl::StrCat(cfg.public_url, "/pay/", o.order_id, "/", std::string(pay.gateway->name()));
    if (!pay.method.empty()) absl::StrAppend(&url, "?method=", pay.method);
    return url;
  }
  if (cfg.payment_sandbox) return absl::StrCat(cfg.public_url, "/sandbox/pay/", o.order_id);
  return absl::StrReplaceAll(
      cfg.pay_url_template,
      {{"{order_id}", o.order_id}, {"{amount_cents}", std::to_string(o.amount_cents)}});
}

std::optional<std::string> Server::Impl::ChoosePay(uint64_t product_id,
                                                   const std::optional<std::string>& gw,
                                                   const std::optional<std::string>& method,
                                                   PayChoice* out) {
  *out = PayChoice{};
  std::optional<ProductView> product = opts.shop->GetProduct(product_id);  // memory
  pay::Gateway* g = nullptr;
  if (gw) {
    g = gateways->Find(*gw);
    if (g == nullptr) return "gateway: not a payment gateway of this shop (GET /api/v1/gateways)";
  }
  if (!product) return std::nullopt;  // the shop answers product_not_found
  const std::string& currency = product->product.currency;
  if (g == nullptr) {
    g = gateways->DefaultFor(currency);
    if (g == nullptr) {
      if (method) return "method: no payment gateway of this shop takes " + currency;
      if (!gateways->empty() && opts.config.pay_url_template.empty()) {
        return "gateway: no payment gateway of this shop takes " + currency;
      }
      return std::nullopt;  // pay_url_template
    }
  } else if (!g->SupportsCurrency(currency)) {
    return absl::StrCat("gateway: ", *gw, " does not take ", currency);
  }
  if (method) {
    const std::vector<std::string> m = g->methods();
    if (std::find(m.begin(), m.end(), *method) == m.end()) {
      return absl::StrCat("method: not a method of ", std::string(g->name()));
    }
    out->method = *method;
  }
  out->gateway = g;
  return std::nullopt;
}

std::optional<HttpError> Server::Impl::Notify(const std::string& body, const std::string& signature,
                                              PaymentResult* out) {
  const int64_t now = absl::ToUnixSeconds(opts.clock->WallNow());
  if (!VerifyNotify(signature, body, opts.payment_secret, now,
                    opts.config.notify_tolerance_seconds)) {
    return MakeError(Wire::kBadSignature, "missing, malformed, stale or wrong signature");
  }
  // From here on the body is the gateway's word that money was received: it is recorded
  // and acknowledged, never refused (SPEC §4). One the shop cannot use is recorded flagged
  // "malformed" for the merchant, with what could be read of it.
  std::optional<JsonProblem> p;  // the first thing wrong
  std::vector<JsonField> fields;
  if (auto parse = ParseObject(body, static_cast<size_t>(opts.config.json_depth_max), &fields)) {
    p = parse;
  }
  Fields f(std::move(fields));  // unknown fields are ignored once the signature holds
  // Each field is read on its own, so that one of the wrong type does not hide the others.
  std::optional<JsonProblem> ps, po, pp, pa, pc;
  auto status = f.Str("status", true, &ps);
  if (status && *status != "succeeded") {
    // Not money received (e.g. "failed"): acknowledged, nothing recorded.
    out->outcome = PaymentOutcome::kApplied;
    out->replay = true;
    return std::nullopt;
  }
  auto order_id = f.Str("order_id", true, &po);
  auto payment_id = f.Str("payment_id", true, &pp);
  auto amount = f.Int("amount_cents", true, &pa);
  auto currency = f.Str("currency", true, &pc);
  for (auto* q : {&ps, &po, &pp, &pa, &pc}) {
    if (!p && *q) p = *q;
  }
  if (!p && !ValidPaymentId(*payment_id)) {
    p = JsonProblem{Wire::kBadRequest,
                    absl::StrCat("payment_id must be 1..", limits::kPaymentIdBytesMax,
                                 " printable ASCII characters without spaces")};
  }
  auto malformed = [&] {
    MalformedPaymentNotice bad;
    bad.raw_body = body;
    bad.payment_id = payment_id.value_or("");
    bad.order_id = order_id.value_or("");
    bad.amount_cents = amount.value_or(0);
    bad.currency = currency.value_or("");
    bad.problem = p->message;
    return bad;
  };
  Result<PaymentResult> r =
      p ? opts.shop->RecordMalformedPayment(malformed())
        : opts.shop->ApplyPayment(PaymentNotice{*order_id, *payment_id, *amount, *currency});
  if (p && r.ok() && !r->replay) {
    KV_LOG(kWarn,
           "a signed notify the shop cannot use was recorded for refund review: ", p->message);
  }
  if (!r.ok()) {
    return r.refused() ? ErrorFor(r.refusal(), r.message()) : ErrorFor(r.status());
  }
  payments_received.fetch_add(1, std::memory_order_relaxed);
  *out = *r;
  return std::nullopt;
}

void Server::Impl::OrderCreated(httplib::Response& res, const OrderView& o, const PayChoice& pay) {
  JsonWriter w;
  w.BeginObject()
      .Field("order_id", o.order_id)
      .Field("token", o.token)
      .Field("status", OrderStatusName(o.status))
      .Field("amount_cents", o.amount_cents)
      .Field("currency", o.currency)
      .Field("expires_at", FormatRfc3339(o.expires_at))
      .Field("pay_url", PayUrl(o, pay))
      .EndObject();
  WriteJson(res, 201, w.Take());
}

void Server::Impl::FinishOrder(Conn& c, Result<OrderView> r, const PayChoice& pay) {
  // On the connection's loop (IoLoop::Complete), which writes c.out after this.
  CurrentConnScope scope(&c.cc);
  httplib::Response res;
  res.set_header("X-Request-Id", c.cc.request_id);
  Ctx ctx{c.head, res, c.cc.params};
  if (!Failed(ctx, r)) {
    orders_created.fetch_add(1, std::memory_order_relaxed);
    OrderCreated(res, *r, pay);
  }
  requests->Observe(c.cc.route_index, res.status,
                    static_cast<double>(MonoNowNs() - c.cc.start_ns) / 1e9);
  Answer(c, res);
}

void Server::Impl::RegisterRoutes() {
  Shop* shop = opts.shop;
  started_mono_ns = opts.clock->MonoNowNs();

  // --- buyer ---
  router.Add({"GET", "/api/v1/products", kPage, kNoBody, kPublic, Exec::kInline}, [shop](Ctx& c) {
    JsonWriter w;
    w.BeginObject().Key("products").BeginArray();
    for (const ProductView& v : shop->ListProducts(true)) ProductJson(w, v, false);
    w.EndArray().EndObject();
    WriteJson(c.res, 200, w.Take());
  });
  router.Add({"GET", "/api/v1/products/{id}", kPage, kNoBody, kPublic, Exec::kInline},
             [shop](Ctx& c) {
               uint64_t id = 0;
               std::optional<ProductView> v;
               if (ParseProductId(c.params[0], &id)) v = shop->GetProduct(id);
               if (!v)
                 return WriteError(c.res, ErrorFor(Refusal::kProductNotFound, "no such product"));
               JsonWriter w;
               ProductJson(w, *v, false);
               WriteJson(c.res, 200, w.Take());
             });
  router.Add({"POST", "/api/v1/orders", kOrder, kJson, kPublic, Exec::kPrecheck}, [this,
                                                                                   shop](Ctx& c) {
    auto f = Body(c, {"product_id", "quantity", "contact", "query_password", "gateway", "method"});
    if (!f) return;
    std::optional<JsonProblem> p;
    auto pid_s = f->Str("product_id", true, &p);
    auto qty = f->Int("quantity", true, &p);
    auto contact = f->Str("contact", true, &p);
    auto password = f->Str("query_password", false, &p);
    auto gateway = f->Str("gateway", false, &p);
    auto method = f->Str("method", false, &p);
    if (p) return BadRequest(c, *p);
    uint64_t pid = 0;
    if (!ParseProductId(*pid_s, &pid)) {
      return WriteError(c.res, ErrorFor(Refusal::kProductNotFound, "no such product"));
    }
    PayChoice pay;
    if (auto bad = ChoosePay(pid, gateway, method, &pay)) return BadRequest(c, *bad);
    OrderRequest req(pid, *qty, *contact, password.value_or(""), ClientIp(c.req));
    std::optional<IdempotencyKey> idem;
    if (c.req.has_header("Idempotency-Key")) {
      idem = IdempotencyKey{c.req.get_header_value("Idempotency-Key"), Sha256Hex(c.req.body)};
    }
    if (ConnContext* cc = CurrentConn(); cc != nullptr && cc->precheck) {
      // On the I/O loop: answer only what memory settles (a sold-out or invalid order);
      // the rest, and every Idempotency-Key (a replay reads the database), runs on a worker.
      std::optional<Shop::OrderRefusal> no = idem ? std::nullopt : shop->PrecheckOrder(req);
      if (no) return WriteError(c.res, ErrorFor(no->refusal, std::move(no->message)));
      if (idem || cc->owner == nullptr) {
        cc->needs_worker = true;
        return;
      }
      // No thread waits for this order's fsync: its batch joins the committer's next
      // group and the committer's completion writes the answer (FinishOrder). From
      // here the connection is the completion's: nothing below touches it.
      cc->async_pending = true;
      Conn* conn = cc->owner;
      std::optional<Result<OrderView>> now =
          shop->CreateOrderAsync(req, [this, conn, pay](Result<OrderView> r) {
            // Off the committer's thread at once: the connection's own loop writes the
            // answer, and the committer goes on with the next group.
            auto shared = std::make_shared<Result<OrderView>>(std::move(r));
            loops[conn->loop]->Complete(
                conn, [this, shared, pay](Conn& c) { FinishOrder(c, std::move(*shared), pay); });
          });
      if (!now) return;
      cc->async_pending = false;  // refused (or failed) before the write: answered here
      Failed(c, *now);
      return;
    }
    auto r = shop->CreateOrder(req, idem ? &*idem : nullptr);
    if (Failed(c, r)) return;
    if (!r->idempotent_replay) orders_created.fetch_add(1, std::memory_order_relaxed);
    OrderCreated(c.res, *r, pay);
  });
  router.Add({"GET", "/api/v1/orders/{order_id}", kRead, kNoBody, kPublic}, [shop](Ctx& c) {
    auto r = shop->GetOrder(c.params[0], c.req.get_param_value("token"));
    if (r.refused() && r.refusal() == Refusal::kRateLimited) {  // this order id is locked
      return WriteError(c.res, MakeError(Wire::kRateLimited, r.message(), r.retry_after_seconds()));
    }
    if (Failed(c, r)) return;
    WriteJson(c.res, 200, OneOrder(*r, false));
  });
  router.Add({"POST", "/api/v1/orders/lookup", kRead, kJson, kPublic}, [this, shop](Ctx& c) {
    auto f = Body(c, {"contact", "query_password"});
    if (!f) return;
    std::optional<JsonProblem> p;
    auto contact = f->Str("contact", true, &p);
    auto password = f->Str("query_password", true, &p);
    if (p) return BadRequest(c, *p);
    auto r = shop->LookupOrders(*contact, *password);
    if (r.refused() && r.refusal() == Refusal::kRateLimited) {  // this contact is locked
      return WriteError(c.res, MakeError(Wire::kRateLimited, r.message(), r.retry_after_seconds()));
    }
    if (Failed(c, r)) return;
    JsonWriter w;
    w.BeginObject().Key("orders").BeginArray();
    for (const OrderView& o : *r) OrderJson(w, o, false, true);
    w.EndArray().EndObject();
    WriteJson(c.res, 200, w.Take());
  });

  // --- payment gateways (issue 13) ---
  RegisterPaymentRoutes();
  router.Add({"POST", "/api/v1/payments/notify", kNotify, kJson, kPublic}, [this](Ctx& c) {
    PaymentResult pr;
    if (auto err = Notify(c.req.body, c.req.get_header_value("Keyvend-Signature"), &pr)) {
      return WriteError(c.res, *err);
    }
    WriteJson(c.res, 200, R"({"received":true})");
  });

  // --- merchant: products and keys ---
  auto product_spec = [](const Fields& f, ProductPatch* out, std::optional<JsonProblem>* p,
                         bool create) {
    out->name = f.Str("name", create, p);
    out->description = f.Str("description", false, p);
    out->price_cents = f.Int("price_cents", create, p);
    out->currency = f.Str("currency", create, p);
    if (auto mode = f.Str("stock_mode", false, p)) {
      StockMode m;
      if (!ParseStockMode(*mode, &m) && !*p) {
        *p = JsonProblem{Wire::kBadRequest, "stock_mode must be \"reserve\" or \"on_payment\""};
      }
      out->stock_mode = m;
    }
    out->allow_backorder = f.Bool("allow_backorder", false, p);
    if (auto mpo = f.Int("max_per_order", false, p)) {
      if ((*mpo < 1 || *mpo > limits::kOrderQuantityMax) && !*p) {
        *p = JsonProblem{Wire::kBadRequest,
                         absl::StrCat("max_per_order must be 1..", limits::kOrderQuantityMax)};
      }
      out->max_per_order = static_cast<uint32_t>(std::clamp<int64_t>(*mpo, 0, UINT32_MAX));
    }
    out->active = f.Bool("active", false, p);
  };
#define KV_PRODUCT_FIELDS                                        \
  {"name",       "description",     "price_cents",   "currency", \
   "stock_mode", "allow_backorder", "max_per_order", "active"}
  router.Add({"POST", "/api/v1/admin/products", kAdminClass, kJson, kAdmin},
             [this, shop, product_spec](Ctx& c) {
               auto f = Body(c, KV_PRODUCT_FIELDS);
               if (!f) return;
               std::optional<JsonProblem> p;
               ProductPatch patch;
               product_spec(*f, &patch, &p, true);
               if (p) return BadRequest(c, *p);
               ProductSpec spec;
               spec.name = *patch.name;
               spec.description = patch.description.value_or("");
               spec.price_cents = *patch.price_cents;
               spec.currency = *patch.currency;
               spec.stock_mode = patch.stock_mode.value_or(StockMode::kReserve);
               spec.allow_backorder = patch.allow_backorder.value_or(false);
               spec.max_per_order = patch.max_per_order.value_or(limits::kMaxPerOrderDefault);
               spec.active = patch.active.value_or(true);
               auto r = shop->CreateProduct(spec);
               if (Failed(c, r)) return;
               JsonWriter w;
               ProductJson(w, *r, true);
               WriteJson(c.res, 201, w.Take());
             });
  router.Add({"PATCH", "/api/v1/admin/products/{id}", kAdminClass, kJson, kAdmin},
             [this, shop, product_spec](Ctx& c) {
               uint64_t id = 0;
               if (!ParseProductId(c.params[0], &id)) {
                 return WriteError(c.res, ErrorFor(Refusal::kProductNotFound, "no such product"));
               }
               auto f = Body(c, KV_PRODUCT_FIELDS);
               if (!f) return;
               std::optional<JsonProblem> p;
               ProductPatch patch;
               product_spec(*f, &patch, &p, false);
               if (p) return BadRequest(c, *p);
               auto r = shop->UpdateProduct(id, patch);
               if (Failed(c, r)) return;
               JsonWriter w;
               ProductJson(w, *r, true);
               WriteJson(c.res, 200, w.Take());
             });
  router.Add({"GET", "/api/v1/admin/products", kAdminClass, kNoBody, kAdmin}, [shop](Ctx& c) {
    JsonWriter w;
    w.BeginObject().Key("products").BeginArray();
    for (const ProductView& v : shop->ListProducts(false)) ProductJson(w, v, true);
    w.EndArray().EndObject();
    WriteJson(c.res, 200, w.Take());
  });
  router.Add({"POST", "/api/v1/admin/products/{id}/keys", kAdminClass, kImport, kAdmin},
             [shop](Ctx& c) {
               uint64_t id = 0;
               if (!ParseProductId(c.params[0], &id)) {
                 return WriteError(c.res, ErrorFor(Refusal::kProductNotFound, "no such product"));
               }
               const std::string type = c.req.get_header_value("Content-Type");
               ParseOptions po;
               if (type.rfind("text/csv", 0) == 0) {
                 po.format = KeyFormat::kCsv;
                 if (c.req.has_param("column")) po.csv_column = c.req.get_param_value("column");
               } else if (type.rfind("text/plain", 0) != 0) {
                 return BadRequest(c, "keys must be sent as text/plain or text/csv");
               }
               auto r = shop->ImportKeys(id, c.req.body, po);
               // The import's bad request is a key line the shop could not read (SPEC:
               // invalid_key_line).
               if (Failed(c, r, Wire::kInvalidKeyLine)) return;
               JsonWriter w;
               w.BeginObject();
               if (r->batch_id == 0) {
                 w.Key("batch_id").Null();
               } else {
                 w.Field("batch_id", std::to_string(r->batch_id));
               }
               w.Field("imported", static_cast<int64_t>(r->imported))
                   .Field("duplicates", static_cast<int64_t>(r->duplicates))
                   .Field("backorders_served", static_cast<int64_t>(r->backorders_served));
               w.Key("rejected").BeginArray();
               for (const RejectedLine& rl : r->rejected) {
                 w.BeginObject()
                     .Field("line", static_cast<int64_t>(rl.line))
                     .Field("reason", LineRejectName(rl.reason))
                     .EndObject();
               }
               w.EndArray().EndObject();
               WriteJson(c.res, 200, w.Take());
             });
  router.Add({"GET", "/api/v1/admin/products/{id}/keys", kAdminClass, kNoBody, kAdmin},
             [shop](Ctx& c) {
               uint64_t id = 0;
               if (!ParseProductId(c.params[0], &id) || !shop->GetProduct(id)) {
                 return WriteError(c.res, ErrorFor(Refusal::kProductNotFound, "no such product"));
               }
               uint64_t after = 0;
               if (c.req.has_param("cursor")) {
                 const std::string cur = c.req.get_param_value("cursor");
                 auto [ptr, ec] = std::from_chars(cur.data(), cur.data() + cur.size(), after);
                 if (ec != std::errc() || ptr != cur.data() + cur.size()) {
                   return BadRequest(c, "malformed cursor");
                 }
               }
               const size_t limit = limits::kPoolKeysPageSize;
               auto keys = shop->ListPoolKeys(id, limit, after);
               auto batches = shop->ListBatches(id);
               if (Failed(c, keys) || Failed(c, batches)) return;
               const StockCounts s = shop->Stock(id);
               JsonWriter w;
               w.BeginObject().Field("product_id", std::to_string(id));
               w.Key("counts")
                   .BeginObject()
                   .Field("available", s.available)
                   .Field("pool", s.pool)
                   .Field("held", s.held)
                   .Field("owed", s.owed)
                   .Field("delivered", s.delivered)
                   .Field("imported", s.imported)
                   .Field("retired", s.retired)
                   .EndObject();
               w.Key("batches").BeginArray();
               for (const BatchRecord& b : *batches) {
                 w.BeginObject()
                     .Field("batch_id", std::to_string(b.batch_id))
                     .Field("created_at", FormatRfc3339(FromUnixMs(b.created_ms)))
                     .Field("imported", static_cast<int64_t>(b.imported))
                     .Field("retired", static_cast<int64_t>(b.retired))
                     .FieldBool("retired_batch", b.retired_flag)
                     .EndObject();
               }
               w.EndArray().Key("keys").BeginArray();
               for (const PoolKeyView& k : *keys) {
                 w.BeginObject()
                     .Field("seq", std::to_string(k.seq))
                     .Field("batch_id", std::to_string(k.batch_id))
                     .Field("key", k.masked)
                     .EndObject();
               }
               w.EndArray();
               if (keys->size() == limit) {
                 w.Field("next_cursor", std::to_string(keys->back().seq));
               } else {
                 w.Key("next_cursor").Null();
               }
               w.EndObject();
               WriteJson(c.res, 200, w.Take());
             });
  router.Add({"POST", "/api/v1/admin/products/{id}/keys/retire", kAdminClass, kJson, kAdmin},
             [this, shop](Ctx& c) {
               uint64_t id = 0;
               if (!ParseProductId(c.params[0], &id)) {
                 return WriteError(c.res, ErrorFor(Refusal::kProductNotFound, "no such product"));
               }
               auto f = Body(c, {"batch_id"});
               if (!f) return;
               std::optional<JsonProblem> p;
               auto batch = f->Str("batch_id", true, &p);
               if (p) return BadRequest(c, *p);
               uint64_t batch_id = 0;
               if (!ParseProductId(*batch, &batch_id)) {
                 return WriteError(c.res, ErrorFor(Refusal::kNotFound, "no such key batch"));
               }
               auto r = shop->RetireBatch(id, batch_id);
               if (Failed(c, r)) return;
               JsonWriter w;
               w.BeginObject()
                   .Field("batch_id", std::to_string(r->batch_id))
                   .Field("retired", static_cast<int64_t>(r->retired))
                   .EndObject();
               WriteJson(c.res, 200, w.Take());
             });

  // --- merchant: orders, payments, deliveries, stats ---
  router.Add({"GET", "/api/v1/admin/orders", kAdminClass, kNoBody, kAdmin}, [shop](Ctx& c) {
    std::optional<OrderStatus> status;
    if (c.req.has_param("status") && !c.req.get_param_value("status").empty()) {
      OrderStatus s;
      if (!ParseOrderStatus(c.req.get_param_value("status"), &s)) {
        return BadRequest(c, "unknown order status");
      }
      status = s;
    }
    int64_t limit = limits::kOrdersPageSizeDefault;
    if (c.req.has_param("limit")) {
      const std::string l = c.req.get_param_value("limit");
      auto [ptr, ec] = std::from_chars(l.data(), l.data() + l.size(), limit);
      if (ec != std::errc() || ptr != l.data() + l.size() || limit < 1 ||
          limit > limits::kOrdersPageSizeMax) {
        return BadRequest(c, absl::StrCat("limit must be 1..", limits::kOrdersPageSizeMax));
      }
    }
    auto page =
        shop->ListOrders(status, static_cast<size_t>(limit), c.req.get_param_value("cursor"));
    if (Failed(c, page)) return;
    JsonWriter w;
    w.BeginObject().Key("orders").BeginArray();
    for (const OrderView& o : page->orders) OrderJson(w, o, true, false);
    w.EndArray();
    if (page->next_cursor.empty()) {
      w.Key("next_cursor").Null();
    } else {
      w.Field("next_cursor", page->next_cursor);
    }
    w.EndObject();
    WriteJson(c.res, 200, w.Take());
  });
  router.Add(
      {"GET", "/api/v1/admin/orders/export", kAdminClass, kNoBody, kAdmin, Exec::kEngine},
      [shop](Ctx& c) {
        // Streamed page by page so a large shop never builds the whole file in memory.
        auto cursor = std::make_shared<std::string>();
        auto header_done = std::make_shared<bool>(false);
        c.res.status = 200;
        c.res.set_header("Content-Disposition", "attachment; filename=\"orders.csv\"");
        c.res.set_header("Cache-Control", "no-store");  // contacts and amounts
        c.res.set_chunked_content_provider(
            "text/csv", [shop, cursor, header_done](size_t, httplib::DataSink& sink) {
              std::string out;
              if (!*header_done) {
                out =
                    "order_id,status,product_id,quantity,amount_cents,currency,contact,created_at,"
                    "expires_at,payment_id\r\n";
                *header_done = true;
              }
              auto page = shop->ListOrders(std::nullopt, limits::kExportPageSize, *cursor);
              if (!page.ok()) return false;  // the client sees a truncated stream
              for (const OrderView& o : page->orders) {
                absl::StrAppend(&out, o.order_id, ",", std::string(OrderStatusName(o.status)), ",",
                                o.product_id, ",", o.quantity, ",", o.amount_cents, ",", o.currency,
                                ",");
                CsvField(&out, o.contact);
                absl::StrAppend(&out, ",", FormatRfc3339(o.created_at), ",",
                                FormatRfc3339(o.expires_at), ",");
                CsvField(&out, o.payment_id);
                out += "\r\n";
              }
              if (!out.empty() && !sink.write(out.data(), out.size())) return false;
              *cursor = page->next_cursor;
              if (cursor->empty()) sink.done();
              return true;
            });
      });
  router.Add({"GET", "/api/v1/admin/orders/{order_id}", kAdminClass, kNoBody, kAdmin},
             [shop](Ctx& c) {
               auto r = shop->AdminGetOrder(c.params[0]);
               if (Failed(c, r)) return;
               // Issue 14: with its outbound entries still in the log (pending, failed,
               // settled by hand; a sent one is gone).
               auto ev = shop->ListOutbound(std::nullopt, r->order_id);
               if (Failed(c, ev)) return;
               JsonWriter w;
               w.BeginArray();
               for (const OutboundEvent& e : *ev) EventJson(w, e);
               w.EndArray();
               std::string body = OneOrder(*r, true);
               body.pop_back();  // the order object's '}'
               absl::StrAppend(&body, ",\"events\":", w.Take(), "}");
               WriteJson(c.res, 200, std::move(body));
             });
  router.Add({"POST", "/api/v1/admin/orders/{order_id}/{action}", kAdminClass, kJson, kAdmin},
             [this, shop](Ctx& c) {
               const std::string& action = c.params[1];
               Result<OrderView> r = Refusal::kNotFound;
               if (action == "check-payment") {
                 // Issue 13: ask every gateway the buyer started paying at, now.
                 auto before = shop->AdminGetOrder(c.params[0]);
                 if (Failed(c, before)) return;
                 auto checked = reconciler->CheckNow(c.params[0]);
                 if (!checked.ok()) return WriteError(c.res, ErrorFor(checked.status()));
                 auto after = shop->AdminGetOrder(c.params[0]);
                 if (Failed(c, after)) return;
                 JsonWriter w;
                 w.BeginObject().Key("order");
                 OrderJson(w, *after, true, false);
                 w.Key("checked").BeginArray();
                 for (const pay::CheckedAttempt& a : *checked) {
                   w.BeginObject()
                       .Field("gateway", a.gateway)
                       .Field("state", pay::QueryStateName(a.state))
                       .FieldBool("applied", a.applied);
                   if (!a.error.empty()) w.Field("error", a.error);
                   w.EndObject();
                 }
                 w.EndArray().EndObject();
                 return WriteJson(c.res, 200, w.Take());
               }
               if (action == "cancel") {
                 r = shop->CancelOrder(c.params[0]);
               } else if (action == "refund") {
                 r = shop->RefundOrder(c.params[0]);
               } else {
                 return WriteError(c.res, MakeError(Wire::kNotFound, "no such route"));
               }
               if (Failed(c, r)) return;
               WriteJson(c.res, 200, OneOrder(*r, true));
             });
  router.Add({"GET", "/api/v1/admin/payments", kAdminClass, kNoBody, kAdmin}, [shop](Ctx& c) {
    std::optional<PaymentOutcome> outcome;
    const std::string state = c.req.get_param_value("state");
    if (state == "refund_due") {
      outcome = PaymentOutcome::kRefundDue;
    } else if (state == "applied") {
      outcome = PaymentOutcome::kApplied;
    } else if (!state.empty()) {
      return BadRequest(c, "state must be refund_due or applied");
    }
    auto r = shop->ListPayments(outcome);
    if (Failed(c, r)) return;
    JsonWriter w;
    w.BeginObject().Key("payments").BeginArray();
    for (const PaymentView& pv : *r) {
      const PaymentRecord& p = pv.record;
      w.BeginObject()
          .Field("payment_id", p.payment_id)
          .Field("order_id", p.order_id)
          .Field("amount_cents", p.amount_cents)
          .Field("currency", p.currency)
          .Field("received_at", FormatRfc3339(FromUnixMs(p.received_ms)))
          .Field("state", p.outcome == PaymentOutcome::kApplied ? "applied" : "refund_due")
          .Field("reason", PaymentFlagName(p.flag));
      if (p.flag == PaymentFlag::kMalformed) {
        // What the gateway sent, for the refund review: the escaper makes any bytes JSON.
        w.Field("problem", p.problem)
            .Field("body_bytes", static_cast<int64_t>(p.body_bytes))
            .Field("body_excerpt", p.body_excerpt);
      }
      w.EndObject();
    }
    w.EndArray().EndObject();
    WriteJson(c.res, 200, w.Take());
  });
  router.Add({"GET", "/api/v1/admin/deliveries", kAdminClass, kNoBody, kAdmin}, [shop](Ctx& c) {
    std::optional<DeliveryState> state;
    const std::string s = c.req.get_param_value("state");
    if (!s.empty()) {
      DeliveryState d;
      if (!ParseDeliveryState(s, &d)) {
        return BadRequest(c, "state must be pending, backordered or failed");
      }
      state = d;
    }
    auto r = shop->ListDeliveries(state);
    if (Failed(c, r)) return;
    JsonWriter w;
    w.BeginObject().Key("deliveries").BeginArray();
    for (const DeliveryEntry& e : *r) {
      w.BeginObject()
          .Field("id", std::to_string(e.log_seq))
          .Field("order_id", HexEncode(e.oid))
          .Field("product_id", std::to_string(e.product_id))
          .Field("quantity", static_cast<int64_t>(e.quantity))
          .Field("state", DeliveryStateName(e.state))
          .Field("attempts", static_cast<int64_t>(e.attempts))
          .Field("created_at", FormatRfc3339(FromUnixMs(e.created_ms)))
          .Field("last_error", e.last_error)
          .EndObject();
    }
    w.EndArray().EndObject();
    WriteJson(c.res, 200, w.Take());
  });
  // --- merchant: outbound events (issue 14), the compensation API ---
  router.Add({"GET", "/api/v1/admin/events", kAdminClass, kNoBody, kAdmin}, [shop](Ctx& c) {
    std::optional<OutboundState> state;
    const std::string s = c.req.get_param_value("state");
    if (!s.empty()) {
      OutboundState st;
      if (!ParseOutboundState(s, &st)) {
        return BadRequest(c, "state must be pending, failed or settled");
      }
      state = st;
    }
    auto r = shop->ListOutbound(state, c.req.get_param_value("order_id"));
    if (Failed(c, r)) return;
    JsonWriter w;
    w.BeginObject().Key("events").BeginArray();
    for (const OutboundEvent& e : *r) EventJson(w, e);
    w.EndArray().EndObject();
    WriteJson(c.res, 200, w.Take());
  });
  router.Add({"POST", "/api/v1/admin/events/replay", kAdminClass, kJson, kAdmin},
             [this, shop](Ctx& c) {
               if (!c.req.body.empty() && !Body(c, {})) return;  // only an empty body or {}
               auto n = shop->ReplayOutbound("");
               if (Failed(c, n)) return;
               JsonWriter w;
               w.BeginObject().Field("replayed", static_cast<int64_t>(*n)).EndObject();
               WriteJson(c.res, 200, w.Take());
             });
  router.Add({"POST", "/api/v1/admin/events/{event_id}/{action}", kAdminClass, kJson, kAdmin},
             [this, shop](Ctx& c) {
               const std::string& id = c.params[0];
               const std::string& action = c.params[1];
               if (action == "replay") {
                 if (!c.req.body.empty() && !Body(c, {})) return;
                 auto n = shop->ReplayOutbound(id);
                 if (Failed(c, n)) return;
                 JsonWriter w;
                 w.BeginObject().Field("replayed", static_cast<int64_t>(*n)).EndObject();
                 return WriteJson(c.res, 200, w.Take());
               }
               if (action != "settle") {
                 return WriteError(c.res, MakeError(Wire::kNotFound, "no such route"));
               }
               auto f = Body(c, {"reason"});
               if (!f) return;
               std::optional<JsonProblem> p;
               auto reason = f->Str("reason", true, &p);
               if (p) return BadRequest(c, *p);
               auto r = shop->SettleOutbound(id, *reason);
               if (Failed(c, r)) return;
               JsonWriter w;
               w.BeginObject().Key("event");
               EventJson(w, *r);
               w.EndObject();
               WriteJson(c.res, 200, w.Take());
             });
  router.Add({"GET", "/api/v1/admin/stats", kAdminClass, kNoBody, kAdmin}, [this, shop](Ctx& c) {
    auto st = shop->Stats();
    if (!st.ok()) return WriteError(c.res, ErrorFor(st.status()));
    const double uptime_s =
        std::max(1e-3, static_cast<double>(opts.clock->MonoNowNs() - started_mono_ns) / 1e9);
    JsonWriter w;
    w.BeginObject().Key("orders").BeginObject();
    for (const auto& [s, n] : st->orders_by_status) {
      w.Field(OrderStatusName(s), static_cast<int64_t>(n));
    }
    w.EndObject();
    int64_t keys_delivered = 0;
    w.Key("products").BeginArray();
    for (const ProductView& v : shop->ListProducts(false)) {
      keys_delivered += v.stock.delivered;
      w.BeginObject()
          .Field("id", std::to_string(v.product.id))
          .Field("name", v.product.name)
          .Field("stock", v.stock.sellable())
          .Field("held", v.stock.held)
          .Field("owed", v.stock.owed)
          .Field("delivered", v.stock.delivered)
          .Field("imported", v.stock.imported)
          .EndObject();
    }
    w.EndArray();
    w.Key("sales").BeginObject().Field("keys_delivered", keys_delivered).EndObject();
    w.Key("payments")
        .BeginObject()
        .Field("refund_due", static_cast<int64_t>(st->payments_refund_due))
        .EndObject();
    w.Key("deliveries")
        .BeginObject()
        .Field("backordered", static_cast<int64_t>(st->deliveries.backordered))
        .EndObject();
    // Rates since this process started (per second).
    w.Key("rates")
        .BeginObject()
        .Field("uptime_seconds", static_cast<int64_t>(uptime_s))
        .Field("orders_created_per_minute",
               static_cast<int64_t>(60.0 * static_cast<double>(orders_created.load()) / uptime_s))
        .Field(
            "payments_per_minute",
            static_cast<int64_t>(60.0 * static_cast<double>(payments_received.load()) / uptime_s))
        .EndObject();
    w.EndObject();
    WriteJson(c.res, 200, w.Take());
  });

  // --- merchant: backups (SPEC §4, §8; ARCHITECTURE.md "Backups") ---
  // Synchronous: the answer comes when the backup is complete (or has failed). Refusals:
  // 409 invalid_state when backups are off (no backup_dir) or a backup is already running.
  router.Add({"POST", "/api/v1/admin/backups", kAdminClass, kJson, kAdmin}, [this, shop](Ctx& c) {
    if (!c.req.body.empty() && !Body(c, {})) return;  // only an empty body or {}
    const int64_t start_ns = opts.clock->MonoNowNs();
    auto r = shop->CreateBackup("api");
    if (r.refused()) return WriteError(c.res, ErrorFor(r.refusal(), r.message()));
    if (r.failed()) {
      if (absl::IsCancelled(r.status())) {
        return WriteError(
            c.res, MakeError(Wire::kNotReady, "the shop is shutting down; the backup was stopped"));
      }
      // The admin may see why (paths and RocksDB's words; never a record's content).
      KV_LOG(kError, "backup failed: ", std::string(r.status().message()));
      return WriteError(
          c.res, MakeError(Wire::kInternal, absl::StrCat("backup failed: ", r.status().message())));
    }
    JsonWriter w;
    w.BeginObject().Key("backup");
    BackupJson(w, *r);
    w.Field("backup_dir", shop->backup_dir())
        .Field("duration_ms", (opts.clock->MonoNowNs() - start_ns) / 1'000'000)
        .EndObject();
    WriteJson(c.res, 201, w.Take());
  });
  router.Add({"GET", "/api/v1/admin/backups", kAdminClass, kNoBody, kAdmin}, [this, shop](Ctx& c) {
    auto r = shop->ListBackups();
    if (Failed(c, r)) return;
    const BackupRunStats st = shop->BackupStats();
    JsonWriter w;
    w.BeginObject().Field("backup_dir", shop->backup_dir()).Key("backups").BeginArray();
    for (const backup::BackupInfo& b : r->backups) BackupJson(w, b);
    w.EndArray().Key("unreadable").BeginArray();
    for (backup::BackupId id : r->unreadable) w.String(std::to_string(id));
    w.EndArray()
        .Field("bytes_on_disk", static_cast<int64_t>(r->bytes_on_disk))
        .Key("schedule")
        .BeginObject()
        .Field("interval_seconds", opts.config.backup_interval_seconds)
        .Field("keep", opts.config.backup_keep)
        .EndObject()
        .FieldBool("running", st.running);
    OptionalTime(w, "last_success_at", st.last_success_unix_ms);
    OptionalTime(w, "last_failure_at", st.last_failure_unix_ms);
    if (st.last_error.empty()) {
      w.Key("last_error").Null();
    } else {
      w.Field("last_error", st.last_error);
    }
    w.EndObject();
    WriteJson(c.res, 200, w.Take());
  });

  // --- operations ---
  router.Add({"GET", "/healthz", kOps, kNoBody, kPublic, Exec::kInline},
             [](Ctx& c) { WriteJson(c.res, 200, R"({"status":"ok"})"); });
  router.Add({"GET", "/readyz", kOps, kNoBody, kPublic}, [this, shop](Ctx& c) {
    std::string why;
    if (draining) why = "draining";
    uint64_t stopped = 0, bg_errors = 0;
    shop->db()->raw()->GetIntProperty("rocksdb.is-write-stopped", &stopped);
    shop->db()->raw()->GetAggregatedIntProperty("rocksdb.background-errors", &bg_errors);
    if (why.empty() && (stopped != 0 || bg_errors != 0)) why = "storage not writable";
    if (why.empty()) {
      const storage::WriteHealth::State h = shop->db()->write_health();
      if (!h.writable) why = "storage not writable: " + h.error;
    }
    if (why.empty() && opts.config.outbound_backlog_max > 0 &&
        shop->OutboundCounts().Unfinished() > opts.config.outbound_backlog_max) {
      why = "outbound backlog (webhook events and mails) over its limit";
    }
    if (!why.empty()) {
      return WriteError(c.res, MakeError(Wire::kNotReady, why));
    }
    WriteJson(c.res, 200, R"({"status":"ready"})");
  });
  router.Add({"GET", "/metrics", kOps, kNoBody, kPublic}, [this](Ctx& c) {
    c.res.status = 200;
    c.res.set_content(registry.Render(), "text/plain; version=0.0.4");
  });

  // --- the sandbox gateway (demos and tests) ---
  if (opts.config.payment_sandbox) {
    const auto page = [](Ctx& c, int status, const std::string& inner) {
      GatewayPage(c, status, inner, true);
    };
    // "Pay, but lose the notify": only with the sandbox adapter, whose Query reveals it.
    const bool lose = gateways->sandbox() != nullptr;
    router.Add({"GET", "/sandbox/pay/{order_id}", kPage, kNoBody, kPublic}, [shop, page,
                                                                             lose](Ctx& c) {
      auto o = shop->AdminGetOrder(c.params[0]);
      if (!o.ok()) return page(c, 404, "<h1>No such order</h1>");
      const std::string id = HtmlEscape(o->order_id);
      page(c, 200,
           absl::StrCat("<h1>Sandbox payment</h1><dl><dt>Order</dt><dd><code>", id,
                        "</code></dd><dt>Amount</dt><dd>", o->amount_cents, " ",
                        HtmlEscape(o->currency), " (minor units)</dd><dt>Status</dt><dd id=status>",
                        std::string(OrderStatusName(o->status)),
                        "</dd></dl><form method=post action=\"/sandbox/pay/", id,
                        "\"><button id=pay type=submit>Pay (sandbox)</button></form>",
                        lose ? absl::StrCat("<form method=post action=\"/sandbox/pay/", id,
                                            "?lose=1\"><button id=pay-lose type=submit>Pay, but "
                                            "lose the notify</button></form>")
                             : ""));
    });
    router.Add({"POST", "/sandbox/pay/{order_id}", kPage, kJson, kPublic}, [this, shop,
                                                                            page](Ctx& c) {
      auto o = shop->AdminGetOrder(c.params[0]);
      if (!o.ok()) return page(c, 404, "<h1>No such order</h1>");
      uint8_t rnd[8];
      opts.random->Fill(rnd, sizeof rnd);
      if (c.req.get_param_value("lose") == "1" && gateways->sandbox() != nullptr) {
        // The gateway has the money; its notify never reaches the shop. Only a query
        // (the reconciler, or the admin's check-payment) finds it.
        const PaymentNotice n{
            o->order_id,
            "sandbox-" + HexEncode(std::string_view(reinterpret_cast<char*>(rnd), sizeof rnd)),
            o->amount_cents, o->currency};
        if (!gateways->sandbox()->RecordLostPayment(n)) {
          return page(c, 503, "<h1>The sandbox is full</h1>");
        }
        const std::string id = HtmlEscape(o->order_id);
        return page(c, 200,
                    absl::StrCat("<h1 id=result>Paid; the notify was lost</h1><p>Order <code>", id,
                                 "</code> is paid at the sandbox gateway, but the shop was not "
                                 "told: the reconciler will ask.</p><p><a id=back class=button "
                                 "href=\"/order/",
                                 id, "\">Back to the shop</a></p>"));
      }
      JsonWriter w;
      w.BeginObject()
          .Field("order_id", o->order_id)
          .Field("payment_id",
                 "sandbox-" + HexEncode(std::string_view(reinterpret_cast<char*>(rnd), sizeof rnd)))
          .Field("amount_cents", o->amount_cents)
          .Field("currency", o->currency)
          .Field("status", "succeeded")
          .EndObject();
      const std::string body = w.Take();
      // The button sends a notify signed exactly as a real gateway would, through the
      // same verification as POST /api/v1/payments/notify.
      const std::string sig =
          SignNotify(opts.payment_secret, absl::ToUnixSeconds(opts.clock->WallNow()), body);
      PaymentResult pr;
      if (auto err = Notify(body, sig, &pr)) return WriteError(c.res, *err);
      // Back to the shop's order page, which holds the order's token (the fragment of the
      // link it gave the buyer, or its local storage): a gateway's return URL.
      const std::string id = HtmlEscape(o->order_id);
      page(c, 200,
           absl::StrCat("<h1 id=result>Paid</h1><p>Order <code>", id, "</code> is now <b>",
                        pr.order_status ? std::string(OrderStatusName(*pr.order_status)) : "",
                        "</b>.</p><p><a id=back class=button href=\"/order/", id,
                        "\">Back to the shop</a></p>"));
    });
  }

  RegisterWebRoutes();

  std::vector<std::string> names;
  for (const Route& r : router.routes()) names.push_back(r.name);
  unmatched_route = names.size();
  names.push_back("unmatched");
  requests = std::make_unique<RequestMetrics>(&registry, names);
  registry.AddCollector("keyvend_stock_available", "Keys buyers can order now, per product.",
                        "gauge", [shop](std::vector<Sample>* out) {
                          for (const ProductView& v : shop->ListProducts(false)) {
                            out->push_back(Sample{{{"product", std::to_string(v.product.id)}},
                                                  static_cast<double>(v.stock.sellable())});
                          }
                        });
  registry.AddCollector("keyvend_keys_held", "Keys held by open orders, per product.", "gauge",
                        [shop](std::vector<Sample>* out) {
                          for (const ProductView& v : shop->ListProducts(false)) {
                            out->push_back(Sample{{{"product", std::to_string(v.product.id)}},
                                                  static_cast<double>(v.stock.held)});
                          }
                        });
  registry.AddCollector(
      "keyvend_delivery_backlog",
      "Unfinished delivery-log entries, by state (backordered: paid orders waiting for keys).",
      "gauge", [shop](std::vector<Sample>* out) {
        auto b = shop->Backlog();
        if (!b.ok()) return;
        out->push_back(Sample{{{"state", "backordered"}}, static_cast<double>(b->backordered)});
      });
  Clock* clock = opts.clock;
  registry.AddCollector(
      "keyvend_delivery_backlog_oldest_seconds",
      "Age of the oldest unfinished delivery-log entry by state, seconds (0 when none).", "gauge",
      [shop, clock](std::vector<Sample>* out) {
        auto b = shop->Backlog();
        if (!b.ok()) return;
        const int64_t now_ms = UnixMs(clock->WallNow());
        const auto age = [now_ms](int64_t oldest_ms) {
          return oldest_ms == 0 ? 0.0
                                : std::max(0.0, static_cast<double>(now_ms - oldest_ms) / 1000.0);
        };
        out->push_back(Sample{{{"state", "backordered"}}, age(b->oldest_backordered_ms)});
      });
  // Whether the database takes writes (storage/write_health.h): a full disk, an I/O error.
  storage::Db* kvdb = shop->db();
  registry.AddCollector("keyvend_storage_writable",
                        "1 while synced writes succeed, 0 while they fail (disk full, I/O "
                        "errors; writes answer 503 storage_unavailable until it recovers).",
                        "gauge", [kvdb](std::vector<Sample>* out) {
                          out->push_back(Sample{{}, kvdb->write_health().writable ? 1.0 : 0.0});
                        });
  if (kvdb->free_bytes() >= 0) {
    registry.AddCollector(
        "keyvend_storage_free_bytes",
        "Bytes free on the data dir's file system (the disk guard's last "
        "look; writes stop below min_free_disk_mb).",
        "gauge", [kvdb](std::vector<Sample>* out) {
          out->push_back(Sample{{}, static_cast<double>(std::max<int64_t>(0, kvdb->free_bytes()))});
        });
  }
  registry.AddCollector(
      "keyvend_storage_write_errors_total", "Failed synced writes and RocksDB background errors.",
      "counter", [kvdb](std::vector<Sample>* out) {
        out->push_back(Sample{{}, static_cast<double>(kvdb->write_health().errors_total)});
      });
  // The group committer (storage/group_commit.h): batches / groups is the mean group size,
  // i.e. how many state changes one fsync serves.
  registry.AddCollector(
      "keyvend_commit_groups_total", "Synced group writes the committer made (one WAL fsync each).",
      "counter", [kvdb](std::vector<Sample>* out) {
        out->push_back(Sample{{}, static_cast<double>(kvdb->commit_stats().groups)});
      });
  registry.AddCollector(
      "keyvend_commit_batches_total",
      "State changes (write batches) committed in those groups; over groups: the mean group size.",
      "counter", [kvdb](std::vector<Sample>* out) {
        out->push_back(Sample{{}, static_cast<double>(kvdb->commit_stats().batches)});
      });
  registry.AddCollector(
      "keyvend_commit_queued", "Batches waiting for a group write that has not begun.", "gauge",
      [kvdb](std::vector<Sample>* out) {
        out->push_back(Sample{{}, static_cast<double>(kvdb->commit_stats().queued)});
      });
  registry.AddCollector(
      "keyvend_storage_recoveries_total",
      "Times the database became writable again after failing writes.", "counter",
      [kvdb](std::vector<Sample>* out) {
        out->push_back(Sample{{}, static_cast<double>(kvdb->write_health().recoveries_total)});
      });
  // Backups (API and scheduler): when the last one succeeded or failed, how long it took.
  registry.AddCollector(
      "keyvend_backup_last_success_timestamp_seconds",
      "Unix time the newest backup finished (from the backup dir at start, "
      "then each success); 0 = none.",
      "gauge", [shop](std::vector<Sample>* out) {
        const BackupRunStats st = shop->BackupStats();
        out->push_back(Sample{{}, static_cast<double>(st.last_success_unix_ms) / 1e3});
      });
  registry.AddCollector(
      "keyvend_backup_last_failure_timestamp_seconds",
      "Unix time of the last failed backup since the server started; "
      "0 = none.",
      "gauge", [shop](std::vector<Sample>* out) {
        const BackupRunStats st = shop->BackupStats();
        out->push_back(Sample{{}, static_cast<double>(st.last_failure_unix_ms) / 1e3});
      });
  registry.AddCollector("keyvend_backup_last_duration_seconds",
                        "Duration of the last finished backup attempt, seconds.", "gauge",
                        [shop](std::vector<Sample>* out) {
                          out->push_back(Sample{{}, shop->BackupStats().last_duration_seconds});
                        });
  registry.AddCollector("keyvend_backup_running", "1 while a backup is running, else 0.", "gauge",
                        [shop](std::vector<Sample>* out) {
                          out->push_back(Sample{{}, shop->BackupStats().running ? 1.0 : 0.0});
                        });
  registry.AddCollector(
      "keyvend_backups_total", "Backup attempts since the server started, by result.", "counter",
      [shop](std::vector<Sample>* out) {
        const BackupRunStats st = shop->BackupStats();
        out->push_back(Sample{{{"result", "success"}}, static_cast<double>(st.succeeded)});
        out->push_back(Sample{{{"result", "failure"}}, static_cast<double>(st.failed)});
      });
  // RocksDB health: write stalls and compaction debt (SPEC §4).
  rocksdb::DB* db = shop->db()->raw();
  registry.AddCollector("keyvend_rocksdb_write_stopped",
                        "1 while RocksDB stops writes (a stall), else 0.", "gauge",
                        [db](std::vector<Sample>* out) {
                          uint64_t v = 0;
                          db->GetIntProperty("rocksdb.is-write-stopped", &v);
                          out->push_back(Sample{{}, static_cast<double>(v)});
                        });
  registry.AddCollector("keyvend_rocksdb_delayed_write_rate_bytes",
                        "RocksDB's current write-rate limit while delaying writes, bytes/s "
                        "(0 when not delaying).",
                        "gauge", [db](std::vector<Sample>* out) {
                          uint64_t v = 0;
                          db->GetIntProperty("rocksdb.actual-delayed-write-rate", &v);
                          out->push_back(Sample{{}, static_cast<double>(v)});
                        });
  registry.AddCollector("keyvend_rocksdb_pending_compaction_bytes",
                        "Estimated bytes compaction still has to rewrite (compaction debt).",
                        "gauge", [db](std::vector<Sample>* out) {
                          uint64_t v = 0;
                          db->GetAggregatedIntProperty("rocksdb.estimate-pending-compaction-bytes",
                                                       &v);
                          out->push_back(Sample{{}, static_cast<double>(v)});
                        });
}

// --- payment gateways (issue 13; ARCHITECTURE.md "Payments") --------------------------------

void Server::Impl::GatewayNotify(Ctx& c, pay::Gateway* gw) {
  const NotifyCounters& n = notify_counters.at(std::string(gw->name()));
  const auto reply = [&](bool accepted) {
    const pay::NotifyReply r = gw->Reply(accepted);
    c.res.status = r.status;
    c.res.set_header("Cache-Control", "no-store");
    c.res.set_content(r.body, r.content_type);
  };
  // Verified (in constant time) before anything of it is read; pure, no I/O.
  pay::NotifyVerdict v = gw->ParseNotify(c.req, opts.clock->WallNow());
  switch (v.kind) {
    case pay::NotifyKind::kRejected:
      n.rejected->Inc();
      KV_LOG(kInfo, std::string(gw->name()), " notify rejected: ", v.reason);
      return reply(false);
    case pay::NotifyKind::kIgnored:
      n.ignored->Inc();
      return reply(true);
    case pay::NotifyKind::kPayment:
    case pay::NotifyKind::kMalformed:
      break;
  }
  // Money received: recorded (synced) before the gateway hears "success" (SPEC §2.3).
  if (v.kind == pay::NotifyKind::kPayment && !ValidPaymentId(v.notice.payment_id)) {
    v.kind = pay::NotifyKind::kMalformed;
    v.malformed.payment_id = v.notice.payment_id;
    v.malformed.order_id = v.notice.order_id;
    v.malformed.amount_cents = v.notice.amount_cents;
    v.malformed.currency = v.notice.currency;
    v.malformed.raw_body = c.req.body;
    v.malformed.problem = "payment_id is not one the shop can store";
  }
  Result<PaymentResult> r = v.kind == pay::NotifyKind::kPayment
                                ? opts.shop->ApplyPayment(v.notice)
                                : opts.shop->RecordMalformedPayment(v.malformed);
  if (!r.ok()) {
    // Not recorded: the gateway must retry (a storage error answers 503).
    return WriteError(c.res,
                      r.refused() ? ErrorFor(r.refusal(), r.message()) : ErrorFor(r.status()));
  }
  if (v.kind == pay::NotifyKind::kMalformed) {
    n.malformed->Inc();
    if (!r->replay) {
      KV_LOG(kWarn, "a signed ", std::string(gw->name()),
             " notify the shop cannot use was recorded for refund review: ", v.malformed.problem);
    }
  } else {
    (r->replay ? n.replay : n.applied)->Inc();
  }
  payments_received.fetch_add(1, std::memory_order_relaxed);
  reply(true);
}

void Server::Impl::RegisterPaymentRoutes() {
  Shop* shop = opts.shop;
  constexpr char kNotifies[] = "keyvend_gateway_notifies_total";
  constexpr char kNotifiesHelp[] =
      "Notifies received from each payment gateway, by what became of them.";
  for (pay::Gateway* gw : gateways->all()) {
    const std::string name(gw->name());
    if (gw == gateways->sandbox()) continue;  // it notifies in-process (its page)
    NotifyCounters& n = notify_counters[name];
    const auto counter = [&](const char* result) {
      return registry.GetCounter(kNotifies, kNotifiesHelp, {{"gateway", name}, {"result", result}});
    };
    n.applied = counter("applied");
    n.replay = counter("replay");
    n.malformed = counter("malformed");
    n.ignored = counter("ignored");
    n.rejected = counter("rejected");
    // The router keeps the pattern's pointer: literals.
    const char* pattern = name == "epay"     ? "/api/v1/payments/epay/notify"
                          : name == "stripe" ? "/api/v1/payments/stripe/notify"
                                             : nullptr;
    if (pattern == nullptr) continue;
    router.Add({"POST", pattern, kNotify, kJson, kPublic},
               [this, gw](Ctx& c) { GatewayNotify(c, gw); });
    if (name == "epay") {  // EPay notifies by GET (query parameters) as well
      router.Add({"GET", pattern, kNotify, kNoBody, kPublic},
                 [this, gw](Ctx& c) { GatewayNotify(c, gw); });
    }
  }

  // The buyer's start at a gateway: the attempt is stored (synced) before the redirect, so
  // that a notify lost after the buyer paid is still found by the reconciler, even after a
  // kill -9.
  router.Add({"GET", "/pay/{order_id}/{gateway}", kPage, kNoBody, kPublic}, [this, shop](Ctx& c) {
    const auto page = [&c](int status, const std::string& inner) {
      GatewayPage(c, status, inner, false);
    };
    pay::Gateway* gw = gateways->Find(c.params[1]);
    if (gw == nullptr) return page(404, "<h1>No such payment gateway</h1>");
    const std::string method = c.req.get_param_value("method");
    if (!method.empty()) {
      const std::vector<std::string> m = gw->methods();
      if (std::find(m.begin(), m.end(), method) == m.end()) {
        return page(400, "<h1>No such payment method</h1>");
      }
    }
    auto o = shop->AdminGetOrder(c.params[0]);
    if (o.refused()) return page(404, "<h1>No such order</h1>");
    if (!o.ok()) return page(503, "<h1>The shop cannot answer now</h1><p>Please try again.</p>");
    const std::string order_page = "/order/" + o->order_id;
    if (o->status != OrderStatus::kPendingPayment) {
      c.res.status = 303;
      c.res.set_header("Location", order_page);
      c.res.set_header("Cache-Control", "no-store");
      return;
    }
    if (!gw->SupportsCurrency(o->currency)) {
      return page(400, "<h1>This gateway does not take the order's currency</h1>");
    }
    pay::PayOrder po;
    po.order_id = o->order_id;
    po.amount_cents = o->amount_cents;
    po.currency = o->currency;
    if (auto p = shop->GetProduct(o->product_id)) po.product_name = p->product.name;
    po.method = method;
    po.return_url = opts.config.public_url + order_page;
    po.cancel_url = po.return_url;
    po.notify_url = absl::StrCat(opts.config.public_url, "/api/v1/payments/",
                                 std::string(gw->name()), "/notify");
    po.expires_at = o->expires_at;
    absl::StatusOr<pay::PayStart> start = gw->Start(po);
    if (!start.ok()) {
      if (absl::IsInvalidArgument(start.status())) {
        return page(400, absl::StrCat("<h1>This order cannot be paid here</h1><p>",
                                      HtmlEscape(std::string(start.status().message())), "</p>"));
      }
      KV_LOG(kWarn, std::string(gw->name()), " start failed for order ", o->order_id, ": ",
             std::string(start.status().message()));
      return page(502, absl::StrCat("<h1>The payment gateway did not answer</h1><p>Please try "
                                    "again in a moment.</p><p><a class=button href=\"",
                                    HtmlEscape(order_page), "\">Back to the order</a></p>"));
    }
    // One attempt per order and gateway: a repeat keeps its start time (and is not written
    // again when nothing changed).
    std::optional<PayAttempt> prev = reconciler->Find(o->order_id, gw->name());
    if (!prev || prev->ref != start->ref || prev->method != method) {
      PayAttempt a;
      a.order_id = o->order_id;
      a.gateway = std::string(gw->name());
      a.method = method;
      a.ref = start->ref;
      a.started_ms = prev ? prev->started_ms : UnixMs(opts.clock->WallNow());
      if (absl::Status st = reconciler->Track(std::move(a)); !st.ok()) {
        KV_LOG(kWarn, "cannot store the pay attempt of order ", o->order_id, ": ",
               std::string(st.message()));
        return page(503, "<h1>The shop cannot answer now</h1><p>Please try again.</p>");
      }
    }
    c.res.status = 303;
    c.res.set_header("Location", start->redirect_url);
    c.res.set_header("Cache-Control", "no-store");
  });

  // What the storefront offers on an order page: the gateways and their methods.
  router.Add({"GET", "/api/v1/gateways", kRead, kNoBody, kPublic, Exec::kInline},
             [this, shop](Ctx& c) {
               // Currencies: "*" for a gateway that takes any (the ISO test code stands for
               // any); else those of the shop's products (and the common ones) it takes.
               std::vector<std::string> known = {"CNY", "USD", "EUR", "GBP", "JPY", "HKD"};
               for (const ProductView& v : shop->ListProducts(true)) {
                 if (std::find(known.begin(), known.end(), v.product.currency) == known.end()) {
                   known.push_back(v.product.currency);
                 }
               }
               JsonWriter w;
               w.BeginObject().Key("gateways").BeginArray();
               for (pay::Gateway* gw : gateways->all()) {
                 w.BeginObject().Field("name", gw->name()).Key("methods").BeginArray();
                 for (const std::string& m : gw->methods()) w.String(m);
                 w.EndArray();
                 std::string currencies;
                 if (gw->SupportsCurrency("XTS")) {
                   currencies = "*";
                 } else {
                   for (const std::string& cur : known) {
                     if (!gw->SupportsCurrency(cur)) continue;
                     if (!currencies.empty()) currencies += ",";
                     currencies += cur;
                   }
                 }
                 w.Field("currencies", currencies).EndObject();
               }
               w.EndArray().EndObject();
               WriteJson(c.res, 200, w.Take());
             });
}

}  // namespace kv::http
