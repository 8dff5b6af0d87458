// Where the config meets the shop (`keyvend serve` hands Config values to ShopOptions):
// both bound the hold times with the same named limits (limits.h), so a value the config
// accepts opens the shop and one it refuses is refused by Shop::Open too.
#include <cstdint>
#include <string>

#include "config/config.h"
#include "gtest/gtest.h"
#include "kit/files.h"
#include "shop/shop.h"

namespace kv {
namespace {

const OptionSpec& Option(const std::string& name) {
  for (const OptionSpec& o : ConfigOptions()) {
    if (name == o.name) return o;
  }
  ADD_FAILURE() << "no option " << name;
  return ConfigOptions().front();
}

TEST(ShopConfig, HoldBoundsAgree) {
  struct Case {
    const char* option;
    int64_t Config::*config_field;
    int64_t ShopOptions::*shop_field;
  };
  for (const Case& c : {Case{"hold_seconds", &Config::hold_seconds, &ShopOptions::hold_seconds},
                        Case{"hold_grace_seconds", &Config::hold_grace_seconds,
                             &ShopOptions::hold_grace_seconds}}) {
    SCOPED_TRACE(c.option);
    const OptionSpec& o = Option(c.option);
    std::string flag = std::string("--") + o.name;
    for (char& ch : flag) ch = ch == '_' ? '-' : ch;
    for (const int64_t value : {o.min, o.max, o.min - 1, o.max + 1}) {
      SCOPED_TRACE(value);
      const bool in_range = value >= o.min && value <= o.max;
      absl::StatusOr<Config> cfg =
          LoadConfig({flag, std::to_string(value)},
                     [](const std::string&) -> std::optional<std::string> { return std::nullopt; });
      ASSERT_EQ(cfg.ok(), in_range) << cfg.status();
      testing::TempDir tmp;
      ShopOptions so;
      so.data_dir = tmp.Sub("data");
      so.master_key_file = tmp.Sub("master.key");
      so.start_workers = false;
      so.*c.shop_field = in_range ? (*cfg).*c.config_field : value;
      absl::StatusOr<std::unique_ptr<Shop>> shop = Shop::Open(so);
      EXPECT_EQ(shop.ok(), in_range) << shop.status();
      if (!in_range) {
        EXPECT_EQ(shop.status().code(), absl::StatusCode::kInvalidArgument);
      }
    }
  }
}

}  // namespace
}  // namespace kv
