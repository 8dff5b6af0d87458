#include "storage/master_key.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "absl/status/status.h"
#include "base/coding.h"
#include "base/random.h"
#include "gtest/gtest.h"

namespace kv {
namespace {

namespace fs = std::filesystem;

constexpr char kHex[] = "00112233445566778899aabbccddeeff0123456789abcdefFEDCBA9876543210";

class MasterKeyTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kvtest.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  std::string Path(const std::string& name) const { return dir_ + "/" + name; }

  // Writes `content` to `name` with `mode` (set explicitly, ignoring the umask).
  std::string WriteFile(const std::string& name, const std::string& content, mode_t mode) {
    const std::string p = Path(name);
    std::ofstream(p, std::ios::binary) << content;
    EXPECT_EQ(chmod(p.c_str(), mode), 0);
    return p;
  }

  static std::string ReadFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  static std::string KeyHex(const MasterKey& k) {
    return HexEncode(std::string_view(reinterpret_cast<const char*>(k.bytes.data()), 32));
  }

  std::string dir_;
};

// The message must name the problem but never the key material, in either case.
void ExpectNoKeyInMessage(const absl::Status& s, const std::string& hex) {
  std::string lower = hex, upper = hex;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::string msg(s.message());
  EXPECT_EQ(msg.find(hex.substr(0, 16)), std::string::npos) << msg;
  EXPECT_EQ(msg.find(lower.substr(0, 16)), std::string::npos) << msg;
  EXPECT_EQ(msg.find(upper.substr(0, 16)), std::string::npos) << msg;
}

TEST_F(MasterKeyTest, CreateThenLoadRoundTrip) {
  const std::string p = Path("master.key");
  SeededRandom rnd(42);
  const absl::StatusOr<MasterKey> created = CreateMasterKeyFile(p, &rnd);
  ASSERT_TRUE(created.ok()) << created.status();

  // The key is the Random's output.
  uint8_t expected[32];
  SeededRandom(42).Fill(expected, sizeof(expected));
  EXPECT_EQ(0, std::memcmp(created->bytes.data(), expected, 32));

  const absl::StatusOr<MasterKey> loaded = LoadMasterKeyFile(p);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->bytes, created->bytes);

  EXPECT_EQ(ReadFile(p), KeyHex(*created) + "\n");
  struct stat st;
  ASSERT_EQ(stat(p.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0600u);
}

TEST_F(MasterKeyTest, CreateSetsMode0600EvenWithRestrictiveUmask) {
  const mode_t old = umask(0277);
  const absl::StatusOr<MasterKey> created =
      CreateMasterKeyFile(Path("master.key"), SecureRandom::Get());
  umask(old);
  ASSERT_TRUE(created.ok()) << created.status();
  struct stat st;
  ASSERT_EQ(stat(Path("master.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  EXPECT_TRUE(LoadMasterKeyFile(Path("master.key")).ok());
}

TEST_F(MasterKeyTest, TwoCreatedKeysDiffer) {
  const absl::StatusOr<MasterKey> a = CreateMasterKeyFile(Path("a.key"), SecureRandom::Get());
  const absl::StatusOr<MasterKey> b = CreateMasterKeyFile(Path("b.key"), SecureRandom::Get());
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE(a->bytes, b->bytes);
}

TEST_F(MasterKeyTest, CreateOverExistingFileFailsAndLeavesItIntact) {
  const std::string p = WriteFile("master.key", std::string(kHex) + "\n", 0600);
  SeededRandom rnd(1);
  const absl::StatusOr<MasterKey> created = CreateMasterKeyFile(p, &rnd);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(created.status().message().find(p), std::string::npos);
  EXPECT_EQ(ReadFile(p), std::string(kHex) + "\n");
  const absl::StatusOr<MasterKey> loaded = LoadMasterKeyFile(p);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(KeyHex(*loaded), "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210");
}

TEST_F(MasterKeyTest, CreateOverSymlinkFails) {
  const std::string target = Path("elsewhere.key");
  const std::string link = Path("master.key");
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);  // dangling
  SeededRandom rnd(1);
  const absl::StatusOr<MasterKey> created = CreateMasterKeyFile(link, &rnd);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(MasterKeyTest, CreateInMissingDirectoryFails) {
  SeededRandom rnd(1);
  const absl::StatusOr<MasterKey> created = CreateMasterKeyFile(Path("no/such/master.key"), &rnd);
  ASSERT_FALSE(created.ok());
  EXPECT_EQ(created.status().code(), absl::StatusCode::kNotFound);
}

TEST_F(MasterKeyTest, LoadAcceptsUppercaseAndNoNewline) {
  const std::string p = WriteFile("master.key", kHex, 0600);
  const absl::StatusOr<MasterKey> loaded = LoadMasterKeyFile(p);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(KeyHex(*loaded), "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210");
  EXPECT_EQ(loaded->bytes[0], 0x00);
  EXPECT_EQ(loaded->bytes[1], 0x11);
  EXPECT_EQ(loaded->bytes[31], 0x10);
}

TEST_F(MasterKeyTest, LoadMissingFileIsNotFound) {
  const std::string p = Path("missing.key");
  const absl::StatusOr<MasterKey> loaded = LoadMasterKeyFile(p);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(loaded.status().message().find(p), std::string::npos);
}

TEST_F(MasterKeyTest, LoadMalformedIsInvalidArgument) {
  const std::string h(kHex);
  std::string non_hex = h;
  non_hex[10] = 'g';
  const std::string cases[] = {
      h.substr(0, 63),         // one short
      h.substr(0, 63) + "\n",  // one short, with newline
      non_hex,                 // 64 chars, one non-hex
      h + "0",                 // one long
      h + "\n\n",              // two newlines
      h + "\r\n",              // CRLF
      h + " ",                 // trailing space
      " " + h.substr(0, 63),   // leading space, 64 chars
      "",                      // empty
      h + h,                   // far too long
  };
  for (size_t i = 0; i < std::size(cases); ++i) {
    SCOPED_TRACE(i);
    const std::string p = WriteFile("bad" + std::to_string(i) + ".key", cases[i], 0600);
    const absl::StatusOr<MasterKey> loaded = LoadMasterKeyFile(p);
    ASSERT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(loaded.status().message(),
              "malformed master key file " + p + ": expected 64 hex characters");
    ExpectNoKeyInMessage(loaded.status(), h);
  }
}

TEST_F(MasterKeyTest, LoadGroupOrOtherAccessibleIsFailedPrecondition) {
  for (const mode_t mode : {0640, 0604, 0660, 0644, 0620, 0610, 0601}) {
    SCOPED_TRACE(mode);
    const std::string p = WriteFile("master.key", std::string(kHex) + "\n", mode);
    const absl::StatusOr<MasterKey> loaded = LoadMasterKeyFile(p);
    ASSERT_FALSE(loaded.ok());
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_EQ(loaded.status().message(),
              "master key file " + p + " must not be readable by group or others (chmod 600)");
    ExpectNoKeyInMessage(loaded.status(), kHex);
  }
  // 0400 is fine: only the owner can read it.
  const std::string p = WriteFile("master.key", std::string(kHex) + "\n", 0400);
  EXPECT_TRUE(LoadMasterKeyFile(p).ok());
}

TEST_F(MasterKeyTest, LoadDirectoryIsRefused) {
  ASSERT_TRUE(fs::create_directory(Path("d")));
  ASSERT_EQ(chmod(Path("d").c_str(), 0700), 0);
  const absl::StatusOr<MasterKey> loaded = LoadMasterKeyFile(Path("d"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(MasterKeyTest, LoadUnreadableIsPermissionDenied) {
  const std::string p = WriteFile("master.key", std::string(kHex) + "\n", 0000);
  auto check = [&p]() {
    const absl::StatusOr<MasterKey> loaded = LoadMasterKeyFile(p);
    return !loaded.ok() && loaded.status().code() == absl::StatusCode::kPermissionDenied &&
           loaded.status().message().find(p) != std::string::npos;
  };
  if (geteuid() != 0) {
    EXPECT_TRUE(check());
    return;
  }
  // Root reads any file: load as the unprivileged "nobody" in a child process instead.
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(2);
    _exit(check() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST_F(MasterKeyTest, LoadThroughSymlinkToPrivateFile) {
  const std::string target = WriteFile("real.key", kHex, 0600);
  ASSERT_EQ(symlink(target.c_str(), Path("link.key").c_str()), 0);
  EXPECT_TRUE(LoadMasterKeyFile(Path("link.key")).ok());
}

TEST_F(MasterKeyTest, KeyFileOutsideDirAccepted) {
  const std::string data = Path("data");
  ASSERT_TRUE(fs::create_directory(data));
  EXPECT_TRUE(CheckKeyFileOutsideDir(Path("master.key"), data).ok());
  // A sibling whose name merely starts with the dir's name is outside.
  EXPECT_TRUE(CheckKeyFileOutsideDir(Path("data2/master.key"), data).ok());
  EXPECT_TRUE(CheckKeyFileOutsideDir(Path("data.key"), data).ok());
  // The data dir need not exist yet.
  EXPECT_TRUE(CheckKeyFileOutsideDir(Path("master.key"), Path("new-data")).ok());
  EXPECT_TRUE(CheckKeyFileOutsideDir(Path("master.key"), Path("new-data/")).ok());
}

TEST_F(MasterKeyTest, KeyFileInsideDirRefused) {
  const std::string data = Path("data");
  ASSERT_TRUE(fs::create_directory(data));
  ASSERT_TRUE(fs::create_directory(data + "/sub"));
  ASSERT_EQ(symlink(data.c_str(), Path("link").c_str()), 0);
  const std::string refused[][2] = {
      {data + "/master.key", data},
      {data + "/sub/master.key", data},
      {data + "/../data/master.key", data},
      {data + "/./master.key", data},
      {data + "//master.key", data + "/"},
      {Path("link/master.key"), data},       // via a symlink to the dir
      {data + "/master.key", Path("link")},  // data dir given as the symlink
      {Path("link/sub/master.key"), Path("link/")},
      {data, data},                                              // the dir itself
      {Path("new-data/master.key"), Path("new-data")},           // dir not created yet
      {Path("new-data/x/../master.key"), Path("./new-data/.")},  // likewise, unnormalized
  };
  for (const auto& [key, dir] : refused) {
    SCOPED_TRACE(key + " in " + dir);
    const absl::Status s = CheckKeyFileOutsideDir(key, dir);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find("master key file must be outside the data dir ("), std::string::npos)
        << s.message();
  }
}

TEST_F(MasterKeyTest, KeyFileSymlinkIntoDirRefused) {
  const std::string data = Path("data");
  ASSERT_TRUE(fs::create_directory(data));
  WriteFile("data/master.key", kHex, 0600);
  ASSERT_EQ(symlink((data + "/master.key").c_str(), Path("master.key").c_str()), 0);
  EXPECT_EQ(CheckKeyFileOutsideDir(Path("master.key"), data).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(MasterKeyTest, EmptyPathsRefused) {
  EXPECT_EQ(CheckKeyFileOutsideDir("", Path("data")).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckKeyFileOutsideDir(Path("k"), "").code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kv

namespace kv {
namespace {

// A crash while creating the key leaves no key file (or a whole one), never a partial one;
// no temporary file is left behind by a successful create.
TEST(MasterKeyCreate, LeavesOnlyTheFinalFile) {
  char tmpl[] = "/tmp/kvtest.XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  const std::string path = dir + "/master.key";
  auto k = CreateMasterKeyFile(path, SecureRandom::Get());
  ASSERT_TRUE(k.ok()) << k.status();
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    EXPECT_EQ(e.path().filename(), "master.key");
    ++entries;
  }
  EXPECT_EQ(entries, 1);
  auto again = LoadMasterKeyFile(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->bytes, k->bytes);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kv
