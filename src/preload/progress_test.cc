#include "preload/progress.h"

#include <fcntl.h>
#include <unistd.h>

#include "gtest/gtest.h"

namespace kv::preload {
namespace {

TEST(HumanCount, ThreeSignificantDigits) {
  EXPECT_EQ(HumanCount(0), "0");
  EXPECT_EQ(HumanCount(950), "950");
  EXPECT_EQ(HumanCount(1000), "1.00k");
  EXPECT_EQ(HumanCount(12345), "12.3k");
  EXPECT_EQ(HumanCount(999'999), "1.00M");
  EXPECT_EQ(HumanCount(4'500'000), "4.50M");
  EXPECT_EQ(HumanCount(1.2e9), "1.20G");
}

TEST(FormatProgress, BarPercentCountsRateAndEta) {
  const std::string line =
      FormatProgress("writing", 4'500'000, 10'000'000, ProgressUnit::kKeys, 5.0, 100);
  EXPECT_EQ(line,
            "writing       [#############.................]  45%  4.50M/10.0M keys  900k keys/s  "
            "ETA 7s");
}

TEST(FormatProgress, NoRateOrEtaBeforeAnythingMeaningful) {
  EXPECT_EQ(FormatProgress("hashing", 0, 100, ProgressUnit::kKeys, 3.0, 60).find("keys/s"),
            std::string::npos);
  EXPECT_EQ(FormatProgress("hashing", 50, 100, ProgressUnit::kKeys, 0.1, 60).find("keys/s"),
            std::string::npos);
  // Done: a rate but no ETA.
  const std::string done = FormatProgress("hashing", 100, 100, ProgressUnit::kKeys, 2.0, 100);
  EXPECT_NE(done.find("100%"), std::string::npos);
  EXPECT_NE(done.find("50 keys/s"), std::string::npos);
  EXPECT_EQ(done.find("ETA"), std::string::npos);
}

TEST(FormatProgress, BytesLongEtasAndNarrowTerminals) {
  const std::string bytes =
      FormatProgress("reading", 100 << 20, 400 << 20, ProgressUnit::kBytes, 2.0, 100);
  EXPECT_NE(bytes.find("100/400 MB  50 MB/s  ETA 6s"), std::string::npos) << bytes;
  EXPECT_NE(FormatProgress("x", 1, 4000, ProgressUnit::kKeys, 1.0, 100).find("ETA 1h06m"),
            std::string::npos);
  EXPECT_NE(FormatProgress("x", 1, 200, ProgressUnit::kKeys, 1.0, 100).find("ETA 3m19s"),
            std::string::npos);
  // The bar goes first on a narrow terminal; nothing is ever wider than asked.
  const std::string narrow = FormatProgress("writing", 5, 10, ProgressUnit::kKeys, 1.0, 40);
  EXPECT_EQ(narrow.find('['), std::string::npos) << narrow;
  EXPECT_LE(narrow.size(), 40u);
  // More done than total (a caller's rounding) is shown as 100%, never more.
  EXPECT_NE(FormatProgress("x", 12, 10, ProgressUnit::kKeys, 1.0, 100).find("100%"),
            std::string::npos);
}

TEST(Progress, DisabledWritesNothing) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  {
    Progress p(fds[1], /*enabled=*/false);
    p.Phase("hashing", 10, ProgressUnit::kKeys);
    p.Add(10);
    p.Finish();
  }
  char buf[16];
  EXPECT_EQ(::read(fds[0], buf, sizeof buf), -1);  // empty (EAGAIN): not a byte written
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST(Progress, EnabledEndsEachPhaseWithItsFinalLine) {
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_NONBLOCK), 0);
  {
    Progress p(fds[1], /*enabled=*/true);
    p.Phase("hashing", 10, ProgressUnit::kKeys);
    p.Add(10);
    p.Phase("writing", 4, ProgressUnit::kKeys);
    p.Add(4);
  }  // the destructor ends "writing"
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;)
    out.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  ::close(fds[1]);
  const size_t h = out.find("hashing");
  const size_t w = out.find("writing");
  ASSERT_NE(h, std::string::npos) << out;
  ASSERT_NE(w, std::string::npos) << out;
  EXPECT_LT(h, w);
  EXPECT_NE(out.find("10/10 keys"), std::string::npos) << out;
  EXPECT_NE(out.find("4/4 keys"), std::string::npos) << out;
  EXPECT_EQ(out.back(), '\n');
}

}  // namespace
}  // namespace kv::preload
