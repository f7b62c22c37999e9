// The metrics.jsonl schema: lines off it are refused by the writer, and
// readers cannot ask for a field it does not declare.
#include "common/metrics_schema.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "common/error.h"
#include "common/metrics.h"

namespace convoy {
namespace {

using nlohmann::json;

JsonLine restart(int attempt) { return JsonLine().add("event", metrics::kRestart).add("attempt", attempt).add("reason", "x"); }

TEST(MetricsSchema, AcceptsWhatItDeclares) {
  EXPECT_EQ(metrics::check_text(restart(2).str()), "");
  JsonLine shard;
  shard.add("shard", 0).add("images_per_sec", int64_t{900}).add("queued", int64_t{3});
  JsonLine breakdown;
  for (const char* p : {"data_wait", "forward", "backward", "exposed_comm", "optimizer"}) breakdown.add(p, 1.5);
  JsonLine train;
  train.add("event", metrics::kTrain).add("epoch", 1).add("step", int64_t{10}).add("loss", 0.5).add("lr", 0.1);
  train.add("images_per_sec", 100.0).add("breakdown_ms", breakdown).add("allreduce_total_ms", 2.0);
  train.add("data_shards", std::vector<JsonLine>{shard});
  EXPECT_EQ(metrics::check_text(train.str()), "");
  // NaN is written as null, which a number field accepts.
  EXPECT_EQ(metrics::check_text(JsonLine()
                                    .add("event", metrics::kEarlyStop)
                                    .add("epoch", 3)
                                    .add("metric", "loss")
                                    .add("best_value", std::nan(""))
                                    .add("patience", 2)
                                    .str()),
            "");
}

TEST(MetricsSchema, NamesWhatIsWrong) {
  EXPECT_EQ(metrics::check_text(R"({"event":"restart","attempt":1})"), "restart: missing field 'reason'");
  EXPECT_EQ(metrics::check_text(R"({"event":"restart","attempt":1,"reason":"x","why":"y"})"),
            "restart: undeclared field 'why'");
  EXPECT_EQ(metrics::check_text(R"({"event":"restart","attempt":1.5,"reason":"x"})"),
            "restart: field 'attempt' is not of type integer: 1.5");
  EXPECT_EQ(metrics::check_text(R"({"event":"finish"})"), "unknown event 'finish'");
  EXPECT_EQ(metrics::check_text(R"({"attempt":1})"), "no \"event\" string");
  EXPECT_EQ(metrics::check_text(R"({"event":"train","epoch":1,"step":1,"loss":1,"lr":1,"images_per_sec":1,)"
                                R"("breakdown_ms":{"forward":1},"allreduce_total_ms":0,"data_shards":[]})"),
            "train.breakdown_ms: missing field 'data_wait'");
  EXPECT_NE(metrics::check_text("{\"event\":"), "");
}

TEST(MetricsSchema, TheWriterRefusesALineOffIt) {
  char path[] = "/tmp/convoy-metrics-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    MetricsLog log(path);
    log.write(restart(1));
    EXPECT_THROW(log.write(JsonLine().add("event", metrics::kRestart).add("attempt", 2)), Error);
  }
  std::ifstream in(path);
  std::string first, second;
  std::getline(in, first);
  EXPECT_EQ(metrics::check_text(first), "");
  EXPECT_FALSE(std::getline(in, second)) << "the refused line was written: " << second;
  std::remove(path);
}

TEST(MetricsSchema, ReadersAskOnlyForDeclaredFields) {
  const json end = json::parse(R"({"event":"end","seconds":12.5,"best_split":"val"})");
  EXPECT_DOUBLE_EQ(metrics::number(end, "seconds"), 12.5);
  EXPECT_TRUE(std::isnan(metrics::number(end, "best_value")));  // declared, absent here
  EXPECT_EQ(metrics::text(end, "best_split"), "val");
  EXPECT_THROW(metrics::number(end, "secs"), std::logic_error);
  EXPECT_THROW(metrics::text(json::parse(R"({"event":"nope"})"), "x"), std::logic_error);
  EXPECT_TRUE(metrics::is(end, metrics::kEnd));
  EXPECT_FALSE(metrics::is(end, metrics::kStart));
}

TEST(MetricsSchema, PrintsAsJsonWithEveryEvent) {
  const json s = json::parse(metrics::schema_json());
  ASSERT_TRUE(s.contains("metrics.jsonl"));
  std::vector<std::string> names;
  for (const auto& e : s["metrics.jsonl"]) names.push_back(e["event"].get<std::string>());
  EXPECT_EQ(names, (std::vector<std::string>{"start", "resume", "train", "eval", "data_errors", "data_service_restart",
                                             "data_service_crash", "early_stop", "end", "restart"}));
}

}  // namespace
}  // namespace convoy
