// The CUDA backend is a module (libfusecheck_cuda.so, kernels/backend_loader.h) that only
// --device cuda loads: no program of the project links a CUDA library, and --device cuda says in
// one line why it cannot run (no CUDA build, no module, no GPU), with exit code 3.
//
// The oracle for "links" is the ELF file itself: its DT_NEEDED entries, read here with <elf.h>
// (what `readelf -d` prints); the module's own entries (libcublasLt) show the reader finds them.
#include <dlfcn.h>
#include <elf.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_module_testing.h"
#include "kernels/backend_loader.h"
#include "testing.h"

namespace fusecheck {
namespace {

// DT_NEEDED of a 64-bit ELF file, in order; an empty list with a failure when it is not one.
std::vector<std::string> elf_needed(const std::string& path) {
  const std::string bytes = testing::read_text(path);
  std::vector<std::string> out;
  Elf64_Ehdr eh;
  if (bytes.size() < sizeof(eh) || std::memcmp(bytes.data(), ELFMAG, SELFMAG) != 0) {
    ADD_FAILURE() << path << " is not an ELF file";
    return out;
  }
  std::memcpy(&eh, bytes.data(), sizeof(eh));
  const auto section = [&](size_t i) {
    Elf64_Shdr sh{};
    const size_t off = eh.e_shoff + i * sizeof(Elf64_Shdr);
    if (off + sizeof(sh) <= bytes.size()) std::memcpy(&sh, bytes.data() + off, sizeof(sh));
    return sh;
  };
  for (size_t i = 0; i < eh.e_shnum; ++i) {
    const Elf64_Shdr dyn = section(i);
    if (dyn.sh_type != SHT_DYNAMIC) continue;
    const Elf64_Shdr str = section(dyn.sh_link);
    for (size_t off = dyn.sh_offset; off + sizeof(Elf64_Dyn) <= dyn.sh_offset + dyn.sh_size;
         off += sizeof(Elf64_Dyn)) {
      Elf64_Dyn d;
      std::memcpy(&d, bytes.data() + off, sizeof(d));
      if (d.d_tag == DT_NULL) break;
      if (d.d_tag == DT_NEEDED && str.sh_offset + d.d_un.d_val < bytes.size())
        out.emplace_back(bytes.c_str() + str.sh_offset + d.d_un.d_val);
    }
  }
  return out;
}

bool is_cuda_library(const std::string& soname) {
  return soname.rfind("libcuda", 0) == 0 || soname.rfind("libcublas", 0) == 0 ||
         soname.rfind("libnvrtc", 0) == 0 || soname.rfind("libnccl", 0) == 0;
}

std::string self_exe() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  return n > 0 ? std::string(buf, size_t(n)) : "";
}

TEST(BackendLoader, NoProgramLinksACudaLibrary) {
  for (const std::string& bin : {std::string(FUSECHECK_BINARY), self_exe()}) {
    const auto needed = elf_needed(bin);
    // Positive control: the reader sees the C runtime every program needs.
    EXPECT_NE(std::find(needed.begin(), needed.end(), "libc.so.6"), needed.end()) << bin;
    for (const auto& so : needed) EXPECT_FALSE(is_cuda_library(so)) << bin << " needs " << so;
  }
}

#ifdef FUSECHECK_CUDA_MODULE
TEST(BackendLoader, TheModuleIsWhereTheCudaLibrariesAre) {
  const auto needed = elf_needed(FUSECHECK_CUDA_MODULE);
  bool cublas = false;
  for (const auto& so : needed) cublas = cublas || so.rfind("libcublasLt.so", 0) == 0;
  EXPECT_TRUE(cublas) << FUSECHECK_CUDA_MODULE << " does not need libcublasLt";
  // Built beside the fusecheck binary, where the loader looks first.
  const std::string bin = FUSECHECK_BINARY;
  EXPECT_EQ(std::string(FUSECHECK_CUDA_MODULE),
            bin.substr(0, bin.rfind('/') + 1) + kCudaModuleName);
}

TEST(BackendLoader, ALibraryThatIsNotTheModuleIsRefused) {
  Dl_info libc{};
  ASSERT_NE(::dladdr(reinterpret_cast<void*>(&::strlen), &libc), 0);
  auto b = load_cuda_backend({}, libc.dli_fname);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().message,
            std::string("cannot load libfusecheck_cuda.so: it exports no ") + kCudaModuleSymbol);
}
#endif

struct CliRun {
  int exit_code = -1;
  std::string err;
};
CliRun run(const std::string& binary, const std::string& args, const std::string& env) {
  testing::TempDir io;
  const std::string cmd = env + " " + binary + " " + args + " >/dev/null 2>" + io.path() + "/err";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
          testing::read_text(io.path() + "/err")};
}

const std::string kTinyModel = testing::data_dir() + "/hf/qwen3-tiny-extreme/fp32";

// No GPU visible (CUDA_VISIBLE_DEVICES empty hides any, so this runs on a GPU machine too).
TEST(BackendLoader, DeviceCudaWithoutAGpuIsOneLineExitThree) {
  const CliRun r =
      run(FUSECHECK_BINARY, "generate " + kTinyModel + " --token-ids 1,2 -n 1 --device cuda",
          "CUDA_VISIBLE_DEVICES=");
  EXPECT_EQ(r.exit_code, 3) << r.err;
#ifdef FUSECHECK_CUDA_MODULE
  EXPECT_EQ(r.err, "fusecheck: error: --device cuda: no CUDA GPU present\n");
#else
  EXPECT_EQ(r.err,
            "fusecheck: error: --device cuda: this fusecheck was built without CUDA (no nvcc at "
            "build time)\n");
#endif
}

// The binary alone in a directory, no module beside it nor on the search path.
TEST(BackendLoader, DeviceCudaWithoutTheModuleNamesIt) {
  testing::TempDir dir;
  ASSERT_EQ(std::system(("cp " + std::string(FUSECHECK_BINARY) + " " + dir.path()).c_str()), 0);
  const CliRun r =
      run(dir / "fusecheck", "generate " + kTinyModel + " --token-ids 1,2 -n 1 --device cuda",
          "LD_LIBRARY_PATH=");
  EXPECT_EQ(r.exit_code, 3) << r.err;
#ifdef FUSECHECK_CUDA_MODULE
  EXPECT_EQ(r.err,
            "fusecheck: error: --device cuda: cannot load libfusecheck_cuda.so: "
            "libfusecheck_cuda.so: cannot open shared object file: No such file or directory\n");
#else
  EXPECT_NE(r.err.find("built without CUDA"), std::string::npos) << r.err;
#endif
  // The CPU path of the same binary runs without it.
  EXPECT_EQ(
      run(dir / "fusecheck", "generate " + kTinyModel + " --token-ids 1,2 -n 1", "").exit_code, 0);
}

}  // namespace
}  // namespace fusecheck
