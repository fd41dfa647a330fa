# stackrt cross toolchain: 32-bit ARM Linux, ARMv7-A + NEON, hard-float ABI.
#
#   cmake -S . -B build-armv7-a -G Ninja \
#         -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-linux-gnueabihf.cmake
#   cmake --build build-armv7-a && ctest --test-dir build-armv7-a
#
# Debian packages: g++-arm-linux-gnueabihf (compiler + target libc/libstdc++ in /usr/arm-linux-gnueabihf)
# and qemu-user (provides qemu-arm). Test binaries are dynamically linked against
# the target libraries in /usr/arm-linux-gnueabihf; ctest runs them through
# CMAKE_CROSSCOMPILING_EMULATOR as "qemu-arm -L /usr/arm-linux-gnueabihf <test>".
# GoogleTest is not packaged for the target: build it from /usr/src/googletest
# with add_subdirectory() (package 'googletest').

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7-a)

set(STACKRT_CROSS_TRIPLE arm-linux-gnueabihf)
set(STACKRT_CROSS_SYSROOT /usr/${STACKRT_CROSS_TRIPLE})

set(CMAKE_C_COMPILER   ${STACKRT_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${STACKRT_CROSS_TRIPLE}-g++)
set(CMAKE_ASM_COMPILER ${STACKRT_CROSS_TRIPLE}-gcc)

# Target ISA baseline (appended to every compile of C, C++ and ASM).
set(STACKRT_CROSS_ARCH_FLAGS "-march=armv7-a -mfpu=neon -mfloat-abi=hard")
set(CMAKE_C_FLAGS_INIT   "${STACKRT_CROSS_ARCH_FLAGS}")
set(CMAKE_CXX_FLAGS_INIT "${STACKRT_CROSS_ARCH_FLAGS}")
set(CMAKE_ASM_FLAGS_INIT "${STACKRT_CROSS_ARCH_FLAGS}")

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
find_program(STACKRT_QEMU_ARM NAMES qemu-arm qemu-arm-static NO_CMAKE_FIND_ROOT_PATH)
if(NOT STACKRT_QEMU_ARM)
  set(STACKRT_QEMU_ARM qemu-arm) # not installed: ctest will report it
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR "${STACKRT_QEMU_ARM};-L;${STACKRT_CROSS_SYSROOT}")
