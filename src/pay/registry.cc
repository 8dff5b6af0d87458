#include "pay/registry.h"

#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/log.h"
#include "pay/epay.h"
#include "pay/sandbox.h"
#include "pay/stripe.h"

namespace kv::pay {

void Gateways::Add(std::unique_ptr<Gateway> g) {
  if (Find(g->name()) != nullptr) {
    KV_LOG(kError, "gateway ", std::string(g->name()), " added twice");
    std::abort();
  }
  if (g->name() == "sandbox") sandbox_ = static_cast<SandboxGateway*>(g.get());
  all_.push_back(g.get());
  owned_.push_back(std::move(g));
}

Gateway* Gateways::Find(std::string_view name) const {
  for (Gateway* g : all_) {
    if (g->name() == name) return g;
  }
  return nullptr;
}

Gateway* Gateways::DefaultFor(std::string_view currency) const {
  for (Gateway* g : all_) {
    if (g->SupportsCurrency(currency)) return g;
  }
  return nullptr;
}

std::vector<std::string> ConfiguredGatewayNames(const Config& c) {
  std::vector<std::string> names;
  if (c.payment_gateways.empty()) {
    if (c.payment_sandbox) names.push_back("sandbox");
    return names;
  }
  for (absl::string_view n : absl::StrSplit(c.payment_gateways, ',')) {
    names.emplace_back(absl::StripAsciiWhitespace(n));
  }
  return names;
}

absl::StatusOr<std::unique_ptr<Gateways>> MakeGateways(const Config& c,
                                                       const GatewaySecrets& secrets,
                                                       net::HttpClient* http, const Clock* clock,
                                                       Random* random) {
  (void)random;
  auto out = std::make_unique<Gateways>();
  net::HttpLimits limits;
  limits.total_timeout = absl::Seconds(c.gateway_timeout_seconds);
  limits.connect_timeout = std::min(limits.connect_timeout, limits.total_timeout);
  const auto missing = [](const std::string& gw, const char* what) {
    return absl::InvalidArgumentError(
        absl::StrCat("payment_gateways lists ", gw, " but ", what, " is not set"));
  };
  for (const std::string& name : ConfiguredGatewayNames(c)) {
    if (out->Find(name) != nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("payment_gateways lists ", name, " more than once"));
    }
    std::unique_ptr<Gateway> g;
    if (name == "sandbox") {
      if (!c.payment_sandbox) {
        return absl::InvalidArgumentError(
            "payment_gateways lists sandbox but payment_sandbox is off (the sandbox takes no "
            "real money: turn it on explicitly)");
      }
      g = std::make_unique<SandboxGateway>();
    } else if (name == "epay") {
      if (c.epay_url.empty()) return missing(name, "epay_url");
      if (c.epay_pid.empty()) return missing(name, "epay_pid");
      if (c.epay_types.empty()) return missing(name, "epay_types");
      if (secrets.epay_key.empty()) return missing(name, "KEYVEND_EPAY_KEY");
      if (http == nullptr) return absl::InvalidArgumentError("epay: no outbound HTTP client");
      EpayOptions o;
      o.base_url = c.epay_url;
      o.pid = c.epay_pid;
      o.key = secrets.epay_key;
      for (absl::string_view t : absl::StrSplit(c.epay_types, ',')) {
        o.types.emplace_back(absl::StripAsciiWhitespace(t));
      }
      o.limits = limits;
      g = MakeEpayGateway(std::move(o), http);
    } else if (name == "stripe") {
      if (c.stripe_api_base.empty()) return missing(name, "stripe_api_base");
      if (secrets.stripe_secret_key.empty()) return missing(name, "KEYVEND_STRIPE_SECRET_KEY");
      if (secrets.stripe_webhook_secret.empty()) {
        return missing(name, "KEYVEND_STRIPE_WEBHOOK_SECRET");
      }
      if (http == nullptr) return absl::InvalidArgumentError("stripe: no outbound HTTP client");
      StripeOptions o;
      o.api_base = c.stripe_api_base;
      o.secret_key = secrets.stripe_secret_key;
      o.webhook_secret = secrets.stripe_webhook_secret;
      o.limits = limits;
      g = MakeStripeGateway(std::move(o), http, clock);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("payment_gateways: unknown gateway ", name));
    }
    if (g == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(name, ": not built into this keyvend"));
    }
    out->Add(std::move(g));
  }
  return out;
}

}  // namespace kv::pay
