// One admitted connection as the I/O loop and the workers see it (issue 11).
//
// Ownership: a Conn belongs to exactly one thread at a time. Its I/O loop owns it while it
// reads a head or body, writes a response, idles or lingers; while a request runs
// (State::kWorking) a worker owns everything but the fields marked "loop only", and hands
// it back through the loop's inbox (a mutex: the hand-offs are the happens-before edges).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "http/acceptor.h"
#include "http/body_reader.h"
#include "http/request_head.h"
#include "httplib.h"

namespace kv::http {

struct Route;

// The connection a request arrived on and what the request's plumbing learned about it.
// On the thread serving the request (CurrentConn()); null elsewhere.
struct ConnContext {
  const AcceptedConnection* conn = nullptr;
  bool ops = false;         // the ops listener: only ops and notify routes
  bool must_close = false;  // the response ends the connection (e.g. a refused, unread body)
  // The request being served.
  int64_t start_ns = 0;
  size_t route_index = 0;
  char request_id[17] = {};
  // Decided from the request head (Screen), before the body: the matched route and its
  // parameters (null route: answered already, e.g. 404), and whether the screen answered.
  bool screened = false;
  bool refused = false;
  const Route* route = nullptr;
  std::vector<std::string> params;
  // The screen's refusal (or a refusal of the body: 413, 400, 408), written by the worker
  // through cpp-httplib when refused.
  httplib::Response refusal;
  // The head as the I/O loop parsed and screened it; the worker's parse must agree.
  std::string method;
  std::string path;
  // The body, read and decoded by the I/O loop.
  std::string body;
  // The request runs on the I/O loop (Exec::kInline / kPrecheck): nothing may block.
  bool on_loop = false;
  // Exec::kPrecheck's first run; the handler sets needs_worker when it cannot answer there.
  bool precheck = false;
  bool needs_worker = false;
  // The request was handed to the group committer (an order created without waiting): its
  // completion writes the answer and gives the connection back (IoLoop::Done).
  bool async_pending = false;
  struct Conn* owner = nullptr;  // the Conn this context belongs to
  // cpp-httplib's pre-routing (or Expect) hook ran: an error answer after it is ours, one
  // before it is the engine's own (a head it could not parse), which ends the connection.
  bool pre_routed = false;
  // Per-connection: the connection was admitted from the probe/notify reserve and ends
  // after one request.
  bool one_request = false;
};

struct Conn {
  enum class State : uint8_t {
    kHead,     // reading a request head (idle == no byte of it yet)
    kBody,     // reading the body the screen admitted
    kWorking,  // a worker runs the request
    kWriting,  // the loop writes the rest of a response
    kLinger,   // closing: reading and discarding unread input for a moment
  };

  AcceptedConnection ac;
  ConnContext cc;
  // --- loop only ---
  size_t loop = 0;
  uint32_t gen = 0;  // tells an event for this Conn from one for an earlier fd user
  State state = State::kHead;
  bool idle = true;         // kHead and nothing of the next request received yet
  bool read_hint = false;   // input may be waiting (an event came while not reading)
  bool in_advance = false;  // IoLoop::Advance is on the stack for this connection
  bool peer_eof = false;    // the peer shut down its sending side
  int64_t deadline_ns = 0;  // of the current state (0: none)
  int64_t last_read_ns = 0;
  int64_t timer_at = 0;  // the earliest deadline-heap entry pending for it (0: none)
  int64_t served = 0;
  HeadScanState scan;
  uint64_t body_left = 0;  // Content-Length body: bytes still to come
  bool chunked = false;
  ChunkedDecoder decoder;
  uint64_t lingered = 0;
  // --- shared by hand-off (loop before/after a request, the worker during it) ---
  std::string in;  // received, not consumed (from in_pos)
  size_t in_pos = 0;
  size_t head_len = 0;     // while scanning: the head's bytes at in[in_pos, in_pos + head_len)
  httplib::Request head;   // the loop's parse (for the screen)
  std::string head_bytes;  // the complete head, as the worker's cpp-httplib parses it
  bool head_parsed = false;
  bool expect_continue = false;
  bool close_after = false;  // the response ends the connection (keep-alive count, drain)
  std::string out;           // response bytes not yet sent (from out_pos)
  size_t out_pos = 0;
  // The worker's outcome.
  bool worker_ok = true;
  bool worker_closed = false;
  bool write_failed = false;
};

}  // namespace kv::http
