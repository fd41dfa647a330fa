// Runs the C99 API exercise in c_api_test.c against the packed bundled model.
#include <cstdio>

#include "tests/test_support.h"

extern "C" int c_api_exercise(const char* model_path, char* err, size_t err_size);

namespace stk::test {
namespace {

TEST(CApi, UsableFromC) {
  const std::string path = testing::TempDir() + "c_api_test_model.stk";
  host::write_file_atomic(path, pack_file("stories260K.bin", WeightFormat::Q8));
  char err[512] = {0};
  int line = c_api_exercise(path.c_str(), err, sizeof err);
  EXPECT_EQ(line, 0) << "c_api_test.c:" << line << ": " << err;
  std::remove(path.c_str());
}

}  // namespace
}  // namespace stk::test
