// Serializes a finished httplib::Response (issue 11).
//
// Why not cpp-httplib's writer: it is private to process_request, which also parses the
// head again, routes by std::regex and formats through stdio — for a catalogue read that
// was most of the CPU per request (perf, see ARCHITECTURE.md). The I/O loop already holds
// the request parsed and screened, so the handler is called directly (on the loop or a
// worker) and the answer written here, the way cpp-httplib 0.11.4 writes
// one without ranges, compression or a content provider: status line, the response's own
// headers, then `Connection: close` or `Keep-Alive: timeout=T, max=N`, a Content-Type
// (text/plain) for a body without one, Content-Length, and the body (none for HEAD).
// Routes whose answer needs more (the streamed CSV export: Exec::kEngine) run on a worker
// through cpp-httplib's engine, as do heads the loop could not parse.
#pragma once

#include <cstdint>
#include <string>

#include "httplib.h"

namespace kv::http {

// The reason phrase for a status code ("Unknown" when none is known).
const char* ReasonPhrase(int status);

// Appends the whole response to *out. close: the connection ends after it.
void AppendResponse(const httplib::Request& req, const httplib::Response& res, bool close,
                    int64_t keep_alive_timeout_seconds, int64_t keep_alive_max_count,
                    std::string* out);

}  // namespace kv::http
