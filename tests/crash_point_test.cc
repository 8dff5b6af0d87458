// Named crash points (issue 15, src/base/crash_point.h): for every point of kv::crash::kPoints,
// once with kill -9 and once with a power loss (the fault file system drops every byte not
// yet synced and tears the last writes), the test build's keyvend_fault_server — the same
// serve path as `keyvend serve` — is made to die exactly there while it serves the one
// operation that passes the point. Then, on the dead data dir:
//  - `keyvend check` (the production binary) exits 0 (SPEC §2.1, §2.2, §2.5);
//  - the production `keyvend serve` reopens it and everything acknowledged before the
//    crash is there (§2.3, §2.4);
//  - the operation that was cut is all or nothing, and which one is known: a point before
//    the write leaves nothing of it, a point after the synced write leaves all of it
//    (e.g. payment.before_write: the order still pending with its hold and the keys in the
//    pool; payment.after_write: the order delivered with its keys, the pool down by them,
//    the payment listed). Work the shop owes (a backorder, an expiry) is done after the
//    restart.
// The restore.* points are passed by `keyvend-backup restore`, not by the server: for each
// (kill mode only; the restore does not write through the fault file system) the fault
// server's `restore` subcommand dies there; the target is then absent (before the rename)
// or a complete restore that `keyvend check` accepts (after it), and the production
// `keyvend-backup restore` run again restores the backup with its order (or, after the
// rename, refuses the complete target as not empty) and leaves no staging dir.
// Also: the production keyvend and keyvend-backup ignore KEYVEND_CRASH_AT, and the fault
// server refuses an unknown point or mode at start (power for restore). Label "crash".
#include "base/crash_point.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "http_test_util.h"
#include "kit/outbound_fakes.h"

namespace kv::httptest {
namespace {

constexpr char kAdminToken[] = "adm-point-7a1c9e3b5d-0123456789abcdef012";
constexpr char kPaymentSecret[] = "pay-point-2e4f6a8c0b";
constexpr char kWebhookSecret[] = "whk-point-9d7b5c3a1e";
constexpr int64_t kPoolKeys = 4;  // keys imported into the product at setup

std::vector<std::string> BaseEnv() {
  return {std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
          std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret,
          std::string("KEYVEND_WEBHOOK_SECRET=") + kWebhookSecret};
}

struct OrderRef {
  std::string id, token;
  int64_t amount = 0;
};

// --- setup and reads over HTTP (every failure is the test's) ----------------------------

std::string CreateProduct(Api& a) {
  const Reply r = a.AdminPost(
      "/api/v1/admin/products",
      R"({"name":"Point","price_cents":300,"currency":"USD","max_per_order":3,"allow_backorder":true})");
  EXPECT_EQ(r.status, 201) << r;
  return r.status == 201 ? r.json()["id"].str() : "";
}

Reply Import(Api& a, const std::string& product, const std::vector<std::string>& keys) {
  std::string body;
  for (const std::string& k : keys) body += k + "\n";
  return a.AdminPost("/api/v1/admin/products/" + product + "/keys", body, "text/plain");
}

Reply CreateOrder(Api& a, const std::string& product, int qty) {
  return a.Post("/api/v1/orders", "{\"product_id\":" + Quote(product) + ",\"quantity\":" +
                                      std::to_string(qty) + ",\"contact\":\"point@example.com\"}");
}

OrderRef MustOrder(Api& a, const std::string& product, int qty) {
  const Reply r = CreateOrder(a, product, qty);
  EXPECT_EQ(r.status, 201) << r;
  if (r.status != 201) return {};
  const Json j = r.json();
  return {j["order_id"].str(), j["token"].str(), j["amount_cents"].num()};
}

Reply Pay(Api& a, const OrderRef& o, const std::string& pid) {
  return SendNotify(a, kPaymentSecret, NotifyBody(o.id, pid, o.amount, "USD"));
}

Json GetOrder(Api& a, const OrderRef& o) {
  const Reply r = a.Get("/api/v1/orders/" + o.id + "?token=" + o.token);
  EXPECT_EQ(r.status, 200) << r;
  return r.status == 200 ? r.json() : Json::Parse("{}");
}

std::string StatusOf(Api& a, const OrderRef& o) {
  const Json j = GetOrder(a, o);
  return j.has("status") ? j["status"].str() : "?";
}

// The admin view's counts of `product`: {available, pool, held, owed, delivered, imported}.
std::map<std::string, int64_t> Counts(Api& a, const std::string& product) {
  const Reply r = a.AdminGet("/api/v1/admin/products");
  EXPECT_EQ(r.status, 200) << r;
  std::map<std::string, int64_t> out;
  if (r.status != 200) return out;
  for (const Json& p : r.json()["products"].items()) {
    if (p["id"].str() != product) continue;
    for (const char* k : {"available", "pool", "held", "owed", "delivered", "imported"}) {
      out[k] = p["counts"][k].num();
    }
  }
  EXPECT_FALSE(out.empty()) << "product " << product << " not listed: " << r;
  return out;
}

size_t CountListed(Api& a, const std::string& path, const std::string& field) {
  const Reply r = a.AdminGet(path);
  EXPECT_EQ(r.status, 200) << r;
  return r.status == 200 ? r.json()[field].size() : 0;
}

std::vector<std::string> NewKeys(const std::string& tag, int n) {
  std::vector<std::string> keys;
  for (int i = 0; i < n; ++i) keys.push_back("PT-" + tag + "-" + std::to_string(i));
  return keys;
}

// What one scenario carries between its phases.
struct Scene {
  std::string product;
  OrderRef order;  // the order acted on
  OrderRef other;  // a second order (backorder: the one waiting)
};

// A point past its operation's synced write: all of the operation must be there.
bool IsAfter(const std::string& point) {
  return point.ends_with(".after_write") || point.ends_with(".after_create") ||
         point.ends_with(".after_finish");
}

class CrashPointTest : public ::testing::TestWithParam<std::tuple<int, crash::Mode>> {
 protected:
  CrashPointTest() : server_(BaseEnv()) {}

  std::vector<std::string> Args() const {
    std::vector<std::string> a = {"--backup-dir=" + server_.root() + "/backups"};
    a.insert(a.end(), extra_args_.begin(), extra_args_.end());
    return a;
  }

  // The production keyvend on the test's dir.
  void StartKeyvend() {
    server_.set_binary("");
    server_.set_env(BaseEnv());
    std::string error;
    ASSERT_TRUE(server_.Start(Args(), &error)) << error;
  }

  void StopKeyvend() {
    const int st = server_.Terminate();
    ASSERT_TRUE(ExitedZero(st)) << DescribeWait(st) << "\n" << ReadFile(server_.stderr_path());
  }

  // The fault server armed at `point` in `mode`.
  void StartArmed(const std::string& point, crash::Mode mode) {
    std::vector<std::string> env = BaseEnv();
    env.push_back("KEYVEND_CRASH_AT=" + point);
    env.push_back(std::string("KEYVEND_CRASH_MODE=") +
                  (mode == crash::Mode::kPower ? "power" : "kill"));
    server_.set_binary(KEYVEND_FAULT_SERVER_BIN);
    server_.set_env(env);
    std::string error;
    ASSERT_TRUE(server_.Start(Args(), &error)) << error;
  }

  // Waits for the armed server to die at `point` (it kills itself: SIGKILL), checks the
  // line it printed there (and the power cut's account in power mode), then `keyvend
  // check` on the dead dir.
  void ExpectDiedAt(const std::string& point, crash::Mode mode) {
    const int st = server_.WaitExit(milliseconds(30000));
    const std::string err = ReadFile(server_.stderr_path());
    ASSERT_TRUE(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
        << "the server did not die at " << point << ": " << DescribeWait(st) << "\nstderr:\n"
        << err;
    const std::string line =
        "crash point " + point + ": pass 1, " + (mode == crash::Mode::kPower ? "power" : "kill");
    EXPECT_NE(err.find(line), std::string::npos) << err;
    if (mode == crash::Mode::kPower) {
      EXPECT_NE(err.find("power loss: "), std::string::npos) << err;
      EXPECT_EQ(err.find("the drop failed"), std::string::npos) << err;
    }
    const RunResult check = RunKeyvendCheck(server_.data_dir(), server_.key_file());
    EXPECT_EQ(check.exit_code, 0) << "keyvend check after a crash at " << point << ":\n"
                                  << check.out;
  }

  // The scenario of `point`: setup (production keyvend, every answer checked), the one
  // operation that passes the point (on the armed server; its answer is not awaited: the
  // crash cuts it), and what must hold after the restart. False for a point without one.
  bool Setup(const std::string& point, Api& a);
  void Trigger(const std::string& point, Api& a);
  void Verify(const std::string& point, Api& a);

  Api api() { return Api(server_.port(), kAdminToken); }

  ServerProcess server_;
  WebhookReceiver receiver_{kWebhookSecret};
  std::vector<std::string> extra_args_;
  crash::Mode mode_ = crash::Mode::kKill;
  Scene s_;
};

bool CrashPointTest::Setup(const std::string& point, Api& a) {
  s_.product = CreateProduct(a);
  const Reply imp = Import(a, s_.product, NewKeys("pool", kPoolKeys));
  EXPECT_EQ(imp.status, 200) << imp;
  if (point.starts_with("order.") || point.starts_with("import.") || point.starts_with("backup.")) {
    return true;
  }
  if (point.starts_with("payment.") || point.starts_with("cancel.") ||
      point.starts_with("expiry.")) {
    s_.order = MustOrder(a, s_.product, 2);
    return true;
  }
  if (point.starts_with("refund.")) {
    s_.order = MustOrder(a, s_.product, 2);
    const Reply r = Pay(a, s_.order, "pt-pay-setup");
    EXPECT_EQ(r.status, 200) << r;
    EXPECT_EQ(StatusOf(a, s_.order), "delivered");
    return true;
  }
  if (point.starts_with("outbound.")) {
    // A paid order's webhook event waits in the log: the receiver set at this start is
    // gone. The armed server's start names the live one and sends the event.
    s_.order = MustOrder(a, s_.product, 1);
    const Reply r = Pay(a, s_.order, "pt-pay-setup");
    EXPECT_EQ(r.status, 200) << r;
    return true;
  }
  if (point.starts_with("backorder.")) {
    // Every key held by `order`; `other` paid and waiting (owed). Cancelling `order`
    // frees its keys, and the worker serves `other` from them.
    s_.order = MustOrder(a, s_.product, 3);
    const OrderRef filler = MustOrder(a, s_.product, 1);
    s_.other = MustOrder(a, s_.product, 2);
    const Reply p1 = Pay(a, filler, "pt-pay-filler");
    EXPECT_EQ(p1.status, 200) << p1;
    const Reply p2 = Pay(a, s_.other, "pt-pay-waiting");
    EXPECT_EQ(p2.status, 200) << p2;
    EXPECT_EQ(StatusOf(a, s_.other), "backordered");
    return true;
  }
  return false;
}

void CrashPointTest::Trigger(const std::string& point, Api& a) {
  if (point.starts_with("order.")) {
    CreateOrder(a, s_.product, 2);
  } else if (point.starts_with("payment.")) {
    Pay(a, s_.order, "pt-pay-cut");
  } else if (point.starts_with("cancel.")) {
    a.AdminPost("/api/v1/admin/orders/" + s_.order.id + "/cancel", "{}");
  } else if (point.starts_with("refund.")) {
    a.AdminPost("/api/v1/admin/orders/" + s_.order.id + "/refund", "{}");
  } else if (point.starts_with("backorder.")) {
    // Acknowledged (synced) before the worker runs; the worker's pass then dies.
    a.AdminPost("/api/v1/admin/orders/" + s_.order.id + "/cancel", "{}");
  } else if (point.starts_with("import.")) {
    Import(a, s_.product, NewKeys("cut", 3));
  } else if (point.starts_with("backup.")) {
    a.AdminPost("/api/v1/admin/backups", "{}");
  }
  // expiry: nothing to send; the worker's pass after the hold dies. outbound: the
  // dispatcher sends the waiting event at start; finishing it dies.
}

void CrashPointTest::Verify(const std::string& point, Api& a) {
  const bool after = IsAfter(point);
  const auto c = Counts(a, s_.product);
  if (point.starts_with("order.")) {
    // The cut order: there with its hold, or not at all.
    const size_t orders = CountListed(a, "/api/v1/admin/orders", "orders");
    EXPECT_EQ(orders, after ? 1u : 0u);
    EXPECT_EQ(c.at("held"), after ? 2 : 0);
    EXPECT_EQ(c.at("available"), kPoolKeys - (after ? 2 : 0));
  } else if (point.starts_with("payment.")) {
    // Paid with its keys and the pool down by them, or still pending with its hold and the
    // keys in the pool.
    const Json o = GetOrder(a, s_.order);
    EXPECT_EQ(o["status"].str(), after ? "delivered" : "pending_payment");
    EXPECT_EQ(o["keys"].size(), after ? 2u : 0u);
    EXPECT_EQ(c.at("pool"), kPoolKeys - (after ? 2 : 0));
    EXPECT_EQ(c.at("held"), after ? 0 : 2);
    EXPECT_EQ(c.at("delivered"), after ? 2 : 0);
    EXPECT_EQ(CountListed(a, "/api/v1/admin/payments", "payments"), after ? 1u : 0u);
    // The gateway's retry is then applied (before) or a replay (after): delivered either way.
    const Reply retry = Pay(a, s_.order, "pt-pay-cut");
    EXPECT_EQ(retry.status, 200) << retry;
    EXPECT_EQ(StatusOf(a, s_.order), "delivered");
  } else if (point.starts_with("cancel.")) {
    EXPECT_EQ(StatusOf(a, s_.order), "pending_payment");
    EXPECT_EQ(c.at("held"), 2);
  } else if (point.starts_with("refund.")) {
    const Json o = GetOrder(a, s_.order);
    EXPECT_EQ(o["status"].str(), "delivered");
    EXPECT_EQ(o["keys"].size(), 2u);
    EXPECT_EQ(c.at("delivered"), 2);
  } else if (point.starts_with("backorder.")) {
    // The cancel was acknowledged before the worker ran; the waiting order is served by the
    // dead worker's batch (after) or by the restart (before), with its keys, owed nothing.
    EXPECT_EQ(StatusOf(a, s_.order), "cancelled");
    const Json o = GetOrder(a, s_.other);
    EXPECT_EQ(o["status"].str(), "delivered");
    EXPECT_EQ(o["keys"].size(), 2u);
    const auto now = Counts(a, s_.product);
    EXPECT_EQ(now.at("owed"), 0);
    EXPECT_EQ(now.at("delivered"), 3);
    EXPECT_EQ(now.at("pool"), kPoolKeys - 3);
  } else if (point.starts_with("expiry.")) {
    // Not expired by the dead server; the restarted one expires it and gives the hold back.
    EXPECT_TRUE(kv::testing::PollUntil([&] { return StatusOf(a, s_.order) == "expired"; },
                                       milliseconds(20000)));
    EXPECT_EQ(Counts(a, s_.product).at("held"), 0);
  } else if (point.starts_with("import.")) {
    // All three keys or none: sending the same lines again imports what is not there.
    EXPECT_EQ(c.at("imported"), kPoolKeys + (after ? 3 : 0));
    EXPECT_EQ(c.at("pool"), kPoolKeys + (after ? 3 : 0));
    const Reply again = Import(a, s_.product, NewKeys("cut", 3));
    ASSERT_EQ(again.status, 200) << again;
    EXPECT_EQ(again.json()["imported"].num(), after ? 0 : 3) << again;
    EXPECT_EQ(Counts(a, s_.product).at("pool"), kPoolKeys + 3);
  } else if (point.starts_with("outbound.")) {
    // Sent once by the dead server (the receiver took it). before_finish: its "sent" never
    // written, the restart sends it again (at least once; the receiver dedupes by id).
    // after_finish: the "sent" is synced (shop_outbound.cc), so neither kill -9 nor a power
    // cut brings it back: sent exactly once. Either way the log ends empty.
    int times = 0;
    EXPECT_TRUE(kv::testing::PollUntil(
        [&] {
          const auto acc = receiver_.Accepted();
          times = acc.size() == 1 ? acc.begin()->second : -static_cast<int>(acc.size());
          return times == (after ? 1 : 2) &&
                 CountListed(a, "/api/v1/admin/events?state=pending", "events") == 0;
        },
        milliseconds(20000), milliseconds(50)))
        << "the event was accepted " << times << " times (negative: that many event ids)";
  } else if (point.starts_with("backup.")) {
    const Reply r = a.AdminGet("/api/v1/admin/backups");
    ASSERT_EQ(r.status, 200) << r;
    const Json j = r.json();
    EXPECT_EQ(j["backups"].size(), after ? 1u : 0u) << r;
    EXPECT_EQ(j["unreadable"].size(), 0u) << r;
  }
}

TEST_P(CrashPointTest, CrashHereLosesNothingAcknowledgedAndLeavesNothingHalfDone) {
  const auto [index, mode] = GetParam();
  const std::string point = crash::kPoints[index].name;
  mode_ = mode;
  if (point.starts_with("expiry.")) extra_args_ = {"--hold-seconds=1", "--hold-grace-seconds=0"};
  const bool outbound = point.starts_with("outbound.");
  if (outbound) {
    std::string error;
    ASSERT_TRUE(receiver_.Start(&error)) << error;
    extra_args_ = {"--webhook-url=http://127.0.0.1:" + std::to_string(DeadPort()) + "/hook",
                   "--outbound-backoff-max-seconds=1"};
  }
  ASSERT_NO_FATAL_FAILURE(StartKeyvend());
  {
    Api a = api();
    ASSERT_TRUE(Setup(point, a)) << "no scenario drives crash point " << point
                                 << ": add one to tests/crash_point_test.cc";
    ASSERT_FALSE(HasFailure());
  }
  ASSERT_NO_FATAL_FAILURE(StopKeyvend());

  if (outbound)
    extra_args_ = {"--webhook-url=" + receiver_.url(), "--outbound-backoff-max-seconds=1"};
  ASSERT_NO_FATAL_FAILURE(StartArmed(point, mode));
  {
    Api a = api();
    Trigger(point, a);
  }
  ASSERT_NO_FATAL_FAILURE(ExpectDiedAt(point, mode));

  ASSERT_NO_FATAL_FAILURE(StartKeyvend());
  {
    Api a = api();
    Verify(point, a);
  }
  ExpectCleanStop(server_, {});
}

std::string PointName(const ::testing::TestParamInfo<std::tuple<int, crash::Mode>>& info) {
  std::string n = crash::kPoints[std::get<0>(info.param)].name;
  for (char& ch : n) {
    if (ch == '.') ch = '_';
  }
  return n + (std::get<1>(info.param) == crash::Mode::kPower ? "_power" : "_kill");
}

bool IsRestorePoint(int index) {
  return std::string_view(crash::kPoints[index].name).starts_with("restore.");
}

// The indices of kPoints passed by the server (restore: false) or by the restore (true).
std::vector<int> PointsOf(bool restore) {
  std::vector<int> out;
  for (int i = 0; i < crash::kPointCount; ++i) {
    if (IsRestorePoint(i) == restore) out.push_back(i);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(EveryPoint, CrashPointTest,
                         ::testing::Combine(::testing::ValuesIn(PointsOf(false)),
                                            ::testing::Values(crash::Mode::kKill,
                                                              crash::Mode::kPower)),
                         PointName);

// --- keyvend-backup restore -------------------------------------------------------------

// The staging dirs (backup/restore_dir.h) of restores into `target` in its parent.
std::vector<std::string> StagingDirs(const std::string& target) {
  const std::filesystem::path t(target);
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(t.parent_path())) {
    const std::string name = e.path().filename().string();
    if (name.starts_with(t.filename().string() + ".restoring-")) out.push_back(name);
  }
  return out;
}

class RestoreCrashPointTest : public ::testing::TestWithParam<int> {
 protected:
  RestoreCrashPointTest() : server_(BaseEnv()) {}

  // A shop with one delivered order, backed up online; the shop stopped.
  void BackUpAShop() {
    std::string error;
    ASSERT_TRUE(server_.Start({"--backup-dir=" + BackupDir()}, &error)) << error;
    {
      Api a(server_.port(), kAdminToken);
      const std::string product = CreateProduct(a);
      ASSERT_EQ(Import(a, product, NewKeys("restore", kPoolKeys)).status, 200);
      const OrderRef o = MustOrder(a, product, 2);
      const Reply paid = Pay(a, o, "pt-pay-restore");
      ASSERT_EQ(paid.status, 200) << paid;
      const Reply b = a.AdminPost("/api/v1/admin/backups", "{}");
      ASSERT_EQ(b.status, 201) << b;
    }
    const int st = server_.Terminate();
    ASSERT_TRUE(ExitedZero(st)) << DescribeWait(st);
  }

  std::string BackupDir() const { return server_.root() + "/backups"; }
  std::string Target() const { return server_.root() + "/restored"; }
  std::vector<std::string> RestoreArgs(const char* binary) const {
    std::vector<std::string> a = {binary, "restore"};
    for (const std::string& s : {std::string("--backup-dir"), BackupDir(), std::string("--to"),
                                 Target(), std::string("--master-key-file"), server_.key_file()}) {
      a.push_back(s);
    }
    return a;
  }

  // `keyvend check` on the restored dir: OK, with the backup's one order and payment.
  void ExpectTheBackupsShop() {
    const RunResult check = RunKeyvendCheck(Target(), server_.key_file());
    EXPECT_EQ(check.exit_code, 0) << check.out;
    EXPECT_NE(check.out.find("keyvend check: OK — 1 products, 1 orders, 1 payments"),
              std::string::npos)
        << check.out;
  }

  ServerProcess server_;
};

TEST_P(RestoreCrashPointTest, CrashHereLeavesTheTargetAbsentOrCompleteAndARerunRestores) {
  const std::string point = crash::kPoints[GetParam()].name;
  ASSERT_NO_FATAL_FAILURE(BackUpAShop());

  kv::testing::RunOptions armed;
  armed.env = {"KEYVEND_CRASH_AT=" + point, "KEYVEND_CRASH_MODE=kill"};
  const RunResult cut = RunCommand(RestoreArgs(KEYVEND_FAULT_SERVER_BIN), armed);
  ASSERT_EQ(cut.signal, SIGKILL) << "the restore did not die at " << point << ":\n" << cut.out;
  EXPECT_NE(cut.out.find("crash point " + point + ": pass 1, kill"), std::string::npos) << cut.out;
  // Its staging dir is left behind for the next restore to clear.
  EXPECT_EQ(StagingDirs(Target()).size(), 1u);

  const bool renamed = point == "restore.after_rename";
  EXPECT_EQ(std::filesystem::exists(Target()), renamed);
  if (renamed) ExpectTheBackupsShop();

  const RunResult again = RunCommand(RestoreArgs(KEYVEND_BACKUP_BIN));
  if (renamed) {
    // The restore had finished its work: the complete target is refused, kept as it is.
    EXPECT_EQ(again.exit_code, 1) << again.out;
    EXPECT_NE(again.out.find("it is not empty"), std::string::npos) << again.out;
  } else {
    EXPECT_EQ(again.exit_code, 0) << again.out;
    EXPECT_NE(again.out.find("keyvend check: OK — 1 products, 1 orders, 1 payments"),
              std::string::npos)
        << again.out;
  }
  EXPECT_NE(again.out.find("the staging dir of an interrupted restore"), std::string::npos)
      << again.out;
  EXPECT_TRUE(StagingDirs(Target()).empty());
  ExpectTheBackupsShop();
}

std::string RestorePointName(const ::testing::TestParamInfo<int>& info) {
  std::string n = crash::kPoints[info.param].name;
  for (char& ch : n) {
    if (ch == '.') ch = '_';
  }
  return n + "_kill";
}

INSTANTIATE_TEST_SUITE_P(EveryRestorePoint, RestoreCrashPointTest,
                         ::testing::ValuesIn(PointsOf(true)), RestorePointName);

// The production keyvend-backup never arms a point; the fault server's restore refuses
// power mode (it has no fault file system under the restore).
TEST(CrashPointProductionTest, KeyvendBackupIgnoresKeyvendCrashAtAndPowerIsRefused) {
  ServerProcess server(BaseEnv());
  std::string error;
  ASSERT_TRUE(server.Start({"--backup-dir=" + server.root() + "/backups"}, &error)) << error;
  {
    Api a(server.port(), kAdminToken);
    ASSERT_FALSE(CreateProduct(a).empty());
    const Reply b = a.AdminPost("/api/v1/admin/backups", "{}");
    ASSERT_EQ(b.status, 201) << b;
  }
  ASSERT_TRUE(ExitedZero(server.Terminate()));
  const std::string to = server.root() + "/restored";
  std::vector<std::string> args = {
      "restore", "--backup-dir",      server.root() + "/backups", "--to",
      to,        "--master-key-file", server.key_file()};
  kv::testing::RunOptions o;
  o.env = {"KEYVEND_CRASH_AT=restore.copied", "KEYVEND_CRASH_MODE=power"};
  std::vector<std::string> fault = args;
  fault.insert(fault.begin(), KEYVEND_FAULT_SERVER_BIN);
  const RunResult power = RunCommand(fault, o);
  EXPECT_EQ(power.exit_code, 2) << power.out;
  EXPECT_NE(power.out.find("crash mode power needs a power-cut hook"), std::string::npos)
      << power.out;
  EXPECT_FALSE(std::filesystem::exists(to));

  o.env = {"KEYVEND_CRASH_AT=restore.copied", "KEYVEND_CRASH_MODE=kill"};
  args.insert(args.begin(), KEYVEND_BACKUP_BIN);
  const RunResult r = RunCommand(args, o);
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("keyvend check: OK"), std::string::npos) << r.out;
  EXPECT_TRUE(StagingDirs(to).empty());
}

// The production binary never arms a point: KEYVEND_CRASH_AT means nothing to it.
TEST(CrashPointProductionTest, KeyvendIgnoresKeyvendCrashAt) {
  ServerProcess server({std::string("KEYVEND_ADMIN_TOKEN=") + kAdminToken,
                        std::string("KEYVEND_PAYMENT_SECRET=") + kPaymentSecret,
                        "KEYVEND_CRASH_AT=payment.before_write", "KEYVEND_CRASH_MODE=kill"});
  std::string error;
  ASSERT_TRUE(server.Start({}, &error)) << error;
  Api a(server.port(), kAdminToken);
  const std::string product = CreateProduct(a);
  ASSERT_EQ(Import(a, product, NewKeys("prod", 2)).status, 200);
  const OrderRef o = MustOrder(a, product, 1);
  const Reply r = Pay(a, o, "pt-prod-pay");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(StatusOf(a, o), "delivered");
  EXPECT_TRUE(server.running());
  ExpectCleanStop(server, {});
}

// The fault server refuses an unknown point, a bad pass and a bad mode at start (exit 2,
// naming the problem), before it opens anything.
TEST(CrashPointProductionTest, FaultServerRefusesUnknownPointsAndModes) {
  kv::testing::TempDir tmp;
  const std::vector<std::string> args = {KEYVEND_FAULT_SERVER_BIN, "serve",    "--data-dir",
                                         tmp.Sub("data"),          "--listen", "127.0.0.1:0"};
  struct Case {
    std::vector<std::string> env;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{"KEYVEND_CRASH_AT=payment.nowhere"}, "unknown crash point 'payment.nowhere' (known: "},
      {{"KEYVEND_CRASH_AT=payment.before_write:0"}, "the pass after ':' must be 1..1000000"},
      {{"KEYVEND_CRASH_AT=payment.before_write:x"}, "the pass after ':' must be 1..1000000"},
      {{"KEYVEND_CRASH_AT=payment.before_write", "KEYVEND_CRASH_MODE=reboot"},
       "KEYVEND_CRASH_MODE: 'reboot' is not kill or power"},
  };
  ASSERT_EQ(cases.size(), 4u);
  for (const Case& c : cases) {
    kv::testing::RunOptions o;
    o.env = c.env;
    const RunResult r = RunCommand(args, o);
    EXPECT_EQ(r.exit_code, 2) << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << r.out;
  }
  EXPECT_FALSE(std::filesystem::exists(tmp.Sub("data")));
}

}  // namespace
}  // namespace kv::httptest
