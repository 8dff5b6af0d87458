#include "shop/demo_catalogue.h"

#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kv {

absl::StatusOr<int> LoadDemoCatalogue(Shop* shop, const std::string& path) {
  if (!shop->ListProducts(false).empty()) return 0;
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  const std::string dir = path.substr(0, path.find_last_of('/') + 1);
  std::string line;
  int line_no = 0, created = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> f = absl::StrSplit(line, '\t');
    const std::string where = absl::StrCat(path, ":", line_no);
    if (f.size() != 8)
      return absl::InvalidArgumentError(absl::StrCat(where, ": expected 8 fields"));
    ProductSpec spec;
    spec.name = f[0];
    spec.currency = f[2];
    spec.description = f[7];
    int64_t mpo = 0;
    if (!absl::SimpleAtoi(f[1], &spec.price_cents) || !ParseStockMode(f[3], &spec.stock_mode) ||
        (f[4] != "true" && f[4] != "false") || !absl::SimpleAtoi(f[5], &mpo)) {
      return absl::InvalidArgumentError(absl::StrCat(where, ": malformed field"));
    }
    spec.allow_backorder = f[4] == "true";
    spec.max_per_order = static_cast<uint32_t>(mpo);
    auto p = shop->CreateProduct(spec);
    if (!p.ok()) {
      return p.failed() ? p.status()
                        : absl::InvalidArgumentError(absl::StrCat(where, ": ", p.message()));
    }
    std::ifstream keys(dir + f[6], std::ios::binary);
    if (!keys) return absl::NotFoundError(absl::StrCat(where, ": cannot read ", f[6]));
    std::stringstream ss;
    ss << keys.rdbuf();
    auto imp = shop->ImportKeys(p->product.id, ss.str(), ParseOptions{});
    if (!imp.ok()) {
      return imp.failed() ? imp.status()
                          : absl::InvalidArgumentError(absl::StrCat(where, ": ", imp.message()));
    }
    ++created;
  }
  return created;
}

}  // namespace kv
