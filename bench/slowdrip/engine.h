// slowdrip_bench's event loop: one epoll thread that owns many client connections to one
// server, each from a chosen loopback source address (127.0.x.y, bound before connect so a
// server's per-client caps see many clients). Three kinds of connection:
//   - drip: sends a request line, then one header byte every drip_ms, never the end of the
//     head; when the server cuts it (an answer such as 408/503, a close or a reset) it is
//     re-opened from the same address after reopen_delay_ms;
//   - request: the requester's, one request on a fixed schedule (open loop: a slow answer
//     never delays the next start), on a fresh connection or a pooled keep-alive one;
//   - idle: sends GET /healthz, reads the answer, then stays open doing nothing; Resend()
//     sends one more request on every idle connection.
// Not thread safe: one Engine per thread; read its stats after Run returns.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <queue>
#include <string>
#include <vector>

#include "flood/histogram.h"
#include "flood/http_client.h"

namespace kv::slowdrip {

using flood::Endpoint;
using flood::Histogram;
using flood::NowNs;

// The index-th source address of a run of loopback addresses that starts at 127.0.first_x.1:
// 254 per block (y = 1..254), then the next block (x + 1). index >= 0, first_x in 1..254;
// x past 254 wraps to 1 (callers keep their runs apart).
in_addr SourceAddress(int first_x, int index);
std::string AddressText(in_addr a);

// "HTTP 503": 2, "timeout": 1 → "HTTP_503:2,timeout:1" (spaces as '_'); "none" when empty.
std::string CountsText(const std::map<std::string, uint64_t>& counts);

struct DripStats {
  uint64_t established = 0;              // connections the server accepted (connect completed)
  uint64_t connect_failures = 0;         // refused, reset or timed out before established
  std::map<std::string, uint64_t> cuts;  // how established drips ended: "HTTP 408", "closed"…
  uint64_t bytes_sent = 0;
  // Established drips not yet cut, sampled every 100 ms while sampling is on.
  uint64_t samples = 0, open_sum = 0, open_min = 0, open_max = 0;
  double OpenAverage() const {
    return samples == 0 ? 0 : static_cast<double>(open_sum) / static_cast<double>(samples);
  }
};

struct RequestStats {
  uint64_t started = 0;
  uint64_t ok = 0;    // answered with the expected status
  Histogram latency;  // of the ok answers, µs from the start (connect included)
  std::map<std::string, uint64_t> failures;  // "HTTP 503", "timeout", "connect: ..."
};

struct IdleStats {
  uint64_t ready = 0;                        // answered 200 and now idle
  std::map<std::string, uint64_t> failures;  // why a connection never became idle
  uint64_t closed_by_server = 0;             // idle ones the server closed (or reset)
  uint64_t resend_ok = 0;                    // idle ones that answered Resend()'s request with 200
  std::map<std::string, uint64_t> resend_failures;
};

// The requester's schedule: from start_ns, one request every interval_ns until stop_ns,
// from the next of `sources` in turn. make(seq) gives the whole request (seq = 0, 1, …).
struct RequesterSpec {
  std::vector<in_addr> sources;
  int64_t start_ns = 0, stop_ns = 0, interval_ns = 0;
  int timeout_ms = 5000;
  bool keep_alive = false;  // false: a fresh connection per request (sent with Connection: close)
  int expected_status = 200;
  std::function<std::string(uint64_t)> make;
};

class Engine {
 public:
  // At most max_connecting connections are opening (connecting, or idle ones before their
  // first answer) at once; the others queue.
  Engine(const Endpoint& ep, int max_connecting);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // A drip connection from `source` (opened when Run gets to it).
  void AddDrip(in_addr source, int drip_ms, int reopen_delay_ms);
  // Samples the drips' open count every 100 ms while NowNs() is in [from_ns, to_ns).
  void SampleDrips(int64_t from_ns, int64_t to_ns) {
    sample_from_ns_ = from_ns;
    sample_to_ns_ = to_ns;
  }
  void SetRequester(RequesterSpec spec) { req_ = std::move(spec); }
  // An idle connection from `source`.
  void AddIdle(in_addr source);
  // Sends GET /healthz again on every idle connection (answers count in IdleStats).
  void Resend();

  // Runs the loop until NowNs() >= until_ns or *stop is set, or earlier once the requester
  // (if any) is past its stop_ns with no request in flight and `until_requests_done`.
  void Run(int64_t until_ns, const std::atomic<bool>* stop, bool until_requests_done);
  // Runs until no idle connection is opening or waiting for an answer, or until_ns.
  void RunUntilIdleSettled(int64_t until_ns);
  // Closes every connection.
  void CloseAll();

  const DripStats& drips() const { return drip_stats_; }
  const RequestStats& requests() const { return req_stats_; }
  const IdleStats& idle() const { return idle_stats_; }
  size_t idle_open() const { return idle_open_; }

 private:
  enum class Role : uint8_t { kDrip, kRequest, kIdle };
  enum class State : uint8_t { kFree, kQueued, kConnecting, kSending, kReading, kDripping, kIdle };
  struct Conn {
    Role role = Role::kDrip;
    State state = State::kFree;
    int fd = -1;
    uint32_t gen = 0;  // bumped at every (re)open and close: stale events and timers skip
    in_addr source{};
    std::string out;
    size_t out_off = 0;
    std::string in;
    int64_t start_ns = 0;     // the request's start (latency) or the connect's
    int64_t deadline_ns = 0;  // connect or answer deadline; 0 = none
    uint64_t drip_pos = 0;
    bool resend = false;   // the idle connection's request is Resend()'s
    bool counted = false;  // counts against max_connecting_
    uint32_t armed = 0;    // the epoll events registered (0 = not in the set)
  };
  enum class Timer : uint8_t { kDeadline, kDripByte, kReopen };
  struct Due {
    int64_t ns;
    uint32_t slot, gen;
    Timer what;
    bool operator>(const Due& o) const { return ns > o.ns; }
  };

  uint32_t NewSlot(Role role, in_addr source);
  void Enqueue(uint32_t slot);
  void OpenQueued();
  void Open(uint32_t slot);
  void Arm(uint32_t slot, uint32_t events);
  void OnEvent(uint32_t slot, uint32_t events);
  void OnConnected(uint32_t slot);
  bool Flush(uint32_t slot);  // false: the connection failed (already handled)
  void OnReadable(uint32_t slot);
  void OnTimer(const Due& d);
  void StartRequest();
  // Ends the connection's life as `why` ("" = a normal end): closes the socket, counts the
  // outcome for its role and, for drips, schedules the reopen.
  void Finish(uint32_t slot, const std::string& why);
  void CloseFd(Conn& c);
  void Poll(int timeout_ms);
  void Tick();

  const Endpoint& ep_;
  const int max_connecting_;
  int epfd_ = -1;
  std::vector<Conn> conns_;
  std::vector<uint32_t> free_slots_;
  std::deque<uint32_t> open_queue_;
  int connecting_ = 0;  // slots counted against max_connecting_
  std::priority_queue<Due, std::vector<Due>, std::greater<Due>> timers_;

  int drip_ms_ = 500, reopen_delay_ms_ = 100;
  uint64_t drips_open_ = 0;
  int64_t sample_from_ns_ = 0, sample_to_ns_ = 0, next_sample_ns_ = 0;
  DripStats drip_stats_;

  RequesterSpec req_;
  uint64_t req_seq_ = 0;
  size_t req_source_ = 0;
  int64_t req_next_ns_ = 0;
  uint64_t req_in_flight_ = 0;
  std::vector<uint32_t> req_pool_;  // idle keep-alive request connections
  RequestStats req_stats_;

  std::string idle_request_;
  size_t idle_open_ = 0;
  IdleStats idle_stats_;
};

}  // namespace kv::slowdrip
