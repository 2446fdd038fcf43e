// engine_load: how an inference engine calls fusecheck when it loads a model, to choose between its
// fused kernels and its standard (unfused) ones. Copy the main() body into your loader.
//
//   engine_load_example MODEL_DIR [--kernels NAME] [--force-fused]
//
// --kernels names the numerics profile of your fused kernels (data/kernels.json; default
// "generic"). Prints the choice on stdout as one line, "kernels: fused" or "kernels: standard";
// warnings go to stderr. Exits 0 whatever the verdict (the model still loads), 64 on a usage error.
// Build: the CMake target engine_load_example links fusecheck_lib; include "check/check.h".
#include <cstdio>
#include <string>

#include "check/check.h"

namespace {

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s MODEL_DIR [--kernels NAME] [--force-fused]\n", argv0);
  return 64;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model_dir;
  fusecheck::CheckOptions
      options;  // defaults: generic profile, result cache on (~/.cache/fusecheck)
  bool force_fused = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--kernels" && i + 1 < argc) {
      options.kernels = argv[++i];
    } else if (arg == "--force-fused") {
      force_fused = true;
    } else if (arg.empty() || arg[0] == '-' || !model_dir.empty()) {
      return usage(argv[0]);
    } else {
      model_dir = arg;
    }
  }
  if (model_dir.empty()) return usage(argv[0]);

  // One call reads config.json, the safetensors headers and the norm tensors only, so it costs
  // milliseconds even for very large checkpoints, and a cached result is reused on the next load.
  bool fused = false;
  auto result = fusecheck::check_model(model_dir, options);
  if (!result) {
    // The checkpoint could not be checked (missing or malformed file, unknown architecture).
    // The error is one line naming the file. Take the safe path; the loader reports the rest.
    std::fprintf(stderr, "fusecheck: %s\nUsing standard kernels.\n",
                 result.error().message.c_str());
  } else {
    switch (result->verdict) {
      case fusecheck::Verdict::kCompatible:
        fused = true;
        break;
      case fusecheck::Verdict::kWarning:
        // Expected to work, but outputs may shift measurably: fuse, and say so.
        fused = true;
        std::fprintf(stderr,
                     "WARNING: fused kernels may change this model's outputs (score %.2f).\n"
                     "For details run: fusecheck check %s\n",
                     result->score.total, model_dir.c_str());
        break;
      case fusecheck::Verdict::kIncompatible:
        if (force_fused) {
          // The operator insisted. Make it impossible to miss in the logs.
          fused = true;
          std::fprintf(stderr,
                       "WARNING: fusecheck rated this model INCOMPATIBLE with fused kernels, but "
                       "--force-fused is set: USING FUSED KERNELS ANYWAY. Expect degraded output.\n"
                       "For details run: fusecheck check %s\n",
                       model_dir.c_str());
        } else {
          std::fprintf(stderr, "%s\n", fusecheck::fallback_warning(model_dir).c_str());
        }
        break;
    }
  }
  std::printf("kernels: %s\n", fused ? "fused" : "standard");
  return 0;
}
