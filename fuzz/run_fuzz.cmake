# Runs one libFuzzer harness for SECONDS on the committed corpus.
#   cmake -DFUZZER=exe -DCORPUS=dir -DWORK=dir -DSECONDS=n [-DMAX_LEN=n] [-DREGRESS=dir]
#         -P run_fuzz.cmake
# New inputs go to WORK/new (the first corpus directory, the one libFuzzer
# writes to); CORPUS and REGRESS (inputs that once failed, kept so they are
# replayed first on every run) are only read.  A crash leaves its input in
# WORK/artifacts.
foreach(v FUZZER CORPUS WORK SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzz.cmake: ${v} is not set")
  endif()
endforeach()
if(NOT DEFINED MAX_LEN)
  set(MAX_LEN 4096)
endif()
set(dirs ${CORPUS})
if(DEFINED REGRESS AND IS_DIRECTORY ${REGRESS})
  list(APPEND dirs ${REGRESS})
endif()
file(REMOVE_RECURSE ${WORK}/new)
file(MAKE_DIRECTORY ${WORK}/new ${WORK}/artifacts)
execute_process(
  COMMAND ${FUZZER} ${WORK}/new ${dirs}
          -max_total_time=${SECONDS} -max_len=${MAX_LEN} -rss_limit_mb=2048 -timeout=30
          -artifact_prefix=${WORK}/artifacts/ -print_final_stats=1
  RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (exit ${rc}); the input that failed is in ${WORK}/artifacts")
endif()
