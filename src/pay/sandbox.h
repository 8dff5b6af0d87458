// The sandbox gateway as an adapter (issue 13): no real money, for demos and tests. Its pay
// page (/sandbox/pay/{id}, src/http/api.cc) pays with keyvend's own signed notify, or —
// the second button, "Pay, but lose the notify" — records the payment only here, in
// memory, as a gateway would whose notify never reached the shop: only Query reveals it,
// which is how reconciliation is shown and tested without EPay or Stripe. That memory is
// the sandbox's "gateway side": a restart (or kill -9) of keyvend forgets it.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "base/mutex.h"
#include "pay/gateway.h"

namespace kv::pay {

class SandboxGateway final : public Gateway {
 public:
  std::string_view name() const override { return "sandbox"; }
  std::vector<std::string> methods() const override { return {}; }
  bool SupportsCurrency(std::string_view) const override { return true; }
  // Redirects to the sandbox's page: "/sandbox/pay/{order_id}" (relative to the shop).
  absl::StatusOr<PayStart> Start(const PayOrder& order) override;
  // The sandbox notifies in-process (its page); an HTTP notify for it is always rejected.
  NotifyVerdict ParseNotify(const httplib::Request& req, absl::Time now) const override;
  NotifyReply Reply(bool accepted) const override;
  // kPaid with the notice "Pay, but lose the notify" recorded for the order, else kNotPaid.
  QueryResult Query(std::string_view order_id, std::string_view ref) override;

  // The "lose the notify" button: the gateway took the money (notice) but its notify never
  // arrives. The latest notice per order is kept (at most kLostMax orders; beyond that the
  // button is refused: false). Thread-safe.
  bool RecordLostPayment(const PaymentNotice& notice);
  static constexpr size_t kLostMax = 100000;

 private:
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, PaymentNotice> lost_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kv::pay
