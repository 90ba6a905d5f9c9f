# wolfSSL for ringmq: the imported target rq::wolfssl.
#
# Default: Debian's own wolfssl source package, built once with AES-NI and assembly into
# ${RINGMQ_WOLFSSL_DIR} (inside the build tree) by tools/wolfssl/build.sh at configure time, and
# reused by every later configure and build of that tree (the script keeps a stamp keyed by the
# Debian version, the compiler and the flags, and returns at once when it matches).
# -DRINGMQ_SYSTEM_WOLFSSL=ON: Debian's libwolfssl-dev through pkg-config instead (no AES-NI, no
# assembly: ~30x slower AES-GCM, see docs/wolfssl.md).
#
# Consumers include <wolfssl/options.h> before any other wolfSSL header: wolfSSL 5.5.4 has no
# define that makes its headers pick up the build's configuration by themselves.
#
# rq::wolfssl carries RQ_WOLFSSL_VERSION="x.y.z": the version ringmq expects the library to report
# at run time (the pin, or the system package's version with RINGMQ_SYSTEM_WOLFSSL).

# The upstream version Debian 12 ships (libwolfssl-dev 5.5.4-2+deb12uN). tools/wolfssl/build.sh
# refuses to build when Debian's package or the fetched source carry another version.
set(RINGMQ_WOLFSSL_VERSION 5.5.4)

option(RINGMQ_SYSTEM_WOLFSSL "Use the system libwolfssl (pkg-config) instead of the AES-NI build" OFF)
set(RINGMQ_WOLFSSL_DIR "${CMAKE_BINARY_DIR}/_deps/wolfssl"
    CACHE PATH "Install prefix of the optimized wolfSSL build (may be shared between build trees)")

find_package(Threads REQUIRED)

if(RINGMQ_SYSTEM_WOLFSSL)
  find_package(PkgConfig REQUIRED)
  pkg_check_modules(WOLFSSL REQUIRED IMPORTED_TARGET wolfssl)
  if(NOT WOLFSSL_VERSION STREQUAL RINGMQ_WOLFSSL_VERSION)
    message(WARNING "system wolfssl is ${WOLFSSL_VERSION}; ringmq is pinned to ${RINGMQ_WOLFSSL_VERSION}")
  endif()
  add_library(rq::wolfssl INTERFACE IMPORTED GLOBAL)
  set_target_properties(rq::wolfssl PROPERTIES
    INTERFACE_LINK_LIBRARIES PkgConfig::WOLFSSL
    INTERFACE_COMPILE_DEFINITIONS "RQ_WOLFSSL_VERSION=\"${WOLFSSL_VERSION}\"")
  message(STATUS "wolfSSL: system package ${WOLFSSL_VERSION} (no AES-NI, no assembly)")
  return()
endif()

set(_rq_wolfssl_script "${CMAKE_SOURCE_DIR}/tools/wolfssl/build.sh")
# Re-run configure (and so the script) when the recipe changes.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_rq_wolfssl_script}")
execute_process(
  COMMAND bash "${_rq_wolfssl_script}" --prefix "${RINGMQ_WOLFSSL_DIR}"
          --version "${RINGMQ_WOLFSSL_VERSION}" --cc "${CMAKE_C_COMPILER}"
  RESULT_VARIABLE _rq_wolfssl_rc)
if(NOT _rq_wolfssl_rc EQUAL 0)
  message(FATAL_ERROR "Building the optimized wolfSSL failed (see the lines above). "
    "On Debian 12, 'bash tools/deps.sh' installs what it needs; "
    "-DRINGMQ_SYSTEM_WOLFSSL=ON uses Debian's slower libwolfssl-dev instead.")
endif()

add_library(rq::wolfssl STATIC IMPORTED GLOBAL)
set_target_properties(rq::wolfssl PROPERTIES
  IMPORTED_LOCATION "${RINGMQ_WOLFSSL_DIR}/lib/libwolfssl.a"
  INTERFACE_INCLUDE_DIRECTORIES "${RINGMQ_WOLFSSL_DIR}/include"
  # libwolfssl.a needs libm (log, pow) and pthreads (mutexes, thread-local error queue).
  INTERFACE_LINK_LIBRARIES "m;Threads::Threads"
  INTERFACE_COMPILE_DEFINITIONS "RQ_WOLFSSL_VERSION=\"${RINGMQ_WOLFSSL_VERSION}\"")
message(STATUS "wolfSSL: ${RINGMQ_WOLFSSL_VERSION} with AES-NI/asm in ${RINGMQ_WOLFSSL_DIR}")
