// Handling the process's own secrets (the admin token, the payment secret): comparing them
// without a timing leak and taking them out of the environment.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kv {

// True when `a` and `b` are the same bytes. Both are hashed with SHA-256 and the digests
// compared with CRYPTO_memcmp: no early return on a length mismatch or on the first
// differing byte, so the time taken says nothing about where `a` and `b` differ or whether
// their lengths match (it grows with their lengths only through the hashing, in 64-byte
// blocks). Thread-safe.
bool SecretEquals(std::string_view a, std::string_view b);

// Reads the environment variable `name` and removes it from the environment: the value's
// bytes are overwritten in place (so neither /proc/PID/environ nor a core dump of the
// process shows them afterwards) and the variable is unset (so no child process inherits
// it and no later getenv sees it). Returns the value, or nullopt when it was not set.
// Only for the environment the process started with or set with setenv (a string given to
// putenv may be read-only). Not thread-safe (the environment is not): call from main
// before threads start.
std::optional<std::string> TakeSecretFromEnv(const char* name);

}  // namespace kv
