# CTest mslab_bench_bad_options: every bad command line must exit with code
# 2, print exactly one line on stderr and nothing on stdout. Usage:
#   cmake -DBENCH=path/to/mslab-bench -P bad_options_test.cmake
cmake_minimum_required(VERSION 3.25)

# One command line per entry; arguments separated by '|'.
set(cases
  "--bogus"
  "-x"
  "stray"
  "--count=0"
  "--count=abc"
  "--count=-5"
  "--count=12x"
  "--count"
  "--count|--json"
  "--size=0"
  "--size=262145"
  "--free-fraction=1.5"
  "--free-fraction=-0.1"
  "--free-fraction=nan"
  "--seed=-1"
  "--ring=0"
  "--workload=nope"
  "--workload=slab,"
  "--allocator=tcmalloc"
  "--json=yes"
  "--json|--csv"
  "--keys=0"
  "--keys=1000000001"
  "--entries=0"
  "--entries=1000000001"
  "--entries=1e5"
  "--workload=xarray,btree"
  "--threads=65"
  "--threads=x"
  "--refill=2"
  "--refill=-1"
  "--plot"
  "--plot=out.svg"
  "--plot=.png"
  "--allocator=mslab-defrag,nope"
  "--warm-up=-1"
  "--warm-up=1000000001"
  "--warm-up=x"
  "--warm-up"
)
foreach(case IN LISTS cases)
  string(REPLACE "|" ";" args "${case}")
  execute_process(COMMAND ${BENCH} ${args} OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
  string(REGEX MATCHALL "\n" newlines "${err}")
  list(LENGTH newlines nl)
  if(NOT rc EQUAL 2 OR NOT out STREQUAL "" OR NOT nl EQUAL 1)
    message(FATAL_ERROR "'${case}': exit ${rc} (want 2), stdout '${out}', stderr '${err}'")
  endif()
endforeach()

execute_process(COMMAND ${BENCH} --help OUTPUT_VARIABLE out RESULT_VARIABLE rc)
set(documented --workload --allocator --size --count --free-fraction --seed --ring --keys --entries --refill
    --threads --warm-up --json --csv --plot --help kv xarray mslab-defrag)
foreach(word IN LISTS documented)
  string(FIND "${out}" "${word}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "--help does not mention ${word}")
  endif()
endforeach()
if(NOT rc EQUAL 0 OR NOT out MATCHES "--free-fraction")
  message(FATAL_ERROR "--help: exit ${rc}, output '${out}'")
endif()
list(LENGTH cases n)
message(STATUS "mslab-bench rejected all ${n} bad command lines with exit code 2")
