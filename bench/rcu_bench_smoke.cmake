# CTest mslab_rcu_bench_smoke: mslab-rcu-bench on tiny sizes as JSON —
# every case of both benchmarks passed (all freed, no reader violation) and
# has every documented key — then the table, and bad command lines (exit 2,
# one stderr line). Usage (CASES: optional --case list, default all):
#   cmake -DBENCH=path/to/mslab-rcu-bench [-DCASES=a,b] -P rcu_bench_smoke.cmake
cmake_minimum_required(VERSION 3.25)

set(machine_keys cpu_model cores kernel date compiler build_type sanitizers mslab_check_level
    liburcu_version urcu_flavor sys_membarrier command)
set(flood_keys case repetition median api status note frees seconds_total seconds_producers barrier_ms frees_per_s
    ratio_vs_call_rcu ratio_vs_defer_rcu producer_ns_per_op peak_pending_bytes_sampled
    peak_pending_bytes_library latency_samples latency_p50_ns latency_p99_ns latency_max_ns
    grace_periods batches batches_elapsed producer_waits producer_grace_periods page_faults cpu_ms
    context_switches)
set(replace_keys case repetition median api status note total_ms writer_ms barrier_ms ratio_vs_synchronize ratio_vs_call_rcu
    reader_iterations reader_iterations_per_s violations grace_periods peak_pending_bytes_sampled
    peak_pending_bytes_library page_faults)
set(flood_cases call_rcu defer_rcu mslab mslab-headless mslab-slab direct)
set(replace_cases synchronize mslab call_rcu defer_rcu)
set(case_arg "")
if(DEFINED CASES)
  string(REPLACE "," ";" selected "${CASES}")
  foreach(list_var flood_cases replace_cases)
    set(kept "")
    foreach(name IN LISTS ${list_var})
      if(name IN_LIST selected)
        list(APPEND kept ${name})
      endif()
    endforeach()
    set(${list_var} ${kept})
  endforeach()
  set(case_arg --case=${CASES})
endif()

execute_process(COMMAND ${BENCH} --count=20000 --replacements=256 --json --timeout=120 ${case_arg}
                OUTPUT_VARIABLE json ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mslab-rcu-bench --json exited with ${rc}\n${err}\n${json}")
endif()

foreach(key IN LISTS machine_keys)
  string(JSON value ERROR_VARIABLE problem GET "${json}" machine ${key})
  if(problem)
    message(FATAL_ERROR "machine.${key}: ${problem}\n${json}")
  endif()
endforeach()

# check_runs(<benchmark> <keys list var> <cases list var>)
function(check_runs bench keys_var cases_var)
  string(JSON n ERROR_VARIABLE problem LENGTH "${json}" ${bench} runs)
  if(problem)
    message(FATAL_ERROR "${bench}.runs: ${problem}")
  endif()
  list(LENGTH ${cases_var} want)
  if(NOT n EQUAL want)
    message(FATAL_ERROR "${bench}: ${n} runs, want ${want}")
  endif()
  math(EXPR last "${n} - 1")
  foreach(i RANGE ${last})
    foreach(key IN LISTS ${keys_var})
      string(JSON type ERROR_VARIABLE problem TYPE "${json}" ${bench} runs ${i} ${key})
      if(problem)
        message(FATAL_ERROR "${bench}.runs[${i}].${key}: ${problem}")
      endif()
    endforeach()
    string(JSON name GET "${json}" ${bench} runs ${i} case)
    list(GET ${cases_var} ${i} expected)
    if(NOT name STREQUAL expected)
      message(FATAL_ERROR "${bench}.runs[${i}] is '${name}', want '${expected}'")
    endif()
    string(JSON status GET "${json}" ${bench} runs ${i} status)
    if(NOT status STREQUAL "ok")
      string(JSON note GET "${json}" ${bench} runs ${i} note)
      message(FATAL_ERROR "${bench}/${name}: ${status}: ${note}")
    endif()
  endforeach()
endfunction()

check_runs(flood flood_keys flood_cases)
check_runs(replace replace_keys replace_cases)

list(LENGTH flood_cases n)
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON frees GET "${json}" flood runs ${i} frees)
  if(NOT frees EQUAL 20000)
    message(FATAL_ERROR "flood run ${i} freed ${frees} objects, want 20000")
  endif()
endforeach()
list(LENGTH replace_cases n)
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  string(JSON violations GET "${json}" replace runs ${i} violations)
  if(NOT violations EQUAL 0)
    message(FATAL_ERROR "replace run ${i}: ${violations} reader violations")
  endif()
endforeach()

# The table output runs too (one benchmark, one case, to keep it short).
execute_process(COMMAND ${BENCH} --benchmark=replace --case=mslab --replacements=64
                OUTPUT_VARIABLE table ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT table MATCHES "\nmslab +[0-9]")
  message(FATAL_ERROR "table output: exit ${rc}\n${table}\n${err}")
endif()

# Bad command lines: exit 2, one line on stderr, nothing on stdout.
set(bad "--bogus" "stray" "--count=0" "--count=abc" "--count=12x" "--count" "--threads=0" "--threads=65"
        "--latency-every=0" "--replacements=0" "--array-ints=1" "--timeout=0" "--benchmark=nope"
        "--benchmark=flood," "--case=tcmalloc" "--array-memory=new" "--rate=-1" "--repeat=0" "--json=yes")
foreach(args IN LISTS bad)
  execute_process(COMMAND ${BENCH} ${args} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  string(REGEX MATCHALL "\n" newlines "${err}")
  list(LENGTH newlines nl)
  if(NOT rc EQUAL 2 OR NOT out STREQUAL "" OR NOT nl EQUAL 1)
    message(FATAL_ERROR "'${args}': exit ${rc} (want 2), stdout '${out}', stderr '${err}'")
  endif()
endforeach()
execute_process(COMMAND ${BENCH} --help OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT out MATCHES "--replacements")
  message(FATAL_ERROR "--help: exit ${rc}, output '${out}'")
endif()
message(STATUS "mslab-rcu-bench smoke test passed")
