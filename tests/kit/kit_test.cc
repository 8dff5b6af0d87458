// The test kit's own tests: strict JSON reads fail, the process runner's environment is
// explicit and its timeout is a failure, the exposition reader finds samples.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "kit/exposition.h"
#include "kit/files.h"
#include "kit/json.h"
#include "kit/poll.h"
#include "kit/process.h"

namespace kv::testing {
namespace {

TEST(KitJson, PresentValuesRead) {
  const Json j = Json::Parse(R"({"a":{"b":[1,2,3]},"s":"x","t":true,"d":1.5,"n":null})");
  EXPECT_EQ(j["a"]["b"].size(), 3u);
  EXPECT_EQ(j["a"]["b"][2].num(), 3);
  EXPECT_EQ(j["s"].str(), "x");
  EXPECT_TRUE(j["t"].boolean());
  EXPECT_EQ(j["d"].number(), 1.5);
  EXPECT_EQ(j["a"]["b"][0].number(), 1.0);
  EXPECT_TRUE(j["n"].is_null());
  EXPECT_TRUE(j.has("n"));
  EXPECT_FALSE(j.has("zz"));
  EXPECT_TRUE(j["zz"]["deeper"].missing());  // lookups and probes never fail
  EXPECT_EQ(j["a"]["b"][1].path(), "$.a.b[1]");
  EXPECT_EQ(j["a"]["b"].items(3).size(), 3u);
  EXPECT_EQ(j.keys(), (std::vector<std::string>{"a", "s", "t", "d", "n"}));
}

TEST(KitJson, MissingOrWrongTypeFailsWithThePath) {
  const Json j = Json::Parse(R"({"counts":{"delivered":3},"s":"x","list":[]})");
  EXPECT_NONFATAL_FAILURE((void)j["counts"]["held"].num(), "$.counts.held is missing");
  EXPECT_NONFATAL_FAILURE((void)j["s"].num(), "$.s is a string, want an integer");
  EXPECT_NONFATAL_FAILURE((void)j["counts"].str(), "$.counts is an object, want a string");
  EXPECT_NONFATAL_FAILURE((void)j["gone"].boolean(), "$.gone is missing");
  EXPECT_NONFATAL_FAILURE((void)j["gone"].size(), "$.gone is missing");
  EXPECT_NONFATAL_FAILURE((void)j["gone"].items(), "$.gone is missing");
  EXPECT_NONFATAL_FAILURE((void)j["list"][0].str(), "$.list[0] is missing");
  EXPECT_NONFATAL_FAILURE((void)j["list"].items(1), "$.list has 0 elements, want 1");
  EXPECT_NONFATAL_FAILURE((void)Json::Parse("not json")["x"].num(), "not JSON");
}

TEST(KitProcess, ChildGetsOnlyTheBasicsAndWhatTheTestNames) {
  ASSERT_EQ(::setenv("KEYVEND_DATA_DIR", "/tmp/kit-test-must-not-leak", 1), 0);
  ASSERT_EQ(::setenv("KIT_TEST_OTHER", "also-not", 1), 0);
  const RunResult r = RunCommand({"/usr/bin/env"}, {.env = {"KEYVEND_ADMIN_TOKEN=named"}});
  ::unsetenv("KEYVEND_DATA_DIR");
  ::unsetenv("KIT_TEST_OTHER");
  EXPECT_EQ(r.exit_code, 0) << r.out;
  EXPECT_EQ(r.out.find("KEYVEND_DATA_DIR"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("KIT_TEST_OTHER"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("KEYVEND_ADMIN_TOKEN=named\n"), std::string::npos) << r.out;
  if (std::getenv("PATH") != nullptr) {
    EXPECT_NE(r.out.find("PATH="), std::string::npos);
  }
}

TEST(KitProcess, RunCapturesBothStreamsAndTheExitCode) {
  const RunResult merged = RunCommand({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(merged.exit_code, 3);
  EXPECT_EQ(merged.out, "out\nerr\n");
  const RunResult split =
      RunCommand({"/bin/sh", "-c", "echo out; echo err >&2"},
                 {.env = {}, .timeout = std::chrono::seconds(60), .merge_stderr = false});
  EXPECT_EQ(split.exit_code, 0);
  EXPECT_EQ(split.out, "out\n");
  EXPECT_EQ(split.err, "err\n");
}

TEST(KitProcess, TimeoutKillsAndFails) {
  RunResult r;
  EXPECT_NONFATAL_FAILURE(
      r = RunCommand({"/bin/sleep", "30"}, {.env = {}, .timeout = std::chrono::milliseconds(100)}),
      "killed with SIGKILL");
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.signal, SIGKILL);
  EXPECT_EQ(r.exit_code, -1);
}

TEST(KitProcess, ExecFailureIsReportedByStart) {
  Child c;
  std::string error;
  EXPECT_FALSE(c.Start({"/no/such/binary"}, {}, &error));
  EXPECT_NE(error.find("exec /no/such/binary"), std::string::npos) << error;
  EXPECT_FALSE(c.running());
}

TEST(KitProcess, ChildSignalWaitAndPipe) {
  Child c;
  std::string error;
  ASSERT_TRUE(c.Start({"/bin/sh", "-c", "echo ready; exec sleep 30"},
                      {.env = {}, .out = Output::Pipe(), .err = Output::Null()}, &error))
      << error;
  char buf[6] = {0};
  ASSERT_EQ(::read(c.stdout_fd(), buf, 5), 5);
  EXPECT_EQ(std::string(buf), "ready");
  int status = 0;
  EXPECT_FALSE(c.Exited(&status));
  const int s = c.Terminate(std::chrono::seconds(30));
  EXPECT_EQ(DescribeWait(s), "signal 15");
  EXPECT_FALSE(c.running());
}

TEST(KitExposition, ParsesFamiliesAndSamplesAndRejectsBrokenText) {
  const std::string text =
      "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\"} 4\n"
      "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n";
  const auto e = ParseExposition(text);
  ASSERT_TRUE(e.ok()) << e.status();
  ASSERT_EQ(e->families.size(), 2u);
  EXPECT_EQ(e->Value("a_total", {{"y", "q\""}, {"x", "1"}}), 4.0);
  EXPECT_EQ(e->Value("a_total", {{"x", "1"}}), std::nullopt);  // the label set is exact
  EXPECT_EQ(e->FamilyOf("h_count")->name, "h");
  EXPECT_EQ(MetricValue(text, "h_sum"), 3.0);
  EXPECT_FALSE(CheckExposition("a_total 1\n").ok());  // no HELP/TYPE
  EXPECT_NONFATAL_FAILURE((void)MetricValue("a 1", "a"), "not a valid exposition");
}

TEST(KitFiles, TempDirReadFileSplitLines) {
  std::string path;
  {
    TempDir t;
    path = t.path();
    const RunResult r = RunCommand({"/bin/sh", "-c", "printf 'a\\nb' > " + t.Sub("f")});
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_EQ(ReadFile(t.Sub("f")), "a\nb");
    EXPECT_EQ(SplitLines(ReadFile(t.Sub("f"))), (std::vector<std::string>{"a", "b"}));
  }
  EXPECT_EQ(ReadFile(path + "/f"), "");  // removed with its dir
  int n = 0;
  EXPECT_TRUE(
      PollUntil([&] { return ++n == 3; }, std::chrono::seconds(10), std::chrono::milliseconds(1)));
}

}  // namespace
}  // namespace kv::testing
