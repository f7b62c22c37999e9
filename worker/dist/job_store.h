// c10d::Store over Convoy's token-checked rendezvous (common/kv_store.h):
// what Gloo, the Reducer and Distributed::share use in place of LibTorch's
// TCPStore, which admits any process that reaches its port. Rank 0 also
// hosts the server, bound only to the address it is given.
#pragma once

#include <memory>
#include <string>

#include "common/kv_store.h"
#include "worker/dist/c10d_compat.h"

namespace convoy {

class JobStore : public c10d::Store {
 public:
  // Rank 0 (serve = true) listens on bind_addr:port and connects to itself;
  // the others connect to host:port. Both prove `token`.
  JobStore(const std::string& host, int port, const std::string& token, std::chrono::milliseconds timeout,
           bool serve = false, const std::string& bind_addr = "");
  ~JobStore() override;

  void set(const std::string& key, const std::vector<uint8_t>& value) override;
  std::vector<uint8_t> compareSet(const std::string& key, const std::vector<uint8_t>& expected,
                                  const std::vector<uint8_t>& desired) override;
  std::vector<uint8_t> get(const std::string& key) override;
  int64_t add(const std::string& key, int64_t value) override;
  bool deleteKey(const std::string& key) override;
  bool check(const std::vector<std::string>& keys) override;
  int64_t getNumKeys() override;
  void wait(const std::vector<std::string>& keys) override;
  void wait(const std::vector<std::string>& keys, const std::chrono::milliseconds& timeout) override;
  // A second connection to the same store. Newer LibTorch declares this
  // pure virtual in c10d::Store (2.6 does not have it); without `override`
  // it overrides where it exists and is a plain method elsewhere.
  c10::intrusive_ptr<c10d::Store> clone();

  // The port the server bound (rank 0), else the one connected to.
  int port() const { return port_; }
  // Connections the server refused (rank 0 only; 0 elsewhere).
  int refused() const { return server_ ? server_->refused() : 0; }

 private:
  std::string host_, token_;
  int port_;
  std::unique_ptr<KvServer> server_;
  std::unique_ptr<KvClient> client_;
};

}  // namespace convoy
