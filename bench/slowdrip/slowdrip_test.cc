// slowdrip_bench's pure parts: the command line, the source-address plan, the counts text.
#include <arpa/inet.h>

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "slowdrip/engine.h"
#include "slowdrip/options.h"

namespace kv::slowdrip {
namespace {

TEST(SlowdripOptions, ModeDefaults) {
  auto drip = ParseArgs({"--url", "http://127.0.0.1:1", "--product", "7"});
  ASSERT_TRUE(drip.ok()) << drip.status();
  EXPECT_EQ(drip->mode, "slowdrip");
  EXPECT_EQ(drip->connections, 5000);
  EXPECT_EQ(drip->per_address, 20);
  EXPECT_FALSE(drip->keep_alive);
  auto idle = ParseArgs({"--url=http://127.0.0.1:1", "--mode=idle", "--keep-alive", "yes"});
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_EQ(idle->connections, 10000);
  EXPECT_EQ(idle->per_address, 50);
  EXPECT_TRUE(idle->keep_alive);
}

TEST(SlowdripOptions, RefusesWhatItCannotRun) {
  const std::string url = "--url=http://127.0.0.1:1";
  for (const std::vector<std::string>& bad : std::vector<std::vector<std::string>>{
           {},                                          // no --url
           {url},                                       // slowdrip without product
           {url, "--mode=idle", "--connections=0"},     // out of range
           {url, "--mode=idle", "--connections=1.5"},   // not an integer
           {url, "--mode=idle", "--keep-alive=maybe"},  // not yes/no
           {url, "--mode=idle", "--bogus=1"},           // unknown
           {url, "--mode=idle", "--seconds"},           // no value
           {url, "--mode=flood"},                       // unknown mode
           {url, "--mode=idle", "--connections=200000", "--per-address=1"},  // addresses
       }) {
    EXPECT_FALSE(ParseArgs(bad).ok()) << ::testing::PrintToString(bad);
  }
  EXPECT_TRUE(ParseArgs({url, "--mode=idle", "--connections=200000", "--per-address=4"}).ok());
}

TEST(SlowdripOptions, BuyerAddressesKeepEachUnderThePerClientLimits) {
  Options o;
  o.seconds = 30;
  o.buyer_interval_ms = 100;  // 300 orders: 20 addresses of 15
  EXPECT_EQ(BuyerAddresses(o), 20);
  o.seconds = 1;
  EXPECT_EQ(BuyerAddresses(o), 8);
  o.seconds = 3600;
  EXPECT_EQ(BuyerAddresses(o), 254);
  o.buyer_addresses = 3;
  EXPECT_EQ(BuyerAddresses(o), 3);
}

TEST(SlowdripAddresses, RunThroughBlocksOf254) {
  EXPECT_EQ(AddressText(SourceAddress(1, 0)), "127.0.1.1");
  EXPECT_EQ(AddressText(SourceAddress(1, 253)), "127.0.1.254");
  EXPECT_EQ(AddressText(SourceAddress(1, 254)), "127.0.2.1");
  EXPECT_EQ(AddressText(SourceAddress(kBuyerBlock, 5)), "127.0.250.6");
  EXPECT_EQ(AddressText(SourceAddress(kProbeBlock, 0)), "127.0.251.1");
  // The last address of the connections' blocks stays below the buyer's.
  EXPECT_EQ(AddressText(SourceAddress(kConnBlock, kConnBlocks * 254 - 1)), "127.0.249.254");
}

TEST(SlowdripCounts, OneTokenForScripts) {
  EXPECT_EQ(CountsText({}), "none");
  EXPECT_EQ(CountsText({{"HTTP 503", 2}, {"connect: Connection refused", 1}}),
            "HTTP_503:2,connect__Connection_refused:1");
}

}  // namespace
}  // namespace kv::slowdrip
