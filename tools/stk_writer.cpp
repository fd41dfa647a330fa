#include "tools/stk_writer.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "runtime/checked_math.h"
#include "runtime/crc32.h"
#include "runtime/weights.h"

namespace stk::host {
namespace {

void pad_to(std::vector<uint8_t>& out, uint64_t align) { out.resize(align_up(out.size(), align), 0); }

template <typename T>
void put_at(std::vector<uint8_t>& out, size_t offset, const T& v) {
  std::memcpy(out.data() + offset, &v, sizeof v);
}

}  // namespace

std::vector<uint8_t> serialize_stk(const PackedModel& m) {
  const HostConfig& c = m.config;
  const uint32_t kSections = m.bitstack_blocks.empty() ? 3 : 4;
  std::vector<uint8_t> out(sizeof(FileHeader) + kSections * sizeof(SectionRecord), 0);
  pad_to(out, kDataAlign);

  // Weights go last; their offsets are known once the tables are placed.
  const uint64_t table_offset = out.size();
  const uint64_t table_bytes = m.tensors.size() * sizeof(FileTensor);
  const uint64_t tok_offset = align_up(table_offset + table_bytes, kDataAlign);
  const uint64_t weights_offset = align_up(tok_offset + m.tokenizer_section.size(), kDataAlign);

  std::vector<FileTensor> records;
  uint64_t cursor = weights_offset;
  for (const PackedTensor& t : m.tensors) {
    uint64_t need = 0;
    if (!weight_format_bytes(t.format, t.rows, t.cols, t.params, &need) || need != t.data.size()) {
      throw std::runtime_error("internal: tensor " + t.name + " has " + std::to_string(t.data.size()) +
                               " bytes, its format needs " + std::to_string(need));
    }
    if (t.name.size() >= kTensorNameLen) throw std::runtime_error("tensor name too long: " + t.name);
    FileTensor r{};
    std::memcpy(r.name, t.name.c_str(), t.name.size());
    r.role = uint16_t(t.role);
    r.format = uint16_t(t.format);
    r.layer = t.layer;
    r.rows = t.rows;
    r.cols = t.cols;
    cursor = align_up(cursor, kDataAlign);
    r.offset = cursor;
    r.bytes = t.data.size();
    std::memcpy(r.params, t.params, sizeof r.params);
    cursor += t.data.size();
    records.push_back(r);
  }
  const uint64_t weights_bytes = cursor - weights_offset;

  out.resize(table_offset + table_bytes, 0);
  if (!records.empty()) std::memcpy(out.data() + table_offset, records.data(), table_bytes);
  pad_to(out, kDataAlign);
  out.insert(out.end(), m.tokenizer_section.begin(), m.tokenizer_section.end());
  pad_to(out, kDataAlign);
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    out.resize(records[i].offset, 0);
    out.insert(out.end(), m.tensors[i].data.begin(), m.tensors[i].data.end());
  }
  out.resize(weights_offset + weights_bytes, 0);
  if (!m.bitstack_blocks.empty()) pad_to(out, kDataAlign);
  const uint64_t blocks_offset = out.size();
  out.insert(out.end(), m.bitstack_blocks.begin(), m.bitstack_blocks.end());

  SectionRecord sections[4] = {
      {uint32_t(SectionKind::TensorTable), 0, table_offset, table_bytes, 0},
      {uint32_t(SectionKind::Tokenizer), 0, tok_offset, m.tokenizer_section.size(), 0},
      {uint32_t(SectionKind::Weights), 0, weights_offset, weights_bytes, 0},
      {uint32_t(SectionKind::BitStackBlocks), 0, blocks_offset, m.bitstack_blocks.size(), 0},
  };
  for (uint32_t i = 0; i < kSections; ++i) sections[i].crc = crc32(0, out.data() + sections[i].offset, sections[i].bytes);
  std::memcpy(out.data() + sizeof(FileHeader), sections, kSections * sizeof(SectionRecord));

  FileHeader h{};
  std::memcpy(h.magic, kFileMagic, sizeof h.magic);
  h.version = kFormatVersion;
  h.header_bytes = sizeof(FileHeader);
  h.file_bytes = out.size();
  h.dim = c.dim;
  h.hidden_dim = c.hidden_dim;
  h.n_layers = c.n_layers;
  h.n_heads = c.n_heads;
  h.n_kv_heads = c.n_kv_heads;
  h.vocab_size = c.vocab_size;
  h.seq_len = c.seq_len;
  h.flags = c.shared_classifier ? uint32_t(kFlagSharedClassifier) : 0u;
  h.rope_theta = c.rope_theta;
  h.norm_eps = c.norm_eps;
  h.section_count = kSections;
  h.tensor_count = uint32_t(m.tensors.size());
  h.section_table_offset = sizeof(FileHeader);
  h.section_table_crc = crc32(0, sections, kSections * sizeof(SectionRecord));
  h.header_crc = crc32(0, &h, offsetof(FileHeader, header_crc));
  put_at(out, 0, h);
  return out;
}

void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("cannot create " + tmp + ": " + std::strerror(errno));
  size_t written = std::fwrite(bytes.data(), 1, bytes.size(), f);
  int close_rc = std::fclose(f);
  if (written != bytes.size() || close_rc != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot write " + tmp + ": " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  }
}

}  // namespace stk::host
