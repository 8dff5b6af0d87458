// Times on the wire: RFC 3339 UTC with second precision, e.g. "2026-11-21T15:04:05Z";
// in logs with millisecond precision, e.g. "2026-11-21T15:04:05.123Z".
#pragma once

#include <string>

#include "absl/time/time.h"

namespace kv {

// Formats t (truncated to whole seconds) as RFC 3339 UTC. Thread-safe.
std::string FormatRfc3339(absl::Time t);

// Formats t (truncated to whole milliseconds) as RFC 3339 UTC with exactly three
// fractional digits: "2026-11-21T15:04:05.123Z". Thread-safe.
std::string FormatRfc3339Millis(absl::Time t);

// Milliseconds since the Unix epoch, the unit every stored time uses.
inline int64_t UnixMs(absl::Time t) { return absl::ToUnixMillis(t); }
inline absl::Time FromUnixMs(int64_t ms) { return absl::FromUnixMillis(ms); }

}  // namespace kv
