// data/bench.conf, the benchmarks' "limits off" config (tools/lib.sh): it loads (a renamed
// option fails here, not in a benchmark run) and every load-protection limit in it is off.
// A limit added later must be added to both.
#include <optional>
#include <string>
#include <utility>

#include "config/config.h"
#include "gtest/gtest.h"

namespace kv {
namespace {

TEST(BenchConf, EveryLimitIsOff) {
  const auto c = LoadConfig({"--config", std::string(KEYVEND_SOURCE_DIR) + "/data/bench.conf"},
                            [](const std::string&) { return std::optional<std::string>(); });
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_GE(c->max_connections, 4096) << "room for wrk at 4,096 connections (the default)";
  EXPECT_EQ(c->max_connections_per_client, 0);
#define KV_OFF(field) std::pair<const char*, int64_t>(#field, c->field)
  for (const auto& [name, value] :
       {KV_OFF(waiting_connections_max), KV_OFF(waiting_connections_per_client),
        KV_OFF(rate_limit_order_per_second), KV_OFF(rate_limit_order_per_client_per_second),
        KV_OFF(rate_limit_read_per_second), KV_OFF(rate_limit_read_per_client_per_second),
        KV_OFF(rate_limit_notify_per_second), KV_OFF(rate_limit_notify_per_client_per_second),
        KV_OFF(rate_limit_admin_per_second), KV_OFF(rate_limit_admin_per_client_per_second),
        KV_OFF(rate_limit_page_per_second), KV_OFF(rate_limit_page_per_client_per_second),
        KV_OFF(inflight_order_max), KV_OFF(inflight_read_max), KV_OFF(inflight_admin_max),
        KV_OFF(inflight_page_max), KV_OFF(pending_orders_per_contact_max),
        KV_OFF(pending_orders_per_client_max)}) {
    EXPECT_EQ(value, 0) << name;
  }
#undef KV_OFF
}

}  // namespace
}  // namespace kv
