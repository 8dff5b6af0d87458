#include "storage/data_dir.h"

#include <sys/stat.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/hardening.h"
#include "base/log.h"
#include "storage/master_key.h"

namespace kv::storage {
namespace {

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

// An existing data dir that group or others may read (every shop made before the umask 077
// of base/hardening.h: dir 0755, files 0644) is made private rather than refused: the fix
// only removes access, loses nothing, and refusing would stop every upgraded shop at its
// first start. A mode that cannot be changed (another owner) is refused. Only a dir that is
// the shop's is changed: one holding its database, or an empty one (made for a new shop). A
// non-empty dir without a database (a home dir named by mistake) keeps its modes; what
// keyvend writes into it is private anyway, by the umask.
absl::Status MakeExistingDataDirPrivate(const std::string& dir, bool holds_db) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return absl::OkStatus();
  if (!holds_db && !std::filesystem::is_empty(dir, ec)) return absl::OkStatus();
  auto changed = MakeDirPrivate(dir);
  if (!changed.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("data dir: ", changed.status().message()));
  }
  if (changed->entries_changed > 0) {
    KV_LOG(kWarn,
           absl::StrFormat("data dir %s was open to group/others (mode %04o); made it private: "
                           "%u entries (the dir, subdirs, files) now allow only their owner",
                           dir, changed->dir_mode_before,
                           static_cast<unsigned>(changed->entries_changed)));
  }
  return absl::OkStatus();
}

}  // namespace

std::string StripTrailingSlashes(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string DefaultMasterKeyFile(const std::string& data_dir) {
  return StripTrailingSlashes(data_dir) + ".master-key";
}

absl::StatusOr<OpenedDataDir> OpenDataDir(const DataDirOptions& opts, Random* random) {
  if (opts.data_dir.empty()) return absl::InvalidArgumentError("data dir must be set");
  if (opts.master_key_file.empty()) {
    return absl::InvalidArgumentError("master key file must be set");
  }
  absl::Status outside = CheckKeyFileOutsideDir(opts.master_key_file, opts.data_dir);
  if (!outside.ok()) return outside;

  // RocksDB writes CURRENT when it creates a database; its absence means "new".
  const bool db_exists = Exists(opts.data_dir + "/CURRENT");
  const bool key_exists = Exists(opts.master_key_file);
  OpenedDataDir out;
  MasterKey master;
  if (db_exists) {
    if (!key_exists) {
      return absl::FailedPreconditionError(absl::StrCat(
          "data dir ", opts.data_dir, " holds a shop but the master key file ",
          opts.master_key_file,
          " does not exist; refusing to create a new key for an existing shop (restore the "
          "key file, or point --master-key-file at it)"));
    }
    auto loaded = LoadMasterKeyFile(opts.master_key_file);
    if (!loaded.ok()) return loaded.status();
    master = *loaded;
  } else {
    if (!opts.create_if_missing) {
      return absl::NotFoundError(absl::StrCat("no keyvend database in ", opts.data_dir));
    }
    if (key_exists) {
      auto loaded = LoadMasterKeyFile(opts.master_key_file);
      if (!loaded.ok()) return loaded.status();
      master = *loaded;
    } else {
      auto created = CreateMasterKeyFile(opts.master_key_file, random);
      if (!created.ok()) return created.status();
      master = *created;
    }
    out.created = true;
  }
  out.cipher = std::make_unique<KeyCipher>(KeyCipher::Derive(master));
  absl::Status private_dir = MakeExistingDataDirPrivate(opts.data_dir, db_exists);
  if (!private_dir.ok()) return private_dir;
  DbOptions dbo;
  dbo.create_if_missing = opts.create_if_missing;
  dbo.key_check = out.cipher->KeyCheckValue();
  dbo.block_cache_bytes = opts.block_cache_bytes;
  dbo.write_thread_adaptive_yield = opts.write_thread_adaptive_yield;
  dbo.write_fault = opts.write_fault;
  dbo.min_free_bytes = opts.min_free_bytes;
  dbo.env = opts.env;
  auto db = Db::Open(opts.data_dir, dbo);
  if (!db.ok()) return db.status();
  out.db = std::move(*db);
  return out;
}

absl::StatusOr<OpenedDataDir> OpenExistingDataDir(const std::string& data_dir,
                                                  const std::string& master_key_file,
                                                  size_t block_cache_bytes) {
  DataDirOptions o;
  o.data_dir = data_dir;
  o.master_key_file = master_key_file;
  o.create_if_missing = false;
  o.block_cache_bytes = block_cache_bytes;
  // No key is ever generated without create_if_missing; the source is only a formality.
  return OpenDataDir(o, SecureRandom::Get());
}

}  // namespace kv::storage
