// Black-box harness for keyvend's HTTP tests, one include for the kit's HTTP parts:
//   kit/server_process.h  the REAL `keyvend serve` as a child process, ExpectCleanStop and
//                         `keyvend check` (needs KEYVEND_BIN)
//   kit/http_client.h     Reply, Api, OnThreads, IsError, signed payment notifies
//   kit/raw_http.h        raw TCP exchanges (source address, byte by byte, EOF)
// plus the kit's strict Json, process runner, PollUntil, ReadFile and exposition reader,
// all visible in namespace kv::httptest.
#pragma once

#include "kit/exposition.h"
#include "kit/files.h"
#include "kit/http_client.h"
#include "kit/json.h"
#include "kit/poll.h"
#include "kit/process.h"
#include "kit/raw_http.h"
#include "kit/server_process.h"

namespace kv::httptest {

using kv::testing::CheckExposition;
using kv::testing::MetricValue;
using kv::testing::PollUntil;
using kv::testing::RunOptions;

}  // namespace kv::httptest
