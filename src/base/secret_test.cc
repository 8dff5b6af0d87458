#include "base/secret.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace kv {
namespace {

TEST(SecretEquals, SameBytesOnly) {
  const std::string token(40, 'a');
  EXPECT_TRUE(SecretEquals(token, token));
  EXPECT_TRUE(SecretEquals(token, std::string(40, 'a')));
  EXPECT_TRUE(SecretEquals("", ""));
  // The last byte, the first byte, a prefix, an extension, the empty string.
  EXPECT_FALSE(SecretEquals(token, std::string(39, 'a') + "b"));
  EXPECT_FALSE(SecretEquals(token, "b" + std::string(39, 'a')));
  EXPECT_FALSE(SecretEquals(token, std::string(39, 'a')));
  EXPECT_FALSE(SecretEquals(token, token + "a"));
  EXPECT_FALSE(SecretEquals(token, ""));
  EXPECT_FALSE(SecretEquals("", token));
  // Bytes after a NUL count (string_view, not C strings).
  EXPECT_FALSE(SecretEquals(std::string("ab\0c", 4), std::string("ab\0d", 4)));
  EXPECT_TRUE(SecretEquals(std::string("ab\0c", 4), std::string("ab\0c", 4)));
  EXPECT_FALSE(SecretEquals(std::string("ab\0c", 4), "ab"));
}

TEST(TakeSecretFromEnv, ReturnsTheValueAndRemovesIt) {
  ASSERT_EQ(::setenv("KV_SECRET_TEST_VAR", "s3cret-value", 1), 0);
  EXPECT_EQ(TakeSecretFromEnv("KV_SECRET_TEST_VAR"), std::optional<std::string>("s3cret-value"));
  EXPECT_EQ(std::getenv("KV_SECRET_TEST_VAR"), nullptr);
  // Gone: a second take finds nothing.
  EXPECT_EQ(TakeSecretFromEnv("KV_SECRET_TEST_VAR"), std::nullopt);
  // Set but empty is not unset.
  ASSERT_EQ(::setenv("KV_SECRET_TEST_VAR", "", 1), 0);
  EXPECT_EQ(TakeSecretFromEnv("KV_SECRET_TEST_VAR"), std::optional<std::string>(""));
  EXPECT_EQ(std::getenv("KV_SECRET_TEST_VAR"), nullptr);
}

}  // namespace
}  // namespace kv
