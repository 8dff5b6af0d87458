#include "preload/report.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace kv::preload {

std::vector<ReportLine> BuildReport(const Inputs& inputs, const std::vector<Verdict>& verdicts) {
  std::vector<ReportLine> out;
  for (size_t f = 0; f < inputs.files().size(); ++f) {
    for (const RejectedLine& r : inputs.files()[f].rejected) {
      out.push_back(ReportLine{static_cast<uint32_t>(f), r.line, LineRejectName(r.reason)});
    }
  }
  const std::vector<InputKey>& keys = inputs.keys();
  for (size_t i = 0; i < verdicts.size() && i < keys.size(); ++i) {
    if (verdicts[i] == Verdict::kDuplicateInInput) {
      out.push_back(
          ReportLine{keys[i].file, keys[i].line, LineRejectName(LineReject::kDuplicateInInput)});
    } else if (verdicts[i] == Verdict::kAlreadyStored) {
      out.push_back(ReportLine{keys[i].file, keys[i].line, kAlreadyStored});
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const ReportLine& a, const ReportLine& b) {
    return a.file != b.file ? a.file < b.file : a.line < b.line;
  });
  return out;
}

std::string FormatReportLine(const std::vector<InputFile>& files, const ReportLine& r) {
  return absl::StrCat(files[r.file].path, ":", r.line, ": ",
                      absl::string_view(r.reason.data(), r.reason.size()));
}

std::string FormatSummary(const RunCounts& c) {
  std::string s = "keyvend-preload: ";
  if (c.dry_run)
    s += "dry run: would load ";
  else
    s += "loaded ";
  absl::StrAppend(&s, c.loaded, c.loaded == 1 ? " key" : " keys", " into product ", c.product_id);
  if (!c.batch_ids.empty()) {
    absl::StrAppend(&s, c.batch_ids.size() == 1 ? " (batch " : " (batches ",
                    absl::StrJoin(c.batch_ids, ", "), ")");
  }
  absl::StrAppend(&s, "; rejected ", c.rejected, c.rejected == 1 ? " line" : " lines",
                  "; duplicates ", c.duplicate_in_input + c.already_stored, " (in input ",
                  c.duplicate_in_input, ", already stored ", c.already_stored, ")");
  if (c.backorder_keys > 0 || c.backorders_served > 0) {
    absl::StrAppend(&s, "; ", c.backorder_keys, c.backorder_keys == 1 ? " key" : " keys",
                    c.dry_run ? " would serve" : " served", " waiting backorders first");
    if (!c.dry_run) absl::StrAppend(&s, " (", c.backorders_served, " orders)");
  }
  if (c.dry_run) s += "; nothing was written";
  return s;
}

}  // namespace kv::preload
