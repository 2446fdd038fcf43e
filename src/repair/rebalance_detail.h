// Internals shared by rebalance_plan.cpp (choosing scales) and rebalance_write.cpp (applying them).
#pragma once

#include <string>
#include <vector>

#include "io/checkpoint.h"
#include "repair/rebalance.h"

namespace fusecheck::repair {

// Element (r, c) of a [rows, cols] tensor is multiplied by 2^(row_exp[r] + col_exp[c]); a 1-D
// tensor is one row (col_exp only). An empty vector means all zeros.
struct TensorEdit {
  std::string name;
  std::vector<int> row_exp;
  std::vector<int> col_exp;
};

struct PlannedEdits {
  RebalancePlan plan;
  std::vector<TensorEdit> edits;  // only tensors with a non-zero exponent somewhere
};

Result<PlannedEdits> plan_edits(const Checkpoint& ck, const RebalanceOptions& opt);

// Stores fp32 `x` as `dtype` at `dst`; false when the stored value is not exactly x.
bool store_exact(DType dtype, float x, unsigned char* dst);

// The tensor's new bytes in its own dtype, or an error when a scaled element would not be exact.
Result<std::string> apply_edit(const SafetensorsFile& file, const TensorInfo& t,
                               const TensorEdit& e);

}  // namespace fusecheck::repair
