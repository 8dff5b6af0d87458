#include "pay/sandbox.h"

#include "absl/strings/str_cat.h"

namespace kv::pay {

absl::StatusOr<PayStart> SandboxGateway::Start(const PayOrder& order) {
  PayStart s;
  s.redirect_url = absl::StrCat("/sandbox/pay/", order.order_id);
  return s;
}

NotifyVerdict SandboxGateway::ParseNotify(const httplib::Request&, absl::Time) const {
  NotifyVerdict v;
  v.kind = NotifyKind::kRejected;
  v.reason = "the sandbox gateway does not notify over HTTP";
  return v;
}

NotifyReply SandboxGateway::Reply(bool accepted) const {
  NotifyReply r;
  r.status = accepted ? 200 : 400;
  r.content_type = "application/json";
  r.body = accepted ? R"({"received":true})" : R"({"received":false})";
  return r;
}

QueryResult SandboxGateway::Query(std::string_view order_id, std::string_view) {
  QueryResult q;
  MutexLock l(&mu_);
  auto it = lost_.find(std::string(order_id));
  if (it == lost_.end()) {
    q.state = QueryState::kNotPaid;
    return q;
  }
  q.state = QueryState::kPaid;
  q.notice = it->second;
  return q;
}

bool SandboxGateway::RecordLostPayment(const PaymentNotice& notice) {
  MutexLock l(&mu_);
  if (lost_.size() >= kLostMax && !lost_.contains(notice.order_id)) return false;
  lost_[notice.order_id] = notice;
  return true;
}

}  // namespace kv::pay
