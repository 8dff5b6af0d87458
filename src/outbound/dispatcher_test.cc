// The outbound workers' policy over a real shop (FakeClock) and a fake HTTP client: settle on
// 2xx, exponential backoff, failed after the attempts, breaker refusals not counted, replay.
#include "outbound/dispatcher.h"

#include <dirent.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include "absl/strings/match.h"
#include "base/time_format.h"
#include "kit/files.h"
#include "kit/json.h"
#include "kit/process.h"
#include "kit/shop_fixture.h"

namespace kv::outbound {
namespace {

class FakeHttp final : public net::HttpClient {
 public:
  absl::StatusOr<net::HttpResponse> Do(const net::HttpRequest& req,
                                       const net::HttpLimits&) override {
    std::lock_guard<std::mutex> l(mu);
    requests.push_back(req);
    net::HttpResponse r;
    r.status = status;
    return r;
  }
  std::mutex mu;
  int status = 200;
  std::vector<net::HttpRequest> requests;
};

class DispatcherTest : public testing::ShopTest {
 protected:
  void SetUp() override {
    tweak_options_ = [](ShopOptions& o) {
      o.webhook_events = true;
      o.mail_contact = [](std::string_view c) { return IsValidMailbox(c); };
    };
    ShopTest::SetUp();
    WebhookOptions w;
    w.url = "http://127.0.0.1:9/hook";
    w.secret = "whsec-test";
    w.breaker.failures_to_open = breaker_failures_;
    w.breaker.cooldown = absl::Seconds(30);
    webhook_ = std::move(*WebhookSender::Create(w, &http_, &clock_));
    MailerOptions mo;
    mo.smtp_url = smtp_url_;
    mo.mail_from = "shop@example.com";
    mo.connect_timeout = absl::Seconds(2);
    mo.total_timeout = absl::Seconds(2);
    mailer_ = std::move(*Mailer::Create(mo, &clock_));
    templates_ = std::make_unique<MailTemplates>(*MailTemplates::Load(""));
    DispatcherOptions d;
    d.webhook_max_attempts = 3;
    d.mail_max_attempts = 2;
    d.public_url = "https://shop.example";
    dispatcher_ = std::make_unique<Dispatcher>(shop_.get(), webhook_.get(), mailer_.get(),
                                               templates_.get(), &clock_, &random_, d);
    dispatcher_->RegisterMetrics(&registry_);
  }
  void TearDown() override { dispatcher_.reset(); }

  OrderView PaidOrder(const std::string& contact = "not an address") {
    const uint64_t pid = MakeProduct();
    Import(pid, 1, "SECRETKEY" + std::to_string(products_made_));
    OrderView o = Order(pid, 1, contact);
    EXPECT_EQ(*Pay(o).order_status, OrderStatus::kDelivered);
    return o;
  }
  int64_t Count(OutboundKind k, OutboundState s) {
    return shop_->OutboundCounts().count[static_cast<int>(k)][static_cast<int>(s)];
  }
  size_t Run(OutboundKind k = OutboundKind::kWebhook) {
    auto n = dispatcher_->RunOnce(k);
    EXPECT_TRUE(n.ok()) << n.status();
    return n.ok() ? *n : 0;
  }

  int breaker_failures_ = 100;
  std::string smtp_url_ = "smtp://127.0.0.1:1";  // nothing listens: every mail is a retry
  FakeHttp http_;
  // A second dispatcher over the fixture's shop and senders (its workers idle-wait 20 ms).
  std::unique_ptr<Dispatcher> NewDispatcher(DispatcherOptions d) {
    d.idle_wait = absl::Milliseconds(20);
    return std::make_unique<Dispatcher>(shop_.get(), webhook_.get(), mailer_.get(),
                                        templates_.get(), &clock_, &random_, std::move(d));
  }

  std::unique_ptr<WebhookSender> webhook_;
  std::unique_ptr<Mailer> mailer_;
  std::unique_ptr<MailTemplates> templates_;
  Registry registry_;
  std::unique_ptr<Dispatcher> dispatcher_;
};

TEST_F(DispatcherTest, A2xxSettlesAndTheBodyHasNoKeyNorToken) {
  OrderView o = PaidOrder();
  EXPECT_EQ(Run(), 1u);
  ASSERT_EQ(http_.requests.size(), 1u);
  const net::HttpRequest& req = http_.requests[0];
  EXPECT_NE(req.body.find("\"id\":\"evt_" + o.order_id + "_delivered\""), std::string::npos);
  EXPECT_NE(req.body.find("\"type\":\"order.delivered\""), std::string::npos);
  EXPECT_EQ(req.body.find("SECRETKEY"), std::string::npos);
  EXPECT_EQ(req.body.find(o.token), std::string::npos);
  bool has_id = false;
  for (const auto& [k, v] : req.headers) has_id |= k == "Keyvend-Event-Id";
  EXPECT_TRUE(has_id);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 0);
  EXPECT_TRUE(shop_->ListOutbound(std::nullopt, o.order_id)->empty());
  EXPECT_EQ(Run(), 0u);
  EXPECT_NE(registry_.Render().find(
                "keyvend_outbound_attempts_total{kind=\"webhook\",result=\"sent\"} 1"),
            std::string::npos);
}

TEST_F(DispatcherTest, RetriesBackOffThenFailThenReplayDelivers) {
  OrderView o = PaidOrder();
  http_.status = 500;
  EXPECT_EQ(Run(), 1u);
  auto ev = shop_->ListOutbound(std::nullopt, o.order_id);
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].attempts, 1u);
  EXPECT_EQ((*ev)[0].state, OutboundState::kPending);
  const int64_t wait1 = (*ev)[0].next_attempt_ms - UnixMs(clock_.WallNow());
  EXPECT_GE(wait1, 1000);  // 2 s with jitter in [0.5, 1]
  EXPECT_LE(wait1, 2000);
  EXPECT_EQ(Run(), 0u);  // not due yet
  clock_.Advance(absl::Milliseconds(wait1));
  EXPECT_EQ(Run(), 1u);
  ev = shop_->ListOutbound(std::nullopt, o.order_id);
  EXPECT_EQ((*ev)[0].attempts, 2u);
  const int64_t wait2 = (*ev)[0].next_attempt_ms - UnixMs(clock_.WallNow());
  EXPECT_GE(wait2, 2000);  // 4 s with jitter
  EXPECT_LE(wait2, 4000);
  clock_.Advance(absl::Milliseconds(wait2));
  EXPECT_EQ(Run(), 1u);  // the third attempt: failed
  ev = shop_->ListOutbound(std::nullopt, o.order_id);
  EXPECT_EQ((*ev)[0].state, OutboundState::kFailed);
  EXPECT_EQ((*ev)[0].attempts, 3u);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kFailed), 1);
  clock_.Advance(absl::Hours(2));
  EXPECT_EQ(Run(), 0u);  // failed entries wait for an admin
  EXPECT_EQ(http_.requests.size(), 3u);
  http_.status = 200;
  ASSERT_EQ(*shop_->ReplayOutbound(""), 1u);
  EXPECT_EQ(Run(), 1u);
  EXPECT_TRUE(shop_->ListOutbound(std::nullopt, o.order_id)->empty());
  // Every attempt carried the same id (and the same body).
  ASSERT_EQ(http_.requests.size(), 4u);
  for (const auto& r : http_.requests) EXPECT_EQ(r.body, http_.requests[0].body);
}

TEST_F(DispatcherTest, APermanentRefusalFailsAtOnce) {
  OrderView o = PaidOrder();
  http_.status = 410;
  EXPECT_EQ(Run(), 1u);
  auto ev = shop_->ListOutbound(std::nullopt, o.order_id);
  ASSERT_EQ(ev->size(), 1u);
  EXPECT_EQ((*ev)[0].state, OutboundState::kFailed);
  EXPECT_EQ((*ev)[0].attempts, 1u);
  EXPECT_NE((*ev)[0].last_error.find("410"), std::string::npos);
}

class BreakerDispatcherTest : public DispatcherTest {
 protected:
  void SetUp() override {
    breaker_failures_ = 1;
    DispatcherTest::SetUp();
  }
};

TEST_F(BreakerDispatcherTest, AnOpenBreakerDefersWithoutCountingAnAttempt) {
  OrderView a = PaidOrder();
  OrderView b = PaidOrder();
  http_.status = 500;
  EXPECT_EQ(Run(), 2u);  // a: sent, failed, the breaker opens; b: refused without I/O
  EXPECT_EQ(http_.requests.size(), 1u);
  auto ea = shop_->ListOutbound(std::nullopt, a.order_id);
  auto eb = shop_->ListOutbound(std::nullopt, b.order_id);
  EXPECT_EQ((*ea)[0].attempts, 1u);
  EXPECT_EQ((*eb)[0].attempts, 0u);
  EXPECT_EQ((*eb)[0].state, OutboundState::kPending);
  EXPECT_NE(registry_.Render().find("keyvend_webhook_breaker_state 1"), std::string::npos);
  // After the cooldown one probe goes; its success closes the breaker.
  http_.status = 200;
  clock_.Advance(absl::Seconds(31));
  EXPECT_EQ(Run(), 2u);
  EXPECT_EQ(http_.requests.size(), 3u);
  const std::string m = registry_.Render();
  EXPECT_NE(m.find("keyvend_webhook_breaker_state 0"), std::string::npos) << m;
  EXPECT_NE(m.find("keyvend_webhook_breaker_opened_total 1"), std::string::npos);
  EXPECT_NE(m.find("keyvend_webhook_breaker_closed_total 1"), std::string::npos);
  EXPECT_EQ(Count(OutboundKind::kWebhook, OutboundState::kPending), 0);
}

TEST_F(DispatcherTest, AMailThatCannotBeSentIsRetriedThenFailed) {
  OrderView o = PaidOrder("buyer@example.com");
  EXPECT_EQ(Run(OutboundKind::kMail), 1u);
  auto ev = shop_->ListOutbound(std::nullopt, o.order_id);
  ASSERT_EQ(ev->size(), 2u);
  EXPECT_EQ((*ev)[1].kind, OutboundKind::kMail);
  EXPECT_EQ((*ev)[1].attempts, 1u);
  EXPECT_EQ((*ev)[1].state, OutboundState::kPending);
  EXPECT_EQ((*ev)[1].last_error.find("SECRETKEY"), std::string::npos);
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(Run(OutboundKind::kMail), 1u);
  ev = shop_->ListOutbound(std::nullopt, o.order_id);
  EXPECT_EQ((*ev)[1].state, OutboundState::kFailed);
}

// The mailer against the tests' SMTP sink (tests/fakes/smtp_sink.py, as in mailer_test):
// recipients "reject*" get 550, "later*" 451.
class MailDispatcherTest : public DispatcherTest {
 protected:
  void SetUp() override {
    kv::testing::ChildOptions o;
    o.out = kv::testing::Output::Pipe();
    o.env = {"PYTHONDONTWRITEBYTECODE=1"};
    std::string error;
    ASSERT_TRUE(sink_.Start({KV_PYTHON, SMTP_SINK, "--dir", sink_dir_.path()}, o, &error)) << error;
    std::string line;
    char c;
    while (line.size() < 64 && ::read(sink_.stdout_fd(), &c, 1) == 1 && c != '\n') line += c;
    ASSERT_EQ(line.rfind("PORT ", 0), 0u) << "sink did not start: " << line;
    smtp_url_ = "smtp://127.0.0.1:" + line.substr(5);
    DispatcherTest::SetUp();
  }
  // The sink's records: recipient -> the decoded body.
  std::map<std::string, std::string> Received() {
    std::map<std::string, std::string> out;
    if (DIR* d = ::opendir(sink_dir_.path().c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (!absl::EndsWith(e->d_name, ".json")) continue;
        const auto j = kv::testing::Json::Parse(kv::testing::ReadFile(sink_dir_.Sub(e->d_name)));
        out[j["rcpt_tos"][0].str()] = j["body"].str();
      }
      ::closedir(d);
    }
    return out;
  }
  // The order's mail entry in the log, or nullopt once it is settled (sent).
  std::optional<OutboundEvent> MailEntry(const OrderView& o) {
    auto ev = shop_->ListOutbound(std::nullopt, o.order_id);
    EXPECT_TRUE(ev.ok()) << ev.status();
    for (const OutboundEvent& e : *ev) {
      if (e.kind == OutboundKind::kMail) return e;
    }
    return std::nullopt;
  }

  kv::testing::TempDir sink_dir_;
  kv::testing::Child sink_;
};

// One mail round of several jobs, sent together (Mailer::SendMany): each job is settled by
// its own outcome — sent, failed at once (550), retried with backoff (451) and failed at
// mail_max_attempts — in the round's one settle write.
TEST_F(MailDispatcherTest, AMailRoundSettlesEachJobByItsOwnOutcome) {
  const OrderView a = PaidOrder("buyer-a@example.com");
  const OrderView b = PaidOrder("reject-b@example.com");
  const OrderView c = PaidOrder("later-c@example.com");
  const OrderView d = PaidOrder("buyer-d@example.com");
  EXPECT_EQ(Run(OutboundKind::kMail), 4u);
  EXPECT_FALSE(MailEntry(a).has_value());
  EXPECT_FALSE(MailEntry(d).has_value());
  std::optional<OutboundEvent> e = MailEntry(b);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->state, OutboundState::kFailed);
  EXPECT_EQ(e->attempts, 1u);
  EXPECT_NE(e->last_error.find("550"), std::string::npos) << e->last_error;
  e = MailEntry(c);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->state, OutboundState::kPending);
  EXPECT_EQ(e->attempts, 1u);
  EXPECT_NE(e->last_error.find("451"), std::string::npos) << e->last_error;
  EXPECT_GT(e->next_attempt_ms, UnixMs(clock_.WallNow()));
  // The two sent mails, each to its buyer with its own order's key (SECRETKEY<n>: the n-th
  // product made), no other.
  const std::map<std::string, std::string> got = Received();
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(got.count("buyer-a@example.com"), 1u);
  ASSERT_EQ(got.count("buyer-d@example.com"), 1u);
  EXPECT_NE(got.at("buyer-a@example.com").find("SECRETKEY1"), std::string::npos);
  EXPECT_EQ(got.at("buyer-a@example.com").find("SECRETKEY4"), std::string::npos);
  EXPECT_NE(got.at("buyer-d@example.com").find("SECRETKEY4"), std::string::npos);
  EXPECT_EQ(got.at("buyer-d@example.com").find("SECRETKEY1"), std::string::npos);
  const std::string m = registry_.Render();
  EXPECT_NE(m.find("keyvend_outbound_attempts_total{kind=\"mail\",result=\"sent\"} 2"),
            std::string::npos);
  EXPECT_NE(m.find("keyvend_outbound_attempts_total{kind=\"mail\",result=\"failed\"} 1"),
            std::string::npos);
  EXPECT_NE(m.find("keyvend_outbound_attempts_total{kind=\"mail\",result=\"retry\"} 1"),
            std::string::npos);
  // Not due yet; then its second attempt (mail_max_attempts 2) fails it.
  EXPECT_EQ(Run(OutboundKind::kMail), 0u);
  clock_.Advance(absl::Hours(1));
  EXPECT_EQ(Run(OutboundKind::kMail), 1u);
  e = MailEntry(c);
  ASSERT_TRUE(e.has_value());
  EXPECT_EQ(e->state, OutboundState::kFailed);
  EXPECT_EQ(e->attempts, 2u);
  EXPECT_EQ(Received().size(), 2u);
}

// The worker threads' scheduling, by name ("kv-webhook", "kv-mail"), from /proc.
struct WorkerSched {
  std::string name;
  int nice = 0;
  int policy = -1;  // SCHED_OTHER 0, SCHED_IDLE 5
};
std::vector<WorkerSched> Workers() {
  std::vector<WorkerSched> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(e.path() / "comm");
    std::string name;
    std::getline(comm, name);
    if (name != "kv-webhook" && name != "kv-mail") continue;
    std::ifstream stat(e.path() / "stat");
    std::string s((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    // Fields after the ")" closing the name: state is field 3, nice 19, policy 41.
    std::istringstream rest(s.substr(s.rfind(')') + 2));
    std::vector<std::string> fields(3);  // fields[i] is field i (1 and 2 unused)
    for (std::string f; rest >> f;) fields.push_back(f);
    if (fields.size() <= 41) continue;
    out.push_back({name, std::stoi(fields[19]), std::stoi(fields[41])});
  }
  return out;
}

// Starts a dispatcher with `d` and returns its 3 workers once each has set itself up
// (`ready` says when), then stops it.
std::vector<WorkerSched> StartedWorkers(Dispatcher& dispatcher,
                                        const std::function<bool(const WorkerSched&)>& ready) {
  dispatcher.Start();
  std::vector<WorkerSched> workers;
  for (int i = 0; i < 500; ++i) {  // each thread lowers its own priority as it starts
    workers = Workers();
    if (workers.size() == 3 && std::all_of(workers.begin(), workers.end(), ready)) break;
    absl::SleepFor(absl::Milliseconds(10));
  }
  dispatcher.Stop();
  return workers;
}

TEST_F(DispatcherTest, WorkerThreadsRunAtTheirNiceValueAndTheRestOfTheProcessDoesNot) {
  DispatcherOptions d;
  d.worker_nice = 7;
  auto dispatcher = NewDispatcher(d);
  const auto workers =
      StartedWorkers(*dispatcher, [](const WorkerSched& w) { return w.nice == 7; });
  ASSERT_EQ(workers.size(), 3u);  // 2 webhook threads and 1 mail thread
  for (const WorkerSched& w : workers) {
    EXPECT_EQ(w.nice, 7) << w.name;
    EXPECT_EQ(w.policy, SCHED_OTHER) << w.name;
  }
  errno = 0;
  EXPECT_EQ(getpriority(PRIO_PROCESS, 0), 0);  // this thread (and the shop's) untouched
  EXPECT_EQ(errno, 0);
}

TEST_F(DispatcherTest, WorkerThreadsTakeTheIdlePolicyWhenAskedAndTheRestOfTheProcessDoesNot) {
  DispatcherOptions d;
  d.worker_nice = 19;
  d.worker_sched_idle = true;
  auto dispatcher = NewDispatcher(d);
  const auto workers =
      StartedWorkers(*dispatcher, [](const WorkerSched& w) { return w.policy == SCHED_IDLE; });
  ASSERT_EQ(workers.size(), 3u);
  for (const WorkerSched& w : workers) {
    EXPECT_EQ(w.policy, SCHED_IDLE) << w.name;
    EXPECT_EQ(w.nice, 19) << w.name;
  }
  EXPECT_EQ(sched_getscheduler(0), SCHED_OTHER);  // this thread (and the shop's) untouched
}

TEST(OutboundBackoff, DoublesWithJitterAndIsCapped) {
  SeededRandom r(7);
  for (uint32_t n = 1; n <= 40; ++n) {
    const absl::Duration full =
        std::min(absl::Seconds(2) * (int64_t{1} << std::min<uint32_t>(n - 1, 30)), absl::Hours(1));
    for (int i = 0; i < 20; ++i) {
      const absl::Duration d = OutboundBackoff(n, absl::Seconds(2), absl::Hours(1), &r);
      EXPECT_GE(d, full / 2) << n;
      EXPECT_LE(d, full) << n;
    }
  }
}

}  // namespace
}  // namespace kv::outbound
