// One accepted connection's socket as cpp-httplib's Stream, owned by keyvend's connection
// layer (DEPS.md item 3: 0.11.4's own socket stream has only per-read timeouts).
//
// Contract:
// - Reads are buffered and bounded by a DEADLINE (monotonic, whole header or whole body),
//   not only by a per-read timeout: a client that drips one byte a second is cut off when
//   the deadline passes, however often it sends.
// - Writes are buffered and go out in as few send(2) calls as possible (one per response
//   normally): Flush() at the end of a request, and automatically before any read that has
//   to wait (so "100 Continue" reaches a client that waits for it) or when the buffer is
//   over kWriteBufferBytes.
// - The socket is non-blocking; every wait is a poll(2) with a bounded timeout. Nothing
//   here closes the fd: the connection's owner does.
// - Not thread-safe: one connection is served by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "httplib.h"

namespace kv::http {

int64_t MonoNowNs();

class ConnStream final : public httplib::Stream {
 public:
  static constexpr size_t kReadChunkBytes = 16 * 1024;
  static constexpr size_t kWriteBufferBytes = 64 * 1024;

  ConnStream(int fd, std::string peer_ip, int peer_port, std::string local_ip, int local_port,
             int64_t read_timeout_ms, int64_t write_timeout_ms);

  // httplib::Stream
  bool is_readable() const override;
  bool is_writable() const override;
  ssize_t read(char* ptr, size_t size) override;
  ssize_t write(const char* ptr, size_t size) override;
  void get_remote_ip_and_port(std::string& ip, int& port) const override;
  void get_local_ip_and_port(std::string& ip, int& port) const override;
  socket_t socket() const override { return fd_; }

  // No read returns data after this monotonic time (0 = no deadline beyond the per-read
  // timeout). A read refused by it sets deadline_hit().
  void set_deadline(int64_t mono_ns) { deadline_ns_ = mono_ns; }
  bool deadline_hit() const { return deadline_hit_; }
  // A read gave up waiting (the deadline or the per-read timeout).
  bool timed_out() const { return timed_out_; }

  enum class HeaderResult {
    kComplete,      // the buffer holds a whole header (request line .. empty line)
    kClosed,        // the peer closed (or reset) before sending a whole header
    kTimeout,       // the deadline (or the per-read timeout) passed first
    kTooLarge,      // more than max_bytes before the end of the header
    kTooManyLines,  // more than max_lines header lines
  };
  // Reads until the buffered input starts with a whole request header, by deadline_ns,
  // within max_bytes and max_lines (0 = no limit for either). *received is the number of
  // header bytes buffered when it returns (0: the client sent nothing).
  HeaderResult ReadHeader(int64_t deadline_ns, size_t max_bytes, size_t max_lines,
                          size_t* received);

  // Input received but not consumed yet (e.g. a pipelined next request, an unread body).
  size_t buffered() const { return rend_ - rpos_; }
  // Writes out buffered output; false on a write error or timeout.
  bool Flush();
  // A read or write failed for good (peer gone, timeout, error). After a failed read a
  // response can still be written (e.g. 408 after the body deadline).
  bool failed() const { return read_failed_ || write_failed_; }
  // Total bytes the client sent and the server wrote on this connection.
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  // Waits until the socket is readable (or the deadline/timeout passes). 1 readable, 0
  // timed out, -1 error.
  int WaitReadable(int64_t timeout_ms) const;
  // Reads more input into the buffer: >0 bytes, 0 EOF, -1 error or timeout.
  ssize_t Fill();
  int64_t ReadWaitMs() const;
  bool SendAll(const char* p, size_t n);

  int fd_;
  std::string peer_ip_;
  int peer_port_;
  std::string local_ip_;
  int local_port_;
  int64_t read_timeout_ms_;
  int64_t write_timeout_ms_;
  int64_t deadline_ns_ = 0;
  bool deadline_hit_ = false;
  bool timed_out_ = false;
  bool read_failed_ = false;
  bool write_failed_ = false;
  std::string rbuf_;
  size_t rpos_ = 0;
  size_t rend_ = 0;
  std::string wbuf_;
  uint64_t bytes_read_ = 0;
  uint64_t bytes_written_ = 0;
};

}  // namespace kv::http
