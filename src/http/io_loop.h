// An I/O thread that owns admitted connections through epoll (issue 11): a connection costs
// a Conn and its buffers, never a thread.
//
// Per connection, the loop:
// - waits for a request (keep-alive: keep_alive_timeout; the first request's whole head is
//   due header_timeout after accept, later ones' header_timeout after their first byte;
//   every wait for input is also bounded by read_timeout since the last byte);
// - finds the head's end within header_bytes_max / header_count_max (over: 431 and close;
//   late: 408 and close when a byte of it came, a silent close otherwise);
// - has the head screened (ConnHandler::OnHead: route, framing, auth, rate limit, body
//   limit), answers `Expect: 100-continue`, and reads the admitted body within its limit and
//   body_timeout (ChunkedDecoder for chunked bodies), never past its end;
// - hands the complete request to a worker (WorkerPool) and does not touch the connection
//   until the worker gives it back (Done), then writes what the worker could not send
//   (bounded by write_timeout) and either waits for the next request or closes. A
//   connection whose unread input must not be parsed (a refused body) lingers: it stops
//   writing, reads and discards for a moment (bounded), then closes, so the client reads
//   the answer rather than a reset.
// - On drain (the acceptor's drain_fd): idle connections close at once; the others close
//   after their current response.
//
// Events are edge-triggered (one epoll_ctl per connection for its whole life); deadlines are
// a lazy min-heap with at most a few entries per connection.
//
// Thread-safety: Adopt, Done and Complete from any thread; the rest is the loop thread's.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <queue>
#include <thread>
#include <vector>

#include "base/mutex.h"
#include "http/acceptor.h"
#include "http/conn.h"
#include "http/worker_pool.h"

namespace kv::http {

// What the server decides about a request; called by the loops and the workers.
class ConnHandler {
 public:
  enum class BodyError { kTooLarge, kMalformed, kEndedEarly, kTimeout };
  virtual ~ConnHandler() = default;
  // Loop thread. The head is complete (c.head_bytes; c.head when c.head_parsed): starts the
  // request (id, clock), screens it and sets c.cc (refused, route, must_close) and the
  // body's framing (c.body_left / c.chunked with c.decoder) and c.expect_continue.
  virtual void OnHead(Conn& c) = 0;
  // Loop thread. The admitted body cannot be had: records the refusal in c.cc for the
  // worker to write (413 / 400 / 408), and that the connection ends after it.
  virtual void RefuseBody(Conn& c, BodyError why) = 0;
  // Loop thread. A response the loop writes itself, into c.out: 408 (head too slow) or 431.
  virtual void WriteRaw(Conn& c, int status, const char* reason, const char* code_message) = 0;
  // Worker thread. Runs the request and leaves the response in c.out (whatever could not be
  // sent yet) and the outcome in c.worker_ok / worker_closed / write_failed.
  virtual void Execute(Conn& c) = 0;
  // Loop thread, before Dispatch: the request may run on the loop (Execute there must not
  // block). After such a run, c.cc.needs_worker sends it to a worker (its output so far is
  // dropped).
  virtual bool RunsInline(const Conn& c) const = 0;
};

struct IoLoopOptions {
  int64_t header_timeout_ms = 10'000;
  size_t header_bytes_max = 16 * 1024;
  size_t header_count_max = 64;
  int64_t body_timeout_ms = 60'000;
  int64_t read_timeout_ms = 5'000;
  int64_t write_timeout_ms = 5'000;
  int64_t keep_alive_timeout_ms = 5'000;
  int64_t keep_alive_max_count = 10'000;
};

class IoLoop {
 public:
  static constexpr size_t kReadBytes = 64 * 1024;        // one recv(2)
  static constexpr uint64_t kLingerBytesMax = 1u << 20;  // discarded while lingering
  static constexpr size_t kExpiriesPerRound = 64;        // deadlines handled per epoll round
  // Counters the header/body timeouts feed (owned by the server's registry).
  struct Counters {
    Counter* header_timeouts = nullptr;
    Counter* body_timeouts = nullptr;
    Counter* header_too_large = nullptr;
  };

  IoLoop(size_t index, IoLoopOptions opts, ConnHandler* handler, Acceptor* acceptor,
         WorkerPool* pool, Counters counters);
  ~IoLoop();  // Stop()s and joins
  IoLoop(const IoLoop&) = delete;
  IoLoop& operator=(const IoLoop&) = delete;

  void Start();
  // Ends the thread (after the acceptor's Run returned: no connection is left). Idempotent.
  void Stop();
  // Stop(), then waits for the thread to end. The descriptors stay open until the
  // destructor, so a worker still finishing a request may Done() into a joined loop (its
  // wake-up goes nowhere) — the server joins its loops, then its workers, then destroys the
  // loops. Idempotent; not from the loop's own thread.
  void Join();
  // Takes an admitted connection (the acceptor thread).
  void Adopt(const AcceptedConnection& ac);
  // A worker gives a connection back after Execute.
  void Done(Conn* c);
  // Finishes a connection handed away with c.cc.async_pending (any thread): the loop runs
  // finish(*c) on its own thread (which leaves the answer in c->out), then writes it as after
  // Done. The committer thus spends nothing on an order's answer.
  void Complete(Conn* c, std::function<void(Conn&)> finish);
  // Connections this loop holds (racy; for metrics and tests).
  size_t connections() const { return count_.load(std::memory_order_relaxed); }

 private:
  struct Timer {
    int64_t at;
    int fd;
    uint32_t gen;
    bool operator>(const Timer& o) const { return at > o.at; }
  };

  void Run();
  void Wake();
  void TakeInbox();
  void Add(const AcceptedConnection& ac);
  void OnEvent(int fd, uint32_t gen, uint32_t events);
  // Each returns false when the connection was closed (c is gone).
  bool ReadInput(Conn& c);
  bool Advance(Conn& c);
  bool AdvanceBuffered(Conn& c);
  bool OnEof(Conn& c);
  bool StartBody(Conn& c);
  bool WriteOut(Conn& c);
  bool FinishResponse(Conn& c);
  bool StartLinger(Conn& c);
  bool Dispatch(Conn& c);
  bool Refuse(Conn& c, ConnHandler::BodyError why);
  bool Raw(Conn& c, int status, const char* reason, const char* message);
  void Close(Conn& c);
  void Expire(Conn& c);
  void OnDrain();
  // Sets the state's deadline; the effective one also honours read_timeout while reading.
  void SetStateDeadline(Conn& c, int64_t at);
  void UpdateDeadline(Conn& c);
  void ExpireTimers(int64_t now);
  int NextTimeoutMs(int64_t now) const;
  void Compact(Conn& c);
  // Sends c.out without waiting: 1 all sent, 0 would block, -1 error.
  int SendSome(Conn& c);

  const size_t index_;
  const IoLoopOptions opts_;
  ConnHandler* const handler_;
  Acceptor* const acceptor_;
  WorkerPool* const pool_;
  const Counters counters_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;
  std::thread thread_;
  std::atomic<size_t> count_{0};

  Mutex mu_;
  std::vector<AcceptedConnection> adopted_ ABSL_GUARDED_BY(mu_);
  std::vector<Conn*> done_ ABSL_GUARDED_BY(mu_);
  struct Completion {
    Conn* conn;
    std::function<void(Conn&)> finish;
  };
  std::vector<Completion> completions_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;

  // Loop thread only.
  std::vector<std::unique_ptr<Conn>> conns_;  // by fd
  uint32_t next_gen_ = 1;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  bool draining_ = false;
  std::unique_ptr<char[]> scratch_;
};

// Monotonic now in nanoseconds (CLOCK_MONOTONIC): the edge's deadlines.
int64_t MonoNowNs();

}  // namespace kv::http
