// keyvend-preload's report: one line per input line that was not loaded, then a summary.
// It names files, line numbers, reasons and counts — never a key's text (SPEC §2.6).
//
//   keys.txt:17: empty
//   keys.txt:203: duplicate_in_input
//   more.csv:9: already_stored
//   keyvend-preload: loaded 990000 keys into product 1 (batch 3); rejected 1000 lines; ...
//
// Reasons are the admin endpoint's codes (shop/key_import.h LineRejectName: empty, too_long,
// non_printable, bad_csv_row, duplicate_in_input) plus already_stored (a key the shop has
// stocked before, in any product).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "preload/dedupe.h"
#include "preload/input.h"

namespace kv::preload {

inline constexpr std::string_view kAlreadyStored = "already_stored";

struct ReportLine {
  uint32_t file = 0;  // index into the run's files
  uint32_t line = 0;
  std::string_view reason;  // static storage
};

// Every line of the run that will not be loaded, by file (command-line order) then line:
// the parser's rejections (Inputs::files()[f].rejected) and the dedupe's verdicts.
std::vector<ReportLine> BuildReport(const Inputs& inputs, const std::vector<Verdict>& verdicts);

// "<path>:<line>: <reason>".
std::string FormatReportLine(const std::vector<InputFile>& files, const ReportLine& r);

// What a run did, for the summary line.
struct RunCounts {
  uint64_t product_id = 0;
  bool dry_run = false;
  uint64_t loaded = 0;    // keys stored (ingested + imported to serve backorders)
  uint64_t rejected = 0;  // lines refused by the parser (not duplicates)
  uint64_t duplicate_in_input = 0;
  uint64_t already_stored = 0;
  std::vector<uint64_t> batch_ids;  // batches written, oldest first
  uint64_t backorder_keys = 0;      // of `loaded`, keys imported through the shop first
  uint64_t backorders_served = 0;   // orders those keys delivered
};

// One line: "keyvend-preload: loaded N keys into product P (batch B); rejected R lines;
// duplicates D (in input I, already stored S)" — for a dry run "would load" and ", nothing
// was written"; with backorders "; X keys served Y waiting backorders first".
std::string FormatSummary(const RunCounts& c);

}  // namespace kv::preload
