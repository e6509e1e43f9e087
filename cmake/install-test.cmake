# ctest's install_consumer test (cmake -P): install the build tree into a
# scratch prefix, then build and run a consumer through find_package(carve)
# and through pkg-config.  Inputs: BUILD_DIR SOURCE_DIR WORK_DIR C_COMPILER
# C_FLAGS.
cmake_minimum_required(VERSION 3.16)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}")
  endif()
endfunction()

set(prefix ${WORK_DIR}/prefix)
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})

# 1. find_package(carve) -> carve::carve and carve::carve_static
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/cmake/consumer -B ${WORK_DIR}/cmake-build
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER} -DCMAKE_C_FLAGS=${C_FLAGS}
    -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK_DIR}/cmake-build)
run(${WORK_DIR}/cmake-build/consumer_shared)
run(${WORK_DIR}/cmake-build/consumer_static)

# 2. pkg-config carve (the .pc file must be relocatable: the prefix here is
#    not the one the build was configured with)
find_program(PKG_CONFIG pkg-config)
if(NOT PKG_CONFIG)
  message(FATAL_ERROR "pkg-config is not installed (scripts/deps.sh test)")
endif()
file(GLOB_RECURSE pcfile ${prefix}/carve.pc)
if(NOT pcfile)
  message(FATAL_ERROR "carve.pc was not installed under ${prefix}")
endif()
get_filename_component(pcdir ${pcfile} DIRECTORY)
set(ENV{PKG_CONFIG_PATH} ${pcdir})
execute_process(COMMAND ${PKG_CONFIG} --cflags --libs carve
  OUTPUT_VARIABLE pcflags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs carve failed")
endif()
execute_process(COMMAND ${PKG_CONFIG} --variable=libdir carve
  OUTPUT_VARIABLE libdir OUTPUT_STRIP_TRAILING_WHITESPACE)
separate_arguments(pcflags UNIX_COMMAND "${pcflags}")
separate_arguments(cflags UNIX_COMMAND "${C_FLAGS}")
run(${C_COMPILER} ${cflags} -std=c11 -Wall -Wextra -Werror
    ${SOURCE_DIR}/cmake/consumer/main.c ${pcflags} -o ${WORK_DIR}/consumer_pkgconfig)
set(ENV{LD_LIBRARY_PATH} ${libdir})
run(${WORK_DIR}/consumer_pkgconfig)
message(STATUS "install_consumer: find_package and pkg-config consumers built and ran")
