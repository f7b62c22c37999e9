// A process that tries to join a running job without its token (tests of
// the rendezvous's security, integration/test_security.py):
//   stranger store HOST PORT    joins the rendezvous store with a guessed token
//   stranger data SOCKET_NAME   says Hello to a data service as rank 0, likewise
// Prints what happened; exits 0 when it was refused, 1 when it got in.
#include <cstdio>
#include <cstring>
#include <string>

#include "common/control_channel.h"
#include "common/error.h"
#include "common/kv_store.h"
#include "proto/control.pb.h"

int main(int argc, char** argv) {
  using namespace convoy;
  const std::string guess = "0123456789abcdef0123456789abcdef";
  try {
    if (argc == 4 && !std::strcmp(argv[1], "store")) {
      KvClient c(argv[2], std::stoi(argv[3]), guess, std::chrono::seconds(10));
      std::printf("admitted to the store at %s\n", c.peer().c_str());
      return 1;
    }
    if (argc == 3 && !std::strcmp(argv[1], "data")) {
      auto ch = ControlChannel::connect(argv[2], std::chrono::seconds(10));
      proto::Envelope hello;
      hello.mutable_hello()->set_rank(0);
      hello.mutable_hello()->set_world_size(2);
      hello.mutable_hello()->set_job_token(guess);
      ch->send(hello);
      proto::Envelope reply;
      if (!ch->receive(&reply, std::chrono::seconds(10))) {
        std::printf("refused: the data service closed the connection\n");
        return 0;
      }
      if (reply.has_error()) {
        std::printf("%s\n", reply.error().message().c_str());
        return 0;
      }
      std::printf("admitted by the data service (got %s)\n", reply.has_ready() ? "Ready" : "a reply");
      return 1;
    }
    std::fprintf(stderr, "usage: stranger store HOST PORT | stranger data SOCKET_NAME\n");
    return 2;
  } catch (const UserError& e) {
    std::printf("%s\n", e.what());
    return 0;
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 3;
  }
}
