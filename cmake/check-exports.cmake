# ctest's abi_exports test (cmake -P): the shared library exports exactly the
# functions the public header declares, no more (internal symbols stay
# hidden) and no fewer.  Inputs: HEADER LIBRARY NM.
cmake_minimum_required(VERSION 3.16)

# Declarations in the header: a line that starts at column 0 with a return
# type and names carve_something( .
file(STRINGS ${HEADER} lines REGEX "^[A-Za-z].*[ *]carve_[a-z0-9_]+\\(")
set(declared "")
foreach(line IN LISTS lines)
  if(line MATCHES "^(typedef|#)")
    continue()
  endif()
  string(REGEX MATCH "[ *](carve_[a-z0-9_]+)\\(" m "${line}")
  list(APPEND declared ${CMAKE_MATCH_1})
endforeach()
list(REMOVE_DUPLICATES declared)
list(SORT declared)

execute_process(COMMAND ${NM} -D --defined-only ${LIBRARY}
  OUTPUT_VARIABLE nm_out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D ${LIBRARY} failed")
endif()
string(REPLACE "\n" ";" nm_lines "${nm_out}")
set(exported "")
foreach(line IN LISTS nm_lines)
  if(line MATCHES "^[0-9a-fA-F]* +[TtWwDdBbRrVvi] +([A-Za-z_][A-Za-z0-9_]*)")
    list(APPEND exported ${CMAKE_MATCH_1})
  endif()
endforeach()
list(SORT exported)

set(missing ${declared})
list(REMOVE_ITEM missing ${exported})
set(extra ${exported})
list(REMOVE_ITEM extra ${declared})
list(FILTER extra EXCLUDE REGEX "^(_init|_fini|_edata|_end|__bss_start)$")

list(LENGTH declared n)
if(missing OR extra)
  message(FATAL_ERROR "abi_exports: declared in carve.h but not exported: ${missing}\n"
                      "abi_exports: exported but not declared in carve.h: ${extra}")
endif()
message(STATUS "abi_exports: the ${n} functions of carve.h are exported, nothing else")
