// Helpers shared by the end-to-end tests: data paths, packing the bundled
// stories260K model in memory, and aligned model buffers.
#pragma once
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "c_api/stackrt.h"
#include "runtime/format.h"
#include "tools/llama2c_import.h"
#include "tools/pack.h"
#include "tools/stk_writer.h"

namespace stk::test {

// Emulation sizes. Cross builds run the tests under qemu-user, where the
// forward pass is 40-80x slower than on the host (stories260K f32 scores about
// 14000 tokens/s on the 2-core host, 170-220 under qemu-aarch64 and qemu-arm),
// so a quality test that calibrates on or scores many stories names two
// sizes: sized(host, emulated) is `host` in a host build and `emulated` when
// the tests are built with STK_TEST_EMULATION_SIZES (tests/CMakeLists.txt: the
// default in cross builds; -DSTK_TEST_EMULATION_SIZES=ON runs them on the
// host). Host sizes and host assertions never depend on it; an assertion that
// needs another tolerance on the smaller sample says so where it is made.
#if defined(STK_TEST_EMULATION_SIZES)
inline constexpr bool kEmulationSizes = true;
#else
inline constexpr bool kEmulationSizes = false;
#endif
constexpr size_t sized(size_t host, size_t emulated) { return kEmulationSizes ? emulated : host; }

inline std::string data_path(const std::string& name) { return std::string(STK_TEST_DATA_DIR) + "/" + name; }

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A .stk image in 64-byte aligned memory, as a flash-resident model would be.
struct ModelImage {
  std::unique_ptr<uint8_t, void (*)(void*)> bytes{nullptr, std::free};
  size_t size = 0;
};

inline ModelImage to_image(const std::vector<uint8_t>& file) {
  ModelImage img;
  void* p = std::aligned_alloc(64, (file.size() + 63) / 64 * 64);
  std::memcpy(p, file.data(), file.size());
  img.bytes.reset(static_cast<uint8_t*>(p));
  img.size = file.size();
  return img;
}

inline std::vector<uint8_t> pack_file(const std::string& checkpoint, WeightFormat format) {
  host::HostModel hm = host::import_llama2c(data_path(checkpoint));
  auto tok = host::tokenizer_section_from_llama2c(host::read_file(data_path("tok512.bin")), hm.config.vocab_size,
                                                  "tok512.bin");
  return host::serialize_stk(host::pack_uniform(hm, tok, format));
}

// A packed model shared by the processes of one test binary: ctest runs each
// test in its own process, and packs with calibration take seconds on the
// host and minutes under qemu. The file is keyed by the test binary's size
// and modification time, so a rebuild (new packer code) never reads a stale
// pack; it is written to a temporary name and renamed, so parallel tests
// see either nothing or a whole file. While one process builds a pack, the
// others that want it wait on a lock file instead of building it too.
inline std::vector<uint8_t> cached_pack(const std::string& key, const std::function<std::vector<uint8_t>()>& build) {
  struct stat exe {};
  if (stat("/proc/self/exe", &exe) != 0) return build();
  const std::string dir = STK_TEST_CACHE_DIR;
  mkdir(dir.c_str(), 0755);
  const std::string path = dir + "/" + key + "-" + std::to_string((long long)exe.st_size) + "-" +
                           std::to_string((long long)exe.st_mtim.tv_sec) + "." +
                           std::to_string((long long)exe.st_mtim.tv_nsec) + ".stk";
  const int lock = open((path + ".lock").c_str(), O_RDWR | O_CREAT, 0644);
  if (lock >= 0) flock(lock, LOCK_EX);  // released by close, also when the process dies
  struct Unlock {
    int fd;
    ~Unlock() {
      if (fd >= 0) close(fd);
    }
  } unlock{lock};
  {
    std::ifstream in(path, std::ios::binary);
    if (in) return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::vector<uint8_t> bytes = build();
  const std::string tmp = path + "." + std::to_string((long long)getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
  }
  std::rename(tmp.c_str(), path.c_str());
  return bytes;
}

// The bundled model packed once per format and kept for the whole test run.
// A deque: callers hold the returned references while asking for another
// format, and a vector's growth would move the images under them (ASan saw
// EndToEnd.V1ExportGivesTheSameModelAsLegacy read a freed one).
inline const ModelImage& stories260k(WeightFormat format, const std::string& checkpoint = "stories260K.bin") {
  static std::deque<std::pair<std::string, ModelImage>> cache;
  const std::string key = checkpoint + "/" + std::to_string(int(format));
  for (auto& e : cache) {
    if (e.first == key) return e.second;
  }
  cache.emplace_back(key, to_image(pack_file(checkpoint, format)));
  return cache.back().second;
}

// Owns a model and one session with its arena.
struct Runner {
  stk_model* model = nullptr;
  stk_session* session = nullptr;
  std::vector<uint8_t> arena;
  stk_model_info info = STK_MODEL_INFO_INIT;

  explicit Runner(const ModelImage& img, uint32_t threads = 1, uint32_t max_batch = 0, uint32_t context = 0,
                  uint32_t flags = 0) {
    stk_message m{};
    EXPECT_EQ(stk_model_open_memory(img.bytes.get(), img.size, nullptr, &model, &m), STK_OK) << m.text;
    EXPECT_EQ(stk_model_get_info(model, &info, &m), STK_OK) << m.text;
    stk_session_config cfg = STK_SESSION_CONFIG_INIT;
    cfg.n_threads = threads;
    cfg.max_batch = max_batch;
    cfg.context_length = context;
    cfg.flags = flags;
    size_t bytes = 0;
    EXPECT_EQ(stk_session_arena_size(model, &cfg, &bytes, &m), STK_OK) << m.text;
    arena.resize(bytes);
    EXPECT_EQ(stk_session_init(model, &cfg, arena.data(), arena.size(), &session, &m), STK_OK) << m.text;
  }
  ~Runner() {
    stk_session_free(session);
    stk_model_close(model);
  }

  std::vector<int32_t> tokenize(const std::string& text, bool bos = true) const {
    std::vector<int32_t> t(text.size() + 3);
    size_t n = 0;
    stk_message m{};
    EXPECT_EQ(stk_tokenize(model, text.data(), text.size(), bos ? 1 : 0, t.data(), t.size(), &n, &m), STK_OK)
        << m.text;
    t.resize(n);
    return t;
  }
};

// Collects what llama2.c's run prints: printable pieces, then a newline.
inline int collect_printable(void* user, int32_t, const char* piece, size_t len) {
  if (stk_piece_is_printable(piece, len)) static_cast<std::string*>(user)->append(piece, len);
  return 0;
}

inline std::string generate_text(Runner& r, const char* prompt, uint32_t steps, const stk_sampler_config* sc) {
  std::string out;
  stk_message m{};
  EXPECT_EQ(stk_generate(r.session, prompt, steps, sc, collect_printable, &out, nullptr, &m), STK_OK) << m.text;
  return out + "\n";
}

}  // namespace stk::test
