# stackrt cross toolchain: Cortex-M bare metal (arm-none-eabi, newlib-nano).
#
# Default target: Arm MPS2 AN386 (Cortex-M4F, FPv4-SP) as emulated by
# qemu-system-arm -M mps2-an386. Pass -DSTACKRT_CORTEX_M_CPU=cortex-m7 for the
# MPS2 AN500 (Cortex-M7, FPv5 double precision, qemu -M mps2-an500); both
# boards share the memory map used by ports/baremetal/mps2-an386.ld.
#
#   cmake -S . -B build-cm4 -G Ninja -DCMAKE_BUILD_TYPE=MinSizeRel \
#         -DCMAKE_TOOLCHAIN_FILE=toolchains/arm-none-eabi.cmake
#   cmake --build build-cm4 && ctest --test-dir build-cm4
#
# Executables must be linked with the port in ports/baremetal/ (startup code,
# linker script, semihosting syscalls); see ports/baremetal/README.md.
# ctest runs them with qemu-system-arm + semihosting; the guest's exit status
# becomes qemu's exit status.
#
# Debian packages: gcc-arm-none-eabi libnewlib-arm-none-eabi
# libstdc++-arm-none-eabi-newlib qemu-system-arm.

set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)

set(CMAKE_C_COMPILER   arm-none-eabi-gcc)
set(CMAKE_CXX_COMPILER arm-none-eabi-g++)
set(CMAKE_ASM_COMPILER arm-none-eabi-gcc)

# No OS, no startup files for the compiler checks: test-compile to a static
# library instead of linking an executable.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

if(NOT DEFINED STACKRT_CORTEX_M_CPU)
  set(STACKRT_CORTEX_M_CPU cortex-m4)
endif()
list(APPEND CMAKE_TRY_COMPILE_PLATFORM_VARIABLES STACKRT_CORTEX_M_CPU)

if(STACKRT_CORTEX_M_CPU STREQUAL "cortex-m4")
  # Cortex-M4F: single-precision FPU only (double is soft-float: avoid it).
  set(STACKRT_CORTEX_M_FLAGS "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16")
  set(STACKRT_BAREMETAL_MACHINE mps2-an386)
elseif(STACKRT_CORTEX_M_CPU STREQUAL "cortex-m7")
  # Cortex-M7 with single+double precision FPU.
  set(STACKRT_CORTEX_M_FLAGS "-mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16")
  set(STACKRT_BAREMETAL_MACHINE mps2-an500)
else()
  message(FATAL_ERROR "STACKRT_CORTEX_M_CPU must be cortex-m4 or cortex-m7 (got '${STACKRT_CORTEX_M_CPU}')")
endif()

# Port files (absolute paths, for the project's CMakeLists).
get_filename_component(_stackrt_tc_dir "${CMAKE_CURRENT_LIST_DIR}" REALPATH)
get_filename_component(STACKRT_BAREMETAL_PORT_DIR "${_stackrt_tc_dir}/../ports/baremetal" ABSOLUTE)
unset(_stackrt_tc_dir)
set(STACKRT_BAREMETAL_LINKER_SCRIPT "${STACKRT_BAREMETAL_PORT_DIR}/mps2-an386.ld")

# Dead-code elimination needs one section per function/object.
set(_stackrt_common "${STACKRT_CORTEX_M_FLAGS} -ffunction-sections -fdata-sections")
set(CMAKE_C_FLAGS_INIT   "${_stackrt_common}")
set(CMAKE_ASM_FLAGS_INIT "${_stackrt_common}")
# No exceptions/RTTI; local statics need no guard locks (single thread).
set(CMAKE_CXX_FLAGS_INIT "${_stackrt_common} -fno-exceptions -fno-rtti -fno-threadsafe-statics")
unset(_stackrt_common)

# newlib-nano; the port supplies the syscalls (no nosys/rdimon specs needed).
# _printf_float: newlib-nano's printf only formats %f/%g when asked to.
option(STACKRT_BAREMETAL_PRINTF_FLOAT "Link newlib-nano's float printf" ON)
set(CMAKE_EXE_LINKER_FLAGS_INIT "--specs=nano.specs -Wl,--gc-sections")
if(STACKRT_BAREMETAL_PRINTF_FLOAT)
  string(APPEND CMAKE_EXE_LINKER_FLAGS_INIT " -Wl,-u,_printf_float")
endif()

set(CMAKE_FIND_ROOT_PATH /usr/lib/arm-none-eabi)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# ctest / add_test run "<emulator...> <exe>": the ELF goes right after -kernel.
# Semihosting gives the guest stdout and SYS_EXIT(_EXTENDED) sets qemu's exit
# code. Programs that fault exit non-zero via the port's fault handlers
# instead of hanging, but set a ctest TIMEOUT anyway. Test arguments cannot be
# passed this way (they would go to qemu).
find_program(STACKRT_QEMU_SYSTEM_ARM NAMES qemu-system-arm NO_CMAKE_FIND_ROOT_PATH)
if(NOT STACKRT_QEMU_SYSTEM_ARM)
  set(STACKRT_QEMU_SYSTEM_ARM qemu-system-arm) # not installed: ctest will report it
endif()
set(CMAKE_CROSSCOMPILING_EMULATOR
  "${STACKRT_QEMU_SYSTEM_ARM};-M;${STACKRT_BAREMETAL_MACHINE};-nographic;-monitor;none;-serial;null;-semihosting-config;enable=on,target=native;-kernel")
