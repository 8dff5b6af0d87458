// The demo catalogue (data/demo/catalogue.tsv): products and their key files, loaded into
// a shop that has no products yet. Used by `keyvend demo-seed` (README's first command).
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "shop/shop.h"

namespace kv {

// Loads the catalogue at `path` (TSV: name, price_cents, currency, stock_mode,
// allow_backorder, max_per_order, keys_file relative to the catalogue, description; '#'
// lines are comments). Does nothing and returns 0 when the shop already has products.
// Returns the number of products created; InvalidArgument names the bad line.
absl::StatusOr<int> LoadDemoCatalogue(Shop* shop, const std::string& path);

}  // namespace kv
