#include "flood/notifier.h"

#include <unistd.h>

#include <ctime>

#include "http/signature.h"

namespace kv::flood {

void NotifyQueue::Push(Sold s) {
  {
    MutexLock l(&mu_);
    if (q_.size() >= kMax) {
      ++dropped_;
      return;
    }
    q_.push_back(std::move(s));
  }
  cv_.Signal();
}

bool NotifyQueue::Pop(Sold* out) {
  MutexLock l(&mu_);
  while (q_.empty() && !closed_) cv_.Wait(&mu_);
  if (q_.empty()) return false;
  *out = std::move(q_.front());
  q_.pop_front();
  return true;
}

void NotifyQueue::Close() {
  {
    MutexLock l(&mu_);
    closed_ = true;
  }
  cv_.SignalAll();
}

size_t NotifyQueue::Abandon() {
  MutexLock l(&mu_);
  const size_t n = q_.size();
  q_.clear();
  closed_ = true;
  cv_.SignalAll();
  return n;
}

uint64_t NotifyQueue::dropped() {
  MutexLock l(&mu_);
  return dropped_;
}

std::string NotifyBody(const Sold& s, const std::string& payment_id) {
  return "{\"order_id\":\"" + s.order_id + "\",\"payment_id\":\"" + payment_id +
         "\",\"amount_cents\":" + std::to_string(s.amount_cents) + ",\"currency\":\"" + s.currency +
         "\",\"status\":\"succeeded\"}";
}

std::string NotifyRequest(const std::string& host_header, const std::string& secret, int64_t t,
                          const std::string& body) {
  return "POST /api/v1/payments/notify HTTP/1.1\r\nHost: " + host_header +
         "\r\nContent-Type: application/json\r\nKeyvend-Signature: " +
         kv::http::SignNotify(secret, t, body) +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

void RunNotifier(const Endpoint& ep, const std::string& secret, NotifyQueue* queue,
                 NotifyStats* out) {
  BlockingConn conn(ep);
  uint64_t n = 0;
  Sold s;
  // Payment ids unique across runs against one shop.
  const std::string prefix =
      "flood-" + std::to_string(::getpid()) + "-" + std::to_string(std::time(nullptr)) + "-";
  while (queue->Pop(&s)) {
    const std::string body = NotifyBody(s, prefix + std::to_string(n++));
    const std::string req = NotifyRequest(ep.host_header, secret, std::time(nullptr), body);
    const int64_t t0 = NowNs();
    int status = 0;
    std::string resp, error;
    bool reconnected = false;
    const bool ok = conn.Exchange(req, 10000, &status, &resp, &error, &reconnected);
    const int64_t t1 = NowNs();
    ++out->sent;
    if (!ok) {
      ++out->failed;
      out->last_failure = error;
    } else if (status == 200) {
      ++out->ok;
      out->latency.Record(static_cast<uint64_t>((t1 - t0) / 1000));
    } else {
      ++out->other;
      const std::string code = JsonString(resp, "code");
      ++out->codes[std::to_string(status) + " " + (code.empty() ? "-" : code)];
      out->last_failure = "HTTP " + std::to_string(status) + " " + code;
    }
  }
}

}  // namespace kv::flood
