// The fixture most black-box HTTP tests share: one real `keyvend serve` per test, with an
// admin token and a payment secret in its environment (nothing else of ours:
// kit/process.h), started by Start(flags); TearDown closes the API client and ends with
// ExpectCleanStop (SIGTERM exit 0, `keyvend check` OK, no imported card key in any output).
#pragma once

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kit/http_client.h"
#include "kit/server_process.h"

namespace kv::httptest {

class ServedShopTest : public ::testing::Test {
 protected:
  // The admin token must have the 32 characters serve requires.
  ServedShopTest(std::string admin_token, std::string payment_secret)
      : admin_token_(std::move(admin_token)), payment_secret_(std::move(payment_secret)) {}

  // Creates server_ (not started) and tag_, a number unique enough to keep one run's card
  // keys apart from another's.
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(std::vector<std::string>{
        "KEYVEND_ADMIN_TOKEN=" + admin_token_, "KEYVEND_PAYMENT_SECRET=" + payment_secret_});
    std::random_device rd;
    tag_ = std::to_string(rd() % 100000);
  }

  void TearDown() override {
    api_.reset();  // closes its keep-alive connection
    if (server_ != nullptr) ExpectCleanStop(*server_, imported_);
  }

  // Starts the server with `flags` after the harness's own (the last flag wins); api_ then
  // talks to it with the admin token (it connects on first use).
  void Start(const std::vector<std::string>& flags = {}) {
    std::string error;
    ASSERT_TRUE(server_->Start(flags, &error)) << error;
    api_ = std::make_unique<Api>(server_->port(), admin_token_);
  }

  const std::string admin_token_;
  const std::string payment_secret_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Api> api_;
  std::vector<std::string> imported_;  // every card key the test imported (ExpectCleanStop)
  std::string tag_;
};

}  // namespace kv::httptest
