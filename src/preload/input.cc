#include "preload/input.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "limits/limits.h"

namespace kv::preload {
namespace {

// Text is parsed in pieces of about this size, on several threads. Small pieces keep the
// parser's per-input dedupe set in cache (it was the parse's main cost on whole files); the
// run's own dedupe finds repeats across pieces.
constexpr size_t kPieceBytes = size_t{2} << 20;
constexpr std::string_view kBom = "\xEF\xBB\xBF";

bool EndsWithIgnoreCase(std::string_view s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    char c = s[s.size() - suffix.size() + i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != suffix[i]) return false;
  }
  return true;
}

absl::Status ErrnoError(int err, std::string_view what, const std::string& path) {
  return absl::ErrnoToStatus(err, absl::StrCat(path, ": ", std::string(what)));
}

// Splits a text input into pieces of about kPieceBytes, each ending just after a '\n' (the
// last one at the end of the input). A piece never starts with a BOM: ParseKeys skips a BOM
// only at the start of its input, so a later line starting with one would otherwise lose it.
std::vector<std::string_view> SplitText(std::string_view in) {
  std::vector<std::string_view> pieces;
  size_t begin = 0;
  while (begin < in.size() || pieces.empty()) {
    size_t end = begin + kPieceBytes;
    if (end >= in.size()) {
      pieces.push_back(in.substr(begin));
      break;
    }
    for (;;) {
      const size_t nl = in.find('\n', end);
      end = nl == std::string_view::npos ? in.size() : nl + 1;
      if (end >= in.size() || in.substr(end, kBom.size()) != kBom) break;
    }
    pieces.push_back(in.substr(begin, end - begin));
    begin = end;
  }
  return pieces;
}

}  // namespace

Inputs::~Inputs() {
  for (const Mapping& m : mappings_) {
    if (m.addr != nullptr) ::munmap(m.addr, m.size);
  }
}

uint64_t Inputs::total_bytes() const {
  uint64_t n = 0;
  for (const InputFile& f : files_) n += f.bytes;
  return n;
}

absl::StatusOr<KeyFormat> FormatForPath(std::string_view path) {
  if (EndsWithIgnoreCase(path, ".txt")) return KeyFormat::kText;
  if (EndsWithIgnoreCase(path, ".csv")) return KeyFormat::kCsv;
  return absl::InvalidArgumentError(
      absl::StrCat(std::string(path),
                   ": unknown file type (name it .txt or .csv, or pass "
                   "--format txt|csv)"));
}

absl::StatusOr<std::unique_ptr<Inputs>> ReadInputs(const std::vector<std::string>& paths,
                                                   const InputOptions& opts, Progress* progress) {
  if (paths.empty()) return absl::InvalidArgumentError("no input files");
  std::unique_ptr<Inputs> in(new Inputs());
  // Map everything first: a missing or misnamed last file fails before any parsing.
  std::vector<std::string_view> texts;
  uint64_t total_bytes = 0;
  for (const std::string& path : paths) {
    InputFile f;
    f.path = path;
    if (opts.format.has_value()) {
      f.format = *opts.format;
    } else {
      auto format = FormatForPath(path);
      if (!format.ok()) return format.status();
      f.format = *format;
    }
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, "cannot open", path);
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return ErrnoError(err, "cannot stat", path);
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a regular file"));
    }
    Inputs::Mapping m;
    m.size = static_cast<size_t>(st.st_size);
    if (m.size > 0) {
      m.addr = ::mmap(nullptr, m.size, PROT_READ, MAP_PRIVATE, fd, 0);
      if (m.addr == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        return ErrnoError(err, "cannot map", path);
      }
      ::madvise(m.addr, m.size, MADV_SEQUENTIAL);
    }
    ::close(fd);  // the mapping keeps the file
    in->mappings_.push_back(m);
    texts.emplace_back(static_cast<const char*>(m.addr), m.size);
    f.bytes = m.size;
    total_bytes += m.size;
    in->files_.push_back(std::move(f));
  }
  if (progress != nullptr) progress->Phase("reading", total_bytes, ProgressUnit::kBytes);

  for (size_t fi = 0; fi < in->files_.size(); ++fi) {
    InputFile& f = in->files_[fi];
    ParseOptions po;
    po.format = f.format;
    po.csv_column = opts.csv_column;
    // CSV cannot be cut at an arbitrary newline (a quoted field may span lines).
    const std::vector<std::string_view> pieces = f.format == KeyFormat::kText
                                                     ? SplitText(texts[fi])
                                                     : std::vector<std::string_view>{texts[fi]};
    std::vector<uint32_t> first_line(pieces.size(), 1);
    uint64_t line = 1;
    for (size_t p = 0; p < pieces.size(); ++p) {
      first_line[p] = static_cast<uint32_t>(std::min<uint64_t>(line, UINT32_MAX));
      line += static_cast<uint64_t>(std::count(pieces[p].begin(), pieces[p].end(), '\n'));
    }
    std::vector<absl::StatusOr<ParsedKeys>> parsed(pieces.size(), ParsedKeys{});
    std::atomic<size_t> next{0};
    auto parse = [&] {
      for (size_t p; (p = next.fetch_add(1)) < pieces.size();) {
        ParseOptions o = po;
        o.first_line = first_line[p];
        parsed[p] = ParseKeys(pieces[p], o);
        if (progress != nullptr) progress->Add(pieces[p].size());
      }
    };
    std::vector<std::thread> threads;
    const size_t n_threads = std::min<size_t>(pieces.size(), std::max(1, opts.threads));
    for (size_t t = 1; t < n_threads; ++t) threads.emplace_back(parse);
    parse();
    for (std::thread& t : threads) t.join();

    size_t file_keys = 0;
    for (auto& r : parsed) file_keys += r.ok() ? r->keys.size() : 0;
    if (in->keys_.size() + file_keys <= limits::kPreloadKeysMax) {
      in->keys_.reserve(in->keys_.size() + file_keys);
    }
    for (auto& r : parsed) {
      if (!r.ok()) {
        return absl::Status(r.status().code(),
                            absl::StrCat(f.path, ": ", std::string(r.status().message())));
      }
      if (in->keys_.size() + r->keys.size() > limits::kPreloadKeysMax) {
        return absl::ResourceExhaustedError(
            absl::StrCat("more than ", limits::kPreloadKeysMax,
                         " keys in one run; split the input over several runs"));
      }
      for (const ParsedKey& k : r->keys) {
        in->keys_.push_back(InputKey{static_cast<uint32_t>(fi), k.line, k.text});
      }
      f.rejected.insert(f.rejected.end(), r->rejected.begin(), r->rejected.end());
      // Views into `owned` stay valid when the deque is moved (key_import.h).
      if (!r->owned.empty()) in->owned_.push_back(std::move(r->owned));
    }
  }
  if (progress != nullptr) progress->Finish();
  return in;
}

}  // namespace kv::preload
