// TEMPORARY (issue 13, branch i13-core): the outbound client until the curl client merges.
// Every request fails Unavailable. The lead deletes this file at merge.
#include "net/http_client.h"

namespace kv::net {
namespace {

class StubHttpClient final : public HttpClient {
 public:
  absl::StatusOr<HttpResponse> Do(const HttpRequest&, const HttpLimits&) override {
    return absl::UnavailableError("outbound HTTP is not built into this keyvend");
  }
};

}  // namespace

std::unique_ptr<HttpClient> MakeCurlHttpClient(const CurlClientOptions&) {
  return std::make_unique<StubHttpClient>();
}

}  // namespace kv::net
