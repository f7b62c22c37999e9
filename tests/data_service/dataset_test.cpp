// Datasets: IDX (gzipped and raw), image folder, CSV manifest, splits and
// the errors for missing or malformed input.
#include <gmock/gmock.h>
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

// What open_datasets throws for `spec` as a UserError; "" when it opens (so
// a HasSubstr expectation on it fails).
std::string open_error(const DataSpec& spec) {
  try {
    open_datasets(spec);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

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
  auto a = split_indices(20, 0.25, 0, 0);
  auto b = split_indices(20, 0.25, 0, 0);
  EXPECT_EQ(a.val, b.val);
  for (size_t v : a.val) EXPECT_EQ(std::count(a.train.begin(), a.train.end(), v), 0);
}

TEST(Dataset, SplitByRatiosIsSeededAndDisjoint) {
  auto s = split_indices(100, 0.2, 0.1, 83);
  EXPECT_EQ(s.train.size(), 70u);
  EXPECT_EQ(s.val.size(), 20u);
  EXPECT_EQ(s.test.size(), 10u);
  std::vector<size_t> all;
  for (auto* part : {&s.train, &s.val, &s.test}) all.insert(all.end(), part->begin(), part->end());
  std::sort(all.begin(), all.end());
  for (size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i], i);  // a partition of 0..99
  EXPECT_EQ(split_indices(100, 0.2, 0.1, 83).val, s.val);
  EXPECT_NE(split_indices(100, 0.2, 0.1, 84).val, s.val);
  // Without a test part, val is what it was before test_fraction existed.
  EXPECT_EQ(split_indices(100, 0.2, 0, 83).val.size(), 20u);
}

TEST(Dataset, OneHotCsvWithImageDirAndExtension) {
  std::string dir = temp_dir();
  testing::ImageFolderSpec gen;
  gen.classes = 3;
  gen.per_class = 2;
  gen.png_every = 0;
  testing::make_image_folder(dir + "/imgs", gen);
  // Plant Pathology's layout: image_id + one column per class; the images
  // live elsewhere and the ids carry no extension.
  write_file_atomic(dir + "/train.csv",
                    "image_id,healthy,rust,scab\n"
                    "class_0/img_0,1,0,0\nclass_1/img_0,0,1,0\n\"class_2/img_0\",0,0,1\nclass_2/img_1,0,0,1\n");
  DataSpec spec;
  spec.kind = DataSpec::Kind::kCsv;
  spec.train_path = dir + "/train.csv";
  spec.csv.path_column = "image_id";
  spec.csv.one_hot = true;
  spec.csv.image_dir = dir + "/imgs";
  spec.csv.extension = ".jpg";
  spec.val_fraction = 0.25f;
  spec.test_fraction = 0.25f;
  auto splits = open_datasets(spec);
  EXPECT_EQ(splits.class_names, (std::vector<std::string>{"healthy", "rust", "scab"}));  // column order
  ASSERT_EQ(splits.splits.size(), 3u);
  EXPECT_EQ(splits.find("train")->size() + splits.find("val")->size() + splits.find("test")->size(), 4u);
  auto all = make_file_dataset(read_csv_manifest(spec.train_path, spec.csv, &splits.class_names, false));
  EXPECT_EQ(all->describe(2), dir + "/imgs/class_2/img_0.jpg");
  EXPECT_EQ(all->label(2), 2);
  EXPECT_EQ(all->load(3, 3).channels(), 3);

  write_file_atomic(dir + "/two.csv", "image_id,healthy,rust,scab\nclass_0/img_0,1,1,0\n");
  spec.train_path = dir + "/two.csv";
  EXPECT_THAT(open_error(spec), ::testing::HasSubstr("two.csv:2: a one-hot row needs exactly one 1"));
  spec.csv.path_column = "file";
  EXPECT_THAT(open_error(spec), ::testing::HasSubstr("no column 'file'"));
}

TEST(Dataset, NamedColumnsPickPathAndLabel) {
  std::string dir = temp_dir();
  testing::ImageFolderSpec gen;
  gen.classes = 2;
  gen.per_class = 2;
  testing::make_image_folder(dir, gen);
  write_file_atomic(dir + "/m.csv", "label_name,notes,file\ndog,\"a, b\",class_0/img_0.jpg\ncat,x,class_1/img_1.png\n");
  CsvLayout layout;
  layout.path_column = "file";
  layout.label_column = "label_name";
  std::vector<std::string> classes;
  auto files = read_csv_manifest(dir + "/m.csv", layout, &classes, true);
  EXPECT_EQ(classes, (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(files.paths[0], dir + "/class_0/img_0.jpg");
  EXPECT_EQ(files.labels, (std::vector<int>{1, 0}));
}

TEST(Dataset, LabelsFromFileNames) {
  std::string dir = temp_dir();
  testing::ImageFolderSpec gen;
  gen.classes = 1;
  gen.per_class = 1;
  gen.png_every = 0;
  testing::make_image_folder(dir + "/gen", gen);
  std::string jpg = read_file(dir + "/gen/class_0/img_0.jpg");
  make_dirs(dir + "/train/more");
  for (const char* name : {"cat.1.jpg", "cat.22.jpg", "dog.3.jpg", "more/american_bulldog_10.jpg"})
    write_file_atomic(dir + "/train/" + name, jpg);
  DataSpec spec;
  spec.kind = DataSpec::Kind::kFileNames;
  spec.train_path = dir + "/train";
  spec.file_name_pattern = "^(.*?)[._-]?[0-9]+\\.[A-Za-z]+$";  // the config's default
  spec.val_fraction = 0;
  auto splits = open_datasets(spec);
  EXPECT_EQ(splits.class_names, (std::vector<std::string>{"american_bulldog", "cat", "dog"}));
  auto train = splits.find("train");
  ASSERT_EQ(train->size(), 4u);
  EXPECT_EQ(train->describe(0), dir + "/train/cat.1.jpg");
  EXPECT_EQ(train->label(0), 1);
  EXPECT_EQ(train->label(2), 2);
  EXPECT_EQ(train->label(3), 0);
  spec.file_name_pattern = "^(dog)\\.";
  EXPECT_THAT(open_error(spec), ::testing::HasSubstr("do not match data.file_names.pattern"));
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
  EXPECT_THAT(open_error(spec), ::testing::HasSubstr("/nonexistent/convoy/folder"));
  std::string dir = temp_dir();
  write_file_atomic(dir + "/bad.csv", "a.jpg,cat\nthis line has no comma\n");
  DataSpec c;
  c.kind = DataSpec::Kind::kCsv;
  c.train_path = dir + "/bad.csv";
  EXPECT_THAT(open_error(c), ::testing::HasSubstr("bad.csv:2"));
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
