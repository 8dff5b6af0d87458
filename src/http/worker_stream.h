// The stream cpp-httplib's engine reads a request from and writes its response to on a
// worker (issue 11): the input is the request head the I/O loop buffered (the body is
// already decoded, in ConnContext::body); the output is buffered in the Conn and goes out
// in as few send(2) calls as possible.
//
// Contract:
// - read() returns the head's bytes, then 0: the engine can never wait for the network.
// - write() appends to the Conn's output. Past kFlushBytes (a streamed export, a large
//   page) it sends what is buffered, waiting for the socket at most write_timeout_ms per
//   wait: the worker owns the connection while it runs, and a streamed response is never
//   buffered whole. On an I/O loop (may_block false; small in-memory answers only) it
//   only buffers. What is left at the end is sent by the worker without waiting, and the
//   rest by the I/O loop.
// - The "HTTP/1.1 100 Continue" line cpp-httplib writes for a request with
//   `Expect: 100-continue` is dropped when skip_continue is set: the I/O loop answered it
//   already, before it read the body.
// - Not thread-safe (one request, one worker).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "httplib.h"

namespace kv::http {

// Sends out[*pos..] on the non-blocking socket fd without waiting. 1: all sent (out is
// cleared, *pos 0); 0: the socket would block (*pos advanced); -1: a write error.
int SendPending(int fd, std::string* out, size_t* pos);

class WorkerStream final : public httplib::Stream {
 public:
  static constexpr size_t kFlushBytes = 64 * 1024;

  WorkerStream(std::string_view input, int fd, std::string* out, size_t* out_pos,
               std::string peer_ip, int peer_port, std::string local_ip, int local_port,
               int64_t write_timeout_ms, bool skip_continue, bool may_block = true);

  bool is_readable() const override { return pos_ < input_.size(); }
  bool is_writable() const override { return !write_failed_; }
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return fd_; }

  // Sends what is buffered without waiting; true when nothing is left.
  bool SendNoWait();
  bool write_failed() const { return write_failed_; }

 private:
  // Sends everything buffered, waiting (bounded) for the socket; false on error/timeout.
  bool SendAll();

  std::string_view input_;
  size_t pos_ = 0;
  int fd_;
  std::string* out_;
  size_t* out_pos_;
  std::string peer_ip_;
  int peer_port_;
  std::string local_ip_;
  int local_port_;
  int64_t write_timeout_ms_;
  bool skip_continue_;
  bool may_block_;  // false on an I/O loop: never wait for the socket, only buffer
  bool write_failed_ = false;
};

}  // namespace kv::http
