# CTest mslab_xarray_bench_smoke: mslab-xarray-bench on tiny sizes as JSON —
# exit 0 (every container gave the right answers), every documented key,
# one operation record per pattern × operation × container — then the
# table, then a bad option (exit 2, nothing on stdout). Usage:
#   cmake -DBENCH=path/to/mslab-xarray-bench [-DCONTAINERS=a,b] -P xarray_bench_smoke.cmake
cmake_minimum_required(VERSION 3.25)

set(container_arg "")
set(n_containers 5)
if(DEFINED CONTAINERS)
  set(container_arg --containers=${CONTAINERS})
  string(REPLACE "," ";" list "${CONTAINERS}")
  list(LENGTH list n_containers)
endif()
set(args --n=4096 --sparse-n=512 --seconds=0.02 ${container_arg})

execute_process(COMMAND ${BENCH} ${args} --json OUTPUT_VARIABLE json ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "mslab-xarray-bench --json exited with ${rc}\n${err}\n${json}")
endif()

foreach(key cpu_model cores kernel date compiler build_type xarray_chunk_size command)
  string(JSON value ERROR_VARIABLE problem GET "${json}" machine ${key})
  if(problem)
    message(FATAL_ERROR "machine.${key}: ${problem}")
  endif()
endforeach()

# check(<section> <expected count> <keys...>)
function(check section want)
  string(JSON n ERROR_VARIABLE problem LENGTH "${json}" ${section})
  if(problem OR NOT n EQUAL want)
    message(FATAL_ERROR "${section}: ${n} records, want ${want} ${problem}")
  endif()
  math(EXPR last "${n} - 1")
  foreach(i RANGE ${last})
    foreach(key IN LISTS ARGN)
      string(JSON type ERROR_VARIABLE problem TYPE "${json}" ${section} ${i} ${key})
      if(problem)
        message(FATAL_ERROR "${section}[${i}].${key}: ${problem}")
      endif()
    endforeach()
  endforeach()
endfunction()

math(EXPR n_ops "2 * 5 * ${n_containers}")
math(EXPR n_memory "2 * ${n_containers}")
check(operations ${n_ops} pattern op container ns_per_op ratio_vs_xarray)
check(memory ${n_memory} pattern container entries bytes bytes_per_entry)
check(concurrent ${n_containers} container reader_alone_mops reader_mops writer_mops
      reader_ratio_vs_xarray writer_ratio_vs_xarray)
string(JSON error_type TYPE "${json}" error)
if(NOT error_type STREQUAL "NULL")
  message(FATAL_ERROR "error is not null:\n${json}")
endif()

execute_process(COMMAND ${BENCH} ${args} OUTPUT_VARIABLE table RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR NOT table MATCHES "ns per operation" OR NOT table MATCHES "bytes per entry")
  message(FATAL_ERROR "table run: exit ${rc}\n${table}")
endif()

execute_process(COMMAND ${BENCH} --n=12 OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 2 OR NOT out STREQUAL "" OR err STREQUAL "")
  message(FATAL_ERROR "--n=12: exit ${rc}, stdout '${out}', stderr '${err}'")
endif()
