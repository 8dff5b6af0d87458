// The mail templates compiled into the binary from data/mail (embed_mail_templates.cmake).
#pragma once

#include <cstddef>

namespace kv::outbound {

struct EmbeddedMailTemplate {
  const char* name;  // the file name under data/mail, e.g. "order_delivered.en.txt"
  const unsigned char* bytes;
  size_t size;
};
extern const EmbeddedMailTemplate kEmbeddedMailTemplates[];
extern const size_t kEmbeddedMailTemplateCount;

}  // namespace kv::outbound
