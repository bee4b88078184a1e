# CTest mslab_bench_smoke: runs `mslab-bench --count=20000 --json` and
# `--csv`, and checks that the JSON parses, names the machine, has a run for
# every (workload, allocator) pair — none failed, only jemalloc may be
# skipped — and that every run carries every documented key. Usage:
#   cmake -DBENCH=path/to/mslab-bench -P smoke_test.cmake
cmake_minimum_required(VERSION 3.25)

set(run_keys workload allocator status note allocator_version object_size objects_allocated objects_live
    live_bytes rss_bytes_peak rss_bytes_before rss_bytes_after ratio_before ratio_after
    free_2m_blocks_before free_2m_blocks_after defrag_ms max_pause_ms objects_moved
    reader_ops_per_s reader_p99_us alloc_ns free_ns ns_per_op settle)
set(machine_keys cpu_model cores kernel date compiler build_type sanitizers mslab_check_level
    mslab_version glibc_version mimalloc_version page_fault_ns process_malloc_is_mimalloc command)

execute_process(COMMAND ${BENCH} --count=20000 --json
                OUTPUT_VARIABLE json ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mslab-bench --json exited with ${rc}\n${err}")
endif()

foreach(key IN LISTS machine_keys)
  string(JSON value ERROR_VARIABLE problem GET "${json}" machine ${key})
  if(problem)
    message(FATAL_ERROR "machine.${key}: ${problem}\n${json}")
  endif()
endforeach()

string(JSON n ERROR_VARIABLE problem LENGTH "${json}" runs)
if(problem OR n LESS 1)
  message(FATAL_ERROR "no runs: ${problem}\n${json}")
endif()
math(EXPR last "${n} - 1")
set(ok_runs 0)
set(seen "")
foreach(i RANGE ${last})
  foreach(key IN LISTS run_keys)
    string(JSON type ERROR_VARIABLE problem TYPE "${json}" runs ${i} ${key})
    if(problem)
      message(FATAL_ERROR "runs[${i}].${key}: ${problem}")
    endif()
  endforeach()
  string(JSON status GET "${json}" runs ${i} status)
  string(JSON workload GET "${json}" runs ${i} workload)
  string(JSON allocator GET "${json}" runs ${i} allocator)
  list(APPEND seen "${workload}/${allocator}")
  if(status STREQUAL "failed")
    string(JSON note GET "${json}" runs ${i} note)
    message(FATAL_ERROR "run ${workload}/${allocator} failed: ${note}")
  endif()
  if(status STREQUAL "skipped" AND NOT allocator STREQUAL "jemalloc")
    message(FATAL_ERROR "run ${workload}/${allocator} was skipped; only jemalloc may be")
  endif()
  if(status STREQUAL "ok")
    math(EXPR ok_runs "${ok_runs} + 1")
    string(JSON ns TYPE "${json}" runs ${i} ns_per_op)
    if(NOT ns STREQUAL "NUMBER")
      message(FATAL_ERROR "run ${workload}/${allocator}: ns_per_op is ${ns}")
    endif()
    if(workload STREQUAL "slab")
      string(JSON ratio TYPE "${json}" runs ${i} ratio_after)
      if(NOT ratio STREQUAL "NUMBER")
        message(FATAL_ERROR "run slab/${allocator}: ratio_after is ${ratio}")
      endif()
    endif()
  endif()
endforeach()
foreach(workload slab pair)
  foreach(allocator mslab glibc mimalloc jemalloc)
    if(NOT "${workload}/${allocator}" IN_LIST seen)
      message(FATAL_ERROR "no run ${workload}/${allocator} in the default suite (runs: ${seen})")
    endif()
  endforeach()
endforeach()

execute_process(COMMAND ${BENCH} --count=20000 --csv --workload=slab --allocator=mslab,glibc
                OUTPUT_VARIABLE csv ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mslab-bench --csv exited with ${rc}\n${err}")
endif()
string(REPLACE ";" "," csv "${csv}")  # keep list splitting to lines
string(REGEX MATCHALL "[^\n]+" lines "${csv}")
list(LENGTH lines nlines)
list(GET lines 0 header)
if(NOT nlines EQUAL 3 OR NOT header MATCHES "^workload,allocator,status,")
  message(FATAL_ERROR "unexpected CSV:\n${csv}")
endif()
message(STATUS "mslab-bench smoke test passed (${ok_runs} runs)")
