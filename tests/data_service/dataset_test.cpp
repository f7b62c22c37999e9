// Datasets: IDX (gzipped and raw), image folder, CSV manifest, splits and
// the errors for missing or malformed input.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <fstream>

#include "common/error.h"
#include "common/files.h"
#include "data_service/dataset.h"
#include "tests/tools/image_gen.h"
#include "tests/tools/temp_dir.h"

namespace convoy {
namespace {

std::string temp_dir() {
  return testing::make_temp_dir("convoy-test");
}

void put_be32(std::string* s, uint32_t v) {
  for (int i = 3; i >= 0; --i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

void write_gz(const std::string& path, const std::string& data) {
  gzFile f = gzopen(path.c_str(), "wb");
  gzwrite(f, data.data(), static_cast<unsigned>(data.size()));
  gzclose(f);
}

// A 3x2 IDX pair with n images; pixel (0,0) of image i is i, label i % 3.
void write_idx(const std::string& dir, const std::string& stem, int n, bool gz) {
  std::string img, lbl;
  put_be32(&img, 0x803);
  put_be32(&img, n);
  put_be32(&img, 3);
  put_be32(&img, 2);
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < 6; ++p) img.push_back(static_cast<char>(p == 0 ? i : 7));
  put_be32(&lbl, 0x801);
  put_be32(&lbl, n);
  for (int i = 0; i < n; ++i) lbl.push_back(static_cast<char>(i % 3));
  if (gz) {
    write_gz(dir + "/" + stem + "-images-idx3-ubyte.gz", img);
    write_gz(dir + "/" + stem + "-labels-idx1-ubyte.gz", lbl);
  } else {
    write_file_atomic(dir + "/" + stem + "-images-idx3-ubyte", img);
    write_file_atomic(dir + "/" + stem + "-labels-idx1-ubyte", lbl);
  }
}

TEST(Dataset, IdxWithHeldOutValidation) {
  std::string dir = temp_dir();
  write_idx(dir, "train", 20, true);
  write_idx(dir, "t10k", 6, false);
  DataSpec spec;
  spec.kind = DataSpec::Kind::kIdx;
  spec.idx_dir = dir;
  spec.val_fraction = 0.25f;
  auto splits = open_datasets(spec);
  ASSERT_EQ(splits.splits.size(), 3u);
  EXPECT_EQ(splits.find("train")->size(), 15u);
  EXPECT_EQ(splits.find("val")->size(), 5u);
  EXPECT_EQ(splits.find("test")->size(), 6u);
  EXPECT_EQ(splits.class_names.size(), 3u);
  auto test = splits.find("test");
  EXPECT_EQ(test->label(4), 1);
  cv::Mat m = test->load(4, 1);
  EXPECT_EQ(m.rows, 3);
  EXPECT_EQ(m.cols, 2);
  EXPECT_EQ(m.at<uint8_t>(0, 0), 4);
  EXPECT_EQ(test->load(4, 3).channels(), 3);
  // The split is a pure function of the seed, and train/val are disjoint.
  auto [tr, va] = split_indices(20, 0.25, 0);
  auto [tr2, va2] = split_indices(20, 0.25, 0);
  EXPECT_EQ(va, va2);
  for (size_t v : va) EXPECT_EQ(std::count(tr.begin(), tr.end(), v), 0);
}

TEST(Dataset, ImageFolderAndCsvAgree) {
  std::string dir = temp_dir();
  testing::ImageFolderSpec gen;
  gen.classes = 3;
  gen.per_class = 4;
  testing::make_image_folder(dir + "/imgs", gen);
  DataSpec spec;
  spec.kind = DataSpec::Kind::kImageFolder;
  spec.train_path = dir + "/imgs";
  spec.val_fraction = 0;
  auto folder = open_datasets(spec);
  ASSERT_EQ(folder.class_names, (std::vector<std::string>{"class_0", "class_1", "class_2"}));
  auto train = folder.find("train");
  ASSERT_EQ(train->size(), 12u);
  EXPECT_EQ(train->label(11), 2);
  cv::Mat img = train->load(0, 3);
  EXPECT_EQ(img.channels(), 3);
  EXPECT_GE(img.rows, 32);

  std::ofstream csv(dir + "/train.csv");
  csv << "path,label\n";
  for (size_t i = 0; i < train->size(); ++i)
    csv << train->describe(i).substr(dir.size() + 1) << "," << folder.class_names[train->label(i)] << "\n";
  csv.close();
  DataSpec cspec;
  cspec.kind = DataSpec::Kind::kCsv;
  cspec.train_path = dir + "/train.csv";
  cspec.val_fraction = 0;
  auto manifest = open_datasets(cspec);
  EXPECT_EQ(manifest.class_names, folder.class_names);
  auto ctrain = manifest.find("train");
  ASSERT_EQ(ctrain->size(), train->size());
  for (size_t i = 0; i < train->size(); ++i) {
    EXPECT_EQ(ctrain->label(i), train->label(i));
    EXPECT_EQ(ctrain->describe(i), train->describe(i));
  }
}

TEST(Dataset, ErrorsNameThePath) {
  DataSpec spec;
  spec.kind = DataSpec::Kind::kImageFolder;
  spec.train_path = "/nonexistent/convoy/folder";
  try {
    open_datasets(spec);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/convoy/folder"), std::string::npos);
  }
  std::string dir = temp_dir();
  write_file_atomic(dir + "/bad.csv", "a.jpg,cat\nthis line has no comma\n");
  DataSpec c;
  c.kind = DataSpec::Kind::kCsv;
  c.train_path = dir + "/bad.csv";
  try {
    open_datasets(c);
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.csv:2"), std::string::npos) << e.what();
  }
}

TEST(Dataset, CorruptFileIsADecodeError) {
  std::string dir = temp_dir();
  testing::ImageFolderSpec gen;
  gen.classes = 1;
  gen.per_class = 1;
  gen.corrupt = 1;
  testing::make_image_folder(dir, gen);
  DataSpec spec;
  spec.kind = DataSpec::Kind::kImageFolder;
  spec.train_path = dir;
  spec.val_fraction = 0;
  auto ds = open_datasets(spec).find("train");
  ASSERT_EQ(ds->size(), 2u);  // corrupt_0.jpg sorts first
  EXPECT_THROW(ds->load(0, 3), DecodeError);
  EXPECT_NO_THROW(ds->load(1, 3));
}

}  // namespace
}  // namespace convoy
