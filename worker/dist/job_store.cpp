// The c10d::Store adapter (see job_store.h).
#include "worker/dist/job_store.h"

namespace convoy {

JobStore::JobStore(const std::string& host, int port, const std::string& token, std::chrono::milliseconds timeout,
                   bool serve, const std::string& bind_addr)
    : c10d::Store(timeout), host_(host), token_(token), port_(port) {
  if (serve) {
    server_ = std::make_unique<KvServer>(bind_addr.empty() ? host : bind_addr, port, token);
    port_ = server_->port();
  }
  client_ = std::make_unique<KvClient>(serve ? server_->address() : host, port_, token, timeout);
}

JobStore::~JobStore() {
  client_.reset();
  server_.reset();
}

void JobStore::set(const std::string& key, const std::vector<uint8_t>& value) { client_->set(key, value); }

std::vector<uint8_t> JobStore::compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                          const std::vector<uint8_t>& desired) {
  return client_->compare_set(key, expected, desired);
}

std::vector<uint8_t> JobStore::get(const std::string& key) { return client_->get(key, timeout_); }

int64_t JobStore::add(const std::string& key, int64_t value) { return client_->add(key, value); }

bool JobStore::deleteKey(const std::string& key) { return client_->remove(key); }

bool JobStore::check(const std::vector<std::string>& keys) { return client_->check(keys); }

int64_t JobStore::getNumKeys() { return client_->num_keys(); }

void JobStore::wait(const std::vector<std::string>& keys) { client_->wait(keys, timeout_); }

void JobStore::wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) {
  // c10d passes kNoTimeout (0) for "wait forever"; Convoy never waits forever.
  client_->wait(keys, timeout.count() > 0 ? timeout : timeout_);
}

c10::intrusive_ptr<c10d::Store> JobStore::clone() {
  return c10::make_intrusive<JobStore>(host_, port_, token_, timeout_);
}

}  // namespace convoy
