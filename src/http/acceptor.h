// keyvend's own accept loop (DEPS.md item 3): admission at accept, before a connection
// costs a thread or one byte of reading.
//
// - Each listener has a cap on concurrent connections and a per-client-IP cap (trusted
//   proxies exempt). A connection over a cap gets a fast canned 503 `overloaded` with
//   `Connection: close` and is closed: it is never parked in a queue. The refused socket
//   lingers (bounded count, ≤ kLingerMs) so the client reads the 503 instead of a reset.
// - An admitted connection is served by a pool thread for its whole life (cpp-httplib's
//   model); the pool grows on demand up to the sum of the listeners' caps, so an admitted
//   connection never waits for a thread.
// - Drain: BeginDrain() closes the listeners (new connections are refused by the kernel),
//   makes drain_fd() readable (idle keep-alive connections poll it and close at once) and
//   Run() returns when every connection has ended; connections still open after the drain
//   deadline are shut down (their handler finishes its current call, its write fails).
//
// Thread-safety: AddListener before Run; everything else from any thread.
#pragma once

#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "metrics/metrics.h"

namespace kv::http {

struct ListenerSpec {
  std::string name;  // "main" | "ops": metrics label, and what the router serves on it
  std::string host;
  int port = 0;  // 0 = pick a free port
  int backlog = 1024;
  size_t max_connections = 1;
  size_t max_connections_per_client = 0;  // 0 = no limit
};

// One admitted connection, handed to the serve function on a pool thread.
struct AcceptedConnection {
  int fd = -1;
  size_t listener = 0;  // index into the acceptor's listeners
  std::string peer_ip;
  int peer_port = 0;
  std::string local_ip;
  int local_port = 0;
};

class Acceptor {
 public:
  static constexpr int kLingerMs = 200;       // a refused socket's read-and-discard time
  static constexpr size_t kLingerMax = 1024;  // refused sockets lingering at once

  // serve(conn) runs on a pool thread and must not close conn.fd (the acceptor does).
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

 private:
  struct Listener {
    ListenerSpec spec;
    int fd = -1;
    int port = 0;
    size_t open = 0;  // guarded by mu_
    Gauge* open_gauge = nullptr;
    Counter* accepted = nullptr;
    Counter* rejected_cap = nullptr;
    Counter* rejected_client = nullptr;
    Counter* accept_errors = nullptr;
  };
  struct Lingering {
    int fd;
    int64_t deadline_ns;
  };

  void AcceptFrom(size_t li);
  void Refuse(int fd);
  void Submit(AcceptedConnection c);
  void WorkerLoop();
  void Finish(const AcceptedConnection& c);
  void PollLingering(const std::vector<pollfd>& fds, size_t first);

  Registry* metrics_;
  ServeFn serve_;
  absl::flat_hash_set<std::string> cap_exempt_;
  std::vector<std::unique_ptr<Listener>> listeners_;
  int wake_pipe_[2] = {-1, -1};
  int drain_fd_ = -1;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> drain_deadline_ns_{0};
  std::vector<Lingering> lingering_;  // acceptor thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;       // work for the pool, or stop
  std::condition_variable done_cv_;  // a connection ended
  absl::flat_hash_map<std::string, size_t> per_client_;  // open connections by peer IP
  absl::flat_hash_set<int> live_fds_;                     // admitted, not yet closed
  std::deque<AcceptedConnection> pending_;
  size_t waiting_workers_ = 0;
  bool stop_workers_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace kv::http
