// The Stripe Checkout adapter: a Checkout Session created through Stripe's HTTP API, the
// checkout.session.completed webhook verified by its Stripe-Signature header, and the
// session retrieved for reconciliation. Protocol notes: ARCHITECTURE.md, "Payments".
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "base/clock.h"
#include "net/http_client.h"
#include "pay/gateway.h"

namespace kv::pay {

struct StripeOptions {
  std::string api_base = "https://api.stripe.com";  // no trailing /
  std::string secret_key;                           // KEYVEND_STRIPE_SECRET_KEY
  std::string webhook_secret;                       // KEYVEND_STRIPE_WEBHOOK_SECRET
  int64_t tolerance_seconds = 300;                  // of the signature's timestamp
  net::HttpLimits limits;
};

// http and clock must outlive the gateway. Never fails: options are validated by the
// registry.
std::unique_ptr<Gateway> MakeStripeGateway(StripeOptions opts, net::HttpClient* http,
                                           const Clock* clock);

}  // namespace kv::pay
