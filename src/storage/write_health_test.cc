// WriteHealth (storage/write_health.h): which failures make the database unwritable, what
// heals it, and the counts.
#include "storage/write_health.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"

namespace kv::storage {
namespace {

TEST(WriteHealthTest, AFailedWriteMakesItUnwritableAndTheNextSuccessHeals) {
  WriteHealth h;
  EXPECT_TRUE(h.writable());
  h.RecordWrite(absl::OkStatus());
  EXPECT_EQ(h.state().errors_total, 0u);

  h.RecordWrite(absl::UnavailableError("IO error: No space left on device"));
  h.RecordWrite(absl::UnavailableError("IO error: No space left on device (again)"));
  WriteHealth::State s = h.state();
  EXPECT_FALSE(s.writable);
  EXPECT_FALSE(h.writable());
  EXPECT_EQ(s.error, "IO error: No space left on device (again)");  // the latest reason
  EXPECT_GT(s.since_unix_ms, 0);
  EXPECT_EQ(s.errors_total, 2u);
  EXPECT_EQ(s.recoveries_total, 0u);

  h.RecordWrite(absl::OkStatus());
  s = h.state();
  EXPECT_TRUE(s.writable);
  EXPECT_TRUE(s.error.empty());
  EXPECT_EQ(s.since_unix_ms, 0);
  EXPECT_EQ(s.recoveries_total, 1u);
  h.RecordWrite(absl::OkStatus());
  EXPECT_EQ(h.state().recoveries_total, 1u);  // healing counts once
}

TEST(WriteHealthTest, RefusalsThatAreNotTheStoragesChangeNothing) {
  WriteHealth h;
  h.RecordWrite(absl::InvalidArgumentError("bad batch"));
  h.RecordWrite(absl::UnavailableError("the database is closing"));
  EXPECT_TRUE(h.writable());
  EXPECT_EQ(h.state().errors_total, 0u);
}

TEST(WriteHealthTest, RocksDbsBackgroundErrorAndItsRecovery) {
  WriteHealth h;
  h.RecordBackgroundError("write: IO error: No space left on device");
  EXPECT_FALSE(h.writable());
  h.RecordRecovered(false, "still full");
  EXPECT_FALSE(h.writable());
  h.RecordRecovered(true, "");
  EXPECT_TRUE(h.writable());
  EXPECT_EQ(h.state().recoveries_total, 1u);
}

}  // namespace
}  // namespace kv::storage
