#include "app/fd_budget.h"

#include <sys/resource.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kv {
namespace {

// The kernel's ceiling for RLIMIT_NOFILE (fs.nr_open): setrlimit refuses RLIM_INFINITY for
// it, so an unlimited hard limit is raised to this. 1048576 is the kernel's default.
int64_t NrOpen() {
  int64_t n = 1 << 20;
  if (std::FILE* f = std::fopen("/proc/sys/fs/nr_open", "re")) {
    long long v = 0;
    if (std::fscanf(f, "%lld", &v) == 1 && v > 0) n = v;
    std::fclose(f);
  }
  return n;
}

int64_t AsLimit(rlim_t v) { return v == RLIM_INFINITY ? -1 : static_cast<int64_t>(v); }

}  // namespace

std::string FdBudget::Describe() const {
  std::vector<std::string> parts;
  parts.push_back(absl::StrCat(connections, " max_connections"));
  parts.push_back(absl::StrCat(reserve, " reserve_connections"));
  if (ops_connections > 0) parts.push_back(absl::StrCat(ops_connections, " ops_max_connections"));
  if (waiting_per_listener > 0) {
    parts.push_back(listeners > 1 ? absl::StrCat(listeners, " listeners x ", waiting_per_listener,
                                                 " waiting_connections_max")
                                  : absl::StrCat(waiting_per_listener, " waiting_connections_max"));
  }
  parts.push_back(absl::StrCat(linger, " lingering refusals"));
  parts.push_back(absl::StrCat(io_loops, " for the I/O loops"));
  parts.push_back(absl::StrCat(storage, " for RocksDB"));
  parts.push_back(absl::StrCat(process, " for the process"));
  if (outbound > 0) parts.push_back(absl::StrCat(outbound, " for outbound HTTP and SMTP"));
  return absl::StrJoin(parts, " + ");
}

FdBudget ComputeFdBudget(const Config& c, int64_t io_loops) {
  FdBudget b;
  b.connections = c.max_connections;
  b.reserve = c.reserve_connections;
  const bool with_ops = !c.ops_listen.empty();
  b.ops_connections = with_ops ? c.ops_max_connections : 0;  // the ops listener has no reserve
  b.listeners = with_ops ? 2 : 1;
  // 0 = no limit: the waiting stage then takes what is left, and accept() failing for lack
  // of descriptors leaves a connection in the backlog (keyvend_http_accept_errors_total).
  b.waiting_per_listener = c.waiting_connections_max;
  b.linger = kFdLingerMax;
  b.io_loops = kFdPerIoLoop * (io_loops > 0 ? io_loops : 1);
  b.storage = kFdStorageMargin;
  b.process = kFdProcessMargin;
  if (!c.payment_gateways.empty()) {
    b.outbound += (kFdHttpClientIdleHandles + c.worker_threads_max + 1) * kFdPerHttpHandle;
  }
  if (!c.webhook_url.empty()) {
    b.outbound += (kFdHttpClientIdleHandles + kFdWebhookCallers) * kFdPerHttpHandle;
  }
  if (!c.smtp_url.empty()) {
    b.outbound +=
        std::max<int64_t>(kFdMailSessionsMin, c.mail_parallel_sessions) * kFdPerMailSession;
  }
  return b;
}

absl::Status CheckFdBudget(const FdBudget& budget, int64_t soft_limit, int64_t hard_limit) {
  const int64_t needed = budget.total();
  if (soft_limit < 0 || needed <= soft_limit) return absl::OkStatus();
  const std::string hard = hard_limit < 0 ? "unlimited" : absl::StrCat(hard_limit);
  return absl::FailedPreconditionError(
      absl::StrCat("too few file descriptors: this configuration needs ", needed, " (",
                   budget.Describe(), ") but the descriptor limit (RLIMIT_NOFILE) is ", soft_limit,
                   " (hard limit ", hard, "). Raise it to at least ", needed, " (`ulimit -n ",
                   needed, "` in the shell that starts keyvend, or LimitNOFILE=", needed,
                   " in its systemd unit), or lower max_connections or waiting_connections_max."));
}

absl::Status RaiseAndCheckFdLimit(const FdBudget& budget) {
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) != 0) {
    return absl::InternalError(absl::StrCat("getrlimit(RLIMIT_NOFILE): ", std::strerror(errno)));
  }
  rlim_t target = nofile.rlim_max;
  if (target == RLIM_INFINITY) target = static_cast<rlim_t>(NrOpen());
  if (nofile.rlim_cur != RLIM_INFINITY && nofile.rlim_cur < target) {
    rlimit raised = nofile;
    raised.rlim_cur = target;
    // On failure the limit stays as it was, and the check below says whether that is enough.
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) nofile = raised;
  }
  return CheckFdBudget(budget, AsLimit(nofile.rlim_cur), AsLimit(nofile.rlim_max));
}

}  // namespace kv
