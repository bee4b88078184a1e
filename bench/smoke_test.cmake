# CTest mslab_bench_smoke: runs the default suite small (`--count=20000
# --keys=20000 --entries=20000 --json`) and `--csv`, and checks that the JSON parses, names
# the machine, has a run for every (workload, allocator) pair of the
# default suite — none failed, only jemalloc may be skipped — that every
# run carries every documented key, and that mslab-defrag's defrag step
# moved objects and lowered its RSS (slab, kv and xarray; a run whose
# readers or final check found an entry lost or corrupted is "failed"). Then --plot must write a PNG. Usage:
#   cmake -DBENCH=path/to/mslab-bench -P smoke_test.cmake
cmake_minimum_required(VERSION 3.25)

set(run_keys workload allocator status note allocator_version object_size objects_allocated objects_live
    live_bytes rss_bytes_peak rss_bytes_before rss_bytes_after ratio_before ratio_after
    free_2m_blocks_before free_2m_blocks_after defrag_ms max_pause_ms objects_moved
    reader_ops_per_s reader_p99_us alloc_ns free_ns ns_per_op settle
    bytes_copied slabs_freed reader_threads reader_ops_per_s_quiet reader_p99_us_quiet total_ms
    nodes_moved)
set(machine_keys cpu_model cores kernel date compiler build_type sanitizers mslab_check_level
    mslab_version glibc_version mimalloc_version page_fault_ns process_malloc_is_mimalloc command)

execute_process(COMMAND ${BENCH} --count=20000 --keys=20000 --entries=20000 --json
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
    if(workload STREQUAL "slab" OR workload STREQUAL "kv" OR workload STREQUAL "xarray")
      string(JSON ratio TYPE "${json}" runs ${i} ratio_after)
      if(NOT ratio STREQUAL "NUMBER")
        message(FATAL_ERROR "run ${workload}/${allocator}: ratio_after is ${ratio}")
      endif()
    endif()
    if(workload STREQUAL "kv" OR workload STREQUAL "xarray")
      string(JSON quiet TYPE "${json}" runs ${i} reader_ops_per_s_quiet)
      if(NOT quiet STREQUAL "NUMBER")
        message(FATAL_ERROR "run ${workload}/${allocator}: reader_ops_per_s_quiet is ${quiet}")
      endif()
      # 20000 entries, 90 % erased: every survivor was loaded and checked.
      string(JSON live GET "${json}" runs ${i} objects_live)
      if(NOT live EQUAL 2000)
        message(FATAL_ERROR "run ${workload}/${allocator}: ${live} live entries, expected 2000")
      endif()
    endif()
    if(allocator STREQUAL "mslab-defrag")
      string(JSON before GET "${json}" runs ${i} rss_bytes_before)
      string(JSON after GET "${json}" runs ${i} rss_bytes_after)
      string(JSON moved GET "${json}" runs ${i} objects_moved)
      # reader_ops_per_s may be null here: a defrag pass of a few ms on a
      # busy machine can end before a reader is scheduled.
      if(NOT after LESS before OR NOT moved GREATER 0)
        message(FATAL_ERROR "${workload}/mslab-defrag: RSS ${before} -> ${after}, ${moved} moved")
      endif()
      list(APPEND defrag_checked ${workload})
    endif()
  endif()
endforeach()
set(expected_runs slab/mslab-defrag kv/mslab-defrag xarray/mslab-defrag)
foreach(workload slab pair kv xarray)
  foreach(allocator mslab glibc mimalloc jemalloc)
    list(APPEND expected_runs "${workload}/${allocator}")
  endforeach()
endforeach()
foreach(run IN LISTS expected_runs)
  if(NOT run IN_LIST seen)
    message(FATAL_ERROR "no run ${run} in the default suite (runs: ${seen})")
  endif()
endforeach()
foreach(workload slab kv xarray)
  if(NOT workload IN_LIST defrag_checked)
    message(FATAL_ERROR "${workload}/mslab-defrag did not run ok (checked: ${defrag_checked})")
  endif()
endforeach()
# xarray/mslab-defrag moves XArray nodes through the library's movable
# node caches: nodes_moved is a number (it may be 0 when no node slab is
# sparse enough).
foreach(i RANGE ${last})
  string(JSON workload GET "${json}" runs ${i} workload)
  string(JSON allocator GET "${json}" runs ${i} allocator)
  if(workload STREQUAL "xarray" AND allocator STREQUAL "mslab-defrag")
    string(JSON nodes TYPE "${json}" runs ${i} nodes_moved)
    if(NOT nodes STREQUAL "NUMBER")
      message(FATAL_ERROR "xarray/mslab-defrag: nodes_moved is ${nodes}")
    endif()
  endif()
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
# --plot: a PNG (its 8-byte signature) when gnuplot is installed; without
# it, exit 1 and a message naming gnuplot.
set(png "${CMAKE_CURRENT_BINARY_DIR}/mslab_bench_smoke.png")
file(REMOVE "${png}")
execute_process(COMMAND ${BENCH} --workload=kv --keys=5000 --threads=0 --allocator=mslab-defrag,glibc --plot ${png}
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
find_program(GNUPLOT gnuplot)
if(GNUPLOT)
  if(NOT rc EQUAL 0 OR NOT EXISTS "${png}")
    message(FATAL_ERROR "--plot exited with ${rc}, no ${png}\n${err}")
  endif()
  file(READ "${png}" signature LIMIT 8 HEX)
  if(NOT signature STREQUAL "89504e470d0a1a0a")
    message(FATAL_ERROR "--plot wrote no PNG (starts ${signature})")
  endif()
  file(REMOVE "${png}")
elseif(NOT rc EQUAL 1 OR NOT err MATCHES "gnuplot")
  message(FATAL_ERROR "--plot without gnuplot: exit ${rc}, stderr '${err}'")
endif()
# --warm-up: the same small xarray run with and without the warm-up run
# before the baseline. Without it, code pages and thread state touched for
# the first time count after the baseline, so RSS after is higher for every
# allocator (at 20000 entries by about 1 MB).
foreach(warm 0 1000)
  execute_process(COMMAND ${BENCH} --workload=xarray --entries=20000 --threads=0 --allocator=mslab-defrag,glibc
                          --warm-up=${warm} --json
                  OUTPUT_VARIABLE json ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "--warm-up=${warm} exited with ${rc}\n${err}")
  endif()
  foreach(i 0 1)
    string(JSON allocator GET "${json}" runs ${i} allocator)
    string(JSON after_${warm}_${allocator} GET "${json}" runs ${i} rss_bytes_after)
  endforeach()
endforeach()
foreach(allocator mslab-defrag glibc)
  math(EXPR margin "${after_1000_${allocator}} + 262144")  # 256 KiB: more than the noise between runs
  if(NOT margin LESS after_0_${allocator})
    message(FATAL_ERROR "${allocator}: RSS after with the warm-up ${after_1000_${allocator}}, "
                        "without ${after_0_${allocator}}: the warm-up run did not happen")
  endif()
endforeach()

message(STATUS "mslab-bench smoke test passed (${ok_runs} runs)")
