// Opening a keyvend data dir together with its master key (SPEC §9): the key file lives
// outside the data dir, is created only for a new, empty data dir, and must match the
// key-check value stored in the database.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/random.h"
#include "limits/limits.h"
#include "storage/db.h"
#include "storage/key_cipher.h"

namespace kv::storage {

struct DataDirOptions {
  std::string data_dir;
  std::string master_key_file;
  // Create the data dir (and the key file, if missing) when the dir holds no database.
  // Tools that must not create anything (check, backup verify) set false. Default: true.
  bool create_if_missing = true;
  size_t block_cache_bytes = limits::kBlockCacheBytesDefault;
  // DbOptions::write_thread_adaptive_yield. Default: true.
  bool write_thread_adaptive_yield = true;
  // DbOptions::write_fault (a test hook). Default: empty.
  WriteFaultFn write_fault = nullptr;
  // DbOptions::min_free_bytes (0 = no guard). Default: 0.
  uint64_t min_free_bytes = 0;
  // DbOptions::env (a test hook; not owned). Default: nullptr (RocksDB's default).
  rocksdb::Env* env = nullptr;
};

struct OpenedDataDir {
  std::unique_ptr<Db> db;
  std::unique_ptr<KeyCipher> cipher;
  bool created = false;  // true when this call created the database
};

// `path` without its trailing slashes, a lone "/" kept ("/srv/shop//" -> "/srv/shop").
std::string StripTrailingSlashes(std::string path);

// The master key file of a data dir when none is named: "<data_dir>.master-key", beside the
// dir (data_dir's trailing slashes dropped first, so "/srv/shop/" gives
// "/srv/shop.master-key" and "/" gives "/.master-key", never a file in the cwd). The one
// place this convention is written: the config, `keyvend check`/`demo-seed`,
// keyvend-preload and keyvend-backup all call it.
std::string DefaultMasterKeyFile(const std::string& data_dir);

// Opens (or creates) the data dir. Outcomes: those of Db::Open, plus
//  - InvalidArgument: the key file path lies inside the data dir;
//  - FailedPrecondition: an existing database but no key file ("refusing to create a new
//    key for an existing shop");
//  - the key file's own load errors (malformed, too permissive mode);
//  - FailedPrecondition: the data dir is open to group/others and its mode cannot be
//    changed.
// An existing data dir open to group or others (made before keyvend set umask 077) is made
// private first (base/hardening.h MakeDirPrivate: 0700 dirs, no group/other bits on files),
// with a warning in the log naming its old mode — when it holds the shop's database or is
// empty; a non-empty dir without a database is not the shop's and keeps its modes. A new
// one is created with the process's umask (077 in every keyvend binary).
// `random` generates a new master key; it is not retained.
absl::StatusOr<OpenedDataDir> OpenDataDir(const DataDirOptions& opts, Random* random);

// Opens an existing data dir and never creates anything (what check, the tools and tests
// that inspect a stopped shop do), with a small block cache. Outcomes: those of OpenDataDir.
absl::StatusOr<OpenedDataDir> OpenExistingDataDir(const std::string& data_dir,
                                                  const std::string& master_key_file,
                                                  size_t block_cache_bytes = 8 << 20);

}  // namespace kv::storage
