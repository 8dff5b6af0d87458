# CMake glue for the Debian 12 system packages keyvend builds against.
# No third-party source lives in this repository; see third_party/README.md.
find_package(PkgConfig REQUIRED)
find_package(RocksDB CONFIG REQUIRED)
find_package(absl CONFIG REQUIRED)
find_package(OpenSSL REQUIRED)
# zlib: gzip of the storefront's files, once at start (issue 12); RocksDB links it already.
find_package(ZLIB REQUIRED)
find_package(GTest CONFIG REQUIRED)
find_package(benchmark CONFIG REQUIRED)
find_package(simdjson CONFIG REQUIRED)
# Debian's cpp-httplib ships a compiled library and only a pkg-config file. Its cflags
# (OpenSSL/zlib/brotli support macros) MUST be used: they change class layouts.
pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET cpp-httplib)
# libcurl (Debian's libcurl4-openssl-dev): the outbound HTTPS client to payment gateways
# (src/net, issue 13). cpp-httplib's client has no total-transfer deadline.
pkg_check_modules(CURL REQUIRED IMPORTED_TARGET libcurl)

# The shared RocksDB keeps link times and binary sizes sane.
add_library(kv_rocksdb INTERFACE)
target_link_libraries(kv_rocksdb INTERFACE RocksDB::rocksdb-shared)
