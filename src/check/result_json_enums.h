// The report's enum names (docs/JSON_SCHEMA.md), shared by the nlohmann conversions and the
// direct writer (check/result_json.cpp, check/result_writer.cpp). Internal to those two files.
#pragma once

#include <nlohmann/json.hpp>

#include "check/check.h"

namespace fusecheck {

NLOHMANN_JSON_SERIALIZE_ENUM(Verdict, {{Verdict::kCompatible, "COMPATIBLE"},
                                       {Verdict::kWarning, "WARNING"},
                                       {Verdict::kIncompatible, "INCOMPATIBLE"}})
NLOHMANN_JSON_SERIALIZE_ENUM(NormKind, {{NormKind::kBlock, "block"},
                                        {NormKind::kQ, "q"},
                                        {NormKind::kK, "k"},
                                        {NormKind::kFinal, "final"}})
NLOHMANN_JSON_SERIALIZE_ENUM(KvFormat, {{KvFormat::kSame, "same"},
                                        {KvFormat::kFp16, "fp16"},
                                        {KvFormat::kInt8, "int8"},
                                        {KvFormat::kFp8E4M3, "fp8_e4m3"}})
NLOHMANN_JSON_SERIALIZE_ENUM(KvScale, {{KvScale::kPerTensor, "per_tensor"},
                                       {KvScale::kPerChannel, "per_channel"}})

NLOHMANN_JSON_SERIALIZE_ENUM(FusedGroup, {{FusedGroup::kAddRmsnorm, "add_rmsnorm"},
                                          {FusedGroup::kRmsnormQkv, "rmsnorm_qkv"},
                                          {FusedGroup::kQkNormRope, "qk_norm_rope"},
                                          {FusedGroup::kAttention, "attention"},
                                          {FusedGroup::kGateUpSilu, "gate_up_silu"}})

}  // namespace fusecheck
