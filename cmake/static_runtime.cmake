# The `fusecheck` program without libstdc++.so: simdjson and fmt built from Debian's own source
# packages into archives, and the C++ runtime linked statically (-static-libstdc++ -static-libgcc).
#
# Why: loading libstdc++.so (with libm and libgcc_s, and their relocations and page faults) costs
# about 1.3 ms of every process on this project's machines, which is more than the 0.6B check's own
# work (docs/PERFORMANCE.md, "The check"). Debian ships simdjson and fmt as shared libraries only, and
# each of them needs libstdc++.so, so the program can drop it only if both are linked in. Their
# sources come from `scripts/runtime_sources.sh` (the Debian source packages of exactly the
# installed -dev versions; `make configure` runs it) into FUSECHECK_RUNTIME_SOURCES. Whenever they
# are missing, their headers differ from the installed ones, or a sanitizer or fuzzer build is
# asked for, every program links the shared libraries as before and this says so.
#
# Only the program with the target property FUSECHECK_STATIC_DEPS (the `fusecheck` binary) takes
# the archives; the library, the tests and the Python module keep the shared ones. The CPU kernels'
# Highway and the CUDA module are dlopened by the engine and bring libstdc++.so with them then.
# What crosses to them is plain data, pointers, and from the CUDA module a shared_ptr<Backend>,
# Status values and strings (kernels/backend_loader.h): the same compiler and headers give both
# copies of the runtime the same layouts, and both allocate with glibc's malloc.
set(FUSECHECK_RUNTIME_SOURCES "${CMAKE_BINARY_DIR}/runtime-src" CACHE PATH
    "Unpacked Debian sources of simdjson and fmt (scripts/runtime_sources.sh)")
set(FUSECHECK_STATIC_RUNTIME OFF)
set(_rs ${FUSECHECK_RUNTIME_SOURCES})
set(_why "")
if(FUSECHECK_SANITIZE OR FUSECHECK_FUZZ)
  set(_why "sanitizer or fuzzer build")
elseif(NOT EXISTS ${_rs}/simdjson/singleheader/simdjson.cpp OR NOT EXISTS ${_rs}/fmt/src/format.cc)
  set(_why "no sources in ${_rs} (scripts/runtime_sources.sh)")
else()
  # The archives must be the very code the installed headers declare.
  find_file(_sys_simdjson_h simdjson.h PATHS ${SIMDJSON_INCLUDE_DIRS} NO_CACHE)
  get_target_property(_fmt_inc fmt::fmt INTERFACE_INCLUDE_DIRECTORIES)
  file(SHA256 "${_sys_simdjson_h}" _a)
  file(SHA256 ${_rs}/simdjson/singleheader/simdjson.h _b)
  foreach(h core.h format.h format-inl.h os.h)
    find_file(_sys_fmt_${h} fmt/${h} PATHS ${_fmt_inc} NO_CACHE)
    file(SHA256 "${_sys_fmt_${h}}" _c)
    file(SHA256 ${_rs}/fmt/include/fmt/${h} _d)
    string(APPEND _a ${_c})
    string(APPEND _b ${_d})
  endforeach()
  if(NOT _a STREQUAL _b)
    set(_why "the sources in ${_rs} are not the installed simdjson/fmt headers' version")
  endif()
endif()

if(_why)
  message(STATUS "fusecheck links the shared simdjson, fmt and libstdc++ (${_why})")
  return()
endif()
set(FUSECHECK_STATIC_RUNTIME ON)
message(STATUS "fusecheck links simdjson, fmt and the C++ runtime statically (sources in ${_rs})")

# simdjson's single-file build with every implementation and run-time dispatch, as Debian's
# libsimdjson is built (its CMake defaults: threads on, -O2 for RelWithDebInfo).
add_library(fusecheck_static_simdjson STATIC ${_rs}/simdjson/singleheader/simdjson.cpp)
target_include_directories(fusecheck_static_simdjson SYSTEM PRIVATE ${_rs}/simdjson/singleheader)
target_compile_definitions(fusecheck_static_simdjson PUBLIC SIMDJSON_THREADS_ENABLED=1)
target_compile_options(fusecheck_static_simdjson PRIVATE -w)
target_link_libraries(fusecheck_static_simdjson INTERFACE Threads::Threads)
# fmt's two compiled sources (format.cc, os.cc), as in its own CMake build.
add_library(fusecheck_static_fmt STATIC ${_rs}/fmt/src/format.cc ${_rs}/fmt/src/os.cc)
target_include_directories(fusecheck_static_fmt SYSTEM PRIVATE ${_rs}/fmt/include)
target_compile_options(fusecheck_static_fmt PRIVATE -w)

# libgcc's CPU-feature table (__cpu_model, which __builtin_cpu_supports reads) without the start-up
# constructor that fills it: that constructor runs 12 CPUID instructions, each a trap to the
# hypervisor on a VM (3.7-9.4 us apiece on the project's machine): `fusecheck --version` took 6%
# longer with it there (docs/PERFORMANCE.md). Only the engine's bf16-pair dot asks for CPU features,
# so src/cli/main.cpp fills the table (__builtin_cpu_init, idempotent) before every command but
# `--version` and `check` without `--probe`. The copy is libgcc's own cpuinfo.o with its
# .init_array entry removed; linked ahead of libgcc, it is the one the program takes. Without ar or
# objcopy, or when libgcc has no such object, the program keeps libgcc's constructor.
set(FUSECHECK_LAZY_CPUINFO "")
execute_process(COMMAND ${CMAKE_CXX_COMPILER} -print-libgcc-file-name
                OUTPUT_VARIABLE _libgcc OUTPUT_STRIP_TRAILING_WHITESPACE)
set(_dir ${CMAKE_BINARY_DIR}/lazy-cpuinfo)
file(MAKE_DIRECTORY ${_dir})
execute_process(COMMAND ${CMAKE_AR} x ${_libgcc} cpuinfo.o WORKING_DIRECTORY ${_dir}
                RESULT_VARIABLE _r1 OUTPUT_QUIET ERROR_QUIET)
if(_r1 EQUAL 0 AND CMAKE_OBJCOPY)
  execute_process(COMMAND ${CMAKE_OBJCOPY} --remove-section=.init_array* --remove-section=.ctors*
                          cpuinfo.o cpuinfo-lazy.o
                  WORKING_DIRECTORY ${_dir} RESULT_VARIABLE _r2 OUTPUT_QUIET ERROR_QUIET)
  execute_process(COMMAND ${CMAKE_OBJDUMP} -h cpuinfo-lazy.o WORKING_DIRECTORY ${_dir}
                  OUTPUT_VARIABLE _sections RESULT_VARIABLE _r3 ERROR_QUIET)
  execute_process(COMMAND ${CMAKE_NM} cpuinfo-lazy.o WORKING_DIRECTORY ${_dir}
                  OUTPUT_VARIABLE _symbols RESULT_VARIABLE _r4 ERROR_QUIET)
  if(_r2 EQUAL 0 AND _r3 EQUAL 0 AND _r4 EQUAL 0 AND NOT _sections MATCHES "init_array|ctors"
     AND _symbols MATCHES "T __cpu_indicator_init" AND _symbols MATCHES "__cpu_model")
    set(FUSECHECK_LAZY_CPUINFO ${_dir}/cpuinfo-lazy.o)
  endif()
endif()
if(FUSECHECK_LAZY_CPUINFO)
  message(STATUS "fusecheck fills libgcc's CPU-feature table on demand (${FUSECHECK_LAZY_CPUINFO})")
else()
  message(STATUS "fusecheck keeps libgcc's CPU-feature constructor (no cpuinfo.o to copy)")
endif()
