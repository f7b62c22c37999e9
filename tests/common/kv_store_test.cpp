// The token-checked rendezvous store: what c10d needs of a store, and that a
// process without the job's token is refused while the job goes on.
#include "common/kv_store.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "common/control_channel.h"
#include "common/error.h"
#include "common/job_token.h"
#include "common/net.h"
#include "tests/tools/temp_dir.h"

namespace convoy {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

std::vector<uint8_t> bytes(const std::string& s) { return std::vector<uint8_t>(s.begin(), s.end()); }

TEST(KvStore, KeysValuesCountersAndWaitsAcrossClients) {
  KvServer server("127.0.0.1", 0, "secret");
  KvClient a("127.0.0.1", server.port(), "secret", seconds(5));
  KvClient b("127.0.0.1", server.port(), "secret", seconds(5));
  // b blocks on a key that a sets a moment later.
  std::thread setter([&] {
    std::this_thread::sleep_for(milliseconds(200));
    a.set("addr/0", bytes("10.0.0.1:1234"));
  });
  EXPECT_EQ(b.get("addr/0", seconds(5)), bytes("10.0.0.1:1234"));
  setter.join();
  EXPECT_EQ(a.add("joined", 1), 1);
  EXPECT_EQ(b.add("joined", 1), 2);
  EXPECT_TRUE(a.check({"addr/0", "joined"}));
  EXPECT_FALSE(a.check({"addr/0", "nope"}));
  EXPECT_EQ(a.num_keys(), 2);
  // Several adds in one request (the heartbeats': bump one, read the rest).
  EXPECT_EQ(b.add_many({{"beat/0", 1}, {"joined", 0}, {"beat/1", 0}}), (std::vector<int64_t>{1, 2, 0}));
  EXPECT_EQ(a.add_many({{"beat/0", 0}, {"beat/1", 5}}), (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(a.num_keys(), 4);
  EXPECT_TRUE(a.remove("beat/0"));
  EXPECT_TRUE(a.remove("beat/1"));
  EXPECT_EQ(a.compare_set("cas", {}, bytes("x")), bytes("x"));
  EXPECT_EQ(b.compare_set("cas", bytes("y"), bytes("z")), bytes("x"));  // not swapped
  EXPECT_EQ(b.compare_set("cas", bytes("x"), bytes("z")), bytes("z"));
  EXPECT_TRUE(a.remove("cas"));
  EXPECT_FALSE(a.remove("cas"));
  EXPECT_EQ(server.refused(), 0);
}

TEST(KvStore, WaitTimesOutNamingTheMissingKey) {
  KvServer server("127.0.0.1", 0, "secret");
  KvClient a("127.0.0.1", server.port(), "secret", seconds(5));
  a.set("here", bytes("1"));
  try {
    a.wait({"here", "missing/key"}, milliseconds(300));
    FAIL() << "no timeout";
  } catch (const TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("missing/key"), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find("here,"), std::string::npos) << e.what();
  }
  a.set("after", bytes("2"));  // the connection is still usable
  EXPECT_EQ(a.get("after", seconds(1)), bytes("2"));
}

TEST(KvStore, WrongTokenIsRefusedAndTheJobGoesOn) {
  KvServer server("127.0.0.1", 0, "the-job-token");
  KvClient member("127.0.0.1", server.port(), "the-job-token", seconds(5));
  member.set("state", bytes("before"));
  try {
    KvClient stranger("127.0.0.1", server.port(), "a-guess", seconds(5));
    FAIL() << "a stranger joined";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("refused this process: wrong job token"), std::string::npos) << e.what();
  }
  EXPECT_EQ(server.refused(), 1);
  // The stranger read nothing and changed nothing; members carry on.
  EXPECT_EQ(member.get("state", seconds(1)), bytes("before"));
  KvClient late("127.0.0.1", server.port(), "the-job-token", seconds(5));
  EXPECT_EQ(late.get("state", seconds(1)), bytes("before"));
}

TEST(KvStore, SilentOrGarbageConnectionsDoNotBlockMembers) {
  KvServer server("127.0.0.1", 0, "tok");
  int port = server.port();
  // One connects and says nothing; one sends a request without a handshake.
  int silent = connect_tcp("127.0.0.1", port, std::chrono::steady_clock::now() + seconds(2));
  int garbage = connect_tcp("127.0.0.1", port, std::chrono::steady_clock::now() + seconds(2));
  std::string junk(64, 'x');
  ASSERT_EQ(::send(garbage, junk.data(), junk.size(), MSG_NOSIGNAL), 64);
  KvClient member("127.0.0.1", port, "tok", seconds(5));
  member.set("k", bytes("v"));
  EXPECT_EQ(member.get("k", seconds(1)), bytes("v"));
  for (int i = 0; i < 50 && server.refused() < 1; ++i) std::this_thread::sleep_for(milliseconds(20));
  EXPECT_EQ(server.refused(), 1);  // the garbage one; the silent one goes after 10 s
  ::close(silent);
  ::close(garbage);
}

TEST(KvStore, AClientWillNotTalkToAStoreThatCannotProveTheToken) {
  // An impostor holding the port with another token: the member refuses it
  // too (mutual proof), rather than handing it its keys.
  KvServer impostor("127.0.0.1", 0, "impostor-token");
  EXPECT_THROW(KvClient("127.0.0.1", impostor.port(), "member-token", seconds(5)), UserError);
}

TEST(KvStore, UnreachableStoreTimesOutNamingTheAddress) {
  int port = 0;
  int fd = listen_tcp("127.0.0.1", 0, &port);
  ::close(fd);  // now nobody listens there
  auto t0 = std::chrono::steady_clock::now();
  try {
    KvClient c("127.0.0.1", port, "tok", milliseconds(500));
    FAIL();
  } catch (const TimeoutError& e) {
    EXPECT_NE(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)), std::string::npos) << e.what();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - t0, seconds(5));
}

TEST(KvStore, ListensOnlyOnTheGivenAddress) {
  KvServer server("127.0.0.1", 0, "tok");
  // 127.0.0.2 is loopback too, but not the bound address.
  EXPECT_THROW(KvClient("127.0.0.2", server.port(), "tok", milliseconds(300)), TimeoutError);
}

TEST(JobToken, GeneratedTokensAreRandomAndComparedExactly) {
  std::string a = generate_job_token(), b = generate_job_token();
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
  EXPECT_TRUE(tokens_equal(a, a));
  EXPECT_FALSE(tokens_equal(a, b));
  EXPECT_FALSE(tokens_equal(a, a.substr(0, 31)));
  EXPECT_FALSE(tokens_equal("", ""));
  EXPECT_EQ(token_proof("k", "m").size(), 32u);
  EXPECT_NE(token_proof("k", "m"), token_proof("k2", "m"));
}

TEST(ControlSocket, LivesInAPrivateDirectoryWithMode0600) {
  std::string dir = testing::make_temp_dir("convoy-sockets") + "/s";
  ::setenv("CONVOY_SOCKET_DIR", dir.c_str(), 1);
  {
    ControlListener listener("convoy-test-socket");
    struct stat st;
    ASSERT_EQ(::stat(dir.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    ASSERT_EQ(::stat(control_socket_path("convoy-test-socket").c_str(), &st), 0);
    EXPECT_TRUE(S_ISSOCK(st.st_mode));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto ch = ControlChannel::connect("convoy-test-socket", seconds(2));
    EXPECT_NE(listener.accept(seconds(2)), nullptr);
  }
  struct stat st;
  EXPECT_NE(::stat(control_socket_path("convoy-test-socket").c_str(), &st), 0);  // removed on exit
  // A directory others can enter is refused.
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  EXPECT_THROW(ControlListener("convoy-test-socket"), UserError);
  ::rmdir(dir.c_str());
  ::unsetenv("CONVOY_SOCKET_DIR");
}

}  // namespace
}  // namespace convoy
