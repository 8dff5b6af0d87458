// outbound_sink --secret SECRET [--http-port N] [--smtp-port N]
// Prints "PORT <http port>" and "SMTP_PORT <smtp port>" once listening on 127.0.0.1, then
// serves until killed. See sink.h for what it answers.
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "outbound_sink/sink.h"

namespace {

bool ParsePort(const char* s, uint16_t* out) {
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (end == s || *end != '\0' || v < 0 || v > 65535) return false;
  *out = static_cast<uint16_t>(v);
  return true;
}

int Usage() {
  std::fprintf(stderr, "usage: outbound_sink --secret SECRET [--http-port N] [--smtp-port N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string secret;
  uint16_t http_port = 0, smtp_port = 0;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    const char* v = argv[++i];
    if (a == "--secret") {
      secret = v;
    } else if (a == "--http-port") {
      if (!ParsePort(v, &http_port)) return Usage();
    } else if (a == "--smtp-port") {
      if (!ParsePort(v, &smtp_port)) return Usage();
    } else {
      return Usage();
    }
  }
  if (secret.empty()) return Usage();
  std::signal(SIGPIPE, SIG_IGN);
  kv::bench::OutboundSink sink(secret);
  if (!sink.Listen(http_port, smtp_port)) {
    std::fprintf(stderr, "outbound_sink: listen: %s\n", std::strerror(errno));
    return 1;
  }
  std::printf("PORT %u\nSMTP_PORT %u\n", sink.http_port(), sink.smtp_port());
  std::fflush(stdout);
  sink.Run();
  std::fprintf(stderr, "outbound_sink: epoll_wait: %s\n", std::strerror(errno));
  return 1;
}
