// The outbound tests' local fakes as children (issue 14): tests/fakes/webhook_receiver.py
// (checks each signature with Python's own hmac, counts every event id) and
// tests/fakes/smtp_sink.py (Debian's aiosmtpd, each mail recorded as a .json file), both on
// loopback, each printing "PORT <n>" once listening. Header-only: the including test defines
// KV_PYTHON, WEBHOOK_RECEIVER_PY and SMTP_SINK_PY (tests/CMakeLists.txt).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"
#include "kit/files.h"
#include "kit/http_client.h"
#include "kit/json.h"
#include "kit/process.h"

#if !defined(KV_PYTHON) || !defined(WEBHOOK_RECEIVER_PY) || !defined(SMTP_SINK_PY)
#error "define KV_PYTHON, WEBHOOK_RECEIVER_PY and SMTP_SINK_PY before kit/outbound_fakes.h"
#endif

namespace kv::httptest {

// Reads the "PORT <n>" line a fake prints once listening; 0 when it did not.
inline int ReadPortLine(int fd) {
  std::string line;
  char c = 0;
  while (line.size() < 100 && ::read(fd, &c, 1) == 1 && c != '\n') line.push_back(c);
  return line.rfind("PORT ", 0) == 0 ? std::atoi(line.c_str() + 5) : 0;
}

// A loopback port nothing listens on (bound, read, closed).
inline int DeadPort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

class WebhookReceiver {
 public:
  explicit WebhookReceiver(std::string secret) : secret_(std::move(secret)) {}
  ~WebhookReceiver() { child_.Kill9(); }
  bool Start(std::string* error) {
    ChildOptions o;
    o.out = Output::Pipe();
    o.err = Output::Null();
    if (!child_.Start({KV_PYTHON, WEBHOOK_RECEIVER_PY, "--secret", secret_}, o, error)) {
      return false;
    }
    port_ = ReadPortLine(child_.stdout_fd());
    if (port_ <= 0) *error = "webhook_receiver did not start";
    client_ = MakeClient(port_);
    return port_ > 0;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  void Fail(bool on) {
    const Reply r = ToReply(
        client_->Post(std::string("/control/fail?on=") + (on ? "1" : "0"), "", "text/plain"));
    EXPECT_EQ(r.status, 200) << r;
  }
  // {"accepted": {id: times}, "invalid": n, "refused": n, "types": {...}}: no bodies.
  Json Summary() {
    const Reply r = ToReply(client_->Get("/control/summary"));
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }
  // Every recorded event with its body (large: read once at the end).
  Json Events() {
    const Reply r = ToReply(client_->Get("/control/events"));
    EXPECT_EQ(r.status, 200) << r;
    return r.json();
  }
  std::map<std::string, int> Accepted() {
    std::map<std::string, int> out;
    const Json s = Summary();
    for (const auto& [id, n] : s["accepted"].fields()) out[id] = static_cast<int>(n.num());
    return out;
  }

 private:
  std::string secret_;
  Child child_;
  int port_ = 0;
  std::unique_ptr<httplib::Client> client_;
};

// tests/fakes/smtp_sink.py recording into a temp dir; Start(port) may name the port (0: any).
class SmtpSink {
 public:
  ~SmtpSink() { Stop(); }
  bool Start(int port, std::string* error) {
    ChildOptions o;
    o.out = Output::Pipe();
    o.err = Output::Null();
    if (!child_.Start(
            {KV_PYTHON, SMTP_SINK_PY, "--dir", dir_.path(), "--port", std::to_string(port)}, o,
            error)) {
      return false;
    }
    port_ = ReadPortLine(child_.stdout_fd());
    if (port_ <= 0) *error = "smtp_sink did not start";
    return port_ > 0;
  }
  void Stop() { child_.Kill9(); }
  std::string url() const { return "smtp://127.0.0.1:" + std::to_string(port_); }
  // How many mails are recorded (their .json files), without reading them.
  size_t Count() const {
    size_t n = 0;
    for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
      if (e.path().extension() == ".json") ++n;
    }
    return n;
  }
  // Every recorded mail: (first recipient, decoded body).
  std::vector<std::pair<std::string, std::string>> Mails() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& e : std::filesystem::directory_iterator(dir_.path())) {
      if (e.path().extension() != ".json") continue;
      const Json m = Json::Parse(ReadFile(e.path().string()));
      out.emplace_back(m["rcpt_tos"].items(1)[0].str(), m["body"].str());
    }
    return out;
  }

 private:
  kv::testing::TempDir dir_;
  Child child_;
  int port_ = 0;
};

}  // namespace kv::httptest
