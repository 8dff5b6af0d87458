// mail_bench: what sending costs the sending thread, Mailer::Send one mail after another
// against Mailer::SendMany of a round (issue 14). Against an SMTP server on loopback (the
// benchmarks' bench/outbound_sink): mails/s, the thread's CPU seconds (user + system) and
// its context switches (voluntary + involuntary), per 1000 mails.
//
//   mail_bench PORT MAILS ROUND SESSIONS one|many
//
// one: ROUND mails by Send, one after another (the worker before SendMany); many: each
// ROUND mails by one SendMany over up to SESSIONS sessions.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "outbound/mailer.h"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr, "usage: mail_bench PORT MAILS ROUND SESSIONS one|many\n");
    return 2;
  }
  const int port = std::atoi(argv[1]);
  const int total = std::atoi(argv[2]);
  const int round = std::atoi(argv[3]);
  const int sessions = std::atoi(argv[4]);
  const std::string mode = argv[5];
  if (port <= 0 || port > 65535 || total <= 0 || round <= 0 || sessions <= 0 ||
      (mode != "one" && mode != "many")) {
    std::fprintf(stderr, "mail_bench: bad arguments\n");
    return 2;
  }
  kv::outbound::MailerOptions o;
  o.smtp_url = absl::StrCat("smtp://127.0.0.1:", port);
  o.mail_from = "shop@keyvend.example";
  o.parallel_sessions = static_cast<uint32_t>(sessions);
  auto mailer = kv::outbound::Mailer::Create(o, kv::RealClock::Get());
  if (!mailer.ok()) {
    std::fprintf(stderr, "mail_bench: %s\n", std::string(mailer.status().message()).c_str());
    return 2;
  }
  std::vector<kv::outbound::Mail> mails;
  for (int i = 0; i < round; ++i) {
    mails.push_back({absl::StrCat("buyer", i, "@example.com"), "Your keys",
                     absl::StrCat("Order ", i, "\nKEY-0123456789-ABCDEF-", i, "\n"),
                     absl::StrCat("m", i)});
  }
  rusage r0{};
  getrusage(RUSAGE_THREAD, &r0);
  const auto t0 = std::chrono::steady_clock::now();
  int sent = 0;
  int tried = 0;
  for (int done = 0; done < total; done += round) {
    tried += round;
    if (mode == "one") {
      for (const auto& m : mails) {
        sent += (*mailer)->Send(m).outcome == kv::outbound::MailOutcome::kSent;
      }
    } else {
      for (const auto& r : (*mailer)->SendMany(mails)) {
        sent += r.outcome == kv::outbound::MailOutcome::kSent;
      }
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  rusage r1{};
  getrusage(RUSAGE_THREAD, &r1);
  const auto tv = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  const double cpu = tv(r1.ru_utime) - tv(r0.ru_utime) + tv(r1.ru_stime) - tv(r0.ru_stime);
  const double sys = tv(r1.ru_stime) - tv(r0.ru_stime);
  const long csw = (r1.ru_nvcsw - r0.ru_nvcsw) + (r1.ru_nivcsw - r0.ru_nivcsw);
  std::printf(
      "%-4s round %d sessions %d: %d sent in %.2f s = %.0f mails/s; thread CPU %.1f ms per 1000 "
      "mails (%.1f system), %.0f context switches per 1000 mails\n",
      mode.c_str(), round, mode == "one" ? 1 : sessions, sent, secs, sent / secs,
      1000.0 * cpu * 1000.0 / sent, 1000.0 * sys * 1000.0 / sent, 1000.0 * csw / sent);
  return sent == tried ? 0 : 1;
}
