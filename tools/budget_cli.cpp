#include "tools/budget_cli.h"

#include <cstdio>
#include <map>
#include <vector>

#include "tools/handles.h"

namespace stk::host {

stk_budget_report report_budget(stk_session* session, uint64_t budget) {
  stk_budget_report r = STK_BUDGET_REPORT_INIT;
  stk_message m{};
  check(stk_session_set_budget(session, budget == 0 ? UINT64_MAX : budget, &r, &m), m);  // 0 = full
  std::fprintf(stderr, "budget %llu: %u blocks resident, weight bytes %llu\n", (unsigned long long)budget,
               r.blocks_resident, (unsigned long long)r.weight_bytes);
  return r;
}

void print_budget_info(const stk_model* model, uint64_t budget) {
  stk_budget_info bi = STK_BUDGET_INFO_INIT;
  stk_message m{};
  check(stk_model_budget_info(model, &bi, &m), m);
  if (bi.n_blocks == 0) return;
  std::printf("\n  BitStack: %u blocks over %u tensors; fixed bytes %llu\n", bi.n_blocks, bi.n_bitstack_tensors,
              (unsigned long long)bi.fixed_bytes);
  std::printf("  min budget %llu bytes (%u blocks), full budget %llu bytes\n", (unsigned long long)bi.min_budget_bytes,
              bi.min_blocks, (unsigned long long)bi.full_budget_bytes);
  std::printf("  block index %llu bytes (held by the open model for every block, outside the budget)\n",
              (unsigned long long)bi.index_bytes);
  if (budget == 0) budget = bi.full_budget_bytes;
  std::map<std::string, std::pair<uint32_t, uint32_t>> per;  // name -> (resident, total)
  std::vector<std::string> order;
  uint32_t resident = 0;
  uint64_t weight = bi.fixed_bytes;
  bool in_prefix = true;
  for (uint32_t i = 0; i < bi.n_blocks; ++i) {
    stk_block_info b = STK_BLOCK_INFO_INIT;
    check(stk_model_block_info(model, i, &b, &m), m);
    auto it = per.find(b.tensor_name);
    if (it == per.end()) {
      order.push_back(b.tensor_name);
      it = per.emplace(b.tensor_name, std::make_pair(0u, 0u)).first;
    }
    ++it->second.second;
    if (in_prefix && b.budget_through <= budget) {
      ++it->second.first;
      ++resident;
      weight = b.budget_through;
    } else {
      in_prefix = false;
    }
  }
  std::printf("  at budget %llu: %u blocks resident, weight bytes %llu%s\n", (unsigned long long)budget, resident,
              (unsigned long long)weight, resident < bi.min_blocks ? " (below the minimum: rejected)" : "");
  std::printf("  %-24s %s\n", "tensor", "blocks resident/total");
  for (const std::string& n : order) std::printf("  %-24s %u/%u\n", n.c_str(), per[n].first, per[n].second);
}

}  // namespace stk::host
