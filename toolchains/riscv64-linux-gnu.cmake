# stackrt cross toolchain: RISC-V 64 Linux (rv64gc, lp64d; no vector extension assumed).
#
#   cmake -S . -B build-riscv64 -G Ninja \
#         -DCMAKE_TOOLCHAIN_FILE=toolchains/riscv64-linux-gnu.cmake
#   cmake --build build-riscv64 && ctest --test-dir build-riscv64
#
# Debian packages: g++-riscv64-linux-gnu (compiler + target libc/libstdc++ in /usr/riscv64-linux-gnu)
# and qemu-user (provides qemu-riscv64). Test binaries are dynamically linked against
# the target libraries in /usr/riscv64-linux-gnu; ctest runs them through
# CMAKE_CROSSCOMPILING_EMULATOR as "qemu-riscv64 -L /usr/riscv64-linux-gnu <test>".
# GoogleTest is not packaged for the target: build it from /usr/src/googletest
# with add_subdirectory() (package 'googletest').

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR riscv64)

set(STACKRT_CROSS_TRIPLE riscv64-linux-gnu)
set(STACKRT_CROSS_SYSROOT /usr/${STACKRT_CROSS_TRIPLE})

set(CMAKE_C_COMPILER   ${STACKRT_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${STACKRT_CROSS_TRIPLE}-g++)
set(CMAKE_ASM_COMPILER ${STACKRT_CROSS_TRIPLE}-gcc)

# Search headers/libraries/packages only in the target tree, programs only on
# the host.
set(CMAKE_FIND_ROOT_PATH ${STACKRT_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Run target executables (ctest, gtest_discover_tests, add_custom_command
# with a target executable) under qemu user-mode emulation. -L makes qemu
# resolve the ELF interpreter and shared libraries inside the target tree.
# qemu's default CPU model ("max") enables every ISA extension qemu knows.
find_program(STACKRT_QEMU_RISCV64 NAMES qemu-riscv64 qemu-riscv64-static NO_CMAKE_FIND_ROOT_PATH)
if(NOT STACKRT_QEMU_RISCV64)
  set(STACKRT_QEMU_RISCV64 qemu-riscv64) # not installed: ctest will report it
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR "${STACKRT_QEMU_RISCV64};-L;${STACKRT_CROSS_SYSROOT}")
