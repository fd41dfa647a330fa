# stackrt cross toolchain: AArch64 Linux (ARMv8-A baseline; NEON/ASIMD is mandatory).
#
#   cmake -S . -B build-aarch64 -G Ninja \
#         -DCMAKE_TOOLCHAIN_FILE=toolchains/aarch64-linux-gnu.cmake
#   cmake --build build-aarch64 && ctest --test-dir build-aarch64
#
# Debian packages: g++-aarch64-linux-gnu (compiler + target libc/libstdc++ in /usr/aarch64-linux-gnu)
# and qemu-user (provides qemu-aarch64). Test binaries are dynamically linked against
# the target libraries in /usr/aarch64-linux-gnu; ctest runs them through
# CMAKE_CROSSCOMPILING_EMULATOR as "qemu-aarch64 -L /usr/aarch64-linux-gnu <test>".
# GoogleTest is not packaged for the target: build it from /usr/src/googletest
# with add_subdirectory() (package 'googletest').

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(STACKRT_CROSS_TRIPLE aarch64-linux-gnu)
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
find_program(STACKRT_QEMU_AARCH64 NAMES qemu-aarch64 qemu-aarch64-static NO_CMAKE_FIND_ROOT_PATH)
if(NOT STACKRT_QEMU_AARCH64)
  set(STACKRT_QEMU_AARCH64 qemu-aarch64) # not installed: ctest will report it
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR "${STACKRT_QEMU_AARCH64};-L;${STACKRT_CROSS_SYSROOT}")
