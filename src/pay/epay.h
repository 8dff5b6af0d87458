// The EPay (易支付) adapter: the MD5-signed submit.php redirect / notify / api.php query
// protocol that most card-key shops use to reach Alipay, WeChat Pay and QQ Pay through an
// aggregator. Protocol notes and what was checked: ARCHITECTURE.md, "Payments".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "net/http_client.h"
#include "pay/gateway.h"

namespace kv::pay {

struct EpayOptions {
  std::string base_url;            // the EPay site, e.g. "https://pay.example.com" (no trailing /)
  std::string pid;                 // merchant id (digits)
  std::string key;                 // merchant key (from KEYVEND_EPAY_KEY; never logged)
  std::vector<std::string> types;  // offered pay types, e.g. {"alipay", "wxpay"}
  net::HttpLimits limits;          // for the query API
};

// http must outlive the gateway. Never fails: options are validated by the registry.
std::unique_ptr<Gateway> MakeEpayGateway(EpayOptions opts, net::HttpClient* http);

}  // namespace kv::pay
