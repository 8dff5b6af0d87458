// keyvend's own accept loop (DEPS.md item 3): admission before a connection costs a thread
// or one byte of reading.
//
// - A new connection first WAITS, in the acceptor's epoll set, until it has sent its first
//   byte: a silent connection costs a descriptor and an entry here, never a slot or a
//   thread (review finding 3). Waiting connections have their own caps per listener:
//   `waiting_max` in all (when full, the connection that has waited longest is closed to
//   make room: a flood of silent sockets cannot keep newcomers out) and
//   `waiting_per_client_max` per client IP (over it: the canned 503). A connection still
//   silent `waiting_timeout_ms` after accept is closed.
// - Once readable it is admitted to a SLOT under the listener's cap and the per-client cap
//   (trusted proxies and the listener's exempt addresses excepted); over a cap it gets a
//   fast canned 503 `overloaded` with `Connection: close` and is closed, never queued. A
//   listener may keep `reserve` slots above its cap for requests whose first line is a
//   probe (GET /healthz, /readyz, /metrics) or the payment notify: such a connection is
//   served for that one request (AcceptedConnection::reserved) and closed.
// - Refused sockets linger (bounded count, ≤ kLingerMs) so the client reads the 503
//   instead of a reset.
// - An admitted connection is handed to the serve function (the server gives it to an I/O
//   loop, io_loop.h: it costs a buffer there, not a thread) and counts against its caps
//   until the server gives it back with Release().
// - Refusals, timeouts and evictions are counted in metrics and summed up in one log line
//   per listener at most every kLogIntervalMs (a flood never floods the log).
// - Drain: BeginDrain() closes the listeners (new connections are refused by the kernel),
//   closes waiting connections, makes drain_fd() readable (the I/O loops watch it and close
//   idle keep-alive connections at once) and Run() returns when every connection has been
//   released; connections still open after the drain deadline are shut down (a handler
//   running finishes its current call, its write fails).
//
// Thread-safety: AddListener before Run; everything else from any thread.
#pragma once

#include <poll.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "base/mutex.h"
#include "metrics/metrics.h"

namespace kv::http {

struct ListenerSpec {
  std::string name;  // "main" | "ops": metrics label, and what the router serves on it
  std::string host;
  int port = 0;  // 0 = pick a free port
  int backlog = 1024;
  size_t max_connections = 1;
  size_t max_connections_per_client = 0;  // 0 = no limit
  // Connections admitted above max_connections for one probe or notify request.
  size_t reserve = 0;
  // Connections accepted and silent so far (no byte received): in all, and per client
  // (0 = no limit for either), and how long one may stay silent after accept.
  size_t waiting_max = 4096;
  size_t waiting_per_client_max = 0;
  int64_t waiting_timeout_ms = 10'000;
  // Addresses exempt from this listener's per-client caps (besides the acceptor's).
  std::vector<std::string> cap_exempt;
};

// One admitted connection, handed to the serve function on the acceptor thread.
struct AcceptedConnection {
  int fd = -1;
  size_t listener = 0;  // index into the acceptor's listeners
  std::string peer_ip;
  int peer_port = 0;
  std::string local_ip;
  int local_port = 0;
  int64_t accepted_ns = 0;  // monotonic time of accept (the header deadline counts from it)
  bool reserved = false;    // admitted from the probe/notify reserve: serve one request
};

class Acceptor {
 public:
  static constexpr int kLingerMs = 200;              // a refused socket's read-and-discard time
  static constexpr size_t kLingerMax = 1024;         // refused sockets lingering at once
  static constexpr int64_t kLogIntervalMs = 10'000;  // refusal summaries, per listener

  // serve(conn) runs on the acceptor thread and must not block: it hands the connection on.
  // Whoever serves it calls Release(conn) when it is done with it, never close(conn.fd).
  using ServeFn = std::function<void(const AcceptedConnection&)>;
  Acceptor(Registry* metrics, ServeFn serve, absl::flat_hash_set<std::string> cap_exempt);
  ~Acceptor();

  // Binds and listens; returns the listener's index. Error: bad host, cannot bind.
  absl::StatusOr<size_t> AddListener(const ListenerSpec& spec);
  int port(size_t listener) const { return listeners_[listener]->port; }
  const std::string& name(size_t listener) const { return listeners_[listener]->spec.name; }

  // Accepts and admits until BeginDrain, then waits until every connection has ended
  // (shutting down the rest at drain_deadline) and returns.
  void Run();
  // Thread-safe, idempotent. drain_timeout_ms: how long open connections get.
  void BeginDrain(int64_t drain_timeout_ms);
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  // Readable once draining: connection loops poll it while idle.
  int drain_fd() const { return drain_fd_; }
  // Connections being served, all listeners.
  size_t open_connections() const;
  // Connections waiting for their first byte, all listeners (acceptor thread's count,
  // read racily for tests and metrics).
  size_t waiting_connections() const { return waiting_total_.load(std::memory_order_relaxed); }
  // An admitted connection has ended: its slot is free and its descriptor is closed here.
  // Any thread; once per admitted connection.
  void Release(const AcceptedConnection& c);

 private:
  // Refusals and drops since the last summary line (acceptor thread only).
  struct Tally {
    uint64_t cap = 0, per_client = 0, waiting_per_client = 0, silent_timeout = 0, evicted = 0;
    bool any() const {
      return cap + per_client + waiting_per_client + silent_timeout + evicted > 0;
    }
  };
  // A waiting connection's place in its listener's deadline heap (lazy deletion: an entry
  // whose seq no longer matches the parked record is stale).
  struct Due {
    int64_t deadline_ns;
    int fd;
    uint64_t seq;
    bool operator>(const Due& o) const { return deadline_ns > o.deadline_ns; }
  };
  struct Listener {
    ListenerSpec spec;
    int fd = -1;
    int port = 0;
    size_t open = 0;           // guarded by mu_
    size_t reserved_open = 0;  // guarded by mu_
    absl::flat_hash_set<std::string> exempt;
    // Acceptor thread only:
    size_t waiting = 0;
    absl::flat_hash_map<std::string, size_t> waiting_per_client;
    std::priority_queue<Due, std::vector<Due>, std::greater<Due>> due;
    Tally tally;
    int64_t last_log_ns = 0;
    Gauge* open_gauge = nullptr;
    Gauge* waiting_gauge = nullptr;
    Counter* accepted = nullptr;
    Counter* rejected_cap = nullptr;
    Counter* rejected_client = nullptr;
    Counter* rejected_waiting_client = nullptr;
    Counter* silent_timeouts = nullptr;
    Counter* evictions = nullptr;
    Counter* reserve_admitted = nullptr;
    Counter* accept_errors = nullptr;
  };
  // A socket the acceptor holds in its epoll set: a connection waiting for its first byte,
  // or a refused one lingering.
  struct Parked {
    bool waiting = true;  // false: lingering after a refusal
    AcceptedConnection conn;
    int64_t deadline_ns = 0;
    uint64_t seq = 0;
  };

  void AcceptFrom(size_t li);
  void Refuse(int fd);
  // A waiting (or just accepted) connection that has data: slot, reserve or 503.
  void AdmitReadable(AcceptedConnection c);
  void Park(AcceptedConnection c);
  // Closes a waiting connection (timeout, eviction, peer gone, drain).
  void DropWaiting(int fd, bool close_fd);
  void OnParkedEvent(int fd);
  void ExpireDue(int64_t now);
  int NextTimeoutMs(int64_t now) const;
  void MaybeLogTally(Listener& l, int64_t now);

  Registry* metrics_;
  ServeFn serve_;
  absl::flat_hash_set<std::string> cap_exempt_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  int wake_pipe_[2] = {-1, -1};
  int drain_fd_ = -1;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> drain_deadline_ns_{0};
  // Acceptor thread only:
  int epoll_fd_ = -1;
  absl::flat_hash_map<int, Parked> parked_;
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> linger_due_;
  size_t lingering_ = 0;
  uint64_t next_seq_ = 1;
  std::atomic<size_t> waiting_total_{0};

  mutable Mutex mu_;
  CondVar done_cv_;  // a connection ended
  // Open connections by peer IP.
  absl::flat_hash_map<std::string, size_t> per_client_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<int> live_fds_ ABSL_GUARDED_BY(mu_);  // admitted, not yet closed
};

}  // namespace kv::http
