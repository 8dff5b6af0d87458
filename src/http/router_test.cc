// The route table's rules (a row that contradicts itself cannot be added) and matching;
// the in-flight slots' guard gives its slot back on every way out, exceptions included.
#include <stdexcept>

#include "gtest/gtest.h"
#include "http/server_internal.h"

namespace kv::http {
namespace {

void Nop(Ctx&) {}

TEST(Router, MatchesLiteralSegmentsAndParametersByMethod) {
  Router r;
  r.Add({"GET", "/api/v1/orders/{order_id}", RouteClass::kRead, BodyKind::kNone, Auth::kPublic},
        Nop);
  r.Add({"POST", "/api/v1/admin/products/{id}/keys", RouteClass::kAdmin, BodyKind::kImport,
         Auth::kAdmin},
        Nop);
  std::vector<std::string> params;
  bool known = false;
  const Route* got = r.Match("GET", "/api/v1/orders/abc", &params, &known);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->name, "GET /api/v1/orders/{order_id}");
  ASSERT_EQ(params.size(), 1u);
  EXPECT_EQ(params[0], "abc");
  EXPECT_EQ(r.Match("POST", "/api/v1/orders/abc", &params, &known), nullptr);
  EXPECT_TRUE(known) << "the path exists with another method";
  // The import body limit belongs to the import route only: another path ending in /keys
  // is no route at all (review finding 2).
  EXPECT_EQ(r.Match("POST", "/api/v1/orders/x/keys", &params, &known), nullptr);
  EXPECT_FALSE(known);
  got = r.Match("POST", "/api/v1/admin/products/7/keys", &params, &known);
  ASSERT_NE(got, nullptr);
  EXPECT_EQ(got->spec.body, BodyKind::kImport);
  EXPECT_EQ(r.Match("GET", "relative", &params, &known), nullptr);
}

using RouterDeathTest = ::testing::Test;

TEST_F(RouterDeathTest, ARowThatContradictsItselfCannotBeAdded) {
  EXPECT_DEATH(
      {
        Router r;
        r.Add({"GET", "/x", RouteClass::kAdmin, BodyKind::kNone, Auth::kPublic}, Nop);
      },
      "admin auth if and only if the admin class");
  EXPECT_DEATH(
      {
        Router r;
        r.Add({"POST", "/x", RouteClass::kPage, BodyKind::kJson, Auth::kAdmin}, Nop);
      },
      "admin auth if and only if the admin class");
  EXPECT_DEATH(
      {
        Router r;
        r.Add({"GET", "/x", RouteClass::kPage, BodyKind::kJson, Auth::kPublic}, Nop);
      },
      "takes no body");
  EXPECT_DEATH(
      {
        Router r;
        r.Add({"POST", "/x", RouteClass::kOrder, BodyKind::kImport, Auth::kPublic}, Nop);
      },
      "import body limit");
  EXPECT_DEATH(
      {
        Router r;
        r.Add({"GET", "/x", RouteClass::kPage, BodyKind::kNone, Auth::kPublic}, Nop);
        r.Add({"GET", "/x", RouteClass::kPage, BodyKind::kNone, Auth::kPublic}, Nop);
      },
      "added twice");
}

TEST(InflightSlots, CapsPerClassAndAGuardGivesItsSlotBackEvenWhenAHandlerThrows) {
  InflightSlots slots({2, 0, 0, 1, 0});
  const size_t order = static_cast<size_t>(RouteClass::kOrder);
  const size_t read = static_cast<size_t>(RouteClass::kRead);
  ASSERT_TRUE(slots.TryTake(order));
  ASSERT_TRUE(slots.TryTake(order));
  EXPECT_FALSE(slots.TryTake(order)) << "at the cap";
  EXPECT_EQ(slots.used(order), 2);
  slots.Give(order);
  slots.Give(order);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(slots.TryTake(read)) << "0 = no cap";
  for (int i = 0; i < 1000; ++i) slots.Give(read);

  // A throwing handler (e.g. bad_alloc under memory pressure) must not leak its slot: 100
  // throws, then the class still admits up to its cap.
  for (int i = 0; i < 100; ++i) {
    try {
      ASSERT_TRUE(slots.TryTake(order));
      InflightSlots::Guard g(&slots, order);
      throw std::runtime_error("handler failed");
    } catch (const std::runtime_error&) {
    }
  }
  EXPECT_EQ(slots.used(order), 0);
  EXPECT_TRUE(slots.TryTake(order));
  EXPECT_TRUE(slots.TryTake(order));
}

}  // namespace
}  // namespace kv::http
