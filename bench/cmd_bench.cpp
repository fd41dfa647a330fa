// stk bench: decode and prefill speed of random-weight models with real
// shapes, per weight format and thread count, against the machine's measured
// memory read bandwidth (the roofline of a decode step that streams every
// weight once per token). Models and the bandwidth buffer sit in 4 KiB pages,
// or with --huge-pages in 2 MiB pages (tools/page_memory.h); each model's
// line says how much of it the system actually put in 2 MiB pages.
#include <algorithm>
#include <chrono>
#include <deque>
#include <memory>
#include <cstdio>
#include <sstream>
#include <vector>

#include "bench/bandwidth.h"
#include "bench/bitstack_rebuild.h"
#include "bench/busy_neighbour.h"
#include "bench/core_speed.h"
#include "bench/paired_ratio.h"
#include "bench/synth_bitstack.h"
#include "bench/synth_model.h"
#include "bench/synth_sparse.h"
#include "c_api/stackrt.h"
#include "c_api/stackrt_internal.h"
#include "runtime/kernels/matmul.h"
#include "runtime/session.h"
#include "tools/commands.h"
#include "tools/handles.h"
#include "tools/memory_model.h"
#include "tools/page_memory.h"

namespace stk::cli {
namespace {

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// Random sign blocks per matrix in the "bitstack" row: more than the Q4
// model's bytes hold, so the budget, not the model, sets what is resident.
constexpr uint32_t kBitStackBenchBlocks = 6;

// The kernel set named by --isa: "best" is what sessions pick on this CPU;
// a named set lets one machine time the kernels that a narrower CPU would
// run (an AVX-512 machine times its AVX2 kernels).
const KernelSet& kernel_set_named(const std::string& name) {
  if (name == "best") return kernels_best();
  const struct {
    const char* name;
    Isa isa;
  } sets[] = {{"scalar", Isa::Scalar}, {"avx2", Isa::Avx2}, {"avx512", Isa::Avx512}, {"neon", Isa::Neon}};
  for (const auto& s : sets) {
    if (name != s.name) continue;
    if (const KernelSet* k = kernels_for(s.isa)) return *k;
    throw UsageError("--isa " + name + ": this build or CPU has no " + name + " kernels");
  }
  throw UsageError("--isa expects best, avx512, avx2, neon or scalar, got '" + name + "'");
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int run_bench(const Args& a) {
  const std::vector<std::string> shapes = split_list(a.get("--shapes", "stories15M,stories110M,tinyllama"));
  const std::vector<std::string> formats = split_list(a.get("--formats", "f32,q8,q4,q3,q2,t2"));
  std::vector<uint32_t> threads;
  for (const std::string& t : split_list(a.get("--threads", "1,2"))) {
    const long v = std::strtol(t.c_str(), nullptr, 10);
    if (v < 1 || v > 16) throw UsageError("--threads expects a list of counts in 1..16, got '" + t + "'");
    threads.push_back(uint32_t(v));
  }
  const uint32_t prompt = uint32_t(a.integer("--prompt", 64, 1, 1024));
  const uint32_t decode = uint32_t(a.integer("--decode", 32, 1, 4096));
  const uint32_t repeat = uint32_t(a.integer("--repeat", 1, 1, 100));
  const bool big_f32 = a.has("--big-f32");
  const bool json = a.has("--json");
  const bool contend = a.has("--contend");
  const double bw_bytes = double(a.integer("--bw-mib", 1024, 64, 65536)) * 1048576.0;
  // Models and the bandwidth buffer in the same pages (tools/page_memory.h).
  const host::PageSize pages = a.has("--huge-pages") ? host::PageSize::Huge : host::PageSize::Small;
  std::vector<const KernelSet*> kernel_sets;
  for (const std::string& name : split_list(a.get("--isa", "best"))) kernel_sets.push_back(&kernel_set_named(name));
  if (kernel_sets.empty()) throw UsageError("--isa expects at least one kernel set");
  const bool several_isas = kernel_sets.size() > 1;
  // "bitstack-rowmajor" rows: a kernel set's copy that asks for row-major sign
  // planes (KernelSet::bitstack_signs16 off), to time what the 16-row layout buys.
  std::deque<KernelSet> row_major_sets;

  // Every (format, thread count) of a shape is timed once per round, and the
  // bandwidth is measured at the start of each round: a shared machine's
  // speed drifts over minutes, so rows measured in the same rounds are
  // comparable, and each row and the bandwidth report their best round.
  bench::ReadBandwidth bw{size_t(bw_bytes), pages};
  std::printf("%-12s %-17s %3s %7s %12s %10s %11s %9s %9s", "shape", "format", "thr", "bpw", "bytes/token",
              "decode t/s", "prefill t/s", "GB/s", "roofline");
  if (contend) std::printf(" %12s %8s", "busy-core t/s", "kept");
  std::printf("\n");
  std::string json_rows;
  for (const std::string& shape_name : shapes) {
    const bench::ShapeSpec shape = bench::shape_by_name(shape_name);
    struct Row {
      std::string label;
      const KernelSet* kernels;
      uint32_t threads;
      uint64_t per_token;
      double bpw;
      std::unique_ptr<host::MemorySession> session;
      double decode_tps = 0, prefill_tps = 0, contended_tps = 0;
      std::vector<double> decode_rounds;  // decode tok/s of every round, for paired ratios
      std::string dense_twin;             // N:M rows: the label of the dense row with the same values
      std::vector<uint32_t> rebuild_resident;  // BitStack rows, 1 thread: each matrix's blocks at the budget
      double rebuild_tps = 0;                  // bench/bitstack_rebuild.h
    };
    std::vector<std::unique_ptr<host::MemoryModel>> models;
    std::vector<bench::MatrixBlocks> rebuild_matrices;  // the BitStack model's blocks, for the dense rebuild
    std::vector<Row> rows;
    for (const std::string& fname : formats) {
      const auto tp = std::chrono::steady_clock::now();
      host::PackedModel pm;
      std::string label = fname;
      uint64_t budget = 0;  // BitStack: the Q4 model's weight bytes
      const bool row_major = fname == "bitstack-rowmajor";
      if (fname == "bitstack" || row_major) {
        budget = bench::total_weight_bytes(bench::synth_model(shape, host::parse_format_spec("q4"), 8));
        bench::SynthBitStack sb = bench::synth_bitstack(shape, prompt + decode + 8, kBitStackBenchBlocks);
        pm = std::move(sb.model);
        rebuild_matrices = std::move(sb.matrices);
      } else {
        const bench::SparseFormatName sf = bench::parse_sparse_format(fname);  // "2:4-q8": bench/synth_sparse.h
        const host::FormatSpec spec = sf.values;
        if (!sf.pattern.sparse()) label = spec.name();
        if (spec.format == WeightFormat::F32 && shape.name == "tinyllama" && !big_f32) {
          std::fprintf(stderr, "skipping tinyllama f32 (4.4 GB; --big-f32 to include it)\n");
          continue;
        }
        pm = bench::synth_model(shape, spec, prompt + decode + 8);
        if (sf.pattern.sparse()) bench::sparsify_layers(&pm, sf.pattern, spec);
      }
      const uint64_t per_token = bench::weight_bytes_per_token(pm), fixed_bytes = bench::total_weight_bytes(pm);
      // Bits per weight of the resident matrices; for BitStack at its budget below.
      double matrix_bits = 0, matrix_weights = 0;
      for (const auto& t : pm.tensors) {
        if (t.rows > 1) matrix_bits += double(t.data.size()) * 8, matrix_weights += double(t.rows) * t.cols;
      }
      {
        std::vector<uint8_t> image = host::serialize_stk(pm);
        pm.tensors.clear();
        pm.bitstack_blocks.clear();
        const int64_t huge_before = host::anon_huge_page_bytes();
        models.emplace_back(new host::MemoryModel(image, pages));
        const int64_t huge_after = host::anon_huge_page_bytes();
        std::fprintf(stderr, "%s %s: built in %.1f s, %.0f MiB", shape.name.c_str(), label.c_str(), seconds_since(tp),
                     double(image.size()) / 1048576.0);
        if (huge_before >= 0 && huge_after >= 0) {
          std::fprintf(stderr, ", %.0f MiB of it in 2 MiB pages", double(huge_after - huge_before) / 1048576.0);
        }
        std::fprintf(stderr, "\n");
      }
      for (const KernelSet* ks : kernel_sets) {
        for (uint32_t t : threads) {
          // With several kernel sets the format column says which: "q4@avx2".
          const std::string at = several_isas ? std::string("@") + ks->name : "";
          Row r{label + at, ks, t, per_token, matrix_bits / matrix_weights, nullptr, 0, 0, 0, {}, "", {}, 0};
          if (fname.find(':') != std::string::npos) r.dense_twin = bench::parse_sparse_format(fname).values.name() + at;
          r.session.reset(new host::MemorySession(*models.back(), t, prompt, prompt + decode + 8, budget));
          if (row_major) {
            row_major_sets.push_back(*ks);
            row_major_sets.back().bitstack_signs16 = false;
          }
          session_use_kernels(stk_session_impl(r.session->get()), row_major ? &row_major_sets.back() : ks);
          if (budget != 0) {  // what the session holds at the budget: fixed tensors + resident blocks
            stk_budget_report rep = STK_BUDGET_REPORT_INIT;
            stk_message m{};
            host::check(stk_session_set_budget(r.session->get(), budget, &rep, &m), m);
            const uint64_t blocks = rep.weight_bytes - fixed_bytes;
            r.per_token = per_token + blocks;
            r.bpw = (matrix_bits + 8.0 * double(blocks)) / matrix_weights;
            if (t == 1 && !row_major) r.rebuild_resident = bench::uniform_resident(rebuild_matrices.size(), rep.blocks_resident);
          }
          rows.push_back(std::move(r));
        }
      }
    }
    std::vector<int32_t> toks(prompt);
    for (uint32_t i = 0; i < prompt; ++i) toks[i] = int32_t((i * 7919u + 1u) % shape.vocab);
    stk_message m{};
    const auto time_prefill = [&](stk_session* s) {
      stk_session_reset(s);
      const auto t0 = std::chrono::steady_clock::now();
      host::check(stk_session_eval(s, toks.data(), prompt, nullptr, &m), m);
      return prompt / seconds_since(t0);
    };
    const auto time_decode = [&](stk_session* s) {
      stk_session_reset(s);
      host::check(stk_session_eval(s, toks.data(), 1, nullptr, &m), m);
      const auto t0 = std::chrono::steady_clock::now();
      for (uint32_t i = 0; i < decode; ++i) {
        const int32_t tok = toks[(i + 1) % prompt];
        host::check(stk_session_eval(s, &tok, 1, nullptr, &m), m);
      }
      return decode / seconds_since(t0);
    };
    for (Row& r : rows) time_prefill(r.session->get());  // warm-up: page in the weights, start the threads
    std::vector<double> bandwidth(17, 0.0);
    // Per CPU, its speed relative to the round's fastest CPU, lowest and
    // highest over the rounds (bench/core_speed.h).
    std::vector<int> cpus;
    std::vector<double> rel_lo, rel_hi;
    for (uint32_t round = 0; round < repeat; ++round) {
      for (uint32_t t : threads) bandwidth[t] = std::max(bandwidth[t], bw.measure(t));
      const std::vector<bench::CoreSpeed> speeds = bench::measure_core_speeds();
      double fastest = 0;
      for (const auto& c : speeds) fastest = std::max(fastest, c.per_sec);
      for (size_t i = 0; i < speeds.size() && fastest > 0; ++i) {
        const double rel = speeds[i].per_sec / fastest;
        if (i >= cpus.size()) cpus.push_back(speeds[i].cpu), rel_lo.push_back(rel), rel_hi.push_back(rel);
        rel_lo[i] = std::min(rel_lo[i], rel), rel_hi[i] = std::max(rel_hi[i], rel);
      }
      for (Row& r : rows) {
        // Best of the rounds: a busy machine only ever slows a run down.
        r.prefill_tps = std::max(r.prefill_tps, time_prefill(r.session->get()));
        r.decode_rounds.push_back(time_decode(r.session->get()));
        r.decode_tps = std::max(r.decode_tps, r.decode_rounds.back());
        if (!r.rebuild_resident.empty()) {
          r.rebuild_tps = std::max(r.rebuild_tps, bench::dense_rebuild_tok_s(rebuild_matrices, r.rebuild_resident, 3, *r.kernels));
        }
      }
      std::fprintf(stderr, "%s: round %u of %u timed\n", shape.name.c_str(), round + 1, repeat);
    }
    for (uint32_t t : threads) {
      std::fprintf(stderr, "%s: memory read bandwidth, %u thread%s: %.2f GB/s\n", shape.name.c_str(), t,
                   t == 1 ? "" : "s", bandwidth[t] / 1e9);
    }
    double slowest_cpu = 1.0;  // the lowest relative CPU speed of any round
    if (!cpus.empty()) {
      std::string line;
      char item[64];
      for (size_t i = 0; i < cpus.size(); ++i) {
        std::snprintf(item, sizeof item, "%scpu%d %.2f-%.2f", i ? ", " : "", cpus[i], rel_lo[i], rel_hi[i]);
        line += item;
        slowest_cpu = std::min(slowest_cpu, rel_lo[i]);
      }
      std::fprintf(stderr, "%s: CPU speed (one SIMD loop pinned to each CPU, vs the round's fastest; lowest-highest): %s\n",
                   shape.name.c_str(), line.c_str());
    }
    for (Row& r : rows) {
      if (contend) {
        bench::BusyNeighbour neighbour;  // bench/busy_neighbour.h
        r.contended_tps = time_decode(r.session->get());
      }
      const double gbs = double(r.per_token) * r.decode_tps;
      const double roof = gbs / bandwidth[r.threads];
      std::printf("%-12s %-17s %3u %7.3f %12llu %10.2f %11.1f %9.2f %8.1f%%", shape.name.c_str(), r.label.c_str(),
                  r.threads, r.bpw, (unsigned long long)r.per_token, r.decode_tps, r.prefill_tps, gbs / 1e9,
                  roof * 100);
      if (contend) std::printf(" %12.2f %7.1f%%", r.contended_tps, 100.0 * r.contended_tps / r.decode_tps);
      std::printf("\n");
      if (r.rebuild_tps > 0) {
        std::printf("  (rebuilding each matrix dense from its blocks for every token, then a dense f32 product:\n"
                    "   %.2f tok/s for the linear layers alone, %.1fx slower than the packed kernel's whole step)\n",
                    r.rebuild_tps, r.decode_tps / r.rebuild_tps);
      }
      std::fflush(stdout);
      char row[512];
      std::snprintf(row, sizeof row,
                    "%s{\"shape\": \"%s\", \"format\": \"%s\", \"kernels\": \"%s\", \"threads\": %u, \"linear_bpw\": %.4f, "
                    "\"weight_bytes_per_token\": %llu, \"decode_tok_s\": %.3f, \"prefill_tok_s\": %.2f, "
                    "\"decode_bytes_s\": %.0f, \"bandwidth_bytes_s\": %.0f, \"roofline_pct\": %.2f, "
                    "\"decode_tok_s_busy_core\": %.3f, \"dense_rebuild_tok_s\": %.3f, \"slowest_cpu_speed\": %.3f}",
                    json_rows.empty() ? "" : ", ", shape.name.c_str(), r.label.c_str(), r.kernels->name, r.threads, r.bpw,
                    (unsigned long long)r.per_token, r.decode_tps, r.prefill_tps, gbs, bandwidth[r.threads],
                    roof * 100, r.contended_tps, r.rebuild_tps, slowest_cpu);
      json_rows += row;
    }
    // Sparse against dense, round by round (bench/paired_ratio.h).
    for (const Row& r : rows) {
      for (const Row& d : rows) {
        if (r.dense_twin.empty() || d.label != r.dense_twin || d.threads != r.threads) continue;
        const bench::RatioSpread q = bench::paired_ratios(r.decode_rounds, d.decode_rounds);
        std::printf("%-12s decode %s / %s, %u thread%s: %.2fx from the best rounds; per round %.2f-%.2fx, median %.2fx "
                    "(%zu round%s)\n",
                    shape.name.c_str(), r.label.c_str(), d.label.c_str(), r.threads, r.threads == 1 ? "" : "s",
                    r.decode_tps / d.decode_tps, q.lo, q.hi, q.median, q.rounds, q.rounds == 1 ? "" : "s");
      }
    }
  }
  if (json) std::printf("{\"prompt\": %u, \"decode\": %u, \"results\": [%s]}\n", prompt, decode, json_rows.c_str());
  return 0;
}

}  // namespace

const Command kBenchCommand = {
    "bench",
    "[options]",
    "Decode/prefill speed of random-weight models with real shapes per format and thread count, vs memory bandwidth.",
    {
        {"--shapes", "LIST", "stories15M,stories110M,tinyllama (default all three)"},
        {"--formats", "LIST", "weight formats, e.g. f32,q8,q4,q3g64,q2,t2 (default f32,q8,q4,q3,q2,t2); N:M-F = N:M-sparse layers, values F (2:4-q8); bitstack = random BitStack blocks at the Q4 model's weight bytes; bitstack-rowmajor = the same with sign planes left row-major in RAM"},
        {"--threads", "LIST", "thread counts (default 1,2)"},
        {"--prompt", "N", "prefill tokens (default 64)"},
        {"--decode", "N", "decode steps timed (default 32)"},
        {"--repeat", "N", "timing rounds: each times every format and thread count once and measures the bandwidth; rows report their fastest round, and an N:M row with its dense twin (2:4-q8 and q8) also the spread of their round-by-round decode ratios (default 1)"},
        {"--big-f32", nullptr, "also run tinyllama in f32 (4.4 GB)"},
        {"--bw-mib", "MIB", "buffer for the bandwidth measurement (default 1024)"},
        {"--json", nullptr, "also print one JSON object as the last stdout line"},
        {"--isa", "LIST", "kernel sets: best (what this CPU runs, default), avx512, avx2, neon, scalar; with several, rows are labelled format@set"},
        {"--huge-pages", nullptr, "models and the bandwidth buffer in 2 MiB pages where the system gives them (default 4 KiB pages): what stk_model_open_file gets on Linux 6.16+ with ext4 for a model file read in after it opened it (docs/api.md)"},
        {"--contend", nullptr, "also time decode while another process spins on a core (busy-core t/s, kept = ratio)"},
    },
    run_bench,
};

}  // namespace stk::cli
