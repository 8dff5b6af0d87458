// The configured payment gateways (issue 13): `payment_gateways` (plus the secrets from the
// environment) mapped to the adapters' own option structs, built once at start. The HTTP
// layer, the storefront and the reconciler find an adapter by its name here.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/clock.h"
#include "base/random.h"
#include "config/config.h"
#include "net/http_client.h"
#include "pay/gateway.h"

namespace kv::pay {

class SandboxGateway;

// The gateways' secrets: from the environment only (src/app/main.cc), never a file or flag.
struct GatewaySecrets {
  std::string epay_key;               // KEYVEND_EPAY_KEY
  std::string stripe_secret_key;      // KEYVEND_STRIPE_SECRET_KEY
  std::string stripe_webhook_secret;  // KEYVEND_STRIPE_WEBHOOK_SECRET
};

// The adapters, in the configured order. Immutable after MakeGateways: thread-safe.
class Gateways {
 public:
  Gateways() = default;
  Gateways(const Gateways&) = delete;
  Gateways& operator=(const Gateways&) = delete;

  // Takes ownership; the name must be new (a programming error otherwise: aborts).
  void Add(std::unique_ptr<Gateway> g);
  // The adapter named `name`, or null.
  Gateway* Find(std::string_view name) const;
  // The first configured adapter that supports `currency`, or null.
  Gateway* DefaultFor(std::string_view currency) const;
  // Every adapter, in the configured order.
  const std::vector<Gateway*>& all() const { return all_; }
  bool empty() const { return all_.empty(); }
  // The sandbox adapter when it is configured, else null.
  SandboxGateway* sandbox() const { return sandbox_; }

 private:
  std::vector<std::unique_ptr<Gateway>> owned_;
  std::vector<Gateway*> all_;
  SandboxGateway* sandbox_ = nullptr;
};

// The gateway names `payment_gateways` selects: its list, or {"sandbox"} when it is empty
// and payment_sandbox is on, or none.
std::vector<std::string> ConfiguredGatewayNames(const Config& c);

// Builds the configured adapters. http, clock and random must outlive the result; http may
// be null only when no configured gateway makes outbound calls (sandbox only).
// Errors (InvalidArgument, naming the option or variable): an unknown or repeated name;
// "sandbox" listed without payment_sandbox; epay without epay_url, epay_pid, epay_types
// or KEYVEND_EPAY_KEY; stripe without KEYVEND_STRIPE_SECRET_KEY or
// KEYVEND_STRIPE_WEBHOOK_SECRET; an adapter this binary was built without.
absl::StatusOr<std::unique_ptr<Gateways>> MakeGateways(const Config& c,
                                                       const GatewaySecrets& secrets,
                                                       net::HttpClient* http, const Clock* clock,
                                                       Random* random);

}  // namespace kv::pay
