// libFuzzer target for the JSON request reader (src/http/json.h): ParseObject with the depth
// limit, then the Fields accessors exactly as the API handlers call them (src/http/api.cc).
//
// Input: the first byte picks a depth limit (1..32), the rest is the request body. The body
// is also parsed at the server's default depth (16). Checks besides "never crashes":
//  - a refusal is bad_request with a message; a success has unique field names;
//  - what parses at depth d parses to the same fields at a larger depth;
//  - the parsed fields written back with JsonWriter parse again to the same fields (the
//    writer's escaping and the reader agree on every string simdjson accepts);
//  - each accessor gives a value or a problem, never both, and a value of the right kind.
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "http/json.h"

namespace kv::http {
namespace {

bool SameFields(const std::vector<JsonField>& a, const std::vector<JsonField>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].kind != b[i].kind) return false;
    switch (a[i].kind) {
      case JsonField::Kind::kBool:
        if (a[i].b != b[i].b) return false;
        break;
      case JsonField::Kind::kInt:
        if (a[i].i != b[i].i) return false;
        break;
      case JsonField::Kind::kString:
        if (a[i].s != b[i].s) return false;
        break;
      case JsonField::Kind::kNull:
      case JsonField::Kind::kOther:
        break;
    }
  }
  return true;
}

// Writes the fields back as a JSON object (kOther ones left out: their value is not kept).
std::vector<JsonField> RoundTrip(const std::vector<JsonField>& fields, size_t depth) {
  JsonWriter w;
  w.BeginObject();
  std::vector<JsonField> want;
  for (const JsonField& f : fields) {
    switch (f.kind) {
      case JsonField::Kind::kNull:
        w.Key(f.name).Null();
        break;
      case JsonField::Kind::kBool:
        w.FieldBool(f.name, f.b);
        break;
      case JsonField::Kind::kInt:
        w.Field(f.name, f.i);
        break;
      case JsonField::Kind::kString:
        w.Field(f.name, std::string_view(f.s));
        break;
      case JsonField::Kind::kOther:
        continue;
    }
    want.push_back(f);
  }
  w.EndObject();
  std::vector<JsonField> again;
  const std::optional<JsonProblem> p = ParseObject(w.str(), depth, &again);
  if (p) std::fprintf(stderr, "re-parse of %s: %s\n", w.str().c_str(), p->message.c_str());
  FUZZ_CHECK(!p);
  FUZZ_CHECK(SameFields(want, again));
  return again;
}

template <typename T>
void CheckGet(const std::optional<T>& v, const std::optional<JsonProblem>& p,
              const std::optional<JsonProblem>& before) {
  // A getter never reports a problem and a value at once, and never overwrites the first
  // problem (handlers report the first one).
  if (!before && p) FUZZ_CHECK(!v);
  if (before) FUZZ_CHECK(p && p->message == before->message);
  if (p) FUZZ_CHECK(p->wire == Wire::kBadRequest && !p->message.empty());
}

// One route's use of a body: CheckKnown over its fields, then its getters in its order.
struct Getter {
  enum Type { kStr, kInt, kBool } type;
  std::string_view name;
  bool required;
};

void AsHandler(const Fields& f, std::initializer_list<std::string_view> allowed,
               std::initializer_list<Getter> getters) {
  if (std::optional<JsonProblem> p = f.CheckKnown(allowed)) {
    FUZZ_CHECK(p->wire == Wire::kUnknownField && !p->message.empty());
  }
  std::optional<JsonProblem> p;
  for (const Getter& g : getters) {
    const std::optional<JsonProblem> before = p;
    switch (g.type) {
      case Getter::kStr:
        CheckGet(f.Str(g.name, g.required, &p), p, before);
        break;
      case Getter::kInt:
        CheckGet(f.Int(g.name, g.required, &p), p, before);
        break;
      case Getter::kBool:
        CheckGet(f.Bool(g.name, g.required, &p), p, before);
        break;
    }
    if (!before && !p && g.required) FUZZ_CHECK(f.Has(g.name));
  }
}

void Handlers(const std::vector<JsonField>& fields) {
  const Fields f(fields);
  using G = Getter;
  // POST /api/v1/orders
  AsHandler(f, {"product_id", "quantity", "contact", "query_password"},
            {{G::kStr, "product_id", true},
             {G::kInt, "quantity", true},
             {G::kStr, "contact", true},
             {G::kStr, "query_password", false}});
  // POST /api/v1/orders/lookup
  AsHandler(f, {"contact", "query_password"},
            {{G::kStr, "contact", true}, {G::kStr, "query_password", true}});
  // POST /api/v1/payments/notify (unknown fields ignored once signed)
  AsHandler(f, {"order_id", "payment_id", "amount_cents", "currency", "status"},
            {{G::kStr, "order_id", true},
             {G::kStr, "payment_id", true},
             {G::kInt, "amount_cents", true},
             {G::kStr, "currency", true},
             {G::kStr, "status", true}});
  // POST/PATCH /api/v1/admin/products (create: the first four required)
  for (bool create : {true, false}) {
    AsHandler(f,
              {"name", "description", "price_cents", "currency", "stock_mode", "allow_backorder",
               "max_per_order", "active"},
              {{G::kStr, "name", create},
               {G::kStr, "description", false},
               {G::kInt, "price_cents", create},
               {G::kStr, "currency", create},
               {G::kStr, "stock_mode", false},
               {G::kBool, "allow_backorder", false},
               {G::kInt, "max_per_order", false},
               {G::kBool, "active", false}});
  }
  // POST /api/v1/admin/products/{id}/keys/retire
  AsHandler(f, {"batch_id"}, {{G::kStr, "batch_id", true}});
  // Routes that take only {} (e.g. admin actions)
  AsHandler(f, {}, {});
}

void Check(std::string_view body, size_t depth) {
  std::vector<JsonField> fields;
  const std::optional<JsonProblem> p = ParseObject(body, depth, &fields);
  if (p) {
    FUZZ_CHECK(p->wire == Wire::kBadRequest && !p->message.empty());
    return;
  }
  std::set<std::string_view> names;
  for (const JsonField& f : fields) FUZZ_CHECK(names.insert(f.name).second);
  for (size_t deeper : {depth + 1, size_t{256}}) {
    std::vector<JsonField> again;
    FUZZ_CHECK(!ParseObject(body, deeper, &again));
    FUZZ_CHECK(SameFields(fields, again));
  }
  RoundTrip(fields, depth);
  Handlers(fields);
}

}  // namespace
}  // namespace kv::http

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t depth = data[0] % 32 + 1;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  kv::http::Check(body, depth);
  kv::http::Check(body, 16);
  return 0;
}
